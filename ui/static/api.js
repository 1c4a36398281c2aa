// Talking to the opslog API with the session cookie. Errors carry the server's message.

export class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
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
    const err = new ApiError(res.status, data?.error?.code || 'error', data?.error?.message || `HTTP ${res.status}`);
    if (res.status === 401 && path !== '/v1/session') onUnauthorized(err);
    throw err;
  }
  return data;
}

export const get = (path) => request('GET', path);

/** GET /v1/environments/{env}{path}?params, params an array of [k, v] or an object. */
export function envGet(env, path, params) {
  const qs = new URLSearchParams(Array.isArray(params) ? params : Object.entries(params || {}));
  const q = qs.toString();
  return get(`/v1/environments/${encodeURIComponent(env)}${path}${q ? `?${q}` : ''}`);
}
