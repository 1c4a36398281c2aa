'use strict';
// Starts the real opslog release binary on 127.0.0.1:0 with a temp config and a known API key.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const BIN = process.env.OPSLOG_BIN || path.resolve(__dirname, '../../../target/release/opslog');
// The client writes with an ingest key (all integration code needs); the test reads back with a
// read key, as the CLI or a dashboard user would.
const TOKEN = 'test-prod-ingest-key-0123456789';
const READ_KEY = 'test-prod-read-key-0123456789';

async function startDaemon() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'opslog-js-'));
  const config = path.join(dir, 'opslog.toml');
  fs.writeFileSync(
    config,
    `[server]\nlisten = "127.0.0.1:0"\ndata_dir = ${JSON.stringify(path.join(dir, 'data'))}\n` +
      `admin_tokens = ["test-admin-token-0123456789"]\n\n[environments.prod]\n` +
      `api_keys = [{ key = "${TOKEN}", scope = "ingest" }, { key = "${READ_KEY}", scope = "read" }]\n`,
    { mode: 0o600 }, // it holds secrets: opslog refuses a config file others can read
  );
  const child = spawn(BIN, ['serve', '--config', config], {
    env: { ...process.env, RUST_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = readline.createInterface({ input: child.stdout });
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('opslog did not start within 30 s')), 30000);
    child.once('exit', (code) => reject(new Error(`opslog exited with ${code}`)));
    lines.once('line', (line) => {
      clearTimeout(timer);
      const at = line.indexOf('listening on ');
      if (at < 0) reject(new Error(`unexpected first line: ${line}`));
      else resolve(line.slice(at + 'listening on '.length).trim());
    });
  });
  lines.on('line', () => {}); // keep draining stdout
  return {
    base,
    token: TOKEN,
    async get(pathAndQuery) {
      const response = await fetch(`${base}/v1/environments/prod${pathAndQuery}`, {
        headers: { authorization: `Bearer ${READ_KEY}` },
      });
      const body = await response.json();
      if (!response.ok) throw new Error(`GET ${pathAndQuery}: ${response.status} ${JSON.stringify(body)}`);
      return body;
    },
    /** An admin call on the prod environment (settings). */
    async admin(method, pathAndQuery, body) {
      const response = await fetch(`${base}/v1/environments/prod${pathAndQuery}`, {
        method,
        headers: { authorization: 'Bearer test-admin-token-0123456789', 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const answer = await response.json();
      if (!response.ok) throw new Error(`${method} ${pathAndQuery}: ${response.status} ${JSON.stringify(answer)}`);
      return answer;
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` until it returns a truthy value, for at most `limitMs`. */
async function eventually(check, limitMs = 10000) {
  const deadline = Date.now() + limitMs;
  let last;
  for (let pause = 10; ; pause = Math.min(pause * 2, 200)) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw last || new Error(`condition not met within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, pause));
  }
}

/** Every message of one operation, oldest first. */
async function allMessages(daemon, opId) {
  const out = [];
  let cursor = null;
  do {
    const page = await daemon.get(
      `/operations/${opId}/messages?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    out.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor);
  return out;
}

module.exports = { startDaemon, eventually, allMessages, BIN, TOKEN };
