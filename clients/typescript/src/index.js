'use strict';
// opslog client for Node >= 18: operations and log messages from integration code.
//
// What must stay true:
// - No public method throws or rejects because logging failed; failures go to `onError`.
// - `log()`/`http()` never wait on the network: they append to a bounded in-memory buffer
//   (oldest messages dropped and counted when it is full).
// - One sender drains the buffer in order, so an operation is created before its messages are
//   sent and its end is sent after them; messages already buffered when it is created go in the
//   same request. Creating an operation carries an Idempotency-Key, so a retry after a lost
//   answer returns the same operation instead of a second one.

const crypto = require('node:crypto');

const REDACTED = '[REDACTED]';
const SENSITIVE_HEADERS = [
  'authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key', 'api-key',
  'x-auth-token', 'x-access-token', 'x-client-secret', 'x-csrf-token', 'x-amz-security-token',
];
const SENSITIVE_PARAMS = [
  'access_token', 'refresh_token', 'id_token', 'token', 'api_key', 'apikey', 'key', 'secret',
  'client_secret', 'password', 'passwd', 'pwd', 'signature', 'sig', 'code', 'auth',
  'private_key', 'session', 'sessionid', 'x-api-key',
];
const MAX_BATCH = 1000;

// The fields of POST /operations a client sets, as [wire name, option name]; the others
// (state, times, error, request, response, records, output, expires_at) are set by the client
// itself or at the end. test/types.test.js checks this table against openapi.json.
const START_FIELDS = [
  ['type', 'type'],
  ['action', 'action'],
  ['integration', 'integration'],
  ['connection_id', 'connectionId'],
  ['script', 'script'],
  ['provider', 'provider'],
  ['message', 'message'],
  ['meta', 'meta'],
  ['end_user', 'endUser'],
  ['tags', 'tags'],
  ['async', 'async'],
  ['sync_type', 'syncType'],
  ['checkpoints', 'checkpoints'],
  ['auth_mode', 'authMode'],
  ['trace_context', 'traceContext'],
];
// The fields of PATCH /operations/{id} that `end()` takes.
const END_FIELDS = [
  ['records', 'records'],
  ['checkpoints', 'checkpoints'],
  ['output', 'output'],
  ['sync_type', 'syncType'],
];

function toError(err) {
  return err instanceof Error ? err : new Error(String(err));
}

/** Headers (plain object, Map, fetch Headers or [name, value] pairs) as a plain object, redacted. */
function redactHeaders(headers, extra = []) {
  if (headers == null) return undefined;
  const sensitive = new Set([...SENSITIVE_HEADERS, ...extra.map((h) => h.toLowerCase())]);
  const out = {};
  const put = (name, value) => {
    const text = Array.isArray(value) ? value.join(', ') : String(value);
    out[name] = sensitive.has(String(name).toLowerCase()) ? REDACTED : text;
  };
  if (typeof headers.forEach === 'function' && !Array.isArray(headers)) {
    headers.forEach((value, name) => put(name, value));
  } else if (Array.isArray(headers)) {
    for (const [name, value] of headers) put(name, value);
  } else {
    for (const [name, value] of Object.entries(headers)) put(name, value);
  }
  return out;
}

function safeDecode(text) {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

/**
 * The URL with the values of sensitive query parameters and any userinfo password replaced.
 * Works on the text, so everything else stays byte for byte as given.
 */
function redactUrl(url, extra = []) {
  if (typeof url !== 'string') url = String(url);
  const sensitive = new Set([...SENSITIVE_PARAMS, ...extra.map((p) => p.toLowerCase())]);
  url = url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/?#:@]*):[^/?#@]*@/i, `$1:${REDACTED}@`);
  const hashAt = url.indexOf('#');
  const fragment = hashAt >= 0 ? url.slice(hashAt) : '';
  const beforeHash = hashAt >= 0 ? url.slice(0, hashAt) : url;
  const queryAt = beforeHash.indexOf('?');
  if (queryAt < 0) return url;
  const query = beforeHash
    .slice(queryAt + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq < 0) return pair;
      const name = safeDecode(pair.slice(0, eq)).toLowerCase();
      return sensitive.has(name) ? `${pair.slice(0, eq)}=${REDACTED}` : pair;
    })
    .join('&');
  return `${beforeHash.slice(0, queryAt)}?${query}${fragment}`;
}

