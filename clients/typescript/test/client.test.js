'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { execFile } = require('node:child_process');
const path = require('node:path');

const {
  Opslog, redactUrl, redactHeaders, redactBody, parseRetryAfter, backoffMs, REDACTED, verifyWebhook,
} = require('../src/index.js');
const { startDaemon, eventually, allMessages } = require('./daemon.js');

let daemon;
before(async () => {
  daemon = await startDaemon();
});
after(async () => {
  await daemon.stop();
});

function client(options = {}) {
  const errors = [];
  const c = new Opslog({
    url: daemon.base,
    token: daemon.token,
    flushIntervalMs: 50,
    retryBaseMs: 10,
    onError: (err) => errors.push(err),
    ...options,
  });
  return { c, errors };
}

test('an operation started in an OpenTelemetry span joins its trace', async () => {
  // The real OpenTelemetry SDK (a dev dependency): the active span's context is what the
  // operation records, without the caller passing anything.
  const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');
  const provider = new NodeTracerProvider();
  provider.register();
  const tracer = provider.getTracer('test');
  const { c, errors } = client();
  let op;
  let spanContext;
  await tracer.startActiveSpan('handle request', async (span) => {
    await Promise.resolve(); // still the span's context after an await
    op = c.startOperation({ type: 'sync', integration: 'github' });
    spanContext = span.spanContext();
    span.end();
  });
  const outside = c.startOperation({ type: 'sync' });
  const given = c.startOperation({
    type: 'action',
    traceContext: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
  });
  await c.close();
  await provider.shutdown();
  assert.deepEqual(errors, []);
  const stored = await daemon.get(`/operations/${op.id}`);
  assert.equal(stored.trace_context.trace_id, spanContext.traceId);
  assert.equal(stored.trace_context.parent_span_id, spanContext.spanId);
  assert.equal((await daemon.get(`/operations/${outside.id}`)).trace_context, null);
  assert.equal((await daemon.get(`/operations/${given.id}`)).trace_context.trace_id, '4bf92f3577b34da6a3ce929d0e0e4736');
});

test('an operation, its messages in order and its end are stored', async () => {
  const { c, errors } = client({ batchSize: 100 });
  const op = c.startOperation({
    type: 'sync', action: 'run', integration: 'github', connectionId: 'acme', script: 'issues',
    meta: { run: 7 },
  });
  for (let i = 0; i < 250; i++) op.log(`message ${i}`, { level: i % 50 === 0 ? 'warn' : 'info', meta: { i } });
  op.http({ method: 'get', url: 'https://api.github.com/issues?page=2' }, { status: 200 }, { durationMs: 42.4 });
  await op.end([{ model: 'Issue', added: 3, updated: 1 }]);
  await c.close();
  assert.deepEqual(errors, []);
  assert.ok(op.id);
  const stored = await daemon.get(`/operations/${op.id}`);
  assert.equal(stored.state, 'success');
  assert.equal(stored.integration, 'github');
  assert.equal(stored.connection_id, 'acme');
  assert.equal(stored.script, 'issues');
  assert.deepEqual(stored.meta, { run: 7 });
  assert.deepEqual(stored.records, [{ model: 'Issue', added: 3, updated: 1, deleted: 0 }]);
  const messages = await allMessages(daemon, op.id);
  assert.equal(messages.length, 251);
  messages.slice(0, 250).forEach((m, i) => {
    assert.equal(m.message, `message ${i}`);
    assert.equal(m.level, i % 50 === 0 ? 'warn' : 'info');
    assert.equal(m.source, 'user');
    assert.deepEqual(m.meta, { i });
  });
  const call = messages[250];
  assert.equal(call.type, 'http');
  assert.equal(call.request.method, 'GET');
  assert.equal(call.response.status, 200);
  assert.equal(call.duration_ms, 42);
  assert.deepEqual(c.stats(), { sent: 251, dropped: 0, failedRequests: 0, buffered: 0 });
});

