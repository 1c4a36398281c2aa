import http.server
import json
import os
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import Daemon, eventually  # noqa: E402

from opslog_client import (  # noqa: E402
    REDACTED,
    Opslog,
    backoff_seconds,
    parse_retry_after,
    redact_body,
    redact_headers,
    redact_url,
    verify_webhook,
)

DAEMON = None


def setUpModule():
    global DAEMON
    DAEMON = Daemon()


def tearDownModule():
    DAEMON.stop()


def client(**options):
    errors = []
    options.setdefault("on_error", errors.append)
    options.setdefault("flush_interval", 0.05)
    c = Opslog(url=options.pop("url", DAEMON.base), token=DAEMON.token, retry_base=0.01, flush_on_exit=False, **options)
    return c, errors


class AgainstTheDaemon(unittest.TestCase):
    def test_operation_messages_in_order_and_end_are_stored(self):
        c, errors = client(batch_size=100)
        op = c.start_operation(
            "sync", action="run", integration="github", connection_id="acme", script="issues", meta={"run": 7}
        )
        for i in range(250):
            op.log("message %d" % i, level="warn" if i % 50 == 0 else None, meta={"i": i})
        op.http({"method": "get", "url": "https://api.github.com/issues?page=2"}, {"status": 200}, duration_ms=42.4)
        op.end([{"model": "Issue", "added": 3, "updated": 1}])
        self.assertTrue(c.close())
        self.assertEqual(errors, [])
        stored = DAEMON.get("/operations/" + op.id)
        self.assertEqual(stored["state"], "success")
        self.assertEqual((stored["integration"], stored["connection_id"], stored["script"]), ("github", "acme", "issues"))
        self.assertEqual(stored["meta"], {"run": 7})
        self.assertEqual(stored["records"], [{"model": "Issue", "added": 3, "updated": 1, "deleted": 0}])
        messages = DAEMON.messages(op.id)
        self.assertEqual(len(messages), 251)
        for i, m in enumerate(messages[:250]):
            self.assertEqual(m["message"], "message %d" % i)
            self.assertEqual(m["level"], "warn" if i % 50 == 0 else "info")
            self.assertEqual(m["meta"], {"i": i})
        call = messages[250]
        self.assertEqual((call["type"], call["request"]["method"], call["response"]["status"]), ("http", "GET", 200))
        self.assertEqual(call["duration_ms"], 42)
        self.assertEqual(c.stats(), {"sent": 251, "dropped": 0, "failed_requests": 0, "buffered": 0})

    def test_messages_buffered_at_the_start_go_with_the_operation(self):
        c, errors = client(batch_size=100)
        requests = []
        send = c._request

        def recording(method, path, body, headers=None):
            requests.append((method, path, len(body.get("messages", [])) if isinstance(body, dict) else None))
            return send(method, path, body, headers)

        c._request = recording
        # Holding the sender's lock: the start and its messages are buffered before it runs.
        with c._cond:
            op = c.start_operation("proxy", integration="folded-py")
            op.log("calling out")
            op.http({"method": "GET", "url": "https://api.example.com/x"}, {"status": 204})
        op.end()
        self.assertTrue(c.close())
        self.assertEqual(errors, [])
        posts = [r for r in requests if r[0] == "POST"]
        self.assertEqual(posts, [("POST", "/operations", 2)])
        self.assertEqual([m["type"] for m in DAEMON.messages(op.id)], ["log", "http"])
        self.assertEqual(c.stats(), {"sent": 2, "dropped": 0, "failed_requests": 0, "buffered": 0})

    def test_end_user_tags_async_and_nangos_fields_are_stored(self):
        c, errors = client()
        sync = c.start_operation(
            "sync", integration="github", connection_id="acme", script="issues",
            end_user={"id": "u-7", "email": "ada@example.com", "organization": {"id": "org-1"}},
            tags={"plan": "pro"}, sync_type="incremental", checkpoints={"from": {"page": 3}, "to": None},
        )
        sync.end([{"model": "Issue", "added": 1}], checkpoints={"from": {"page": 3}, "to": {"page": 4, "done": True}})
        action = c.start_operation("action", script="create-issue", async_=True)
        action.end(output={"issue": 7})
        auth = c.start_operation("auth", integration="github", auth_mode="OAUTH2")
        auth.end()
        self.assertTrue(c.close())
        self.assertEqual(errors, [])
        stored = DAEMON.get("/operations/" + sync.id)
        self.assertEqual(stored["end_user"], {"id": "u-7", "email": "ada@example.com", "organization": {"id": "org-1"}})
        self.assertEqual(stored["tags"], {"plan": "pro"})
        self.assertEqual(stored["sync_type"], "incremental")
        self.assertEqual(stored["checkpoints"], {"from": {"page": 3}, "to": {"page": 4, "done": True}})
        self.assertTrue(DAEMON.get("/operations/" + action.id)["async"])
        self.assertEqual(DAEMON.get("/operations/%s/output" % action.id), {"issue": 7})
        self.assertEqual(DAEMON.get("/operations/" + auth.id)["auth_mode"], "OAUTH2")

    def test_verify_webhook_checks_real_deliveries_in_both_formats(self):
        received = []

        class Receiver(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((body, {k: v for k, v in self.headers.items()}))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = "http://127.0.0.1:%d/" % server.server_address[1]
            settings = {"webhooks": {"url": url + "nango", "format": "nango", "secondary_url": url + "opslog"}}
            DAEMON.admin("PUT", "/settings", settings)
            secret = DAEMON.admin("GET", "/settings/webhook-secret")["secret"]
            c, errors = client()
            c.start_operation("auth", integration="hubspot", connection_id="c1").end()
            self.assertTrue(c.close())
            eventually(lambda: len(received) >= 2, limit=30)
            for body, headers in received:
                self.assertTrue(verify_webhook(secret, body, headers), headers)
                self.assertFalse(verify_webhook(secret, body + b" ", headers))
                self.assertFalse(verify_webhook("whsec_" + "A" * 43 + "=", body, headers))
                nango_only = {k: v for k, v in headers.items() if not k.lower().startswith("webhook-")}
                if any(k.lower() == "x-nango-hmac-sha256" for k in headers):
                    self.assertTrue(verify_webhook(secret, body, nango_only))
                    self.assertFalse(verify_webhook(secret, body + b" ", nango_only))
            late = {k: v for k, v in received[0][1].items()}
            self.assertFalse(verify_webhook(secret, received[0][0], late, now=time.time() + 3600))
        finally:
            DAEMON.admin("PUT", "/settings", {"webhooks": {"url": None, "secondary_url": None, "format": None}})
            server.shutdown()

    def test_an_operation_started_in_an_opentelemetry_span_joins_its_trace(self):
        # The real OpenTelemetry SDK (installed by scripts/test): the active span's context is
        # what the operation records, without the caller passing anything.
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        tracer = TracerProvider().get_tracer("test")
        c, errors = client()
        with tracer.start_as_current_span("handle request") as span:
            op = c.start_operation("sync", integration="github")
            ctx = span.get_span_context()
        outside = c.start_operation("sync", integration="github")
        explicit = c.start_operation(
            "action", trace_context={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
        )
        self.assertTrue(c.close())
        self.assertEqual(errors, [])
        stored = DAEMON.get("/operations/" + op.id)["trace_context"]
        self.assertEqual(stored["trace_id"], trace.format_trace_id(ctx.trace_id))
        self.assertEqual(stored["parent_span_id"], trace.format_span_id(ctx.span_id))
        self.assertIsNone(DAEMON.get("/operations/" + outside.id)["trace_context"])
        self.assertEqual(
            DAEMON.get("/operations/" + explicit.id)["trace_context"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736"
        )

    def test_sensitive_values_are_redacted_before_sending(self):
        c, errors = client(redact_headers=["X-Tenant-Secret"])
        op = c.start_operation("action", integration="hubspot")
        op.http(
            {
                "method": "POST",
                "url": "https://user:hunter2@api.example.com/v1/token?client_secret=s3cr3t&page=2&access_token=abc#frag",
                "headers": {"Authorization": "Bearer live", "X-Tenant-Secret": "ts", "Accept": "application/json"},
                "body": {"grant_type": "refresh", "refresh_token": "rt", "nested": {"password": "pw", "keep": 1}},
            },
            {"status": 401, "headers": [("Set-Cookie", "a=b"), ("Content-Type", "application/json")]},
            duration_ms=5,
        )
        op.fail(ValueError("token refresh refused"))
        self.assertTrue(c.close())
        self.assertEqual(errors, [])
        [m] = DAEMON.messages(op.id)
        self.assertEqual(
            m["request"]["url"],
            "https://user:%s@api.example.com/v1/token?client_secret=%s&page=2&access_token=%s#frag"
            % (REDACTED, REDACTED, REDACTED),
        )
        headers = {k.lower(): v for k, v in m["request"]["headers"].items()}
        self.assertEqual(headers["authorization"], REDACTED)
        self.assertEqual(headers["x-tenant-secret"], REDACTED)
        self.assertEqual(headers["accept"], "application/json")
        self.assertEqual(
            m["request"]["body"],
            {"grant_type": "refresh", "refresh_token": REDACTED, "nested": {"password": REDACTED, "keep": 1}},
        )
        self.assertEqual({k.lower(): v for k, v in m["response"]["headers"].items()}["set-cookie"], REDACTED)
        for secret in ("hunter2", "s3cr3t", "live", '"rt"', '"pw"', '"ts"'):
            self.assertNotIn(secret, json.dumps(m))
        stored = DAEMON.get("/operations/" + op.id)
        self.assertEqual(stored["state"], "failed")
        self.assertEqual(stored["error"], {"name": "ValueError", "message": "token refresh refused"})

    def test_retries_after_a_lost_answer_and_a_503_store_everything_once(self):
        seen = {"starts": [], "batches": 0}
        upstream = DAEMON.base

        class Flaky(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _proxy(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                is_start = self.command == "POST" and self.path.endswith("/operations")
                if is_start:
                    seen["starts"].append(self.headers.get("Idempotency-Key"))
                if self.command == "POST" and self.path.endswith("/messages"):
                    seen["batches"] += 1
                    if seen["batches"] == 1:
                        self.send_response(503)
                        self.send_header("Retry-After", "0")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                request = urllib.request.Request(upstream + self.path, data=body or None, method=self.command)
                for k in ("Authorization", "Content-Type", "Idempotency-Key"):
                    if self.headers.get(k):
                        request.add_header(k, self.headers[k])
                try:
                    with urllib.request.urlopen(request) as answer:
                        status, text = answer.status, answer.read()
                except urllib.error.HTTPError as e:
                    status, text = e.code, e.read()
                if is_start and len(seen["starts"]) == 1:
                    self.connection.close()  # committed upstream; the client never hears of it
                    self.close_connection = True
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            do_POST = do_PATCH = _proxy

        proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        try:
            c, errors = client(url="http://127.0.0.1:%d" % proxy.server_address[1])
            op = c.start_operation("sync", integration="flaky-proxy-py")
            for i in range(5):
                op.log("retried %d" % i)
            op.end()
            self.assertTrue(c.close())
        finally:
            proxy.shutdown()
        self.assertEqual(errors, [])
        self.assertEqual(len(seen["starts"]), 2, "the start was retried")
        self.assertEqual(seen["starts"][0], seen["starts"][1], "with the same Idempotency-Key")
        ops = eventually(lambda: (lambda p: p["total"] and p)(DAEMON.get("/operations?integration=flaky-proxy-py")))
        self.assertEqual(ops["total"], 1, "one operation despite the retry")
        self.assertEqual(ops["data"][0]["id"], op.id)
        self.assertEqual(ops["data"][0]["state"], "success")
        self.assertEqual([m["message"] for m in DAEMON.messages(op.id)], ["retried %d" % i for i in range(5)])

    def test_a_message_the_daemon_refuses_costs_only_itself(self):
        c, errors = client(batch_size=10, flush_interval=10)
        op = c.start_operation("sync", integration="bad-batch-py")
        op.log("before", level="WARNING")
        op.http({"method": "GET", "url": "https://x.test"}, {"status": 99999})
        op.log("after", level="loud")
        op.end()
        self.assertTrue(c.close())
        self.assertEqual(len(errors), 1, "the refused batch is reported once")
        self.assertEqual(errors[0].status, 400)
        self.assertEqual([(m["message"], m["level"]) for m in DAEMON.messages(op.id)], [("before", "warn"), ("after", "info")])
        self.assertEqual((c.stats()["sent"], c.stats()["dropped"]), (2, 1))

    def test_a_daemon_that_is_down_never_raises_into_the_caller(self):
        errors = []

        def broken(e):
            errors.append(e)
            raise RuntimeError("a broken on_error is contained too")

        c = Opslog(url="http://127.0.0.1:9", token="k", max_retries=2, retry_base=0.005, on_error=broken, flush_on_exit=False)
        op = c.start_operation("action")
        op.log("lost")
        op.http({"method": "GET", "url": "https://x.test"}, None)
        op.log(object(), meta={"not": "serializable", "x": object()})
        op.end()
        op.fail("twice is a no-op")
        self.assertTrue(c.close(timeout=30))
        self.assertIsNone(op.id)
        self.assertTrue(op.failed)
        self.assertIn("cannot reach opslog at http://127.0.0.1:9", str(errors[0]))
        self.assertEqual(c.stats()["dropped"], 3)
        self.assertEqual(c.stats()["failed_requests"], 3, "one request, tried 1 + 2 times")

    def test_the_buffer_is_bounded_and_logging_does_not_wait(self):
        # A "daemon" that accepts connections and never answers.
        import socket

        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        try:
            c = Opslog(
                url="http://127.0.0.1:%d" % silent.getsockname()[1], token="k", max_buffer_size=100,
                batch_size=50, timeout=30, on_error=lambda e: None, flush_on_exit=False,
            )
            op = c.start_operation("sync")
            started = time.monotonic()
            for i in range(10_000):
                op.log("m %d" % i)
            elapsed = time.monotonic() - started
            stats = c.stats()
            self.assertEqual(stats["buffered"], 100)
            # The sender may hold up to one batch it took with the operation's start.
            self.assertIn(stats["dropped"], range(9_900 - 50, 9_900 + 1))
            self.assertFalse(c.flush(timeout=0.2), "flush gives up at its timeout")
            print("\nlog() x10000 while the daemon hangs: %.1f ms in the caller" % (elapsed * 1000), file=sys.stderr)
        finally:
            silent.close()

    def test_buffered_messages_are_delivered_at_exit(self):
        connection = "py-child-%d" % os.getpid()
        script = (
            "from opslog_client import Opslog\n"
            "c = Opslog(flush_interval=60, batch_size=1000)\n"
            "op = c.start_operation('sync', integration='exit-test', connection_id=%r)\n"
            "for i in range(3): op.log('line %%d before exit' %% i)\n"
            "op.end([{'model': 'Thing', 'added': 3}])\n" % connection
        )
        env = dict(os.environ, OPSLOG_URL=DAEMON.base, OPSLOG_TOKEN=DAEMON.token, OPSLOG_ENV="prod")
        subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
        ops = eventually(
            lambda: (lambda p: p["total"] and p["data"][0]["state"] == "success" and p)(
                DAEMON.get("/operations?connection_id=" + connection)
            )
        )
        self.assertEqual(ops["total"], 1)
        self.assertEqual(
            [m["message"] for m in DAEMON.messages(ops["data"][0]["id"])],
            ["line 0 before exit", "line 1 before exit", "line 2 before exit"],
        )

    def test_throughput_of_10k_messages(self):
        c, errors = client(batch_size=1000, max_buffer_size=20_000)
        op = c.start_operation("sync", integration="throughput")
        started = time.monotonic()
        for i in range(10_000):
            op.log("throughput message %d" % i, meta={"i": i})
        queued = time.monotonic()
        op.end()
        self.assertTrue(c.close(timeout=120))
        done = time.monotonic()
        self.assertEqual(errors, [])
        self.assertEqual(DAEMON.get("/operations/" + op.id)["message_count"], 10_000)
        print(
            "\nlog() x10000: %.1f ms in the caller; delivered in %.0f ms (%d messages/s)"
            % ((queued - started) * 1000, (done - started) * 1000, 10_000 / (done - started)),
            file=sys.stderr,
        )


class Helpers(unittest.TestCase):
    def test_redaction_and_retry_policy(self):
        self.assertEqual(redact_url("https://a.test/x?token=1&q=token"), "https://a.test/x?token=%s&q=token" % REDACTED)
        self.assertEqual(redact_url("/relative?API_KEY=z&ok"), "/relative?API_KEY=%s&ok" % REDACTED)
        self.assertEqual(redact_url("https://a.test/p?foo=1", ["FOO"]), "https://a.test/p?foo=%s" % REDACTED)
        self.assertEqual(redact_url("https://a.test/plain"), "https://a.test/plain")
        self.assertEqual(redact_headers([("Cookie", "x"), ("X-Ok", "y")]), {"Cookie": REDACTED, "X-Ok": "y"})
        self.assertEqual(redact_body([{"secret": 1}, 2]), [{"secret": REDACTED}, 2])
        self.assertEqual(parse_retry_after("3"), 3.0)
        self.assertEqual(parse_retry_after("Wed, 21 Oct 2015 07:28:05 GMT", now=1445412480.0), 5.0)
        self.assertIsNone(parse_retry_after("soon"))
        self.assertAlmostEqual(backoff_seconds(3, 0.1, 10, lambda: 0.5), 0.4)
        self.assertEqual(backoff_seconds(20, 0.1, 10, lambda: 0.5), 5.0)


if __name__ == "__main__":
    unittest.main()