/** JSON bodies: values under sensitive keys (at any depth, up to 8 levels) replaced. */
function redactBody(body, extra = [], depth = 0) {
  if (body == null || typeof body !== 'object' || depth > 8) return body;
  const sensitive = new Set([...SENSITIVE_PARAMS, ...extra.map((p) => p.toLowerCase())]);
  if (Array.isArray(body)) return body.map((v) => redactBody(v, extra, depth + 1));
  const out = {};
  for (const [k, v] of Object.entries(body)) {
    out[k] = sensitive.has(k.toLowerCase()) ? REDACTED : redactBody(v, extra, depth + 1);
  }
  return out;
}

/** Retry-After (seconds or an HTTP date) in milliseconds, or null. */
function parseRetryAfter(value, now = Date.now()) {
  if (value == null || value === '') return null;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/** Full-jitter exponential backoff for retry `attempt` (0-based). */
function backoffMs(attempt, baseMs, maxMs, random = Math.random) {
  return Math.floor(random() * Math.min(maxMs, baseMs * 2 ** attempt));
}

const LEVELS = { debug: 'debug', info: 'info', warn: 'warn', warning: 'warn', error: 'error' };

/** A level the daemon accepts, or undefined (its default) for anything else. */
function normalizeLevel(level) {
  return level == null ? undefined : LEVELS[String(level).toLowerCase()];
}

function isRetryable(status) {
  return status === 408 || status === 429 || status >= 500;
}

let otelApi; // @opentelemetry/api when installed; null when not; undefined until looked up

/**
 * The active OpenTelemetry span's context as W3C headers ({traceparent, tracestate?}), when
 * `@opentelemetry/api` is installed and a span is active; else undefined. Read from the span
 * itself, not through the configured propagator, which may not be W3C's.
 */
function activeTraceContext() {
  if (otelApi === undefined) {
    try {
      otelApi = require('@opentelemetry/api');
    } catch {
      otelApi = null;
    }
  }
  if (!otelApi) return undefined;
  try {
    const span = otelApi.trace.getSpanContext(otelApi.context.active());
    if (!span || !otelApi.isSpanContextValid(span)) return undefined;
    const flags = (Number(span.traceFlags) & 0xff).toString(16).padStart(2, '0');
    const carrier = { traceparent: `00-${span.traceId}-${span.spanId}-${flags}` };
    const state = span.traceState && span.traceState.serialize();
    if (state) carrier.tracestate = state;
    return carrier;
  } catch {
    return undefined;
  }
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(`opslog answered ${status} ${code}: ${message}`);
    this.name = 'OpslogApiError';
    this.status = status;
    this.code = code;
  }
}

class Operation {
  constructor(client, body) {
    this._client = client;
    this._body = body;
    this._key = `opslog-js-${crypto.randomUUID()}`;
    this.id = null; // set once the daemon created it
    this.failed = false; // the daemon never accepted it: its messages are dropped
    this._ended = false;
  }

  /** A custom log line (`level`: debug | info | warn | error). */
  log(message, options = {}) {
    try {
      const body = { type: 'log', message: String(message) };
      const level = normalizeLevel(options.level);
      if (level) body.level = level;
      if (options.meta !== undefined) body.meta = options.meta;
      if (options.error !== undefined) body.error = this._client._errorInfo(options.error);
      this._client._pushMessage(this, body);
    } catch (err) {
      this._client._report(err);
    }
  }