test('sensitive headers, query parameters and body keys are redacted before sending', async () => {
  const { c, errors } = client({ redactHeaders: ['X-Tenant-Secret'] });
  const op = c.startOperation({ type: 'action', integration: 'hubspot' });
  op.http(
    {
      method: 'POST',
      url: 'https://user:hunter2@api.example.com/v1/token?client_secret=s3cr3t&page=2&access_token=abc#frag',
      headers: new Headers({ Authorization: 'Bearer live', 'X-Tenant-Secret': 'ts', Accept: 'application/json' }),
      body: { grant_type: 'refresh', refresh_token: 'rt', nested: { password: 'pw', keep: 1 } },
    },
    { status: 401, headers: { 'set-cookie': ['a=b', 'c=d'], 'content-type': 'application/json' } },
    { durationMs: 5 },
  );
  await op.fail(new TypeError('token refresh refused'));
  await c.close();
  assert.deepEqual(errors, []);
  const [m] = await allMessages(daemon, op.id);
  assert.equal(
    m.request.url,
    `https://user:${REDACTED}@api.example.com/v1/token?client_secret=${REDACTED}&page=2&access_token=${REDACTED}#frag`,
  );
  assert.equal(m.request.headers.authorization, REDACTED);
  assert.equal(m.request.headers['x-tenant-secret'], REDACTED);
  assert.equal(m.request.headers.accept, 'application/json');
  assert.deepEqual(m.request.body, { grant_type: 'refresh', refresh_token: REDACTED, nested: { password: REDACTED, keep: 1 } });
  assert.equal(m.response.headers['set-cookie'], REDACTED);
  assert.equal(m.level, 'error', 'the daemon levels a 401 as error');
  assert.doesNotMatch(JSON.stringify(m), /hunter2|s3cr3t|live|"rt"|"pw"|"ts"/);
  const stored = await daemon.get(`/operations/${op.id}`);
  assert.equal(stored.state, 'failed');
  assert.deepEqual(stored.error, { name: 'TypeError', message: 'token refresh refused' });
});

/** A proxy to the daemon that loses the first answer to POST /operations and 503s the first batch. */
async function flakyProxy() {
  const seen = { starts: [], batches: 0 };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const isStart = req.method === 'POST' && req.url.endsWith('/operations');
      const isBatch = req.method === 'POST' && req.url.endsWith('/messages');
      if (isStart) seen.starts.push(req.headers['idempotency-key']);
      if (isBatch && ++seen.batches === 1) {
        res.writeHead(503, { 'retry-after': '0', 'content-type': 'application/json' });
        res.end('{"error":{"code":"unavailable","message":"try again"}}');
        return;
      }
      const upstream = http.request(
        `${daemon.base}${req.url}`,
        { method: req.method, headers: req.headers },
        (answer) => {
          const body = [];
          answer.on('data', (c) => body.push(c));
          answer.on('end', () => {
            if (isStart && seen.starts.length === 1) {
              req.socket.destroy(); // committed upstream, but the client never hears of it
              return;
            }
            res.writeHead(answer.statusCode, answer.headers);
            res.end(Buffer.concat(body));
          });
        },
      );
      upstream.end(Buffer.concat(chunks));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, seen, close: () => server.close() };
}

test('retries after a lost answer and a 503 store everything exactly once', async () => {
  const proxy = await flakyProxy();
  const { c } = client({ url: proxy.url });
  const op = c.startOperation({ type: 'sync', integration: 'flaky-proxy' });
  for (let i = 0; i < 5; i++) op.log(`retried ${i}`);
  await op.end();
  await c.close();
  proxy.close();
  assert.equal(proxy.seen.starts.length, 2, 'the start was retried');
  assert.equal(proxy.seen.starts[0], proxy.seen.starts[1], 'with the same Idempotency-Key');
  // Lists come from the search index (fresh within a second): wait for the operation to show.
  const ops = await eventually(async () => {
    const page = await daemon.get('/operations?integration=flaky-proxy');
    return page.total > 0 && page;
  });
  assert.equal(ops.total, 1, 'one operation despite the retry');
  assert.equal(ops.data[0].id, op.id);
  assert.equal(ops.data[0].state, 'success');
  const messages = await allMessages(daemon, op.id);
  assert.deepEqual(messages.map((m) => m.message), [0, 1, 2, 3, 4].map((i) => `retried ${i}`));
  assert.equal(c.stats().sent, 5);
});

test('a message the daemon refuses costs only itself, not its batch', async () => {
  const { c, errors } = client({ batchSize: 10, flushIntervalMs: 10000 });
  const op = c.startOperation({ type: 'sync', integration: 'bad-batch' });
  op.log('before', { level: 'WARNING' });
  op.http({ method: 'GET', url: 'https://x.test' }, { status: 'not a number' });
  op.log('after', { level: 'loud' });
  await op.end();
  await c.close();
  assert.equal(errors.length, 1, 'the refused batch is reported once');
  assert.equal(errors[0].status, 400);
  const messages = await allMessages(daemon, op.id);
  assert.deepEqual(messages.map((m) => [m.message, m.level]), [['before', 'warn'], ['after', 'info']]);
  assert.equal(c.stats().dropped, 1);
  assert.equal(c.stats().sent, 2);
});

