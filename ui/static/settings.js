// Settings: an environment's webhook destination, events, timeout and retry schedule; its signing
// secret (reveal, rotate) and ingress URL (copy, rotate); its OTel export when the server has that
// section; its alert rules; erasing a connection's, end user's or integration's data (with the
// count named before anything goes) and the erasures so far. What the config file sets is shown disabled with that reason (the API refuses it too).
// A refused change shows the server's message beside the field it names, and nothing is saved.
import { h, clear, fmtTime, copyButton, confirmDialog } from './dom.js';
import { envGet, envSend } from './api.js';
import { vocabulary, label } from './vocabulary.js';

const FROM_FILE = 'Read-only: set in the config file, which wins over the dashboard.';
// Labels of the server's values (vocabulary); one without a label shows as its name.
const FORMAT_LABELS = { nango: 'Nango (bodies and signatures as Nango sends them)' };
const SPAN_NAME_LABELS = { opslog: 'opslog (sync.run, opslog.*)', nango: 'Nango (nango.sync.run, nango.*)' };

export function renderSettings(main, env) {
  let disposed = false;
  const body = h('div', { class: 'settings' }, h('p', {}, 'Loading…'));
  clear(main).append(body);
  // Each section re-renders the page from the server's answer, with a note for that section.
  const show = (s, notes = {}) => {
    if (disposed) return;
    const again = (view, section, note) => show(view, { [section]: note });
    // replaceChildren would turn a null into the text "null": leave the absent card out.
    const cards = [
      webhooksCard(env, s.webhooks, notes.webhooks, again),
      secretCard(env, s.webhooks, notes.secret, again),
      ingressCard(env, s.ingress, notes.ingress, again),
    ];
    if (s.otel) cards.push(otelCard(env, s.otel, notes.otel, again));
    if (s.notifiers) cards.push(notifiersCard(env, s.notifiers, notes.notifiers, again));
    if (s.alerts) cards.push(alertsCard(env, s.alerts, views, s.notifiers, notes.alerts, again));
    cards.push(eraseCard(env, () => disposed));
    body.replaceChildren(...cards);
  };
  let views = [];
  Promise.all([envGet(env, '/settings'), envGet(env, '/views')]).then(([s, v]) => { views = v.data; show(s); })
    .catch((e) => body.replaceChildren(h('p', { class: 'error', role: 'alert' }, e.message)));
  return { dispose() { disposed = true; } };
}

/**
 * Fields of one settings section (`webhooks`, `otel`), each with a slot for the server's error
 * about it, and the PUT of what changed.
 */
function sectionForm(env, section, readOnly, title, hint) {
  const slots = new Map(); // `webhooks.url` -> its error element
  const status = h('p', { class: 'status', role: 'status', id: `${section}-status` });
  const save = h('button', { type: 'submit', class: 'primary', id: `${section}-save` }, 'Save');
  const form = h('form', { class: 'card', id: `${section}-form`, novalidate: true },
    h('h2', {}, title), hint ? h('p', { class: 'hint' }, hint) : null);
  const locked = (name) => readOnly.includes(name);

  /** `kind`: 'text' (label above), 'check' (label beside), 'group' (a fieldset of controls). */
  const field = (name, label, control, { kind = 'text', help } = {}) => {
    const id = `${section}-${name.replace(/_/g, '-')}`;
    const error = h('p', { class: 'error field-error', id: `${id}-error` });
    slots.set(`${section}.${name}`, error);
    if (locked(name)) for (const el of [control, ...control.querySelectorAll('input, button')]) el.disabled = true;
    if (kind !== 'group') { control.id = id; control.setAttribute('aria-describedby', `${id}-error`); }
    const note = locked(name) ? h('p', { class: 'hint locked' }, FROM_FILE) : help ? h('p', { class: 'hint' }, help) : null;
    const attrs = { class: `field field-${kind}`, dataset: { field: `${section}.${name}` } };
    if (kind === 'group') return h('fieldset', attrs, h('legend', {}, label), control, note, error);
    if (kind === 'check') return h('div', attrs, h('label', { for: id }, control, ' ', label), note, error);
    return h('div', attrs, h('label', { for: id }, label), control, note, error);
  };

  /** The fields of `next` that are editable and differ from `current`. */
  const changed = (next, current) => Object.fromEntries(Object.entries(next)
    .filter(([k, v]) => !locked(k) && JSON.stringify(v) !== JSON.stringify(current[k] ?? null)));

  const onSubmit = (changes, onSaved) => form.addEventListener('submit', async (e) => {
    e.preventDefault();
    for (const slot of slots.values()) slot.textContent = '';
    status.textContent = '';
    status.classList.remove('error');
    const update = changes();
    if (!Object.keys(update).length) { status.textContent = 'Nothing changed.'; return; }
    save.disabled = true;
    try {
      onSaved(await envSend(env, 'PUT', '/settings', { [section]: update }));
    } catch (err) {
      // `webhooks.retry_schedule[2]` belongs to the schedule; `otel.headers.x-key` to the headers.
      const name = (err.field || '').replace(/\[\d+\]$/, '');
      const slot = slots.get(name) || [...slots].find(([k]) => name.startsWith(`${k}.`))?.[1];
      status.classList.add('error');
      if (slot) {
        slot.textContent = err.message;
        status.textContent = 'Not saved: see the field marked below.';
        slot.closest('.field').querySelector('input:not([disabled])')?.focus();
      } else {
        status.textContent = `Not saved: ${err.message}`;
      }
    } finally { save.disabled = false; }
  });

  const finish = (...fields) => {
    form.append(...fields, h('div', { class: 'actions' }, save, status));
    return form;
  };
  return { field, changed, onSubmit, finish, status };
}

