// The ES module entry of the opslog client: the same implementation as the CommonJS one
// (src/index.js), so both share one set of types and one behaviour.
import client from './index.js';

export const {
  Opslog,
  Operation,
  OpslogApiError,
  redactHeaders,
  redactUrl,
  redactBody,
  parseRetryAfter,
  backoffMs,
  verifyWebhook,
  REDACTED,
  START_FIELDS,
  END_FIELDS,
} = client;
export default client;
