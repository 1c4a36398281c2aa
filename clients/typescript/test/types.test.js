'use strict';
// The client's types against the API document: src/api.d.ts is what scripts/gen-types.js makes
// of openapi.json, the client's field tables cover the API's fields, and the declarations
// type-check (tsc --strict, CommonJS and ES module) as a user's code would use them.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const { generate, DEFAULT_DOCUMENT } = require('../scripts/gen-types.js');
const { START_FIELDS, END_FIELDS } = require('../src/index.js');

const ROOT = path.join(__dirname, '..');
const document = JSON.parse(fs.readFileSync(DEFAULT_DOCUMENT, 'utf8'));
const schemas = document.components.schemas;

test('src/api.d.ts is generated from openapi.json (run `npm run types` after an API change)', () => {
  const checkedIn = fs.readFileSync(path.join(ROOT, 'src', 'api.d.ts'), 'utf8');
  assert.equal(checkedIn, generate(document));
});

test('startOperation covers every field of POST /operations a client sets', () => {
  // Set by the client itself (times, state, the messages buffered when it starts) or when the
  // operation ends.
  const notOptions = new Set([
    'state', 'started_at', 'ended_at', 'expires_at', 'error', 'request', 'response', 'records', 'output',
    'messages',
  ]);
  const api = Object.keys(schemas.NewOperation.properties).sort();
  const covered = START_FIELDS.map(([wire]) => wire);
  for (const wire of covered) assert.ok(api.includes(wire), `${wire} is not a field of NewOperation`);
  const missing = api.filter((wire) => !covered.includes(wire) && !notOptions.has(wire));
  assert.deepEqual(missing, [], 'fields of POST /operations the client cannot set');
  for (const [wire] of END_FIELDS) {
    assert.ok(wire in schemas.OperationPatch.properties, `${wire} is not a field of OperationPatch`);
  }
});

test('the declarations type-check as CommonJS and as an ES module (tsc --strict)', () => {
  const tsc = path.join(ROOT, '..', '..', 'tests', 'nango', 'node_modules', 'typescript', 'bin', 'tsc');
  assert.ok(fs.existsSync(tsc), `TypeScript is not installed at ${tsc}: run npm ci in tests/nango (scripts/test does)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'opslog-client-types-'));
  try {
    fs.mkdirSync(path.join(dir, 'node_modules', '@opslog'), { recursive: true });
    fs.symlinkSync(ROOT, path.join(dir, 'node_modules', '@opslog', 'client'), 'dir');
    const use = `
      const c = new Opslog({ url: 'http://127.0.0.1:7400', token: 't' });
      const op = c.startOperation({ type: 'sync', connectionId: 'acme', syncType: 'incremental',
        endUser: { id: 'u-7', organization: { id: 'org-1' } }, tags: { plan: 'pro' },
        checkpoints: { from: { page: 3 }, to: null }, authMode: 'OAUTH2', async: false });
      void op.end({ records: [{ model: 'Issue', added: 1 }], checkpoints: { from: null, to: { page: 4 } }, output: { ok: true } });
      void op.end([{ model: 'Issue' }]);
      const ok: boolean = verifyWebhook('whsec_x', '{}', { 'webhook-id': 'msg_1' });
      // @ts-expect-error: not one of the API's sync types
      c.startOperation({ syncType: 'initial' });
      // @ts-expect-error: not one of Nango's auth modes
      c.startOperation({ authMode: 'oauth2' });
      export { ok };
    `;
    fs.writeFileSync(path.join(dir, 'use.mts'), `import { Opslog, verifyWebhook } from '@opslog/client';\n${use}`);
    fs.writeFileSync(path.join(dir, 'use.cts'), `import client = require('@opslog/client');\nconst { Opslog, verifyWebhook } = client;\n${use}`);
    fs.writeFileSync(path.join(dir, 'package.json'), '{"type": "module"}');
    try {
      execFileSync(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext',
        '--target', 'es2022', '--lib', 'es2022,dom', 'use.mts', 'use.cts'], { cwd: dir, stdio: 'pipe' });
    } catch (e) {
      assert.fail(`tsc: ${e.stdout}${e.stderr}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