const textInput = (value, attrs) => h('input', { type: 'text', value: value ?? '', spellcheck: 'false', autocomplete: 'off', ...attrs });
const checkbox = (checked, attrs) => h('input', { type: 'checkbox', checked: Boolean(checked), ...attrs });

function webhooksCard(env, w, note, again) {
  const form = sectionForm(env, 'webhooks', w.read_only, 'Webhooks',
    'Where opslog notifies your backend, signed with the secret below. Empty URLs send nothing.');
  const url = textInput(w.url, { inputmode: 'url', placeholder: 'https://backend.example.com/opslog-events' });
  const secondary = textInput(w.secondary_url, { inputmode: 'url', placeholder: 'Optional: a second receiver' });
  const known = vocabulary().events;
  const events = known.map((e) => checkbox(w.events.includes(e), { name: 'event', value: e }));
  const timeout = textInput(w.timeout, { placeholder: '15s', class: 'short' });
  const schedule = textInput(w.retry_schedule.join(', '), { placeholder: '0s, 5s, 5m, 30m, 2h, 5h, 10h, 10h' });
  const insecure = checkbox(w.allow_insecure_http);
  const formatSelect = (value) => h('select', {}, vocabulary().webhook_formats.map((f) =>
    h('option', { value: f, selected: f === value }, label(FORMAT_LABELS, f))));
  const format = formatSelect(w.format);
  const secondaryFormat = formatSelect(w.secondary_format);
  form.onSubmit(() => {
    const delays = schedule.value.split(',').map((s) => s.trim()).filter(Boolean);
    return form.changed({
      url: url.value.trim() || null,
      secondary_url: secondary.value.trim() || null,
      events: events.filter((c) => c.checked).map((c) => c.value),
      timeout: timeout.value.trim() || null,
      retry_schedule: delays.length ? delays : null,
      allow_insecure_http: insecure.checked,
      format: format.value,
      secondary_format: secondaryFormat.value,
    }, { ...w, events: known.filter((e) => w.events.includes(e)) });
  }, (view) => again(view, 'webhooks', 'Saved. Events from now on use these settings.'));
  form.status.textContent = note || '';
  return form.finish(
    form.field('url', 'URL', url),
    form.field('format', 'Body format of the URL', format, { help: 'Nango: for receivers written for Nango (from "nango", X-Nango-Signature); the secret may be your Nango signing key.' }),
    form.field('secondary_url', 'Secondary URL', secondary, { help: 'Every event is also sent here (one delivery per URL).' }),
    form.field('secondary_format', 'Body format of the secondary URL', secondaryFormat),
    form.field('events', 'Events', h('div', { class: 'checks' },
      events.map((c) => h('label', {}, c, ' ', c.value))), { kind: 'group' }),
    h('div', { class: 'row pair' },
      form.field('timeout', 'Timeout per attempt', timeout),
      form.field('retry_schedule', 'Retry schedule', schedule, { help: 'Delays before each attempt, comma-separated; empty restores the default.' })),
    form.field('allow_insecure_http', 'Allow plain http to hosts other than this machine', insecure, { kind: 'check' }));
}