test('a daemon that is down never throws into the caller', async () => {
  const errors = [];
  const c = new Opslog({
    url: 'http://127.0.0.1:9', token: 'k', maxRetries: 2, retryBaseMs: 5, flushIntervalMs: 10,
    onError: (err) => { errors.push(err); throw new Error('a broken onError is contained too'); },
  });
  const op = c.startOperation({ type: 'action' });
  op.log('lost');
  op.http({ method: 'GET', url: 'https://x.test' }, null);
  op.log(undefined, { level: 'nonsense' });
  await op.end();
  await op.fail('twice is a no-op');
  await c.close();
  assert.equal(op.id, null);
  assert.equal(op.failed, true);
  assert.match(errors[0].message, /cannot reach opslog at http:\/\/127\.0\.0\.1:9/);
  assert.equal(c.stats().dropped, 3);
  assert.equal(c.stats().failedRequests, 3, 'one request, tried 1 + 2 times');
});

test('the buffer is bounded: the oldest messages are dropped and counted', async () => {
  let calls = 0;
  const c = new Opslog({
    url: 'http://opslog.invalid', token: 'k', maxBufferSize: 100, batchSize: 50, flushOnExit: false,
    onError: null,
    fetch: () => { calls++; return new Promise(() => {}); }, // a daemon that never answers
  });
  const op = c.startOperation({ type: 'sync' });
  for (let i = 0; i < 10000; i++) op.log(`m ${i}`);
  const stats = c.stats();
  assert.equal(stats.buffered, 100);
  assert.equal(stats.dropped, 9900);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(calls, 1, 'one request in flight (the start, carrying a batch); the rest wait in the bounded buffer');
});

test('what is buffered is delivered when the process exits on its own', async () => {
  const connection = `child-${process.pid}`;
  await new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [path.join(__dirname, 'fixtures/exit-child.js'), connection],
      { env: { ...process.env, OPSLOG_URL: daemon.base, OPSLOG_TOKEN: daemon.token, OPSLOG_ENV: 'prod' }, timeout: 30000 },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve()),
    );
  });
  const ops = await eventually(async () => {
    const page = await daemon.get(`/operations?connection_id=${connection}`);
    return page.total > 0 && page.data[0].state === 'success' && page;
  });
  assert.equal(ops.total, 1);
  assert.equal(ops.data[0].state, 'success');
  const messages = await allMessages(daemon, ops.data[0].id);
  assert.deepEqual(messages.map((m) => m.message), ['line 0 before exit', 'line 1 before exit', 'line 2 before exit']);
});

test('10,000 messages through the real daemon (throughput, reported not asserted)', async (t) => {
  const { c, errors } = client({ batchSize: 1000, maxBufferSize: 20000 });
  const op = c.startOperation({ type: 'sync', integration: 'throughput' });
  const started = performance.now();
  for (let i = 0; i < 10000; i++) op.log(`throughput message ${i}`, { meta: { i } });
  const queued = performance.now();
  await op.end();
  await c.close();
  const done = performance.now();
  assert.deepEqual(errors, []);
  assert.equal((await daemon.get(`/operations/${op.id}`)).message_count, 10000);
  t.diagnostic(
    `log() x10000: ${(queued - started).toFixed(1)} ms in the caller; delivered in ${(done - started).toFixed(0)} ms ` +
      `(${Math.round(10000 / ((done - started) / 1000))} messages/s)`,
  );
});

test('redaction helpers and retry policy', () => {
  assert.equal(redactUrl('https://a.test/x?token=1&q=token'), `https://a.test/x?token=${REDACTED}&q=token`);
  assert.equal(redactUrl('/relative?API_KEY=z&ok'), `/relative?API_KEY=${REDACTED}&ok`);
  assert.equal(redactUrl('https://a.test/p?foo=1', ['FOO']), `https://a.test/p?foo=${REDACTED}`);
  assert.equal(redactUrl('https://a.test/plain'), 'https://a.test/plain');
  assert.deepEqual(redactHeaders([['Cookie', 'x'], ['X-Ok', 'y']]), { Cookie: REDACTED, 'X-Ok': 'y' });
  assert.deepEqual(redactBody([{ secret: 1 }, 2]), [{ secret: REDACTED }, 2]);
  assert.equal(parseRetryAfter('3'), 3000);
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:05 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT')), 5000);
  assert.equal(parseRetryAfter('soon'), null);
  assert.equal(backoffMs(3, 100, 10000, () => 0.999), 799);
  assert.equal(backoffMs(20, 100, 10000, () => 0.5), 5000);
});

