// End-to-end: the real release binary, seeded through its API, driven in Debian's chromium.
// Screenshots of each page go to target/e2e-screenshots/ (see README).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { createServer } from 'node:http';
import { chromium } from 'playwright-core';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.OPSLOG_BIN || join(ROOT, 'target', 'release', 'opslog');
const SHOTS = join(ROOT, 'target', 'e2e-screenshots');
const ADMIN = 'e2e-admin-token-0123456789abcdef';
const KEY = 'e2e-prod-key-0123456789abcdef';
// A viewer's key: prod's `read` scope only.
const READ_KEY = 'e2e-prod-read-key-0123456789abcdef';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let daemon; let base; let tmp; let context; let page;
const pageErrors = [];
const ids = {};

/** Polls `check` until it returns a truthy value or `ms` pass; the last failure is reported. */
async function eventually(check, ms = 10000, what = 'condition') {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try { const v = await check(); if (v) return v; last = v; } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`${what} not met within ${ms} ms: ${last?.message ?? JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function api(method, path, body) {
  // Settings need the admin token; records are written and read with the environment's key.
  const token = path.startsWith('/settings') ? ADMIN : KEY;
  const res = await fetch(`${base}/v1/environments/prod${path}`, {
    method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(data)}`);
  return data;
}
const startOp = async (body) => (await api('POST', '/operations', body)).id;
const countText = () => page.locator('#result-count').textContent();
const waitCount = (n) => eventually(async () => {
  const shown = await countText();
  if (shown === `${n.toLocaleString('en')} operation${n === 1 ? '' : 's'}`) return true;
  throw new Error(`shown: ${shown}`);
}, 10000, `count ${n}`);
const rowsText = () => page.locator('#operations tbody').innerText();
/** Takes the console errors a step caused on purpose (a refused save is a 4xx in the console). */
const expectErrors = (pattern) => {
  for (let i = pageErrors.length - 1; i >= 0; i--) if (pattern.test(pageErrors[i])) pageErrors.splice(i, 1);
};
const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'opslog-e2e-'));
  mkdirSync(SHOTS, { recursive: true });
  const config = join(tmp, 'opslog.toml');
  // It holds secrets: opslog refuses a config file others can read.
  writeFileSync(config, `[server]\nlisten = "127.0.0.1:0"\ndata_dir = "${join(tmp, 'data')}"\nadmin_tokens = ["${ADMIN}"]\n\n` +
    `[environments.prod]\napi_keys = ["${KEY}", { key = "${READ_KEY}", scope = "read" }]\n\n[environments.dev]\n\n` +
    // A value the file sets, to see it read-only in the dashboard.
    `[environments.dev.webhooks]\ntimeout = "5s"\n`, { mode: 0o600 });
  daemon = spawn(BIN, ['serve', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RUST_LOG: 'warn' } });
  base = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: daemon.stdout });
    lines.on('line', (line) => { const m = line.match(/listening on (http:\/\/\S+)/); if (m) resolve(m[1]); });
    daemon.on('exit', (code) => reject(new Error(`opslog exited with ${code}`)));
  });

  // A failed sync with an HTTP 429 and a validation warning, an action whose external call
  // answered 500, a failed incoming webhook, a failed token refresh, successes, and one running.
  ids.sync = await startOp({ type: 'sync', integration: 'github', connection_id: 'acme', script: 'issues',
    end_user: { id: 'u-ada', display_name: 'Ada', email: 'ada@example.com' }, tags: { plan: 'pro' } });
  await api('POST', `/operations/${ids.sync}/messages`, [
    { message: 'fetching issues since 2026-11-01' },
    { type: 'http', request: { method: 'GET', url: 'https://api.github.com/issues' }, response: { status: 429 }, duration_ms: 120, retry: { attempt: 1, max: 3, waited_ms: 1000 } },
    { level: 'warn', message: 'record 17 failed validation: missing title' },
  ]);
  await api('PATCH', `/operations/${ids.sync}`, { state: 'failed', error: { message: 'rate limit exceeded' } });
  ids.action = await startOp({ type: 'action', integration: 'salesforce', connection_id: 'globex', script: 'create-contact' });
  await api('POST', `/operations/${ids.action}/messages`, { type: 'http', request: { method: 'POST', url: 'https://salesforce.example/contacts' }, response: { status: 500 } });
  await api('PATCH', `/operations/${ids.action}`, { state: 'failed', error: { message: 'upstream error' } });
  ids.webhook = await startOp({ type: 'webhook', action: 'incoming', integration: 'hubspot', connection_id: 'initech' });
  await api('PATCH', `/operations/${ids.webhook}`, { state: 'failed', error: { message: '<img src=x onerror=alert(1)> payload unparseable' } });
  ids.auth = await startOp({ type: 'auth', action: 'refresh_token', integration: 'github', connection_id: 'umbrella' });
  await api('PATCH', `/operations/${ids.auth}`, { state: 'failed', error: { message: 'invalid_grant: refresh token revoked' } });
  for (let i = 0; i < 55; i++) {
    const id = await startOp({ type: 'proxy', integration: 'zendesk', connection_id: `tenant-${i % 5}`, script: 'proxy' });
    await api('PATCH', `/operations/${id}`, { state: 'success' });
  }
  ids.running = await startOp({ type: 'sync', integration: 'github', connection_id: 'acme', script: 'tickets' });
  await api('POST', `/operations/${ids.running}/messages`, { message: 'page 1 fetched' });

  context = await chromium.launchPersistentContext(join(tmp, 'chromium-profile'), {
    executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS, viewport: { width: 1440, height: 900 },
  });
  page = context.pages()[0] || await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`); });
  page.on('response', (r) => { if (r.status() >= 400) pageErrors.push(`http ${r.status()} ${r.request().method()} ${r.url()}`); });
});

after(async () => {
  await context?.close();
  daemon?.kill('SIGTERM');
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test('log in, filter, search, open an operation, live updates, insights, signals, log out', async (t) => {
  const total = 4 + 55 + 1;
  await t.test('login', async () => {
    const started = Date.now();
    await page.goto(base);
    await page.locator('#login-token').waitFor();
    await page.fill('#login-token', 'not-the-token-0123456789');
    await page.press('#login-token', 'Enter');
    await eventually(async () => (await page.locator('#login-error').textContent()).includes('unknown token'));
    pageErrors.length = 0; // the refused login is a 401 in the console, on purpose
    await page.fill('#login-token', ADMIN);
    await page.press('#login-token', 'Enter');
    await waitCount(total);
    const rows = await page.locator('#operations tbody tr').count();
    assert.equal(rows, 50, 'one page of 50');
    t.diagnostic(`login to 50 rendered operations: ${Date.now() - started} ms`);
    assert.match(page.url(), /env=prod/);
    await shot('logs');
    // Scrolling to the end loads the next page (infinite scroll through next_cursor).
    await page.locator('#load-more').scrollIntoViewIfNeeded();
    await eventually(async () => (await page.locator('#operations tbody tr').count()) === total, 10000, 'all rows');
  });

  await t.test('filters by status, integration, type, connection and script, kept in the URL', async () => {
    await page.click('.states button:text-is("failed")');
    await waitCount(4);
    await page.fill('input[name=pick-integration]', 'github');
    await page.press('input[name=pick-integration]', 'Enter');
    await waitCount(2);
    const url = new URL(page.url());
    assert.deepEqual(url.searchParams.getAll('state'), ['failed']);
    assert.deepEqual(url.searchParams.getAll('integration'), ['github']);
    await page.reload();
    await waitCount(2);
    assert.match(await page.locator('.chip[data-filter=integration]').textContent(), /Integration: github/);
    assert.equal(await page.locator('.states button[aria-pressed=true]').textContent(), 'failed');
    const text = await rowsText();
    assert.match(text, /sync:run/);
    assert.match(text, /auth:refresh_token/);
    assert.doesNotMatch(text, /salesforce/);

    await page.goto(`${base}/?env=prod`);
    await page.fill('input[name=pick-type]', 'action');
    await page.press('input[name=pick-type]', 'Enter');
    await waitCount(1);
    assert.match(await rowsText(), /salesforce/);
    await page.goto(`${base}/?env=prod&type=sync:run`);
    await waitCount(2);
    await page.fill('input[name=pick-connection_id]', 'acme');
    await page.press('input[name=pick-connection_id]', 'Enter');
    await waitCount(2);
    await page.fill('input[name=pick-script]', 'issues');
    await page.press('input[name=pick-script]', 'Enter');
    await waitCount(1);

    // End user and tag pickers, with suggestions from /facets.
    await page.goto(`${base}/?env=prod`);
    await waitCount(total);
    await page.fill('input[name=pick-tag]', 'plan:pro');
    await page.press('input[name=pick-tag]', 'Enter');
    await waitCount(1);
    assert.deepEqual(new URL(page.url()).searchParams.getAll('tag'), ['plan:pro']);
    await page.fill('input[name=pick-end_user_id]', 'u-ada');
    await page.press('input[name=pick-end_user_id]', 'Enter');
    await waitCount(1);
    assert.match(await rowsText(), /issues/);
  });

  await t.test('full-text search', async () => {
    await page.goto(`${base}/?env=prod`);
    await waitCount(total);
    await page.fill('#search', 'validation');
    await waitCount(1);
    assert.equal(new URL(page.url()).searchParams.get('q'), 'validation');
    assert.match(await rowsText(), /github/);
    // Record content is text, never markup.
    await page.fill('#search', 'unparseable');
    await eventually(async () => (await rowsText()).includes('hubspot'), 10000, 'webhook found');
    await waitCount(1);
    await page.click('#operations tbody tr');
    await eventually(async () => (await page.locator('#drawer .part-error').textContent()).includes('<img src=x'));
    assert.equal(await page.locator('#drawer img').count(), 0);
  });

  await t.test('operation drawer: facts, payload, messages with levels and details', async () => {
    await page.goto(`${base}/?env=prod&integration=github&state=failed&type=sync`);
    await waitCount(1);
    await page.click('#operations tbody tr');
    await eventually(async () => (await page.locator('#messages li').count()) === 3, 10000, 'three messages');
    assert.equal(new URL(page.url()).searchParams.get('op'), ids.sync);
    const drawer = await page.locator('#drawer').innerText();
    for (const s of ['sync:run', 'failed', 'acme', 'issues', 'rate limit exceeded', 'Ada <ada@example.com> (u-ada)', 'plan: pro']) assert.ok(drawer.includes(s), `${s} in drawer`);
    assert.equal(await page.locator('#messages li[data-level=warn] .badge').textContent(), 'warn');
    const http = page.locator('#messages li[data-level=error]');
    assert.match(await http.innerText(), /GET\s+https:\/\/api\.github\.com\/issues\s+429/);
    await http.locator('summary').click();
    assert.match(await http.innerText(), /"waited_ms": 1000/);
    await shot('drawer');
    await page.click('#drawer .levels button:text-is("warn")');
    await eventually(async () => (await page.locator('#messages li').count()) === 1, 10000, 'level filter');
    await page.fill('#message-search', 'fetching');
    await page.click('#drawer .levels button:text-is("warn")');
    await eventually(async () => new URL(page.url()).searchParams.get('mq') === 'fetching' && !page.url().includes('mlevel')
      && (await page.locator('#messages li').count()) === 1
      && (await page.locator('#messages').innerText()).includes('fetching issues'), 10000, 'message search');
    // A shared link opens the same view.
    const link = page.url();
    const other = await context.newPage();
    await other.goto(link);
    await eventually(async () => (await other.locator('#messages').innerText()).includes('fetching issues'), 10000, 'shared link');
    assert.equal(await other.locator('#message-search').inputValue(), 'fetching');
    await other.close();
  });

  await t.test('a running operation updates live in the drawer', async () => {
    await page.goto(`${base}/?env=prod&op=${ids.running}`);
    await eventually(async () => (await page.locator('#messages').innerText()).includes('page 1 fetched'));
    await api('POST', `/operations/${ids.running}/messages`, { level: 'warn', message: 'page 2 slow' });
    await eventually(async () => (await page.locator('#messages').innerText()).includes('page 2 slow'), 10000, 'tailed message');
    await api('PATCH', `/operations/${ids.running}`, { state: 'success' });
    await eventually(async () => (await page.locator('#drawer h2 .badge').textContent()) === 'success', 10000, 'state update');
  });

  await t.test('live mode shows new operations', async () => {
    await page.goto(`${base}/?env=prod&live=1&integration=intercom`);
    await waitCount(0);
    const id = await startOp({ type: 'action', integration: 'intercom', connection_id: 'live-conn', script: 'send' });
    await eventually(async () => (await rowsText()).includes('live-conn'), 10000, 'new row');
    await waitCount(1);
    await api('PATCH', `/operations/${id}`, { state: 'failed' });
    await eventually(async () => (await page.locator(`tr[data-id="${id}"]`).getAttribute('data-state')) === 'failed', 10000, 'row update');
  });

  await t.test('insights charts; clicking a bar filters the logs', async () => {
    await page.goto(`${base}/?env=prod&page=insights&range=1h`);
    const plot = page.locator('figure[data-type=sync] .plot');
    await eventually(async () => (await page.locator('figure[data-type=sync] canvas').count()) === 1, 10000, 'sync chart');
    await eventually(async () => (await page.locator('figure[data-type=proxy] figcaption').textContent()).includes('55 operations'));
    await shot('insights');
    const point = await plot.evaluate((el) => {
      const u = el._uplot;
      const stacked = u.data[1];
      let i = stacked.length - 1;
      while (i >= 0 && !stacked[i]) i--;
      const r = u.over.getBoundingClientRect();
      const x = u.valToPos(u.data[0][i], 'x') + 3;
      const y = u.valToPos(stacked[i], 'y') + 2;
      return { x: r.left + x, y: r.top + Math.max(y, u.over.clientHeight - 4), count: stacked[i] };
    });
    await page.mouse.move(point.x, point.y);
    await page.mouse.click(point.x, point.y);
    await eventually(async () => new URL(page.url()).searchParams.get('page') === 'logs', 10000, 'logs page');
    const url = new URL(page.url());
    assert.equal(url.searchParams.get('type'), 'sync');
    assert.ok(url.searchParams.get('from') && url.searchParams.get('to'));
    await waitCount(point.count);
    assert.doesNotMatch(await rowsText(), /proxy|action/);
  });

  await t.test('signals show their counts and open their views', async () => {
    await page.goto(`${base}/?env=prod&page=signals`);
    const count = (key) => page.locator(`[data-signal=${key}] .signal-count`).textContent();
    await eventually(async () => (await count('sync_failures')) === '1', 10000, 'sync signal');
    assert.equal(await count('action_errors'), '1');
    assert.equal(await count('auth_failures'), '1');
    assert.equal(await count('webhook_failures'), '1');
    await shot('signals');
    await page.click('[data-signal=action_errors] .signal-main');
    await eventually(async () => (await page.locator('.signal-list').innerText()).includes('salesforce.example/contacts'), 10000, 'action errors');
  });

  await t.test('logout ends the session', async () => {
    await page.click('#logout');
    await page.locator('#login-token').waitFor();
    await page.reload();
    await page.locator('#login-token').waitFor();
    assert.equal(await page.locator('#shell').isHidden(), true);
  });

  assert.deepEqual(pageErrors, [], 'no console errors');
});

test('settings: edit, reveal and rotate; deliveries: list, filter, retry, replay', async (t) => {
  // The webhook receiver: answers 500 until the test says otherwise.
  let answer = 500;
  const received = [];
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      received.push({ status: answer, body: JSON.parse(body) });
      res.writeHead(answer, { 'content-type': 'text/plain' });
      res.end(answer === 200 ? 'ok' : 'receiver down for maintenance');
    });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  t.after(() => receiver.close());
  const hookUrl = `http://127.0.0.1:${receiver.address().port}/opslog-events`;
  const text = (sel) => page.locator(sel).textContent();
  const openSettings = async (env = 'prod') => {
    await page.goto(`${base}/?env=${env}&page=settings`);
    await page.locator('#webhooks-url').waitFor();
  };

  await t.test('log in again', async () => {
    await page.goto(base);
    await page.locator('#login-token:visible, #shell:visible').first().waitFor();
    if (await page.locator('#login-token').isVisible()) {
      await page.fill('#login-token', ADMIN);
      await page.press('#login-token', 'Enter');
    }
    await page.locator('#shell').waitFor();
  });

  await t.test('settings: a bad URL is refused beside its field, nothing saved', async () => {
    await openSettings();
    assert.equal(await page.inputValue('#webhooks-url'), '');
    assert.match(await text('#webhook-secret'), /^whse…\(masked\)$/, 'the secret is masked');
    await page.fill('#webhooks-url', 'ftp://backend.example.com/hooks');
    await page.click('#webhooks-save');
    await eventually(async () => (await text('#webhooks-url-error')).includes('only http and https are allowed'), 10000, 'field error');
    assert.match(await text('#webhooks-status'), /Not saved/);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'webhooks-url', 'the bad field has the focus');
    expectErrors(/400|Bad Request/);
    await openSettings();
    assert.equal(await page.inputValue('#webhooks-url'), '', 'nothing was saved');
  });

  await t.test('settings: change URL, events and schedule; saved values survive a reload', async () => {
    await page.fill('#webhooks-url', hookUrl);
    await page.uncheck('input[name=event][value="auth.created"]');
    await page.uncheck('input[name=event][value="webhook.received"]');
    await page.fill('#webhooks-retry-schedule', '0s');
    // The secondary URL's receivers were written for Nango.
    await page.selectOption('#webhooks-secondary-format', 'nango');
    await page.click('#webhooks-save');
    await eventually(async () => (await text('#webhooks-status')).startsWith('Saved'), 10000, 'saved');
    await shot('settings');
    await page.reload();
    await page.locator('#webhooks-url').waitFor();
    assert.equal(await page.inputValue('#webhooks-url'), hookUrl);
    assert.equal(await page.inputValue('#webhooks-retry-schedule'), '0s');
    assert.equal(await page.inputValue('#webhooks-secondary-format'), 'nango');
    const checked = await page.locator('input[name=event]:checked').evaluateAll((els) => els.map((e) => e.value));
    assert.deepEqual(checked, ['sync.completed', 'sync.records', 'auth.failed', 'action.completed',
      'alert.triggered', 'alert.resolved']);
    const saved = await api('GET', '/settings');
    assert.equal(saved.webhooks.url, hookUrl);
    assert.equal(saved.webhooks.format, 'opslog', 'the default body format');
    assert.equal(saved.webhooks.secondary_format, 'nango');
    assert.deepEqual(saved.webhooks.retry_schedule, ['0s']);
    // Saving again without a change sends nothing.
    await page.click('#webhooks-save');
    await eventually(async () => (await text('#webhooks-status')) === 'Nothing changed.', 10000, 'no change');
  });

  await t.test('settings: what the config file sets is read-only, with the reason; the environment switch', async () => {
    await openSettings();
    await page.selectOption('#env-select', 'dev');
    await eventually(async () => new URL(page.url()).searchParams.get('env') === 'dev', 10000, 'dev selected');
    await eventually(async () => page.locator('#webhooks-timeout').isDisabled(), 10000, 'timeout locked');
    assert.equal(await page.inputValue('#webhooks-timeout'), '5s');
    assert.match(await page.locator('[data-field="webhooks.timeout"]').innerText(), /set in the config file/);
    assert.equal(await page.locator('#webhooks-url').isDisabled(), false, 'what the file leaves unset stays editable');
  });

  await t.test('settings: reveal and rotate the signing secret', async () => {
    await openSettings();
    await page.click('#reveal-secret');
    await eventually(async () => /^whsec_[A-Za-z0-9+/=]{40,}$/.test(await text('#webhook-secret')), 10000, 'revealed');
    const first = await text('#webhook-secret');
    await page.click('#reveal-secret');
    assert.match(await text('#webhook-secret'), /masked/, 'hidden again');
    // Cancelling the dialog changes nothing.
    await page.click('#rotate-secret');
    await page.locator('dialog[open]').waitFor();
    assert.match(await page.locator('dialog[open]').innerText(), /keeps signing for 1d:/);
    await page.keyboard.press('Escape');
    await page.locator('dialog').waitFor({ state: 'detached' });
    await page.click('#rotate-secret');
    await page.click('dialog[open] button:text-is("Rotate secret")');
    await eventually(async () => (await text('#secret-status')).includes('The old one keeps signing until'), 10000, 'rotated');
    const second = await text('#webhook-secret');
    assert.match(second, /^whsec_/, 'the new secret is shown once, to hand to the receiver');
    assert.notEqual(second, first);
    assert.match(await text('#previous-secret'), /previous secret keeps signing until \d{4}-/);
  });

  await t.test('settings: the ingress URL in full, copy and rotate', async () => {
    const url = await text('#ingress-url');
    assert.match(url, new RegExp(`^${base.replace(/[.]/g, '\\.')}/v1/hooks/hook_[0-9a-f]+/\\{integration\\}$`));
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
    await page.click('#copy-ingress');
    await eventually(async () => (await page.evaluate(() => navigator.clipboard.readText())) === url, 10000, 'copied');
    await page.click('#rotate-ingress');
    await page.click('dialog[open] button:text-is("Rotate URL")');
    await eventually(async () => (await text('#ingress-status')).includes('old one no longer works'), 10000, 'ingress rotated');
    assert.notEqual(await text('#ingress-url'), url);
  });

  await t.test('settings: OTel endpoint and masked headers', async () => {
    const current = await api('GET', '/settings');
    assert.ok(current.otel, 'GET /settings has an otel section');
    await openSettings();
    await page.fill('#otel-endpoint', 'ftp://collector.example.com');
    await page.click('#otel-save');
    await eventually(async () => (await text('#otel-endpoint-error')).length > 0, 10000, 'endpoint error');
    expectErrors(/400|422|Bad Request|Unprocessable/);
    await page.fill('#otel-endpoint', 'https://collector.example.com:4318');
    await page.click('#otel-add-header');
    await page.locator('.header-row .header-name').last().fill('x-api-key');
    await page.locator('.header-row .header-value').last().fill('e2e-otel-secret-value');
    await page.fill('#otel-service-name', 'opslog-e2e');
    await page.check('#otel-logs');
    await page.click('#otel-save');
    await eventually(async () => (await text('#otel-status')).startsWith('Saved'), 10000, 'otel saved');
    await page.reload();
    await page.locator('#otel-endpoint').waitFor();
    assert.equal(await page.inputValue('#otel-endpoint'), 'https://collector.example.com:4318');
    assert.equal(await page.inputValue('.header-row .header-name'), 'x-api-key');
    assert.equal(await page.inputValue('.header-row .header-value'), '', 'the secret is never put back in the page');
    assert.match(await page.getAttribute('.header-row .header-value', 'placeholder'), /masked/);
    assert.equal(await page.isChecked('#otel-logs'), true);
    assert.doesNotMatch(await page.content(), /e2e-otel-secret-value/);
    // Adding a header sends the whole map; the untouched one goes back masked, which keeps its secret.
    const masked = (await api('GET', '/settings')).otel.headers['x-api-key'];
    await page.click('#otel-add-header');
    await page.locator('.header-row .header-name').last().fill('x-tenant');
    await page.locator('.header-row .header-value').last().fill('acme');
    const put = page.waitForRequest((r) => r.method() === 'PUT' && r.url().endsWith('/settings'));
    await page.click('#otel-save');
    assert.deepEqual(JSON.parse((await put).postData()), { otel: { headers: { 'x-api-key': masked, 'x-tenant': 'acme' } } });
    await eventually(async () => (await text('#otel-status')).startsWith('Saved'), 10000, 'otel saved again');
    assert.deepEqual(Object.keys((await api('GET', '/settings')).otel.headers).sort(), ['x-api-key', 'x-tenant']);
    await page.fill('#otel-endpoint', '');
    await page.click('#otel-save');
    await eventually(async () => (await text('#otel-status')).startsWith('Saved'), 10000, 'export off');
    assert.equal((await api('GET', '/settings')).otel.endpoint, null);
  });

  await t.test('deliveries: a failing delivery is listed with its status code; filters in the URL', async () => {
    const id = await startOp({ type: 'sync', integration: 'github', connection_id: 'delivery-test', script: 'issues' });
    await api('PATCH', `/operations/${id}`, { state: 'success' });
    await eventually(async () => (await api('GET', '/deliveries?status=failed')).total === 1, 15000, 'a failed delivery');
    await page.click('nav a[data-page=deliveries]');
    await eventually(async () => (await text('#delivery-count')) === '1 delivery', 10000, 'one delivery');
    await shot('deliveries');
    const row = page.locator('#deliveries tbody tr').first();
    assert.equal(await row.getAttribute('data-status'), 'failed');
    const cells = await row.locator('td').allInnerTexts();
    assert.equal(cells[1], 'sync.completed');
    assert.equal(cells[2], hookUrl);
    assert.equal(cells[3], 'failed');
    assert.equal(cells[4], '1');
    assert.match(cells[5], /^500/);
    await page.click('.states button:text-is("failed")');
    await eventually(async () => new URL(page.url()).searchParams.get('status') === 'failed', 10000, 'status in URL');
    await eventually(async () => (await text('#delivery-count')) === '1 delivery', 10000, 'failed: one');
    await page.selectOption('#delivery-event', 'auth.failed');
    await eventually(async () => (await text('#delivery-count')) === '0 deliveries', 10000, 'auth.failed: none');
    assert.equal(new URL(page.url()).searchParams.get('event'), 'auth.failed');
    await page.reload();
    await eventually(async () => (await text('#delivery-count')) === '0 deliveries', 10000, 'filters kept on reload');
    assert.equal(await page.inputValue('#delivery-event'), 'auth.failed');
    await page.click('a.reset');
    await eventually(async () => (await text('#delivery-count')) === '1 delivery', 10000, 'reset');
  });

  await t.test('deliveries: the attempts timeline, then Retry delivers it', async () => {
    await page.locator('#deliveries tbody tr').first().click();
    await eventually(async () => (await page.locator('#attempts li.attempt').count()) === 1, 10000, 'one attempt');
    const first = page.locator('#attempts li.attempt').first();
    assert.match(await first.innerText(), /#1[\s\S]*500[\s\S]*failed/);
    assert.match(await first.textContent(), /receiver down for maintenance/);
    assert.match(await text('#delivery-payload'), /"type": "sync.completed"/);
    assert.ok(new URL(page.url()).searchParams.get('delivery'));
    await shot('delivery');
    answer = 200;
    await page.click('#retry-delivery');
    await eventually(async () => (await page.locator('#attempts li.attempt').count()) === 2, 15000, 'a second attempt');
    await eventually(async () => (await page.locator('#attempts li.attempt').last().getAttribute('data-outcome')) === 'delivered', 15000, 'delivered');
    assert.match(await page.locator('#attempts li.attempt').last().innerText(), /#2[\s\S]*200/);
    assert.equal(await text('#delivery-detail h2 .badge'), 'delivered');
    assert.equal(await page.locator('#retry-delivery').isHidden(), true, 'nothing to retry');
    assert.equal(await page.locator('#deliveries tbody tr').first().getAttribute('data-status'), 'delivered', 'the row follows');
    await eventually(async () => (await text('#delivery-status')) === 'Delivered on attempt #2.', 10000, 'retry outcome');
    assert.deepEqual(received.map((r) => r.status), [500, 200]);
    await shot('delivery-retried');
  });

  await t.test('deliveries: keyboard, the delivery log link, replay', async () => {
    await page.keyboard.press('Escape');
    await eventually(async () => page.locator('#delivery-detail').isHidden(), 10000, 'closed');
    assert.equal(new URL(page.url()).searchParams.get('delivery'), null);
    assert.equal(await page.evaluate(() => document.activeElement.tagName), 'TR', 'focus back on the row');
    await page.keyboard.press('Enter');
    await eventually(async () => (await page.locator('#attempts li.attempt').count()) === 2, 10000, 'opened by keyboard');
    await page.click('#delivery-detail a:text-is("webhook:deliver operation")');
    await eventually(async () => (await page.locator('#drawer h2').textContent()).includes('webhook:deliver'), 10000, 'delivery log');
    await page.goBack();
    await page.locator('#delivery-detail h2').waitFor();
    await page.keyboard.press('Escape'); // the panel covers the list's controls
    await page.locator('#replay summary').click();
    await page.selectOption('select[aria-label="Replay which status"]', 'delivered');
    await page.click('#replay-run');
    await page.click('dialog[open] button:text-is("Replay")');
    await eventually(async () => (await text('#replay-status')) === '1 delivery queued again.', 10000, 'replayed');
    await eventually(async () => received.length === 3, 15000, 'replayed delivery received');
    assert.equal(received[2].body.type, 'sync.completed');
    assert.equal(received[2].body.id, received[0].body.id, 'the same event, sent again');
  });

  assert.deepEqual(pageErrors, [], 'no console errors');
});