function secretCard(env, w, note, again) {
  const locked = w.read_only.includes('secret');
  const value = h('code', { id: 'webhook-secret', class: 'secret' }, w.secret);
  const expiry = (until) => (until ? `The previous secret keeps signing until ${fmtTime(until)}.` : '');
  const previous = h('p', { class: 'hint', id: 'previous-secret' }, expiry(w.previous_secret_expires_at));
  const status = h('p', { class: 'status', role: 'status', id: 'secret-status' }, note?.text || '');
  const failed = (e) => { status.textContent = e.message; status.classList.add('error'); };
  let shown = false;
  const reveal = h('button', { type: 'button', id: 'reveal-secret', 'aria-pressed': 'false' }, 'Reveal');
  const showSecret = (r) => {
    shown = Boolean(r);
    value.textContent = r ? r.secret : w.secret;
    reveal.textContent = r ? 'Hide' : 'Reveal';
    reveal.setAttribute('aria-pressed', String(shown));
  };
  reveal.addEventListener('click', async () => {
    try { showSecret(shown ? null : await envGet(env, '/settings/webhook-secret')); } catch (e) { failed(e); }
  });
  const rotate = h('button', { type: 'button', id: 'rotate-secret', disabled: locked }, 'Rotate…');
  rotate.addEventListener('click', async () => {
    const ok = await confirmDialog('Rotate the webhook secret?',
      `A new secret signs every delivery from now on. The current one keeps signing for ${w.rotation_grace}: give your receiver the new secret within that time.`,
      'Rotate secret');
    if (!ok) return;
    try {
      const r = await envSend(env, 'POST', '/settings/webhook-secret/rotate');
      const until = r.previous_secret_expires_at;
      again(await envGet(env, '/settings'), 'secret', {
        text: `New secret issued. ${until ? `The old one keeps signing until ${fmtTime(until)}.` : 'The old one no longer signs.'}`,
        reveal: r,
      });
    } catch (e) { failed(e); }
  });
  if (note?.reveal) showSecret(note.reveal);
  return h('section', { class: 'card', id: 'secret-card' },
    h('h2', {}, 'Signing secret'),
    h('p', { class: 'hint' }, 'Your receiver verifies the webhook-signature header with it (Standard Webhooks).'),
    h('div', { class: 'row' }, value, reveal, rotate),
    locked ? h('p', { class: 'hint locked' }, FROM_FILE) : null,
    previous, status);
}

function ingressCard(env, ingress, note, again) {
  const url = `${location.origin}${ingress.path}`;
  const status = h('p', { class: 'status', role: 'status', id: 'ingress-status' }, note || '');
  const rotate = h('button', { type: 'button', id: 'rotate-ingress' }, 'Rotate…');
  rotate.addEventListener('click', async () => {
    const ok = await confirmDialog('Rotate the ingress URL?',
      'The current URL stops working at once: every service posting to it needs the new one.', 'Rotate URL');
    if (!ok) return;
    try {
      again(await envSend(env, 'POST', '/settings/ingress-token/rotate'), 'ingress', 'New ingress URL issued; the old one no longer works.');
    } catch (e) { status.textContent = e.message; status.classList.add('error'); }
  });
  return h('section', { class: 'card', id: 'ingress-card' },
    h('h2', {}, 'Ingress URL'),
    h('p', { class: 'hint' }, 'Third-party services post their webhooks here; replace {integration} with the integration’s name.'),
    h('div', { class: 'row' }, h('code', { id: 'ingress-url', class: 'secret' }, url),
      copyButton({ id: 'copy-ingress' }, 'Copy', () => url), rotate),
    status);
}

