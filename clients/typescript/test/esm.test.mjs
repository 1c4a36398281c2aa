// The ES module entry exports what the CommonJS one does, and works.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import * as esm from '../src/index.mjs';

const cjs = createRequire(import.meta.url)('../src/index.js');

test('the ES module exports the CommonJS module', () => {
  for (const name of Object.keys(cjs)) assert.equal(esm[name], cjs[name], name);
  assert.equal(esm.default, cjs);
});

test('verifyWebhook checks Standard Webhooks and Nango signatures', () => {
  const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
  const body = '{"type":"auth"}';
  const id = 'msg_1';
  const now = 1_800_000_000;
  const signature = crypto
    .createHmac('sha256', Buffer.alloc(32, 7))
    .update(`${id}.${now}.${body}`)
    .digest('base64');
  const headers = { 'webhook-id': id, 'webhook-timestamp': String(now), 'webhook-signature': `v1,other v1,${signature}` };
  assert.equal(esm.verifyWebhook(secret, body, headers, { now }), true);
  assert.equal(esm.verifyWebhook(secret, `${body} `, headers, { now }), false);
  assert.equal(esm.verifyWebhook(secret, body, headers, { now: now + 301 }), false, 'too old');
  const nango = { 'X-Nango-Hmac-Sha256': crypto.createHmac('sha256', secret).update(body).digest('hex') };
  assert.equal(esm.verifyWebhook(secret, body, nango), true);
  assert.equal(esm.verifyWebhook(secret, Buffer.from(body), nango), true);
  assert.equal(esm.verifyWebhook('another-signing-key-0000', body, nango), false);
  assert.equal(esm.verifyWebhook(secret, body, {}), false, 'unsigned');
});