test('why: matches in context, signal trends, an alert rule in Settings, insights labels', async (t) => {
  const text = (sel) => page.locator(sel).textContent();

  await t.test('log in again', async () => {
    await page.goto(base);
    await page.locator('#login-token:visible, #shell:visible').first().waitFor();
    if (await page.locator('#login-token').isVisible()) {
      await page.fill('#login-token', ADMIN);
      await page.press('#login-token', 'Enter');
    }
    await page.locator('#shell').waitFor();
  });

  await t.test('a search shows where each row matched, terms marked, as text', async () => {
    await page.goto(`${base}/?env=prod&q=validation`);
    await waitCount(1);
    const under = page.locator(`#operations tr.snippet-row[data-for="${ids.sync}"]`);
    await under.waitFor();
    assert.match(await under.innerText(), /Matched in a message: record 17 failed validation: missing title/);
    assert.deepEqual(await under.locator('mark').allTextContents(), ['validation']);
    await shot('logs-snippets');

    // Markup in a record is shown as the characters it is.
    await page.fill('#search', 'unparseable');
    const xss = page.locator(`#operations tr.snippet-row[data-for="${ids.webhook}"]`);
    await xss.waitFor();
    assert.match(await xss.innerText(), /<img src=x onerror=alert\(1\)> payload unparseable/);
    assert.deepEqual(await xss.locator('mark').allTextContents(), ['unparseable']);
    assert.equal(await page.locator('#operations img').count(), 0);
  });

  await t.test('the drawer opens at the first matching message, matches marked', async () => {
    // Enough messages before the match that it starts out of view.
    const id = await startOp({ type: 'sync', integration: 'github', connection_id: 'deep', script: 'long' });
    const filler = Array.from({ length: 150 }, (_, i) => ({ message: `page ${i} fetched` }));
    await api('POST', `/operations/${id}/messages`, filler);
    await api('POST', `/operations/${id}/messages`, { level: 'error', message: 'quota exhausted for <b>tenant</b> deep' });
    const q = encodeURIComponent('"quota exhausted"');
    await eventually(async () => (await api('GET', `/operations?q=${q}`)).total === 1, 10000, 'indexed');
    await page.goto(`${base}/?env=prod&q=${q}`);
    const under = page.locator(`#operations tr.snippet-row[data-for="${id}"]`);
    await under.waitFor();
    await under.click();
    assert.ok(new URL(page.url()).searchParams.get('at'), 'the message is in the URL');
    const current = page.locator('#messages li.current');
    await eventually(async () => (await current.count()) === 1, 10000, 'first match found past the first page');
    assert.match(await current.innerText(), /quota exhausted for <b>tenant<\/b> deep/);
    assert.deepEqual(await current.locator('mark').allTextContents(), ['quota exhausted']);
    const visible = await current.evaluate((li) => {
      const r = li.getBoundingClientRect();
      const d = document.getElementById('drawer').getBoundingClientRect();
      return r.top >= d.top && r.bottom <= d.bottom && r.top >= 0 && r.bottom <= window.innerHeight;
    });
    assert.ok(visible, 'scrolled into view');
    assert.equal(await page.locator('#messages li.match').count(), 1);
    await shot('drawer-match');
  });

  await t.test('signals show the trend, a chart and the integrations behind them', async () => {
    await page.goto(`${base}/?env=prod&page=signals`);
    const card = page.locator('[data-signal=sync_failures]');
    await eventually(async () => (await card.locator('.signal-count').textContent()) === '1', 10000, 'sync signal');
    // Everything was recorded just now: the previous 24 h had none.
    assert.equal(await card.locator('.signal-change').textContent(), '▲ +1 vs previous period');
    assert.equal(await card.locator('.signal-change').getAttribute('data-trend'), 'up');
    assert.equal(await card.locator('svg.sparkline rect').count(), 12);
    assert.equal(await card.locator('svg.sparkline rect:not(.zero)').count(), 1);
    assert.deepEqual(await card.locator('.signal-top li').allInnerTexts(), ['github 1']);
    const auth = page.locator('[data-signal=auth_failures]');
    assert.equal(await auth.locator('.signal-change').textContent(), '▲ +1 vs previous period');
    await shot('signals-trends');
    await card.locator('.signal-top a[data-integration=github]').click();
    await eventually(async () => (await page.locator('.signal-list').innerText()).includes('sync:run'), 10000, 'listed');
    const url = new URL(page.url());
    assert.equal(url.searchParams.get('signal'), 'sync_failures');
    assert.equal(url.searchParams.get('integration'), 'github');
    assert.match(await text('#signal-integration'), /integration: github/);
  });

  await t.test('an alert rule edited in Settings: refused with its reason, then saved', async () => {
    await page.goto(`${base}/?env=prod&page=settings`);
    await page.locator('#alerts-form').waitFor();
    assert.equal(await page.locator('#alerts-form .alert-rule').count(), 0);
    await page.click('#alerts-add');
    const rule = page.locator('#alerts-form .alert-rule').first();
    await rule.locator('select[name=view]').selectOption('sync_failures');
    await rule.locator('input[name=integration]').fill('github');
    await rule.locator('input[name=above]').fill('3');
    await rule.locator('input[name=window]').fill('30s');
    await page.click('#alerts-save');
    await eventually(async () => (await rule.locator('.field-error').textContent()).includes('out of range'), 10000, 'refused window');
    expectErrors(/http 400 PUT|status of 400/);
    assert.deepEqual((await api('GET', '/settings')).alerts.rules, [], 'nothing saved');
    await rule.locator('input[name=window]').fill('15m');
    await page.click('#alerts-save');
    await eventually(async () => (await text('#alerts-status')).startsWith('Saved'), 10000, 'saved');
    assert.deepEqual((await api('GET', '/settings')).alerts.rules,
      [{ signal: 'sync_failures', integration: 'github', above: 3, window: '15m' }]);
    await page.reload();
    const saved = page.locator('#alerts-form .alert-rule').first();
    await saved.waitFor();
    assert.equal(await saved.locator('select[name=view]').inputValue(), 'sync_failures');
    assert.equal(await saved.locator('input[name=integration]').inputValue(), 'github');
    assert.equal(await saved.locator('input[name=window]').inputValue(), '15m');
    await saved.scrollIntoViewIfNeeded();
    await shot('settings-alerts');
    await saved.locator('button.remove').click();
    await page.click('#alerts-save');
    await eventually(async () => (await api('GET', '/settings')).alerts.rules.length === 0, 10000, 'removed');
  });

  await t.test('insights bucket by start and show every y-axis label whole', async () => {
    // 1,100 auth operations sent now that all started 30 minutes ago: one bar of 1,100.
    const started = new Date(Date.now() - 30 * 60 * 1000).toISOString();
    for (let i = 0; i < 1100; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, k) => api('POST', '/operations',
        { type: 'auth', action: 'refresh', integration: `bulk-${(i + k) % 7}`, state: 'success', started_at: started, ended_at: started })));
    }
    await eventually(async () => (await api('GET', '/operations?type=auth&limit=1')).total === 1101, 15000, 'indexed');
    await page.goto(`${base}/?env=prod&page=insights&range=1h`);
    const figure = page.locator('figure[data-type=auth]');
    await eventually(async () => (await figure.locator('figcaption').textContent()).includes('1,101 operations'), 15000, 'auth chart');
    await figure.locator('canvas').waitFor();
    const axis = await figure.locator('.plot').evaluate((el) => {
      const u = el._uplot;
      const y = u.axes[1];
      u.ctx.font = y.font[0];
      const labels = y._values || [];
      const widest = Math.max(...labels.map((l) => u.ctx.measureText(l).width)) / devicePixelRatio;
      const peak = Math.max(...u.data[1].map((v) => v || 0));
      const busiest = u.data[1].findIndex((v) => v === peak);
      return { labels, widest, size: y._size, tick: y.ticks.size, gap: y.gap, peak, at: u.data[0][busiest], from: u.data[0][0] };
    });
    assert.ok(axis.labels.includes('1,000'), `labels ${axis.labels}`);
    assert.ok(axis.widest + axis.tick + axis.gap <= axis.size, `"1,000" fits: ${JSON.stringify(axis)}`);
    assert.equal(axis.peak, 1100, 'one bucket holds them all');
    const minutesIn = (axis.at * 1000 - Date.parse(started)) / 60000;
    assert.ok(minutesIn <= 0 && minutesIn > -1, `the bar is where they started, not where they were sent: ${minutesIn}`);
    await figure.scrollIntoViewIfNeeded();
    await shot('insights-labels');
  });

  assert.deepEqual(pageErrors, [], 'no console errors');
});