function otelCard(env, o, note, again) {
  const form = sectionForm(env, 'otel', o.read_only || [], 'OpenTelemetry export',
    'Finished operations are exported as spans to <endpoint>/v1/traces. Header values are secrets: they stay masked, and an untouched one keeps its stored value.');
  const endpoint = textInput(o.endpoint, { inputmode: 'url', placeholder: 'https://collector.example.com:4318 (empty turns export off)' });
  const service = textInput(o.service_name, { placeholder: 'opslog' });
  const logs = checkbox(o.logs);
  const traceUrl = textInput(o.trace_url, { inputmode: 'url', placeholder: 'http://localhost:16686/trace/{trace_id} (empty: no link)' });
  const names = h('select', {}, vocabulary().span_names.map((n) =>
    h('option', { value: n, selected: n === o.names }, label(SPAN_NAME_LABELS, n))));
  const rows = h('div', { class: 'header-rows', id: 'otel-header-rows' });
  const headerRow = (name = '', masked = '') => {
    const key = textInput(name, { 'aria-label': 'Header name', placeholder: 'x-api-key', class: 'header-name' });
    const value = textInput('', { 'aria-label': `Value of ${name || 'the new header'}`, placeholder: masked || 'value', class: 'header-value' });
    const row = h('div', { class: 'row header-row', dataset: { name, masked } }, key, value,
      h('button', { type: 'button', class: 'chip-x', 'aria-label': `Remove header ${name}`, onclick: () => row.remove() }, '×'));
    return row;
  };
  rows.append(...Object.entries(o.headers || {}).map(([k, v]) => headerRow(k, v)));
  const add = h('button', { type: 'button', id: 'otel-add-header', onclick: () => { rows.append(headerRow()); rows.lastChild.querySelector('input').focus(); } }, 'Add header');
  const headers = () => {
    const out = {};
    for (const row of rows.children) {
      const [key, value] = row.querySelectorAll('input');
      const name = key.value.trim();
      if (!name && !value.value) continue;
      // An untouched value is sent back masked, which the server reads as "keep the stored one".
      out[name] = value.value || (name === row.dataset.name ? row.dataset.masked : '');
    }
    return out;
  };
  const sorted = (m) => Object.fromEntries(Object.entries(m || {}).sort(([a], [b]) => a.localeCompare(b)));
  form.onSubmit(() => form.changed({
    endpoint: endpoint.value.trim() || null,
    headers: sorted(headers()),
    service_name: service.value.trim(),
    logs: logs.checked,
    names: names.value,
    trace_url: traceUrl.value.trim() || null,
  }, { ...o, headers: sorted(o.headers) }), (view) => again(view, 'otel', 'Saved. Operations ending from now on are exported with these settings.'));
  form.status.textContent = note || '';
  const attrs = Object.entries(o.resource_attributes || {}).map(([k, v]) => `${k}=${v}`).join(', ');
  return form.finish(
    form.field('endpoint', 'Collector endpoint (OTLP/HTTP)', endpoint),
    form.field('headers', 'Headers', h('div', {}, rows, add), { kind: 'group' }),
    form.field('service_name', 'Service name', service),
    form.field('logs', 'Also export log messages (to <endpoint>/v1/logs)', logs, { kind: 'check' }),
    form.field('names', 'Span names and attributes', names),
    form.field('trace_url', 'Trace link in the operation drawer ({trace_id} is filled in)', traceUrl),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Resource attributes'), h('dd', {}, attrs || 'none'),
      h('dt', {}, 'Events per span'), h('dd', {}, String(o.max_events_per_span ?? '')),
      h('dt', {}, 'Export timeout'), h('dd', {}, o.timeout ?? '')));
}

/**
 * Notifiers: where alert rules reach people besides the webhooks — a Slack incoming webhook, a
 * PagerDuty service (Events API v2), an SMTP server. Secrets stay masked; an untouched masked
 * value keeps the stored one. Emptying a notifier's fields removes it.
 */
