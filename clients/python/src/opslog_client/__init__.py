"""opslog client: operations and log messages from integration code (standard library only).

What must stay true:

- No public method raises because logging failed; failures go to ``on_error`` (default: the
  ``opslog_client`` logger).
- ``log()``/``http()`` never wait on the network: they append to a bounded buffer (oldest messages
  dropped and counted when it is full). ``flush()``/``close()`` wait at most their timeout.
- One background thread sends in order, so an operation is created before its messages are sent
  and its end after them. Creation carries an Idempotency-Key, so a retry after a lost answer
  returns the same operation instead of a second one.
"""

from __future__ import annotations

import atexit
import base64
import collections
import email.utils
import hashlib
import hmac
import json
import logging
import os
import random
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

__all__ = [
    "Opslog",
    "Operation",
    "OpslogApiError",
    "REDACTED",
    "redact_headers",
    "redact_url",
    "redact_body",
    "parse_retry_after",
    "backoff_seconds",
    "verify_webhook",
]
__version__ = "0.1.0"

REDACTED = "[REDACTED]"
SENSITIVE_HEADERS = frozenset(
    [
        "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key",
        "x-auth-token", "x-access-token", "x-client-secret", "x-csrf-token", "x-amz-security-token",
    ]
)
SENSITIVE_PARAMS = frozenset(
    [
        "access_token", "refresh_token", "id_token", "token", "api_key", "apikey", "key", "secret",
        "client_secret", "password", "passwd", "pwd", "signature", "sig", "code", "auth",
        "private_key", "session", "sessionid", "x-api-key",
    ]
)
MAX_BATCH = 1000

logger = logging.getLogger("opslog_client")


