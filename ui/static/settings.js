// Settings: shows what GET /settings answers (webhook URLs, events, masked secret, ingress path),
// read-only. Editing, secret rotation and the deliveries list are still to be built here; the API
// for them exists (PUT /settings, POST /settings/webhook-secret/rotate, GET /deliveries).
import { h, clear, pretty } from './dom.js';
import { envGet } from './api.js';

export function renderSettings(main, env) {
  const body = h('div', {}, 'Loading…');
  clear(main).append(h('section', { class: 'card placeholder' },
    h('h2', {}, 'Environment settings'),
    h('p', { class: 'hint' }, 'Read-only for now: change these with PUT /settings or in the TOML file (values set there are read-only everywhere). Editing here and the deliveries list are still to come.'),
    body));
  envGet(env, '/settings').then((s) => body.replaceChildren(pretty(s))).catch((e) => {
    body.replaceChildren(h('p', {}, e.status === 404 ? 'This server has no settings API yet.' : e.message));
  });
  return { dispose() {} };
}