  /**
   * One HTTP call to an external API. `request`: {method, url, headers?, body?};
   * `response`: {status, headers?, body?} (omit it for a call that got no answer).
   * Sensitive headers, query parameters and body keys are redacted before anything is sent.
   */
  http(request, response, options = {}) {
    try {
      const c = this._client;
      const body = { type: 'http' };
      if (request) {
        body.request = {
          method: String(request.method || 'GET').toUpperCase(),
          url: redactUrl(request.url || '', c._redactParams),
        };
        const headers = redactHeaders(request.headers, c._redactHeaders);
        if (headers) body.request.headers = headers;
        if (request.body !== undefined) body.request.body = redactBody(request.body, c._redactParams);
      }
      if (response) {
        body.response = { status: Number(response.status) };
        const headers = redactHeaders(response.headers, c._redactHeaders);
        if (headers) body.response.headers = headers;
        if (response.body !== undefined) body.response.body = redactBody(response.body, c._redactParams);
      }
      const durationMs = options.durationMs ?? options.duration_ms;
      if (durationMs != null) body.duration_ms = Math.max(0, Math.round(durationMs));
      const level = normalizeLevel(options.level);
      if (level) body.level = level;
      if (options.message) body.message = String(options.message);
      if (options.retry) body.retry = options.retry;
      if (options.error !== undefined) body.error = c._errorInfo(options.error);
      if (options.meta !== undefined) body.meta = options.meta;
      c._pushMessage(this, body);
    } catch (err) {
      this._client._report(err);
    }
  }

  /**
   * Ends the operation as `success`; resolves (never rejects) once the daemon has it or gave up.
   * Takes a sync's record counts (an array), or `{records?, checkpoints?, output?, syncType?}`:
   * the checkpoints a sync run started from and saved, what an action returned.
   */
  end(recordsOrOptions) {
    const patch = { state: 'success', ended_at: new Date().toISOString() };
    const options = Array.isArray(recordsOrOptions)
      ? { records: recordsOrOptions }
      : recordsOrOptions || {};
    for (const [wire, option] of END_FIELDS) {
      const value = options[option] ?? options[wire];
      if (value !== undefined && value !== null) patch[wire] = value;
    }
    return this._finish(patch);
  }

  /** Ends the operation as `failed` with `error` (an Error, a string or {name?, message, type?}). */
  fail(error) {
    return this._finish({
      state: 'failed',
      ended_at: new Date().toISOString(),
      error: this._client._errorInfo(error),
    });
  }

  _finish(patch) {
    try {
      if (this._ended) return Promise.resolve();
      this._ended = true;
      return this._client._pushEnd(this, patch);
    } catch (err) {
      this._client._report(err);
      return Promise.resolve();
    }
  }
}

class Opslog {
  constructor(options = {}) {
    const env = typeof process !== 'undefined' ? process.env : {};
    this._url = (options.url || env.OPSLOG_URL || 'http://127.0.0.1:7400').replace(/\/+$/, '');
    this._token = options.token || env.OPSLOG_TOKEN || '';
    this._environment = options.environment || env.OPSLOG_ENV || 'prod';
    this._batchSize = Math.min(MAX_BATCH, Math.max(1, options.batchSize ?? 100));
    this._flushIntervalMs = options.flushIntervalMs ?? 1000;
    this._maxBufferSize = Math.max(1, options.maxBufferSize ?? 10000);
    this._maxRetries = options.maxRetries ?? 5;
    this._retryBaseMs = options.retryBaseMs ?? 200;
    this._retryMaxMs = options.retryMaxMs ?? 10000;
    this._timeoutMs = options.requestTimeoutMs ?? 10000;
    this._redactHeaders = options.redactHeaders || [];
    this._redactParams = options.redactParams || [];
    this._fetch = options.fetch || globalThis.fetch;
    this._onError =
      options.onError === undefined
        ? (err) => console.warn(`[opslog] ${err.message}`)
        : options.onError;
    this._queue = []; // {kind: 'start'|'message'|'end', op, body, done?}
    this._queuedMessages = 0;
    this._stats = { sent: 0, dropped: 0, failedRequests: 0 };
    this._draining = null;
    this._timer = null;
    this._closed = false;
    if (options.flushOnExit !== false && typeof process !== 'undefined' && process.on) {
      // beforeExit fires when the event loop is empty: sending then keeps the process alive
      // until the buffer is delivered or the retries give up (process.exit() skips it).
      this._onBeforeExit = () => {
        if (this._queue.length > 0 && !this._draining) this._drain();
      };
      process.on('beforeExit', this._onBeforeExit);
    }
  }