function notifiersCard(env, n, note, again) {
  const FIELDS = { slack: ['url'], pagerduty: ['routing_key', 'url', 'severity'], email: ['url', 'from', 'to', 'ca_file'] };
  const readOnly = (n.read_only || []).flatMap((k) => FIELDS[k].map((f) => `${k}.${f}`));
  const form = sectionForm(env, 'notifiers', readOnly, 'Notifiers',
    'Where alert rules tell people, besides the webhooks. Choose them per rule below. Secrets stay masked: an untouched one keeps its stored value. Empty a notifier\'s fields to remove it.');
  const slackUrl = textInput(n.slack?.url, { inputmode: 'url', placeholder: 'https://hooks.slack.com/services/…' });
  const pdKey = textInput(n.pagerduty?.routing_key, { placeholder: 'Integration key (Events API v2)' });
  const pdUrl = textInput(n.pagerduty?.url, { inputmode: 'url', placeholder: 'https://events.pagerduty.com/v2/enqueue' });
  const pdSeverity = h('select', {}, vocabulary().pagerduty_severities.map((v) =>
    h('option', { value: v, selected: v === (n.pagerduty?.severity || 'error') }, v)));
  const mailUrl = textInput(n.email?.url, { inputmode: 'url', placeholder: 'smtp://user:password@mail.example.com:587 (STARTTLS) or smtps://…:465' });
  const mailFrom = textInput(n.email?.from, { placeholder: 'opslog <alerts@example.com>' });
  const mailTo = textInput((n.email?.to || []).join(', '), { placeholder: 'oncall@example.com, ops@example.com' });
  const mailCa = textInput(n.email?.ca_file, { placeholder: 'Optional: a PEM file of certificates to trust' });
  const slack = () => (slackUrl.value.trim() ? { url: slackUrl.value.trim() } : null);
  const pagerduty = () => {
    if (!pdKey.value.trim() && !pdUrl.value.trim()) return null;
    const out = { routing_key: pdKey.value.trim(), severity: pdSeverity.value };
    if (pdUrl.value.trim()) out.url = pdUrl.value.trim();
    return out;
  };
  const email = () => {
    const to = mailTo.value.split(',').map((x) => x.trim()).filter(Boolean);
    if (!mailUrl.value.trim() && !mailFrom.value.trim() && !to.length) return null;
    const out = { url: mailUrl.value.trim(), from: mailFrom.value.trim(), to };
    if (mailCa.value.trim()) out.ca_file = mailCa.value.trim();
    return out;
  };
  const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
  // What the page shows, in the shape `next` is built in, to send only what changed.
  const shown = {
    slack: n.slack || null,
    pagerduty: n.pagerduty ? { routing_key: n.pagerduty.routing_key, severity: n.pagerduty.severity, url: n.pagerduty.url } : null,
    email: n.email ? { url: n.email.url, from: n.email.from, to: n.email.to, ...(n.email.ca_file ? { ca_file: n.email.ca_file } : {}) } : null,
  };
  form.onSubmit(() => {
    const next = { slack: slack(), pagerduty: pagerduty(), email: email() };
    return Object.fromEntries(Object.entries(next).filter(([k, v]) => !(n.read_only || []).includes(k) && !same(v, shown[k])));
  }, (view) => again(view, 'notifiers', 'Saved. Alerts from now on go to these notifiers.'));
  form.status.textContent = note || '';
  return form.finish(
    h('h3', {}, 'Slack'),
    form.field('slack.url', 'Incoming webhook URL', slackUrl, { help: 'A message with the rule, the count against the threshold, the top integrations and a link to the view.' }),
    h('h3', {}, 'PagerDuty'),
    form.field('pagerduty.routing_key', 'Routing key', pdKey, { help: 'Firing triggers an incident; resolving resolves it (same dedup key).' }),
    h('div', { class: 'row pair' },
      form.field('pagerduty.url', 'Events URL', pdUrl),
      form.field('pagerduty.severity', 'Severity', pdSeverity)),
    h('h3', {}, 'Email (SMTP)'),
    form.field('email.url', 'SMTP URL', mailUrl, { help: 'smtp:// requires STARTTLS (add ?tls=none for a plain relay); smtps:// is TLS from the start.' }),
    h('div', { class: 'row pair' },
      form.field('email.from', 'From', mailFrom),
      form.field('email.to', 'To', mailTo)),
    form.field('email.ca_file', 'Extra trusted certificates (PEM file on the server)', mailCa));
}