test('vocabulary: pickers and lists are the server\'s values, read once per page load', async (t) => {
  const vocabulary = await (await fetch(`${base}/v1/vocabulary`, { headers: { authorization: `Bearer ${KEY}` } })).json();
  const values = (sel) => page.locator(sel).evaluateAll((els) => els.map((e) => e.value));
  const texts = (sel) => page.locator(sel).evaluateAll((els) => els.map((e) => e.textContent.trim()));
  let reads = 0;
  const onRequest = (r) => { if (new URL(r.url()).pathname === '/v1/vocabulary') reads += 1; };
  page.on('request', onRequest);
  t.after(() => page.off('request', onRequest));

  await t.test('log in again', async () => {
    await page.goto(base);
    await page.locator('#login-token:visible, #shell:visible').first().waitFor();
    if (await page.locator('#login-token').isVisible()) {
      await page.fill('#login-token', ADMIN);
      await page.press('#login-token', 'Enter');
    }
    await page.locator('#shell').waitFor();
  });

  await t.test('the type picker offers auth:refresh_token, and filtering by it shows that operation', async () => {
    reads = 0;
    await page.goto(`${base}/?env=prod`);
    await page.locator('#result-count').waitFor();
    await page.focus('input[name=pick-type]');
    const offered = vocabulary.types.flatMap((ty) => [ty.type, ...ty.actions.map((a) => `${ty.type}:${a}`)]);
    await eventually(async () => JSON.stringify(await values('#list-type option')) === JSON.stringify(offered), 10000, 'every type and action offered');
    assert.ok(offered.includes('auth:refresh_token'));
    assert.ok(!offered.includes('auth:refresh'), 'no action the server does not know');
    await page.fill('input[name=pick-type]', 'auth:refresh_token');
    await page.press('input[name=pick-type]', 'Enter');
    await waitCount(1);
    assert.deepEqual(new URL(page.url()).searchParams.getAll('type'), ['auth:refresh_token']);
    await page.locator(`#operations tbody tr[data-id="${ids.auth}"]`).waitFor();
    assert.match(await rowsText(), /auth:refresh_token/);
    assert.match(await rowsText(), /umbrella/);
    // The status chips are the server's states, in its order.
    assert.deepEqual(await texts('.states button'), vocabulary.states.map((s) => s.state));
    // The pickers are the filters of GET /operations the server declares, in its order.
    const declared = vocabulary.query_parameters.filter((q) => q.filter && q.endpoints.includes('operations') && q.kind !== 'one_of');
    assert.ok(declared.some((q) => q.name === 'end_user_id') && declared.some((q) => q.name === 'tag'));
    assert.deepEqual(await page.locator('.pickers input').evaluateAll((els) => els.map((e) => e.name)),
      declared.map((q) => `pick-${q.name}`));
    assert.deepEqual(await page.locator('.pickers input').evaluateAll((els) => els.map((e) => e.getAttribute('aria-label'))),
      declared.map((q) => q.label));
    // The drawer's level chips are the server's levels.
    await page.locator(`#operations tbody tr[data-id="${ids.auth}"]`).click();
    await page.locator('#messages').waitFor();
    assert.deepEqual(await texts('.levels button'), vocabulary.levels);
    await page.click('#drawer-close');
  });

  await t.test('the Settings event list and alert signals, and the Deliveries event filter, are the server\'s', async () => {
    await page.click('nav a[data-page=settings]');
    await page.locator('#webhooks-url').waitFor();
    assert.deepEqual(await values('input[name=event]'), vocabulary.events);
    assert.deepEqual(await texts('#webhooks-form .checks label'), vocabulary.events);
    assert.deepEqual(await values('#webhooks-format option'), vocabulary.webhook_formats);
    await page.click('#alerts-add');
    const signalOptions = '#alerts-form select[name=view] optgroup[label=Signals] option';
    assert.deepEqual(await values(signalOptions), vocabulary.signals.map((s) => s.signal));
    assert.deepEqual(await texts(signalOptions), vocabulary.signals.map((s) => s.title));
    await page.click('nav a[data-page=deliveries]');
    await page.locator('#delivery-event').waitFor();
    assert.deepEqual((await values('#delivery-event option')).filter(Boolean), vocabulary.events);
    await page.click('nav a[data-page=signals]');
    await page.locator('.signals [data-signal]').first().waitFor();
    assert.deepEqual(await page.locator('.signals [data-signal]').evaluateAll((els) => els.map((e) => e.dataset.signal)),
      vocabulary.signals.map((s) => s.signal));
    assert.equal(reads, 1, 'one read of the vocabulary for the page load, whatever the pages visited');
  });

  assert.deepEqual(pageErrors, [], 'no console errors');
});