  /** Starts an operation; returns its handle at once (the daemon is asked in the background). */
  startOperation(options = {}) {
    const body = { type: options.type || 'function' };
    for (const [wire, option] of START_FIELDS.slice(1)) {
      const value = options[option] ?? options[wire];
      if (value !== undefined && value !== null) body[wire] = value;
    }
    // The caller's trace: given, or the active OpenTelemetry span's (captured now, in the
    // caller's context; the request goes later from the sender).
    const trace = body.trace_context ?? activeTraceContext();
    delete body.trace_context;
    if (trace && trace.traceparent) {
      body.trace_context = { traceparent: String(trace.traceparent) };
      if (trace.tracestate) body.trace_context.tracestate = String(trace.tracestate);
    }
    body.started_at = new Date().toISOString();
    const op = new Operation(this, body);
    try {
      this._queue.push({ kind: 'start', op });
      this._schedule(0);
    } catch (err) {
      this._report(err);
    }
    return op;
  }

  /** What happened so far: messages sent, dropped (buffer full or refused), failed requests. */
  stats() {
    return { ...this._stats, buffered: this._queuedMessages };
  }

  /** Sends everything buffered; resolves (never rejects) when done or given up. */
  async flush() {
    try {
      while (this._queue.length > 0 || this._draining) {
        await (this._draining || this._drain());
      }
    } catch (err) {
      this._report(err);
    }
  }

  /** Flushes and stops the timers and the exit hook. Logging after close() is dropped. */
  async close() {
    await this.flush();
    this._closed = true;
    if (this._timer) clearTimeout(this._timer);
    if (this._onBeforeExit) process.removeListener('beforeExit', this._onBeforeExit);
  }

  _report(err) {
    try {
      if (this._onError) this._onError(toError(err));
    } catch {
      // an onError that throws must not reach the integration code either
    }
  }

  _errorInfo(error) {
    if (error == null) return { message: 'unknown error' };
    if (error instanceof Error) {
      const info = { name: error.name, message: error.message || String(error) };
      if (error.code !== undefined) info.type = String(error.code);
      return info;
    }
    if (typeof error === 'object' && error.message) return { ...error, message: String(error.message) };
    return { message: String(error) };
  }

  _pushMessage(op, body) {
    if (this._closed) {
      this._stats.dropped += 1;
      return;
    }
    body.created_at = new Date().toISOString();
    this._queue.push({ kind: 'message', op, body });
    this._queuedMessages += 1;
    if (this._queuedMessages > this._maxBufferSize) this._dropOldestMessage();
    this._schedule(this._queuedMessages >= this._batchSize ? 0 : this._flushIntervalMs);
  }

  _pushEnd(op, patch) {
    return new Promise((resolve) => {
      this._queue.push({ kind: 'end', op, body: patch, done: resolve });
      this._schedule(0);
    });
  }

  _dropOldestMessage() {
    const at = this._queue.findIndex((item) => item.kind === 'message');
    if (at < 0) return;
    this._queue.splice(at, 1);
    this._queuedMessages -= 1;
    this._stats.dropped += 1;
  }