/**
 * Alert rules: each fires `alert.triggered` when what a view (a built-in one: a signal, or a saved
 * one) counts over the window goes above the threshold and `alert.resolved` when it is back,
 * through the webhooks above. Saved as a whole.
 */
function alertsCard(env, a, views, notifiers, note, again) {
  const locked = a.read_only;
  const rows = h('div', { class: 'alert-rules', id: 'alert-rules' });
  const status = h('p', { class: 'status', role: 'status', id: 'alerts-status' }, note || '');
  const builtin = views.filter((v) => v.builtin);
  const saved = views.filter((v) => !v.builtin);
  const ruleRow = (r = { signal: builtin[0]?.id, above: 0, window: '15m' }) => {
    const chosen = r.view || r.signal;
    const option = (v) => h('option', { value: v.id, selected: v.id === chosen }, v.name);
    // A rule on a view that is gone still shows, so it can be changed or removed.
    const missing = chosen && !views.some((v) => v.id === chosen) ? [h('option', { value: chosen, selected: true }, `${chosen} (missing)`)] : [];
    const signal = h('select', { name: 'view', 'aria-label': 'View', disabled: locked },
      h('optgroup', { label: 'Signals' }, builtin.map(option)),
      saved.length ? h('optgroup', { label: 'Saved views' }, saved.map(option)) : null, missing);
    const integration = textInput(r.integration, { name: 'integration', 'aria-label': 'Integration', placeholder: 'every integration', disabled: locked });
    const above = h('input', { type: 'number', name: 'above', min: '0', step: '1', value: String(r.above), 'aria-label': 'Above', class: 'short', disabled: locked });
    const window = textInput(r.window, { name: 'window', 'aria-label': 'Window', placeholder: '15m', class: 'short', disabled: locked });
    // Who is told: the webhooks, and each notifier set up above (or already chosen).
    const telling = r.notify || ['webhook'];
    const available = vocabulary().notifiers.filter((k) => k === 'webhook' || notifiers?.[k] || telling.includes(k));
    const notify = available.map((k) => checkbox(telling.includes(k), { name: 'notify', value: k, disabled: locked, 'aria-label': `Notify ${k}` }));
    const error = h('p', { class: 'error field-error' });
    const row = h('div', { class: 'alert-rule' },
      h('div', { class: 'row' }, signal, integration, h('span', {}, 'above'), above, h('span', {}, 'in'), window,
        h('button', { type: 'button', class: 'remove', disabled: locked, onclick: () => row.remove() }, 'Remove')),
      h('div', { class: 'row notify' }, h('span', { class: 'hint' }, 'Tell:'), notify.map((c) => h('label', {}, c, ' ', c.value))),
      error);
    row.rule = () => {
      // A built-in view is its signal: sent as `signal`, as the rules have always been written.
      const which = builtin.some((v) => v.id === signal.value) ? { signal: signal.value } : { view: signal.value };
      const rule = { ...which, above: Number(above.value), window: window.value.trim() };
      const told = notify.filter((c) => c.checked).map((c) => c.value);
      // Only the webhooks is the default: left out, as the rules have always been written.
      if (!(told.length === 1 && told[0] === 'webhook')) rule.notify = told;
      if (integration.value.trim()) rule.integration = integration.value.trim();
      return rule;
    };
    row.error = error;
    return row;
  };
  rows.append(...a.rules.map(ruleRow));
  const add = h('button', { type: 'button', id: 'alerts-add', disabled: locked, onclick: () => rows.append(ruleRow()) }, 'Add rule');
  const save = h('button', { type: 'submit', class: 'primary', id: 'alerts-save', disabled: locked }, 'Save');
  const form = h('form', { class: 'card', id: 'alerts-form', novalidate: true },
    h('h2', {}, 'Alert rules'),
    h('p', { class: 'hint' }, 'A rule fires alert.triggered when its view (a signal, or a view saved in the Logs tab) counts more than the threshold within the window (checked every minute), and alert.resolved when the count is back at or under it. Each goes to what the rule tells: the webhook URLs above (signed like every event), and the notifiers set up above.'),
    rows, locked ? h('p', { class: 'hint locked' }, FROM_FILE) : null,
    h('div', { class: 'actions' }, add, save, status));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const all = [...rows.querySelectorAll('.alert-rule')];
    all.forEach((r) => { r.error.textContent = ''; });
    status.classList.remove('error');
    save.disabled = true;
    try {
      again(await envSend(env, 'PUT', '/settings', { alerts: all.map((r) => r.rule()) }), 'alerts', 'Saved. Rules are checked from the next minute on.');
    } catch (err) {
      // `alerts[1].window` belongs to the second rule.
      const at = /^alerts\[(\d+)\]/.exec(err.field || '');
      const row = at ? all[Number(at[1])] : null;
      status.classList.add('error');
      status.textContent = row ? 'Not saved: see the rule marked below.' : `Not saved: ${err.message}`;
      if (row) row.error.textContent = err.message;
    } finally { save.disabled = locked; }
  });
  return form;
}

