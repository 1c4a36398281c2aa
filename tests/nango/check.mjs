// Checks webhook requests opslog sent in the Nango format with Nango's own packages:
// - the signatures, with @nangohq/node (`verifyIncomingWebhookRequest` on X-Nango-Hmac-Sha256,
//   the legacy `verifyWebhookSignature` on X-Nango-Signature), and that a tampered body fails both;
// - the bodies' shapes, by type-checking them with tsc against @nangohq/types (excess properties
//   and missing required ones are errors).
// Usage: node check.mjs <cases.json>, cases = [{secret, body, headers}] with `body` the exact text
// received. Prints `verified N` and exits 0, or names what failed and exits 1.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Nango } from '@nangohq/node';

const here = dirname(fileURLToPath(import.meta.url));
const cases = JSON.parse(readFileSync(process.argv[2], 'utf8'));
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
const file = join(here, `captured-${process.pid}.ts`);
writeFileSync(file, `import type { ${used} } from '@nangohq/types';\n${declarations.join('\n')}\n`);
try {
    execFileSync(
        process.execPath,
        [
            join(here, 'node_modules/typescript/bin/tsc'),
            '--noEmit',
            '--strict',
            '--exactOptionalPropertyTypes',
            '--skipLibCheck',
            '--module',
            'nodenext',
            '--moduleResolution',
            'nodenext',
            '--target',
            'es2022',
            file
        ],
        { cwd: here, stdio: 'pipe' }
    );
} catch (e) {
    failures.push(`tsc: ${e.stdout}${e.stderr}`);
} finally {
    rmSync(file, { force: true });
}

if (failures.length > 0) {
    console.error(failures.join('\n'));
    process.exit(1);
}
console.log(`verified ${cases.length}`);
