// Talking to the opslog API with the session cookie. Errors carry the server's message and, for a
// bad field, its name (e.g. `webhooks.url`).

export class ApiError extends Error {
  constructor(status, code, message, field) { super(message); this.status = status; this.code = code; this.field = field; }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(f) { onUnauthorized = f; }

export async function request(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: {} };
  if (body !== undefined) { init.headers['content-type'] = 'application/json'; init.body = JSON.stringify(body); }
  const res = await fetch(path, init);
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const e = data?.error;
    const err = new ApiError(res.status, e?.code || 'error', e?.message || `HTTP ${res.status}`, e?.field);
    if (res.status === 401 && path !== '/v1/session') onUnauthorized(err);
    throw err;
  }
  return data;
}

export const get = (path) => request('GET', path);

/** /v1/environments/{env}{path}?params, params an array of [k, v] or an object. */
function envPath(env, path, params) {
  const qs = new URLSearchParams(Array.isArray(params) ? params : Object.entries(params || {}));
  const q = qs.toString();
  return `/v1/environments/${encodeURIComponent(env)}${path}${q ? `?${q}` : ''}`;
}

export const envGet = (env, path, params) => get(envPath(env, path, params));

/** A change to an environment: `envSend(env, 'PUT', '/settings', body)`, `params` as for envGet. */
export const envSend = (env, method, path, body, params) => request(method, envPath(env, path, params), body);