test('data lifecycle: CSV from the Logs tab and the drawer, erasing a connection from Settings', async (t) => {
  await t.test('log in again', async () => {
    await page.goto(base);
    await page.locator('#login-token:visible, #shell:visible').first().waitFor();
    if (await page.locator('#login-token').isVisible()) {
      await page.fill('#login-token', ADMIN);
      await page.press('#login-token', 'Enter');
    }
    await page.locator('#shell').waitFor();
  });

  const download = async (selector) => {
    const [file] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
    return readFileSync(await file.path(), 'utf8').split('\r\n').filter(Boolean);
  };

  await t.test('Download CSV: every match of the filters, and the drawer\'s messages', async () => {
    await page.goto(`${base}/?env=prod&integration=zendesk`);
    await waitCount(55);
    const lines = await download('#download-csv');
    assert.match(lines[0], /^id,type,action,state,integration,connection_id,/);
    assert.equal(lines.length, 1 + 55, 'every match, not the page of 50 shown');
    assert.ok(lines.slice(1).every((l) => l.split(',')[4] === 'zendesk'));
    await page.goto(`${base}/?env=prod&op=${ids.sync}`);
    await page.locator('#drawer-csv').waitFor();
    const messages = await download('#drawer-csv');
    assert.match(messages[0], /^id,operation_id,created_at,level,type,source,message,/);
    assert.equal(messages.length, 1 + 3);
    assert.match(messages[1], /fetching issues since 2026-11-01/);
  });

  await t.test('erase a connection: the count is named before anything goes', async () => {
    for (let i = 0; i < 2; i++) await startOp({ type: 'sync', integration: 'github', connection_id: 'leaving-customer' });
    await eventually(async () => (await api('GET', '/operations?connection_id=leaving-customer&limit=1')).total === 2);
    await page.goto(`${base}/?env=prod&page=settings`);
    await page.locator('#erase-card').waitFor();
    await page.selectOption('#erase-field', 'connection_id');
    await page.fill('#erase-value', 'leaving-customer');
    await page.click('#erase-button');
    await page.locator('dialog[open]').waitFor();
    assert.match(await page.locator('dialog[open]').innerText(), /Erase 2 operations\?/);
    await shot('erase-confirm');
    await page.click('dialog[open] button:text-is("Erase 2 operations")');
    await eventually(async () => (await page.locator('#erase-status').textContent()).includes('erased 2 operations'));
    assert.match(await page.locator('#erasures').innerText(), /Connection leaving-customer: erased 2 operations/);
    // The index counts the removal once its next commit takes it in.
    await eventually(async () => (await api('GET', '/operations?connection_id=leaving-customer&limit=1')).total === 0);
  });

  await t.test('Audit lists a settings change made here, with its old and new values', async () => {
    const schedule = (await api('GET', '/settings')).webhooks.retry_schedule;
    await api('PUT', '/settings', { webhooks: { retry_schedule: ['1s', '7m'] } });
    await page.goto(`${base}/?env=prod&page=audit`);
    await page.locator('#audit-count').waitFor();
    await page.selectOption('#audit-action', 'settings.change');
    const row = page.locator('#audit tbody tr[data-action="settings.change"]').first();
    await row.waitFor();
    const shown = await row.innerText();
    assert.match(shown, /webhooks\.retry_schedule: \[.*\] → \["1s","7m"\]/);
    assert.match(shown, /admin via api from 127\.0\.0\.1/);
    // The erasure above is there too, by its selector and counts.
    await page.selectOption('#audit-action', 'erasure.finish');
    const erased = page.locator('#audit tbody tr[data-action="erasure.finish"]').first();
    await erased.waitFor();
    assert.match(await erased.innerText(), /selector: \{"connection_id":"leaving-customer"\}/);
    await shot('audit');
    await api('PUT', '/settings', { webhooks: { retry_schedule: schedule } });
  });

  assert.deepEqual(pageErrors, [], 'no console errors');
});