  _schedule(delayMs) {
    if (this._draining) return; // the running drain picks new items up
    if (this._timer && delayMs > 0) return;
    if (this._timer) clearTimeout(this._timer);
    this._timer = setTimeout(() => {
      this._timer = null;
      this._drain();
    }, delayMs);
    // Waiting for the next batch must not keep the process alive (the exit hook flushes).
    if (this._timer.unref) this._timer.unref();
  }

  _drain() {
    if (this._draining) return this._draining;
    this._draining = (async () => {
      try {
        while (this._queue.length > 0) await this._sendNext();
      } catch (err) {
        this._report(err);
      } finally {
        this._draining = null;
      }
    })();
    return this._draining;
  }

  async _sendNext() {
    const head = this._queue[0];
    if (head.kind === 'start') {
      this._queue.shift();
      // Its messages buffered already go with it: one request (and one commit) instead of two.
      const first = [];
      while (first.length < this._batchSize && this._queue.length > 0
        && this._queue[0].kind === 'message' && this._queue[0].op === head.op) {
        first.push(this._queue.shift());
      }
      if (first.length > 0) {
        try {
          const body = { ...head.op._body, messages: first.map((item) => item.body) };
          const created = await this._request('POST', '/operations', body, {
            'idempotency-key': head.op._key,
          });
          head.op.id = created.id;
          this._queuedMessages -= first.length;
          this._stats.sent += first.length;
          return;
        } catch (err) {
          // Refused for one of its messages (nothing was stored): start it alone, and send
          // the messages as any others, so only a bad one is lost.
          this._queue.unshift(...first);
          if (!(err instanceof ApiError && [400, 413, 422].includes(err.status))) {
            head.op.failed = true;
            this._report(err);
            return;
          }
        }
      }
      try {
        const created = await this._request('POST', '/operations', head.op._body, {
          'idempotency-key': head.op._key,
        });
        head.op.id = created.id;
      } catch (err) {
        head.op.failed = true;
        this._report(err);
      }
      return;
    }
    if (head.kind === 'end') {
      this._queue.shift();
      try {
        if (head.op.id) {
          await this._request('PATCH', `/operations/${encodeURIComponent(head.op.id)}`, head.body);
        }
      } catch (err) {
        this._report(err);
      } finally {
        head.done();
      }
      return;
    }
    // Consecutive messages, as one POST /messages (messages of many operations).
    const batch = [];
    while (batch.length < this._batchSize && this._queue.length > 0 && this._queue[0].kind === 'message') {
      const item = this._queue.shift();
      this._queuedMessages -= 1;
      if (item.op.id) batch.push({ operation_id: item.op.id, ...item.body });
      else this._stats.dropped += 1; // its operation was never created
    }
    if (batch.length === 0) return;
    try {
      await this._request('POST', '/messages', batch);
      this._stats.sent += batch.length;
    } catch (err) {
      this._report(err);
      if (batch.length > 1 && err instanceof ApiError && [400, 413, 422].includes(err.status)) {
        // The daemon refuses a whole batch for one bad message: send them one by one so
        // only the bad ones are lost.
        for (const message of batch) {
          try {
            await this._request('POST', '/messages', [message]);
            this._stats.sent += 1;
          } catch (single) {
            this._stats.dropped += 1;
            if (!(single instanceof ApiError)) this._report(single);
          }
        }
      } else {
        this._stats.dropped += batch.length;
      }
    }
  }

