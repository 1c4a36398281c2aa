// Checks webhook requests opslog sent in the Nango format with Nango's own packages:
// - the signatures, with @nangohq/node (`verifyIncomingWebhookRequest` on X-Nango-Hmac-Sha256,
//   the legacy `verifyWebhookSignature` on X-Nango-Signature), and that a tampered body fails both;
// - the bodies' shapes, by type-checking them with tsc against @nangohq/types (excess properties
//   and missing required ones are errors);
// - each body named with a `golden` against that golden body of golden.ts (built from Nango's
//   types), key by key at every level: the same keys, the same values (a golden `<...>` value
//   only fixes the type);
// - that `auth_modes` (opslog's list) holds every one of Nango's `AuthModeType` values and no other.
// Usage: node check.mjs <input.json>, input = {cases: [{secret, body, headers, golden?}],
// auth_modes?: [...]} (or just the cases array) with `body` the exact text received. Prints
// `verified N` and exits 0, or names what failed and exits 1.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Nango } from '@nangohq/node';

const here = dirname(fileURLToPath(import.meta.url));
const input = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const cases = Array.isArray(input) ? input : input.cases;
const authModes = Array.isArray(input) ? null : input.auth_modes;
const typeOf = {
    sync: 'NangoSyncWebhookBody',
    auth: 'NangoAuthWebhookBody',
    forward: 'NangoForwardWebhookBody',
    async_action: 'NangoAsyncActionWebhookBody'
};

// The deprecation warning of the legacy check is expected; keep stderr for real problems.
process.removeAllListeners('warning');
const failures = [];
const declarations = [];
cases.forEach((c, i) => {
    const nango = new Nango({ secretKey: c.secret, host: 'http://127.0.0.1:1' });
    if (!nango.verifyIncomingWebhookRequest(c.body, c.headers)) {
        failures.push(`case ${i}: verifyIncomingWebhookRequest refused X-Nango-Hmac-Sha256`);
    }
    if (nango.verifyIncomingWebhookRequest(c.body + ' ', c.headers)) {
        failures.push(`case ${i}: a tampered body passed verifyIncomingWebhookRequest`);
    }
    const parsed = JSON.parse(c.body);
    if (!nango.verifyWebhookSignature(c.headers['x-nango-signature'], parsed)) {
        failures.push(`case ${i}: verifyWebhookSignature refused X-Nango-Signature`);
    }
    if (nango.verifyWebhookSignature(c.headers['x-nango-signature'], { ...parsed, extra: 1 })) {
        failures.push(`case ${i}: a tampered body passed verifyWebhookSignature`);
    }
    const type = typeOf[parsed.type];
    if (!type) {
        failures.push(`case ${i}: unknown Nango webhook type ${JSON.stringify(parsed.type)}`);
        return;
    }
    declarations.push(`export const body${i}: ${type} = ${c.body};`);
});

const used = [...new Set(Object.values(typeOf))].join(', ');
if (authModes) {
    // Every listed mode is one of Nango's, and every one of Nango's is listed.
    declarations.push(
        `const modes = ${JSON.stringify(authModes)} as const satisfies readonly AuthModeType[];`,
        `type Unlisted = Exclude<AuthModeType, (typeof modes)[number]>;`,
        `export const everyModeListed: [Unlisted] extends [never] ? true : Unlisted = true;`
    );
}
const out = mkdtempSync(join(here, '.out-'));
const file = join(out, 'captured.ts');
writeFileSync(file, `import type { ${used}, AuthModeType } from '@nangohq/types';\n${declarations.join('\n')}\n`);
try {
    execFileSync(
        process.execPath,
        [
            join(here, 'node_modules/typescript/bin/tsc'),
            '--outDir',
            out,
            '--rootDir',
            here,
            '--strict',
            '--exactOptionalPropertyTypes',
            '--skipLibCheck',
            '--module',
            'nodenext',
            '--moduleResolution',
            'nodenext',
            '--target',
            'es2022',
            join(here, 'golden.ts'),
            file
        ],
        { cwd: here, stdio: 'pipe' }
    );
    const { golden } = await import(pathToFileURL(join(out, 'golden.js')).href);
    cases.forEach((c, i) => {
        if (!c.golden) {
            return;
        }
        const expected = golden[c.golden];
        if (!expected) {
            failures.push(`case ${i}: no golden body named ${c.golden}`);
            return;
        }
        for (const difference of compare(expected, JSON.parse(c.body), '')) {
            failures.push(`case ${i} (${c.golden}): ${difference}`);
        }
    });
} catch (e) {
    failures.push(`tsc: ${e.stdout ?? ''}${e.stderr ?? ''}${e.stdout === undefined ? e.stack : ''}`);
} finally {
    rmSync(out, { recursive: true, force: true });
}

/** The differences between a golden value and a delivered one, by path. */
function compare(expected, actual, path) {
    const at = path || '(body)';
    if (typeof expected === 'string' && /^<.+>$/.test(expected)) {
        const ok = typeof actual === 'string' && (expected !== '<timestamp>' || !Number.isNaN(Date.parse(actual)));
        return ok ? [] : [`${at}: expected ${expected}, got ${JSON.stringify(actual)}`];
    }
    if (expected === null || actual === null || typeof expected !== 'object' || typeof actual !== 'object') {
        return Object.is(expected, actual) ? [] : [`${at}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
    }
    if (Array.isArray(expected) !== Array.isArray(actual)) {
        return [`${at}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
    }
    const differences = [];
    const keys = new Set([...Object.keys(expected), ...Object.keys(actual)]);
    for (const key of keys) {
        const child = Array.isArray(expected) ? `${path}[${key}]` : path ? `${path}.${key}` : key;
        if (!(key in actual)) {
            differences.push(`${child}: missing (Nango sends it)`);
        } else if (!(key in expected)) {
            differences.push(`${child}: not in Nango's body`);
        } else {
            differences.push(...compare(expected[key], actual[key], child));
        }
    }
    return differences;
}

if (failures.length > 0) {
    console.error(failures.join('\n'));
    process.exit(1);
}
console.log(`verified ${cases.length}`);