const ERASE_BY = { connection_id: 'Connection', end_user_id: 'End user', integration: 'Integration' };

/** Erase everything about one connection, end user or integration, once the count is confirmed. */
function eraseCard(env, gone) {
  const field = h('select', { id: 'erase-field', 'aria-label': 'Erase by' },
    Object.entries(ERASE_BY).map(([value, text]) => h('option', { value }, text)));
  const value = h('input', { type: 'text', id: 'erase-value', 'aria-label': 'Erase which', placeholder: 'e.g. acme-prod' });
  const status = h('p', { class: 'status', role: 'status', id: 'erase-status' });
  const list = h('ul', { class: 'erasures', id: 'erasures' });
  const failed = (e) => { status.textContent = e.message; status.classList.add('error'); };
  const describe = (e) => {
    const [by, what] = Object.entries(e.selector)[0];
    const r = e.removed;
    return `${ERASE_BY[by]} ${what}: ${e.state === 'done' ? 'erased' : 'erasing'} ${r.operations} operations, ${r.messages} messages, ${r.outbox_jobs} deliveries and exports (${fmtTime(e.created_at)})`;
  };
  const showList = async () => {
    const page = await envGet(env, '/erasures');
    list.replaceChildren(...page.data.map((e) => h('li', { dataset: { id: e.id } }, describe(e))));
  };
  const erase = h('button', { type: 'button', id: 'erase-button' }, 'Erase…');
  erase.addEventListener('click', async () => {
    status.classList.remove('error');
    const by = field.value;
    const what = value.value.trim();
    if (!what) { failed(new Error(`Name the ${ERASE_BY[by].toLowerCase()} to erase.`)); return; }
    try {
      const { total } = await envGet(env, '/operations', [[by, what], ['limit', '1']]);
      const ok = await confirmDialog(`Erase ${total} operation${total === 1 ? '' : 's'}?`,
        `Every operation of ${ERASE_BY[by].toLowerCase()} “${what}” in ${env} goes for good, with its messages, deliveries, exports and their attempts. This cannot be undone.`,
        `Erase ${total} operation${total === 1 ? '' : 's'}`);
      if (!ok) return;
      status.textContent = 'Erasing…';
      let e = await envSend(env, 'POST', '/erase', { [by]: what });
      while (e.state !== 'done' && !gone()) {
        status.textContent = `Erasing… ${describe(e)}`;
        await new Promise((resolve) => { setTimeout(resolve, 1000); });
        e = await envGet(env, `/erasures/${e.id}`);
      }
      status.textContent = describe(e);
      value.value = '';
      await showList();
    } catch (e) { failed(e); }
  });
  showList().catch(failed);
  return h('section', { class: 'card', id: 'erase-card' },
    h('h2', {}, 'Erase data'),
    h('p', { class: 'hint' }, 'Removes a connection’s, an end user’s or an integration’s operations with their messages, deliveries and exports (e.g. for a customer’s erasure request). Its record keeps what was named and the counts, never the data.'),
    h('div', { class: 'row' }, field, value, erase),
    status,
    h('h3', {}, 'Erasures'),
    list);
}
