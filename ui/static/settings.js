// Settings and deliveries: their API (webhook URLs, secret rotation, OTel, delivery attempts) is
// being built in other issues. Until then this page shows what the API answers, read-only.
import { h, clear, pretty } from './dom.js';
import { envGet } from './api.js';

export function renderSettings(main, env) {
  const body = h('div', {}, 'Loading…');
  clear(main).append(h('section', { class: 'card placeholder' },
    h('h2', {}, 'Environment settings'),
    h('p', { class: 'hint' }, 'Placeholder: editing webhook URLs, rotating the secret, OTel export and the deliveries list arrive with the webhook and OpenTelemetry work. Values configured in the TOML file are read-only here.'),
    body));
  envGet(env, '/settings').then((s) => body.replaceChildren(pretty(s))).catch((e) => {
    body.replaceChildren(h('p', {}, e.status === 404 ? 'This server has no settings API yet.' : e.message));
  });
  return { dispose() {} };
}
