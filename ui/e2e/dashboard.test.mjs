// End-to-end: the real release binary, seeded through its API, driven in Debian's chromium.
// Screenshots of each page go to target/e2e-screenshots/ (see README).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.OPSLOG_BIN || join(ROOT, 'target', 'release', 'opslog');
const SHOTS = join(ROOT, 'target', 'e2e-screenshots');
const ADMIN = 'e2e-admin-token-0123456789abcdef';
const KEY = 'e2e-prod-key-0123456789abcdef';
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
  const res = await fetch(`${base}/v1/environments/prod${path}`, {
    method, headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(data)}`);
  return data;
}
const startOp = async (body) => (await api('POST', '/operations', body)).id;
const countText = () => page.locator('#result-count').textContent();
const waitCount = (n) => eventually(async () => (await countText()) === `${n} operation${n === 1 ? '' : 's'}`, 10000, `count ${n}`);
const rowsText = () => page.locator('#operations tbody').innerText();
const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'opslog-e2e-'));
  mkdirSync(SHOTS, { recursive: true });
  const config = join(tmp, 'opslog.toml');
  writeFileSync(config, `[server]\nlisten = "127.0.0.1:0"\ndata_dir = "${join(tmp, 'data')}"\nadmin_tokens = ["${ADMIN}"]\n\n` +
    `[environments.prod]\napi_keys = ["${KEY}"]\n\n[environments.dev]\n`);
  daemon = spawn(BIN, ['serve', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RUST_LOG: 'warn' } });
  base = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: daemon.stdout });
    lines.on('line', (line) => { const m = line.match(/listening on (http:\/\/\S+)/); if (m) resolve(m[1]); });
    daemon.on('exit', (code) => reject(new Error(`opslog exited with ${code}`)));
  });

  // A failed sync with an HTTP 429 and a validation warning, an action whose external call
  // answered 500, a failed incoming webhook, a failed token refresh, successes, and one running.
  ids.sync = await startOp({ type: 'sync', integration: 'github', connection_id: 'acme', script: 'issues' });
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
  ids.auth = await startOp({ type: 'auth', action: 'refresh', integration: 'github', connection_id: 'umbrella' });
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
    await eventually(async () => (await page.locator('#login-error').textContent()).includes('wrong admin token'));
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
    assert.match(text, /auth:refresh/);
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
    for (const s of ['sync:run', 'failed', 'acme', 'issues', 'rate limit exceeded']) assert.ok(drawer.includes(s), `${s} in drawer`);
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
    await page.click('[data-signal=action_errors]');
    await eventually(async () => (await page.locator('.signal-list').innerText()).includes('salesforce.example/contacts'), 10000, 'action errors');
  });

  await t.test('settings show the environment read-only, and the environment switch', async () => {
    const before = pageErrors.length;
    await page.goto(`${base}/?env=prod&page=settings`);
    await eventually(async () => (await page.locator('main').innerText()).includes('"environment": "prod"'));
    const text = await page.locator('main').innerText();
    assert.match(text, /"webhooks"/);
    assert.match(text, /"ingress"/);
    assert.doesNotMatch(text, /whsec_[A-Za-z0-9+/=]{20,}/, 'the secret is never shown in full');
    await page.selectOption('#env-select', 'dev');
    await eventually(async () => new URL(page.url()).searchParams.get('env') === 'dev');
    await eventually(async () => (await page.locator('main').innerText()).includes('"environment": "dev"'));
    await shot('settings');
    assert.deepEqual(pageErrors.splice(before), []);
    await page.click('nav a[data-page=logs]');
    await waitCount(0);
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