  /** One API call with retries on network errors, 408, 429 (Retry-After) and 5xx. */
  async _request(method, path, body, headers = {}) {
    const url = `${this._url}/v1/environments/${encodeURIComponent(this._environment)}${path}`;
    const payload = JSON.stringify(body);
    let lastError;
    for (let attempt = 0; attempt <= this._maxRetries; attempt++) {
      if (attempt > 0) await sleep(lastError.waitMs ?? backoffMs(attempt - 1, this._retryBaseMs, this._retryMaxMs));
      let response;
      try {
        response = await this._fetch(url, {
          method,
          headers: {
            authorization: `Bearer ${this._token}`,
            'content-type': 'application/json',
            'user-agent': 'opslog-js/0.1.0',
            ...headers,
          },
          body: payload,
          signal: AbortSignal.timeout(this._timeoutMs),
        });
      } catch (err) {
        this._stats.failedRequests += 1;
        lastError = new Error(`cannot reach opslog at ${this._url}: ${err.cause?.message || err.message}`);
        continue;
      }
      const text = await response.text().catch(() => '');
      if (response.ok) {
        try {
          return text ? JSON.parse(text) : {};
        } catch {
          return {};
        }
      }
      this._stats.failedRequests += 1;
      let code = 'error';
      let message = text.slice(0, 500);
      try {
        const parsed = JSON.parse(text);
        code = parsed.error?.code || code;
        message = parsed.error?.message || message;
      } catch {
        // not JSON: keep the text
      }
      lastError = new ApiError(response.status, code, message);
      if (!isRetryable(response.status)) throw lastError;
      const retryAfter = parseRetryAfter(response.headers.get('retry-after'));
      lastError.waitMs = retryAfter == null ? undefined : Math.min(retryAfter, this._retryMaxMs * 6);
    }
    throw lastError;
  }
}

/**
 * Whether a webhook request came from opslog, from its raw `body` (string or Buffer, as received,
 * before parsing) and `headers`: by its Standard Webhooks signature (`webhook-id`,
 * `webhook-timestamp` within `toleranceSeconds`, `webhook-signature`), or, for a URL in the Nango
 * format, by `X-Nango-Hmac-Sha256` (HMAC-SHA256 keyed with the whole secret, as Nango's
 * `verifyIncomingWebhookRequest`). `secret`: the environment's `whsec_…` secret, or the Nango
 * signing key installed as it. Never throws.
 */
function verifyWebhook(secret, body, headers, options = {}) {
  try {
    const raw = Buffer.isBuffer(body) ? body : Buffer.from(String(body), 'utf8');
    const lower = {};
    const put = (value, name) => {
      lower[String(name).toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
    };
    if (headers && typeof headers.forEach === 'function' && !Array.isArray(headers)) headers.forEach(put);
    else for (const [name, value] of Object.entries(headers || {})) put(value, name);
    const same = (a, b) => {
      const x = Buffer.from(a);
      const y = Buffer.from(b);
      return x.length === y.length && crypto.timingSafeEqual(x, y);
    };
    const signature = lower['webhook-signature'];
    if (signature !== undefined) {
      const id = lower['webhook-id'] || '';
      const stamp = lower['webhook-timestamp'] || '';
      const now = options.now ?? Date.now() / 1000;
      if (!/^\d+$/.test(stamp) || Math.abs(now - Number(stamp)) > (options.toleranceSeconds ?? 300)) {
        return false;
      }
      const key = secret.startsWith('whsec_')
        ? Buffer.from(secret.slice('whsec_'.length), 'base64')
        : Buffer.from(secret, 'utf8');
      const expected = crypto
        .createHmac('sha256', key)
        .update(Buffer.concat([Buffer.from(`${id}.${stamp}.`, 'utf8'), raw]))
        .digest('base64');
      return signature.split(' ').some((part) => part.startsWith('v1,') && same(part.slice(3), expected));
    }
    const nango = lower['x-nango-hmac-sha256'];
    if (nango !== undefined) {
      return same(nango, crypto.createHmac('sha256', secret).update(raw).digest('hex'));
    }
    return false;
  } catch {
    return false;
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

module.exports = {
  Opslog,
  Operation,
  OpslogApiError: ApiError,
  redactHeaders,
  redactUrl,
  redactBody,
  parseRetryAfter,
  backoffMs,
  verifyWebhook,
  REDACTED,
  START_FIELDS,
  END_FIELDS,
};