def _now() -> str:
    t = datetime.now(timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def redact_headers(headers: Any, extra: Iterable[str] = ()) -> Optional[Dict[str, str]]:
    """Headers (a mapping, an ``email.message.Message``/``http.client.HTTPMessage`` or pairs) as a
    plain dict with sensitive values replaced."""
    if headers is None:
        return None
    sensitive = SENSITIVE_HEADERS | {h.lower() for h in extra}
    items = headers.items() if hasattr(headers, "items") else headers
    out: Dict[str, str] = {}
    for name, value in items:
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        out[str(name)] = REDACTED if str(name).lower() in sensitive else str(value)
    return out


def redact_url(url: str, extra: Iterable[str] = ()) -> str:
    """The URL with sensitive query parameter values and any userinfo password replaced; the rest
    stays byte for byte as given."""
    url = str(url)
    sensitive = SENSITIVE_PARAMS | {p.lower() for p in extra}
    url = re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/?#:@]*):[^/?#@]*@", r"\1:" + REDACTED + "@", url)
    before_hash, hash_sign, fragment = url.partition("#")
    path, question, query = before_hash.partition("?")
    if not question:
        return url
    pairs = []
    for pair in query.split("&"):
        name, eq, _ = pair.partition("=")
        if eq and urllib.parse.unquote_plus(name).lower() in sensitive:
            pair = name + "=" + REDACTED
        pairs.append(pair)
    return path + "?" + "&".join(pairs) + hash_sign + fragment


def _active_trace_context() -> Optional[Dict[str, str]]:
    """The active OpenTelemetry span's context as W3C headers, or None (no API installed, no span).

    Read from the span itself rather than through the configured propagator, which may not be
    W3C's (B3, say)."""
    try:
        from opentelemetry import trace
    except Exception:  # noqa: BLE001 - OpenTelemetry is optional
        return None
    try:
        ctx = trace.get_current_span().get_span_context()
        if not ctx.is_valid:
            return None
        carrier = {
            "traceparent": "00-%s-%s-%02x"
            % (trace.format_trace_id(ctx.trace_id), trace.format_span_id(ctx.span_id), int(ctx.trace_flags) & 0xFF)
        }
        state = ctx.trace_state.to_header() if ctx.trace_state else ""
        if state:
            carrier["tracestate"] = state
        return carrier
    except Exception:  # noqa: BLE001 - logging must never fail the caller
        return None


def redact_body(body: Any, extra: Iterable[str] = (), _depth: int = 0) -> Any:
    """JSON bodies: values under sensitive keys (at any depth, up to 8 levels) replaced."""
    if _depth > 8:
        return body
    sensitive = SENSITIVE_PARAMS | {p.lower() for p in extra}
    if isinstance(body, Mapping):
        return {
            k: REDACTED if str(k).lower() in sensitive else redact_body(v, extra, _depth + 1)
            for k, v in body.items()
        }
    if isinstance(body, (list, tuple)):
        return [redact_body(v, extra, _depth + 1) for v in body]
    return body


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Retry-After (seconds or an HTTP date) in seconds, or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        at = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if at is None:
        return None
    return max(0.0, at.timestamp() - (time.time() if now is None else now))


def backoff_seconds(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Full-jitter exponential backoff for retry ``attempt`` (0-based)."""
    return rand() * min(cap, base * (2 ** attempt))


_LEVELS = {"debug": "debug", "info": "info", "warn": "warn", "warning": "warn", "error": "error", "critical": "error"}


def verify_webhook(
    secret: str,
    body: Any,
    headers: Mapping[str, str],
    tolerance: float = 300.0,
    now: Optional[float] = None,
) -> bool:
    """Whether a webhook request came from opslog, from its raw ``body`` (bytes or str, as
    received, before parsing) and ``headers``: by its Standard Webhooks signature
    (``webhook-id``, ``webhook-timestamp`` within ``tolerance`` seconds, ``webhook-signature``), or,
    for a URL in the Nango format, by ``X-Nango-Hmac-Sha256`` (HMAC-SHA256 keyed with the whole
    secret, as Nango's ``verifyIncomingWebhookRequest``). ``secret``: the environment's
    ``whsec_…`` secret, or the Nango signing key installed as it. Never raises."""
    try:
        raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        lower = {str(k).lower(): str(v) for k, v in dict(headers).items()}
        signature = lower.get("webhook-signature")
        if signature is not None:
            msg_id, stamp = lower.get("webhook-id", ""), lower.get("webhook-timestamp", "")
            if not stamp.isdigit() or abs((time.time() if now is None else now) - int(stamp)) > tolerance:
                return False
            if secret.startswith("whsec_"):
                key = base64.b64decode(secret[len("whsec_"):])
            else:
                key = secret.encode("utf-8")
            signed = msg_id.encode("utf-8") + b"." + stamp.encode("utf-8") + b"." + raw
            expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
            return any(
                part.startswith("v1,") and hmac.compare_digest(part[3:], expected)
                for part in signature.split()
            )
        nango = lower.get("x-nango-hmac-sha256")
        if nango is not None:
            expected = hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).hexdigest()
            return hmac.compare_digest(nango, expected)
        return False
    except Exception:  # noqa: BLE001
        return False


def _level(level: Any) -> Optional[str]:
    """A level the daemon accepts, or None (its default) for anything else."""
    return None if level is None else _LEVELS.get(str(level).lower())


def _retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


class OpslogApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__("opslog answered %d %s: %s" % (status, code, message))
        self.status = status
        self.code = code
        self.retry_after: Optional[float] = None


def _error_info(error: Any) -> Dict[str, Any]:
    if error is None:
        return {"message": "unknown error"}
    if isinstance(error, BaseException):
        return {"name": type(error).__name__, "message": str(error) or type(error).__name__}
    if isinstance(error, Mapping) and error.get("message"):
        info = dict(error)
        info["message"] = str(info["message"])
        return info
    return {"message": str(error)}


class Operation:
    """A handle on one operation. ``id`` is set once the daemon created it; ``failed`` is True
    when it never did (its messages are then dropped)."""

    def __init__(self, client: "Opslog", body: Dict[str, Any]):
        self._client = client
        self._body = body
        self._key = "opslog-py-" + uuid.uuid4().hex
        self.id: Optional[str] = None
        self.failed = False
        self._ended = False
        self._end_sent = threading.Event()

    def log(self, message: Any, level: Optional[str] = None, meta: Any = None, error: Any = None) -> None:
        """A custom log line (``level``: debug, info, warn, error)."""
        try:
            body: Dict[str, Any] = {"type": "log", "message": str(message)}
            if _level(level):
                body["level"] = _level(level)
            if meta is not None:
                body["meta"] = meta
            if error is not None:
                body["error"] = _error_info(error)
            self._client._push_message(self, body)
        except Exception as e:  # noqa: BLE001 - logging must never raise into the caller
            self._client._report(e)

    def http(
        self,
        request: Optional[Mapping[str, Any]],
        response: Optional[Mapping[str, Any]] = None,
        duration_ms: Optional[float] = None,
        level: Optional[str] = None,
        message: Optional[str] = None,
        retry: Optional[Mapping[str, Any]] = None,
        meta: Any = None,
    ) -> None:
        """One HTTP call to an external API: ``request`` {method, url, headers?, body?},
        ``response`` {status, headers?, body?} (None for a call that got no answer). Sensitive
        headers, query parameters and body keys are redacted before anything is sent."""
        try:
            c = self._client
            body: Dict[str, Any] = {"type": "http"}
            if request is not None:
                req: Dict[str, Any] = {
                    "method": str(request.get("method") or "GET").upper(),
                    "url": redact_url(request.get("url") or "", c._redact_params),
                }
                headers = redact_headers(request.get("headers"), c._redact_headers)
                if headers is not None:
                    req["headers"] = headers
                if request.get("body") is not None:
                    req["body"] = redact_body(request["body"], c._redact_params)
                body["request"] = req
            if response is not None:
                res: Dict[str, Any] = {"status": int(response["status"])}
                headers = redact_headers(response.get("headers"), c._redact_headers)
                if headers is not None:
                    res["headers"] = headers
                if response.get("body") is not None:
                    res["body"] = redact_body(response["body"], c._redact_params)
                body["response"] = res
            if duration_ms is not None:
                body["duration_ms"] = max(0, int(round(duration_ms)))
            if _level(level):
                body["level"] = _level(level)
            if message:
                body["message"] = str(message)
            if retry is not None:
                body["retry"] = dict(retry)
            if meta is not None:
                body["meta"] = meta
            c._push_message(self, body)
        except Exception as e:  # noqa: BLE001
            self._client._report(e)

    def end(
        self,
        records: Optional[Sequence[Mapping[str, Any]]] = None,
        *,
        checkpoints: Optional[Mapping[str, Any]] = None,
        output: Any = None,
        sync_type: Optional[str] = None,
    ) -> None:
        """Ends the operation as ``success`` (sent after its messages; returns at once).

        ``records``: a sync's counts per model; ``checkpoints``: ``{"from": {...} | None, "to":
        {...} | None}``, the state a sync run started from and saved (Nango's); ``output``: what an
        action returned (served at ``GET /operations/{id}/output``)."""
        patch: Dict[str, Any] = {"state": "success", "ended_at": _now()}
        if records is not None:
            patch["records"] = [dict(r) for r in records]
        if checkpoints is not None:
            patch["checkpoints"] = dict(checkpoints)
        if output is not None:
            patch["output"] = output
        if sync_type is not None:
            patch["sync_type"] = sync_type
        self._finish(patch)

    def fail(self, error: Any) -> None:
        """Ends the operation as ``failed`` with ``error`` (an exception, a string or a dict)."""
        try:
            info = _error_info(error)
        except Exception:  # noqa: BLE001
            info = {"message": "unknown error"}
        self._finish({"state": "failed", "ended_at": _now(), "error": info})

    def _finish(self, patch: Dict[str, Any]) -> None:
        try:
            if self._ended:
                return
            self._ended = True
            self._client._push("end", self, patch)
        except Exception as e:  # noqa: BLE001
            self._client._report(e)


class Opslog:
    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        environment: Optional[str] = None,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        max_buffer_size: int = 10_000,
        max_retries: int = 5,
        retry_base: float = 0.2,
        retry_max: float = 10.0,
        timeout: float = 10.0,
        redact_headers: Iterable[str] = (),
        redact_params: Iterable[str] = (),
        on_error: Optional[Callable[[Exception], None]] = None,
        flush_on_exit: bool = True,
        exit_timeout: float = 10.0,
    ):
        self._url = (url or os.environ.get("OPSLOG_URL") or "http://127.0.0.1:7400").rstrip("/")
        self._token = token or os.environ.get("OPSLOG_TOKEN") or ""
        self._environment = environment or os.environ.get("OPSLOG_ENV") or "prod"
        self._batch_size = max(1, min(MAX_BATCH, batch_size))
        self._flush_interval = flush_interval
        self._max_buffer = max(1, max_buffer_size)
        self._max_retries = max_retries
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._timeout = timeout
        self._redact_headers = [h.lower() for h in redact_headers]
        self._redact_params = [p.lower() for p in redact_params]
        self._on_error = on_error
        self._exit_timeout = exit_timeout
        self._cond = threading.Condition()
        self._queue: "collections.deque[list]" = collections.deque()  # [kind, op, body]
        self._queued_messages = 0
        self._busy = False  # the sender holds items taken from the queue
        self._flush_now = False
        self._closed = False
        self._thread: Optional[threading.Thread] = None
        self._stats = {"sent": 0, "dropped": 0, "failed_requests": 0}
        if flush_on_exit:
            atexit.register(self._flush_at_exit)

    # -- public ---------------------------------------------------------------------------------

    def start_operation(
        self,
        type: str = "function",
        action: Optional[str] = None,
        integration: Optional[str] = None,
        connection_id: Optional[str] = None,
        script: Optional[str] = None,
        provider: Optional[str] = None,
        message: Optional[str] = None,
        meta: Any = None,
        end_user: Optional[Mapping[str, Any]] = None,
        tags: Optional[Mapping[str, str]] = None,
        async_: Optional[bool] = None,
        sync_type: Optional[str] = None,
        checkpoints: Optional[Mapping[str, Any]] = None,
        auth_mode: Optional[str] = None,
        trace_context: Optional[Mapping[str, str]] = None,
    ) -> Operation:
        """Starts an operation; returns its handle at once (the daemon is asked in the background).

        ``end_user``: ``{"id", "email"?, "display_name"?, "organization"?: {"id", "display_name"?}}``;
        ``tags``: string labels; ``async_``: an action whose caller does not wait (its end sends
        ``action.completed``); ``sync_type`` (``full``, ``incremental``, ``webhook``),
        ``checkpoints`` and ``auth_mode`` (Nango's, e.g. ``OAUTH2``) are what Nango receivers get.

        The operation joins the caller's trace: ``trace_context`` (``{"traceparent": ...,
        "tracestate": ...}``) when given, else the active OpenTelemetry span's context when the
        ``opentelemetry-api`` package is installed and a span is active."""
        body: Dict[str, Any] = {"type": type}
        for k, v in (
            ("action", action), ("integration", integration), ("connection_id", connection_id),
            ("script", script), ("provider", provider), ("message", message), ("meta", meta),
            ("end_user", dict(end_user) if end_user is not None else None),
            ("tags", dict(tags) if tags is not None else None), ("async", async_),
            ("sync_type", sync_type),
            ("checkpoints", dict(checkpoints) if checkpoints is not None else None),
            ("auth_mode", auth_mode),
        ):
            if v is not None:
                body[k] = v
        carrier = trace_context if trace_context is not None else _active_trace_context()
        if carrier and carrier.get("traceparent"):
            body["trace_context"] = {
                k: str(v) for k, v in carrier.items() if k in ("traceparent", "tracestate")
            }
        body["started_at"] = _now()
        op = Operation(self, body)
        try:
            self._push("start", op, None)
        except Exception as e:  # noqa: BLE001
            self._report(e)
        return op

    def stats(self) -> Dict[str, int]:
        """Messages sent, dropped (buffer full or refused), failed requests, still buffered."""
        with self._cond:
            return dict(self._stats, buffered=self._queued_messages)

    def flush(self, timeout: Optional[float] = 10.0) -> bool:
        """Sends what is buffered; waits at most ``timeout`` seconds. True when all was handled."""
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            with self._cond:
                self._flush_now = True
                self._cond.notify_all()
                while self._queue or self._busy:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._cond.wait(left)
                return True
        except Exception as e:  # noqa: BLE001
            self._report(e)
            return False

    def close(self, timeout: Optional[float] = 10.0) -> bool:
        """Flushes, then drops anything logged later."""
        done = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        return done

    # -- buffer ---------------------------------------------------------------------------------

    def _report(self, error: BaseException) -> None:
        try:
            if self._on_error is not None:
                self._on_error(error)  # type: ignore[arg-type]
            else:
                logger.warning("opslog: %s", error)
        except Exception:  # noqa: BLE001 - a broken on_error must not reach the caller either
            pass

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="opslog-sender", daemon=True)
            self._thread.start()

    def _push(self, kind: str, op: Operation, body: Optional[Dict[str, Any]]) -> None:
        with self._cond:
            self._queue.append([kind, op, body])
            self._flush_now = True  # starts and ends go out at once
            self._ensure_thread()
            self._cond.notify_all()

    def _push_message(self, op: Operation, body: Dict[str, Any]) -> None:
        body["created_at"] = _now()
        with self._cond:
            if self._closed:
                self._stats["dropped"] += 1
                return
            self._queue.append(["message", op, body])
            self._queued_messages += 1
            if self._queued_messages > self._max_buffer:
                self._drop_oldest_message()
            self._ensure_thread()
            if self._queued_messages >= self._batch_size:
                self._cond.notify_all()

    def _drop_oldest_message(self) -> None:
        for i, item in enumerate(self._queue):
            if item[0] == "message":
                del self._queue[i]
                self._queued_messages -= 1
                self._stats["dropped"] += 1
                return

    def _flush_at_exit(self) -> None:
        with self._cond:
            pending = bool(self._queue) or self._busy
        if pending:
            self.flush(self._exit_timeout)

    # -- sender thread --------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                deadline = time.monotonic() + self._flush_interval
                while not (
                    self._queue
                    and (
                        self._flush_now
                        or self._queued_messages >= self._batch_size
                        or time.monotonic() >= deadline
                    )
                ):
                    if not self._queue:
                        self._cond.notify_all()  # wake flush() waiters: all handled
                        self._cond.wait()
                        deadline = time.monotonic() + self._flush_interval
                    else:
                        self._cond.wait(max(0.0, deadline - time.monotonic()))
                items = self._take()
                self._busy = True
            try:
                self._send(items)
            except Exception as e:  # noqa: BLE001
                self._report(e)
            with self._cond:
                self._busy = False
                if not self._queue:
                    self._flush_now = False
                self._cond.notify_all()

    def _take(self) -> List[list]:
        """The next unit of work: one start (with its messages buffered already) or end, or
        consecutive messages up to a batch."""
        first = self._queue.popleft()
        if first[0] == "start":
            items = [first]
            while (
                self._queue
                and len(items) <= self._batch_size
                and self._queue[0][0] == "message"
                and self._queue[0][1] is first[1]
            ):
                items.append(self._queue.popleft())
            self._queued_messages -= len(items) - 1
            return items
        if first[0] != "message":
            return [first]
        items = [first]
        while self._queue and len(items) < self._batch_size and self._queue[0][0] == "message":
            items.append(self._queue.popleft())
        self._queued_messages -= len(items)
        return items

    def _send(self, items: List[list]) -> None:
        kind, op, body = items[0]
        if kind == "start":
            first = [b for _, _, b in items[1:]]
            if first:
                # Its messages go with it: one request (and one commit) instead of two.
                try:
                    created = self._request(
                        "POST", "/operations", dict(op._body, messages=first), {"Idempotency-Key": op._key}
                    )
                    op.id = created.get("id")
                    with self._cond:
                        self._stats["sent"] += len(first)
                    return
                except OpslogApiError as e:
                    if e.status not in (400, 413, 422):
                        op.failed = True
                        self._report(e)
                        with self._cond:
                            self._stats["dropped"] += len(first)
                        return
                    # Refused for one of its messages (nothing stored): start it alone below and
                    # send the messages as any others, so only a bad one is lost.
                except Exception as e:  # noqa: BLE001
                    op.failed = True
                    self._report(e)
                    with self._cond:
                        self._stats["dropped"] += len(first)
                    return
            try:
                created = self._request("POST", "/operations", op._body, {"Idempotency-Key": op._key})
                op.id = created.get("id")
            except Exception as e:  # noqa: BLE001
                op.failed = True
                self._report(e)
            if first:
                self._send(items[1:])
            return
        if kind == "end":
            try:
                if op.id:
                    self._request("PATCH", "/operations/" + urllib.parse.quote(op.id), body)
            except Exception as e:  # noqa: BLE001
                self._report(e)
            finally:
                op._end_sent.set()
            return
        batch = [dict(b, operation_id=o.id) for _, o, b in items if o.id]
        orphans = len(items) - len(batch)  # their operation was never created
        with self._cond:
            self._stats["dropped"] += orphans
        if not batch:
            return
        try:
            self._request("POST", "/messages", batch)
            with self._cond:
                self._stats["sent"] += len(batch)
        except Exception as e:  # noqa: BLE001
            self._report(e)
            if len(batch) > 1 and isinstance(e, OpslogApiError) and e.status in (400, 413, 422):
                # The daemon refuses a whole batch for one bad message: send them one by one
                # so only the bad ones are lost.
                for message in batch:
                    try:
                        self._request("POST", "/messages", [message])
                        outcome = "sent"
                    except Exception as single:  # noqa: BLE001
                        outcome = "dropped"
                        if not isinstance(single, OpslogApiError):
                            self._report(single)
                    with self._cond:
                        self._stats[outcome] += 1
            else:
                with self._cond:
                    self._stats["dropped"] += len(batch)

    def _request(self, method: str, path: str, body: Any, headers: Optional[Dict[str, str]] = None) -> Any:
        """One API call, retried on network errors, 408, 429 (Retry-After) and 5xx."""
        url = "%s/v1/environments/%s%s" % (self._url, urllib.parse.quote(self._environment, safe=""), path)
        payload = json.dumps(body, default=str).encode()
        last: Exception = RuntimeError("no attempt made")
        wait: Optional[float] = None
        for attempt in range(self._max_retries + 1):
            if attempt > 0:
                time.sleep(wait if wait is not None else backoff_seconds(attempt - 1, self._retry_base, self._retry_max))
            wait = None
            request = urllib.request.Request(url, data=payload, method=method)
            request.add_header("Authorization", "Bearer " + self._token)
            request.add_header("Content-Type", "application/json")
            request.add_header("User-Agent", "opslog-py/" + __version__)
            for k, v in (headers or {}).items():
                request.add_header(k, v)
            try:
                with urllib.request.urlopen(request, timeout=self._timeout) as response:
                    text = response.read()
                    return json.loads(text) if text else {}
            except urllib.error.HTTPError as e:
                with self._cond:
                    self._stats["failed_requests"] += 1
                text = e.read().decode("utf-8", "replace")
                try:
                    err = json.loads(text).get("error", {})
                    code, message = err.get("code", "error"), err.get("message", text[:500])
                except (ValueError, AttributeError):
                    code, message = "error", text[:500]
                last = OpslogApiError(e.code, code, message)
                if not _retryable(e.code):
                    raise last from None
                retry_after = parse_retry_after(e.headers.get("Retry-After") if e.headers else None)
                if retry_after is not None:
                    wait = min(retry_after, self._retry_max * 6)
            except (urllib.error.URLError, OSError, ValueError) as e:
                with self._cond:
                    self._stats["failed_requests"] += 1
                reason = getattr(e, "reason", e)
                last = ConnectionError("cannot reach opslog at %s: %s" % (self._url, reason))
        raise last