test('views: save, open, rename, delete; an alert rule on a view; a viewer cannot reach Settings', async (t) => {
  const text = (sel) => page.locator(sel).textContent();
  const viewLink = (name) => page.locator('#view-list .view-link', { hasText: name });
  const logIn = async (token) => {
    await page.goto(base);
    await page.locator('#login-token:visible, #shell:visible').first().waitFor();
    if (await page.locator('#shell').isVisible()) {
      await page.click('#logout');
      await page.locator('#login-token').waitFor();
    }
    await page.fill('#login-token', token);
    await page.press('#login-token', 'Enter');
    await page.locator('#shell').waitFor();
  };
  const nameDialog = async (name) => {
    await page.locator('#view-name').waitFor();
    await page.fill('#view-name', name);
    await page.click('#view-name-ok');
  };

  await t.test('log in again', () => logIn(ADMIN));

  await t.test('the built-in views are listed beside the Logs tab; a message view lists messages', async () => {
    await page.goto(`${base}/?env=prod&page=logs`);
    await page.locator('#view-list li').first().waitFor();
    const names = await page.locator('#view-list .view-link').allTextContents();
    assert.deepEqual(names.slice(0, 4), ['Sync health', 'Action errors', 'Connection status', 'Webhook processing']);
    const errors = (await api('GET', '/messages?type=action&level=error&message_type=http&limit=1')).total;
    assert.ok(errors >= 1);
    await viewLink('Action errors').click();
    await eventually(async () => (await countText()) === `${errors} message${errors === 1 ? '' : 's'}`, 10000, 'the action errors');
    const url = new URL(page.url());
    assert.equal(url.searchParams.get('view'), 'action_errors');
    assert.deepEqual(url.searchParams.getAll('level'), ['error']);
    assert.match(await rowsText(), /salesforce/);
    assert.equal(await page.locator('#view-list .view-link[aria-current=true]').textContent(), 'Action errors');
    // A message row opens its operation at that message.
    await page.locator('#operations tbody tr').first().click();
    await page.locator('#messages').waitFor();
    assert.equal(new URL(page.url()).searchParams.get('op'), ids.action);
    await page.click('#drawer-close');
  });

  await t.test('save the current query as a view, open it with one click', async () => {
    const failedGithub = (await api('GET', '/operations?state=failed&integration=github&limit=1')).total;
    assert.ok(failedGithub >= 2);
    await page.goto(`${base}/?env=prod&page=logs&state=failed&integration=github&range=7d`);
    await waitCount(failedGithub);
    await page.click('#save-view');
    await nameDialog('Failed GitHub');
    await eventually(async () => (await text('#views-status')).includes('Saved'), 10000, 'saved');
    await viewLink('Failed GitHub').waitFor();
    assert.equal(new URL(page.url()).searchParams.get('view'), 'failed_github');
    const saved = await api('GET', '/views/failed_github');
    assert.deepEqual(saved.query.state, ['failed']);
    assert.deepEqual(saved.query.integration, ['github']);
    assert.equal(saved.query.range, '7d');
    await shot('views');
    // From an unfiltered tab, one click restores the whole query.
    await page.goto(`${base}/?env=prod&page=logs`);
    await viewLink('Failed GitHub').click();
    await waitCount(failedGithub);
    const url = new URL(page.url());
    assert.deepEqual([url.searchParams.getAll('state'), url.searchParams.getAll('integration'), url.searchParams.get('range')],
      [['failed'], ['github'], '7d']);
    assert.match(await rowsText(), /umbrella/);
  });

  await t.test('rename a view', async () => {
    await page.click('#view-list button[aria-label="Rename view Failed GitHub"]');
    await nameDialog('GitHub failures');
    await viewLink('GitHub failures').waitFor();
    assert.equal((await api('GET', '/views/failed_github')).name, 'GitHub failures');
  });

  await t.test('an alert rule on the view, edited in Settings; the view it counts cannot be deleted', async () => {
    await page.click('nav a[data-page=settings]');
    await page.locator('#alerts-form').waitFor();
    await page.click('#alerts-add');
    const rule = page.locator('#alerts-form .alert-rule').last();
    assert.deepEqual(await rule.locator('select[name=view] optgroup[label="Saved views"] option').allTextContents(), ['GitHub failures']);
    await rule.locator('select[name=view]').selectOption('failed_github');
    await rule.locator('input[name=above]').fill('5');
    await rule.locator('input[name=window]').fill('1h');
    await page.click('#alerts-save');
    await eventually(async () => (await text('#alerts-status')).startsWith('Saved'), 10000, 'saved');
    assert.deepEqual((await api('GET', '/settings')).alerts.rules, [{ view: 'failed_github', above: 5, window: '1h' }]);
    await page.reload();
    await page.locator('#alerts-form .alert-rule').first().waitFor();
    assert.equal(await page.locator('#alerts-form .alert-rule select[name=view]').first().inputValue(), 'failed_github');
    await shot('settings-alert-on-view');

    await page.click('nav a[data-page=logs]');
    await page.click('#view-list button[aria-label="Delete view GitHub failures"]');
    await page.click('dialog.confirm button.primary');
    await eventually(async () => (await text('#views-status')).includes('alert rule'), 10000, 'refused: in use');
    expectErrors(/http 409 DELETE|status of 409/);
    await viewLink('GitHub failures').waitFor();

    await page.click('nav a[data-page=settings]');
    await page.locator('#alerts-form .alert-rule').first().waitFor();
    await page.locator('#alerts-form .alert-rule button.remove').first().click();
    await page.click('#alerts-save');
    await eventually(async () => (await api('GET', '/settings')).alerts.rules.length === 0, 10000, 'rule removed');
  });

  await t.test('delete a view', async () => {
    await page.click('nav a[data-page=logs]');
    await page.click('#view-list button[aria-label="Delete view GitHub failures"]');
    await page.click('dialog.confirm button.primary');
    await eventually(async () => (await page.locator('#view-list .view-link').count()) === 4, 10000, 'deleted');
    const views = await api('GET', '/views');
    assert.deepEqual(views.data.map((v) => v.id), ['sync_failures', 'action_errors', 'auth_failures', 'webhook_failures']);
  });

  await t.test('a viewer signs in with a read key: no Settings, no replay, and 403 from the admin API', async () => {
    const all = (await api('GET', '/operations?limit=1')).total;
    await logIn(READ_KEY);
    await waitCount(all);
    assert.equal(await text('#whoami'), 'viewer of prod');
    assert.equal(await page.locator('nav a[data-page=settings]').isHidden(), true);
    assert.equal(await page.locator('nav a[data-page=audit]').isHidden(), true, 'no Audit page for a viewer');
    assert.deepEqual(await page.locator('#env-select option').allTextContents(), ['prod']);
    // The Settings page is not there for a viewer, even by its URL.
    await page.goto(`${base}/?env=prod&page=settings`);
    await page.locator('#result-count').waitFor();
    assert.equal(await page.locator('#alerts-form').count(), 0);
    const status = await page.evaluate(async () => (await fetch('/v1/environments/prod/settings')).status);
    assert.equal(status, 403, 'the session itself is refused settings');
    const backup = await page.evaluate(async () => (await fetch('/v1/backup')).status);
    assert.equal(backup, 403);
    const audit = await page.evaluate(async () => (await fetch('/v1/audit')).status);
    assert.equal(audit, 403);
    expectErrors(/http 403|status of 403/);
    // Deliveries are listed, without replay or retry.
    await page.click('nav a[data-page=deliveries]');
    await page.locator('#delivery-count').waitFor();
    assert.equal(await page.locator('#replay').count(), 0);
    // A viewer saves and opens views too.
    await page.click('nav a[data-page=logs]');
    const failed = (await api('GET', '/operations?state=failed&limit=1')).total;
    await page.click('.states button:text-is("failed")');
    await waitCount(failed);
    await page.click('#save-view');
    await nameDialog('All failures');
    await viewLink('All failures').waitFor();
    await shot('viewer');
    await page.click('#view-list button[aria-label="Delete view All failures"]');
    await page.click('dialog.confirm button.primary');
    await eventually(async () => (await page.locator('#view-list .view-link').count()) === 4, 10000, 'deleted');
    await page.click('#logout');
    await page.locator('#login-token').waitFor();
  });

  assert.deepEqual(pageErrors, [], 'no console errors');
});