test('end user, tags, async and the fields Nango receivers get are stored', async () => {
  const { c, errors } = client();
  const sync = c.startOperation({
    type: 'sync', integration: 'github', connectionId: 'acme', script: 'issues',
    endUser: { id: 'u-7', email: 'ada@example.com', organization: { id: 'org-1' } },
    tags: { plan: 'pro' }, syncType: 'incremental', checkpoints: { from: { page: 3 }, to: null },
  });
  const synced = sync.end({ records: [{ model: 'Issue', added: 1 }], checkpoints: { from: { page: 3 }, to: { page: 4, done: true } } });
  const action = c.startOperation({ type: 'action', script: 'create-issue', async: true });
  const acted = action.end({ output: { issue: 7 } });
  const auth = c.startOperation({ type: 'auth', integration: 'github', authMode: 'OAUTH2' });
  const authed = auth.end();
  await Promise.all([synced, acted, authed]);
  await c.close();
  assert.deepEqual(errors, []);
  const stored = await daemon.get(`/operations/${sync.id}`);
  assert.deepEqual(stored.end_user, { id: 'u-7', email: 'ada@example.com', organization: { id: 'org-1' } });
  assert.deepEqual(stored.tags, { plan: 'pro' });
  assert.equal(stored.sync_type, 'incremental');
  assert.deepEqual(stored.checkpoints, { from: { page: 3 }, to: { page: 4, done: true } });
  assert.deepEqual(stored.records, [{ model: 'Issue', added: 1, updated: 0, deleted: 0 }]);
  assert.equal((await daemon.get(`/operations/${action.id}`)).async, true);
  assert.deepEqual(await daemon.get(`/operations/${action.id}/output`), { issue: 7 });
  assert.equal((await daemon.get(`/operations/${auth.id}`)).auth_mode, 'OAUTH2');
});

test('verifyWebhook checks real deliveries in both formats', async () => {
  const received = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ body: Buffer.concat(chunks), headers: req.headers });
      res.end('ok');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  try {
    await daemon.admin('PUT', '/settings', {
      webhooks: { url: `${url}/nango`, format: 'nango', secondary_url: `${url}/opslog` },
    });
    const { secret } = await daemon.admin('GET', '/settings/webhook-secret');
    const { c } = client();
    await c.startOperation({ type: 'auth', integration: 'hubspot', connectionId: 'c1' }).end();
    await c.close();
    await eventually(() => received.length >= 2, 30000);
    for (const { body, headers } of received) {
      assert.equal(verifyWebhook(secret, body, headers), true, JSON.stringify(headers));
      assert.equal(verifyWebhook(secret, Buffer.concat([body, Buffer.from(' ')]), headers), false);
      const nangoOnly = Object.fromEntries(Object.entries(headers).filter(([k]) => !k.startsWith('webhook-')));
      if ('x-nango-hmac-sha256' in headers) {
        assert.equal(verifyWebhook(secret, body.toString('utf8'), nangoOnly), true);
        assert.equal(verifyWebhook(secret, `${body} `, nangoOnly), false);
      }
    }
    assert.equal(verifyWebhook(secret, received[0].body, received[0].headers, { now: Date.now() / 1000 + 3600 }), false);
  } finally {
    await daemon.admin('PUT', '/settings', { webhooks: { url: null, secondary_url: null, format: null } });
    server.close();
  }
});

test('messages buffered when an operation starts go in the request that creates it', async () => {
  const requests = [];
  const fetch = (url, init) => {
    // /v1/environments/<env>/operations -> /operations
    requests.push(`${init.method} /${new URL(url).pathname.split('/').slice(4).join('/')}`);
    return globalThis.fetch(url, init);
  };
  const { c, errors } = client({ batchSize: 100, fetch });
  const op = c.startOperation({ type: 'proxy', integration: 'folded' });
  op.log('calling out');
  op.http({ method: 'GET', url: 'https://api.example.com/x' }, { status: 204 });
  await op.end();
  await c.close();
  assert.deepEqual(errors, []);
  assert.deepEqual(requests.filter((r) => r.startsWith('POST')), ['POST /operations']);
  const messages = await allMessages(daemon, op.id);
  assert.deepEqual(messages.map((m) => m.type), ['log', 'http']);
  assert.deepEqual(c.stats(), { sent: 2, dropped: 0, failedRequests: 0, buffered: 0 });
});