// axe-core, pinned in package.json: the WCAG rules a browser can check, run in the page itself.
const AXE = readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

/** The page's serious and critical axe-core violations (WCAG 2.1 A and AA and best practices), one
 * line per rule with the first elements it names, and whether the page has a level-one heading and
 * a `main` landmark (best practices axe rates only moderate). */
async function audit() {
  // Through the DevTools protocol, so the dashboard's Content-Security-Policy does not apply.
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const serious = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id} (${v.nodes.length}): ${v.help}; ${v.nodes.slice(0, 3).map((n) => `${n.target.join(' ')} ${n.failureSummary.replace(/\s+/g, ' ')}`).join(' | ')}`);
  const missing = result.violations.filter((v) => ['page-has-heading-one', 'landmark-one-main'].includes(v.id)).map((v) => v.id);
  return { serious, missing };
}

test('accessibility: axe-core finds no serious or critical violation on any page, with 1,500 operations', async (t) => {
  await t.test('load 1,500 operations with messages', async () => {
    const kinds = [['sync', 'run'], ['action', 'run'], ['webhook', 'incoming'], ['proxy', 'call'], ['auth', 'refresh_token']];
    const integrations = ['github', 'salesforce', 'hubspot', 'zendesk', 'intercom', 'slack'];
    for (let b = 0; b < 3; b++) {
      const batch = [];
      for (let i = 0; i < 480; i++) {
        const n = b * 480 + i;
        const [type, action] = kinds[n % kinds.length];
        const failed = n % 9 === 0;
        batch.push({
          type, action, integration: integrations[n % integrations.length], connection_id: `tenant-${n % 40}`, script: 'contacts',
          state: failed ? 'failed' : (n % 13 === 0 ? 'timeout' : 'success'),
          ...(failed ? { error: { message: `upstream answered 502 for page ${n}` } } : {}),
          messages: [
            { message: `fetched page ${n} of contacts` },
            n % 2 ? { level: 'warn', message: `contact ${n} skipped: missing email address` }
              : { type: 'http', request: { method: 'GET', url: `https://api.example.com/contacts?page=${n}` }, response: { status: failed ? 502 : 200 }, duration_ms: 40 + (n % 90) },
          ],
        });
      }
      await api('POST', '/operations', batch);
    }
  });

  // Every page is audited before the verdict, so one run names every violation.
  const pages = []; const found = [];
  const check = async (name) => {
    const { serious, missing } = await audit();
    pages.push(name);
    found.push(...serious.map((v) => `${name}: ${v}`), ...missing.map((id) => `${name}: ${id}`));
  };

  await t.test('sign-in', async () => {
    await page.goto(base);
    await page.locator('#login-token:visible, #shell:visible').first().waitFor();
    if (await page.locator('#shell').isVisible()) await page.click('#logout');
    await page.locator('#login-token').waitFor();
    await check('sign-in');
    // A refused token shows its error, which must read as well.
    await page.fill('#login-token', 'not-the-token-0123456789');
    await page.press('#login-token', 'Enter');
    await eventually(async () => (await page.locator('#login-error').textContent()).includes('unknown token'));
    expectErrors(/401/);
    await check('sign-in, refused');
    await page.fill('#login-token', ADMIN);
    await page.press('#login-token', 'Enter');
    await page.locator('#operations tbody tr').first().waitFor();
  });

  await t.test('Logs, a filtered list, a search with matches in messages', async () => {
    await page.goto(`${base}/?env=prod`);
    await eventually(async () => (await page.locator('#operations tbody tr').count()) >= 50, 10000, 'a page of rows');
    await check('Logs');
    // Pressed chips of every colour: white on the state's colour must read too.
    await page.goto(`${base}/?env=prod&state=success&state=failed&state=timeout&integration=github`);
    await page.locator('#operations tbody tr').first().waitFor();
    await check('Logs, filtered');
    await page.goto(`${base}/?env=prod&q=${encodeURIComponent('skipped email')}`);
    await eventually(async () => (await page.locator('tr.snippet-row').count()) > 10, 10000, 'snippet rows');
    await check('Logs, a search with matches');
  });

  await t.test('the drawer: an operation with its messages, one opened, matches marked', async () => {
    await page.locator('#operations tbody tr[data-id]').first().click();
    await page.locator('#messages li').first().waitFor();
    const http = page.locator('#drawer details.msg').first();
    if (await http.count()) await http.locator('summary').click();
    await check('the drawer');
    await page.goto(`${base}/?env=prod&op=${ids.sync}`);
    await page.locator('#messages li').first().waitFor();
    await check('the drawer, a failed sync');
    await page.click('#drawer-close');
  });

  await t.test('Insights, Signals, Deliveries, Settings, Audit', async () => {
    await page.goto(`${base}/?env=prod&page=insights&range=24h`);
    await page.locator('.chart canvas').first().waitFor();
    await check('Insights');
    await page.goto(`${base}/?env=prod&page=signals`);
    await page.locator('.signals [data-signal]').first().waitFor();
    await check('Signals');
    await page.goto(`${base}/?env=prod&page=deliveries`);
    await page.locator('#deliveries').waitFor();
    await eventually(async () => (await page.locator('#deliveries tbody tr').count()) > 0, 10000, 'deliveries listed');
    await check('Deliveries');
    await page.locator('#deliveries tbody tr').first().click();
    await page.locator('#delivery-detail h2').waitFor();
    await check('Deliveries, one opened');
    await page.goto(`${base}/?env=prod&page=settings`);
    await page.locator('#webhooks-url').waitFor();
    // A status line under a form, in its colour.
    await page.click('#webhooks-save');
    await eventually(async () => (await page.locator('#webhooks-status').textContent()) !== '', 10000, 'a status');
    await check('Settings');
    await page.goto(`${base}/?env=dev&page=settings`);
    await page.locator('#webhooks-url').waitFor();
    await check('Settings, values from the file');
    await page.goto(`${base}/?env=prod&page=audit`);
    await page.locator('#audit tbody tr').first().waitFor();
    await check('Audit');
  });

  t.diagnostic(`audited: ${pages.join(', ')}`);
  assert.deepEqual(found, [], 'no serious or critical violation, and every page has a level-one heading and a main landmark');
  assert.equal(pages.length, 14, 'every page audited');
  assert.deepEqual(pageErrors, [], 'no console errors');
});
