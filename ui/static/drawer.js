// The operation drawer: what an operation is, its payload, and its messages (searchable,
// filterable by level), tailed live while the operation runs.
import { h, clear, fmtTime, fmtDuration, badge, pretty, debounce, copyButton, marked } from './dom.js';
import { envGet } from './api.js';
import { navigate } from './filters.js';
import { activeStates, levels } from './vocabulary.js';

const TAIL_EVERY_MS = 1500;
// Pages read while looking for the first matching message (100 messages each).
const MAX_SEEK_PAGES = 20;

/** The trace an operation is in, linked with the environment's `otel.trace_url` when it has one. */
const traceFact = (t, template) => (t ? h('span', { class: 'trace' },
  template
    ? h('a', { id: 'trace-link', href: template.replaceAll('{trace_id}', t.trace_id), target: '_blank', rel: 'noopener noreferrer' }, t.trace_id)
    : h('code', { id: 'trace-id' }, t.trace_id),
  t.parent_span_id ? h('span', { class: 'hint' }, ` (parent span ${t.parent_span_id})`) : '') : '');

/** `Ada <ada@example.com> (u-7) · Acme`, or nothing. */
const endUser = (u) => (u ? [u.display_name, u.email && `<${u.email}>`, `(${u.id})`,
  u.organization && `· ${u.organization.display_name || u.organization.id}`].filter(Boolean).join(' ') : '');

/** The environment's trace link template, or null (also when the settings cannot be read). */
const traceUrlOf = (env) => envGet(env, '/settings').then((s) => s?.otel?.trace_url || null, () => null);

export function renderDrawer(drawer, env, id, p, onChange) {
  let disposed = false;
  let timer = null;
  const active = activeStates();
  let op = null;
  let traceUrl = null; // the environment's `otel.trace_url`
  let lastId = null;
  let cursor = null;
  const mq = p.get('mq') || '';
  const mlevels = p.getAll('mlevel');
  const filtered = Boolean(mq || mlevels.length);
  // The Logs search that led here: its matches are marked, and the first one is scrolled to.
  const searched = p.get('q')?.trim() || '';
  const matches = new Map(); // message id -> snippet
  const close = () => navigate((q) => { q.delete('op'); q.delete('mq'); q.delete('mlevel'); q.delete('at'); });
  const head = h('div', { class: 'drawer-head' });
  const facts = h('dl', { class: 'facts' });
  const payload = h('div', { class: 'payload' });
  const list = h('ol', { class: 'messages', id: 'messages' });
  const msgCount = h('span', { class: 'count', id: 'message-count' });
  const more = h('button', { type: 'button', hidden: true, onclick: () => loadMessages() }, 'Older messages… load more');
  const errorBox = h('p', { class: 'error', role: 'alert' });
  const search = h('input', { type: 'search', id: 'message-search', placeholder: 'Search messages', 'aria-label': 'Search messages', value: mq });
  search.addEventListener('input', debounce(() => navigate((q) => { if (search.value.trim()) q.set('mq', search.value); else q.delete('mq'); }, { replace: true }), 350));
  const levelGroup = h('div', { class: 'levels', role: 'group', 'aria-label': 'Message level' },
    levels().map((l) => h('button', {
      type: 'button', class: `chip-toggle level-${l}`, 'aria-pressed': String(mlevels.includes(l)),
      onclick: () => navigate((q) => {
        const cur = q.getAll('mlevel'); q.delete('mlevel');
        (cur.includes(l) ? cur.filter((x) => x !== l) : [...cur, l]).forEach((x) => q.append('mlevel', x));
      }, { replace: true }),
    }, l)));
  drawer.hidden = false;
  clear(drawer).append(
    h('div', { class: 'drawer-bar' },
      copyButton({ id: 'copy-link' }, 'Copy link', () => location.href),
      // Every message of the operation under the drawer's search and levels, as CSV.
      h('a', {
        id: 'drawer-csv', class: 'download', download: '',
        href: `/v1/environments/${encodeURIComponent(env)}/operations/${encodeURIComponent(id)}/messages?${new URLSearchParams([
          ...(mq ? [['q', mq]] : []), ...mlevels.map((l) => ['level', l]), ['format', 'csv']])}`,
      }, 'Download CSV'),
      h('button', { type: 'button', id: 'drawer-close', class: 'close', 'aria-label': 'Close', onclick: close }, '×')),
    head, errorBox, facts, payload,
    h('h3', {}, 'Messages ', msgCount),
    h('div', { class: 'row' }, search, levelGroup),
    list, more);

  const showOp = (o) => {
    op = o;
    head.replaceChildren(h('h2', {}, `${o.type}:${o.action}`, ' ', badge('state', o.state)), o.message ? h('p', {}, o.message) : '');
    const fact = (k, v) => (v ? [h('dt', {}, k), h('dd', {}, v)] : []);
    facts.replaceChildren(...[
      fact('Status', o.state), fact('Duration', active.has(o.state) ? 'running…' : fmtDuration(o.duration_ms)),
      fact('Created', fmtTime(o.created_at)), fact('Started', fmtTime(o.started_at)), fact('Ended', fmtTime(o.ended_at)),
      fact('Type', `${o.type}:${o.action}`), fact('Integration', o.integration), fact('Connection', o.connection_id),
      fact('Script', o.script), fact('Provider', o.provider),
      fact('End user', endUser(o.end_user)),
      fact('Tags', Object.keys(o.tags || {}).length
        ? Object.entries(o.tags).map(([k, v]) => h('span', { class: 'chip tag', dataset: { tag: `${k}:${v}` } }, `${k}: ${v}`)) : ''),
      fact('Async', o.async ? 'yes: its end notifies (action.completed)' : ''),
      fact('Trace', traceFact(o.trace_context, traceUrl)),
      fact('Operation id', o.id),
    ].flat());
    if (o.type === 'webhook' && o.action === 'incoming' && active.has(o.state)) {
      facts.append(h('dt', {}, 'Processing'), h('dd', { class: 'hint', id: 'incoming-pending' },
        'Not processed yet: it ends with your backend\'s answer to webhook.received, or when the platform settles it, or at its deadline.'));
    }
    const part = (name, value) => (value ? h('details', { class: `part part-${name}`, open: name === 'error' }, h('summary', {}, name), pretty(value)) : null);
    payload.replaceChildren(...[part('error', o.error), part('records', o.records), part('request', o.request),
      part('response', o.response), part('meta', o.meta)].filter(Boolean));
    onChange(o);
  };

  const messageItem = (m) => {
    const http = m.type === 'http';
    const line = h('div', { class: 'msg-line' },
      h('span', { class: 'time' }, fmtTime(m.created_at)),
      badge('level', m.level),
      http ? h('span', { class: 'http' },
        h('b', {}, m.request?.method || ''), ' ', m.request?.url || '', ' ',
        m.response ? badge('http', String(m.response.status)) : '',
        m.duration_ms !== undefined ? ` ${fmtDuration(m.duration_ms)}` : '') : null,
      m.message ? h('span', { class: 'text' }, m.message) : null);
    const detailParts = ['request', 'response', 'retry', 'error', 'meta'].filter((k) => m[k] !== undefined);
    const body = detailParts.length
      ? h('details', { class: 'msg' }, h('summary', {}, line), ...detailParts.map((k) => h('div', { class: 'detail' }, h('h4', {}, k), pretty(m[k]))))
      : h('div', { class: 'msg' }, line);
    const match = matches.get(m.id);
    return h('li', { class: match ? 'match' : null, dataset: { id: m.id, level: m.level } }, body,
      match ? marked(match, { class: 'snippet msg-snippet' }) : null);
  };

  /** Marks the messages matching the Logs search and scrolls to the first (or to `at`). */
  async function showMatches() {
    const page = await envGet(env, `/operations/${id}/messages`, [['q', searched], ['snippets', 'true'], ['limit', '100']]);
    if (disposed) return;
    for (const m of page.data) if (m.snippet) matches.set(m.id, m.snippet);
    for (const li of list.querySelectorAll('li[data-id]')) {
      const match = matches.get(li.dataset.id);
      if (match && !li.classList.contains('match')) { li.classList.add('match'); li.append(marked(match, { class: 'snippet msg-snippet' })); }
    }
    const target = p.get('at') || page.data[0]?.id;
    if (!target) return;
    const find = () => list.querySelector(`li[data-id="${CSS.escape(target)}"]`);
    for (let i = 0; i < MAX_SEEK_PAGES && !find() && cursor && !disposed; i++) await loadMessages();
    const li = find();
    if (!li) return;
    li.classList.add('current');
    li.scrollIntoView({ block: 'center' });
  }

  async function loadMessages() {
    const q = [['limit', '100']];
    if (mq) q.push(['q', mq]);
    for (const l of mlevels) q.push(['level', l]);
    if (cursor) q.push(['cursor', cursor]);
    const page = await envGet(env, `/operations/${id}/messages`, q);
    if (disposed) return;
    list.append(...page.data.map(messageItem));
    if (page.data.length) lastId = page.data[page.data.length - 1].id;
    cursor = page.next_cursor;
    more.hidden = !cursor;
    msgCount.textContent = `(${page.total})`;
    if (!page.total) list.replaceChildren(h('li', { class: 'empty' }, filtered ? 'No message matches.' : 'No messages yet.'));
  }

  async function tail() {
    if (disposed) return;
    try {
      const o = await envGet(env, `/operations/${id}`);
      if (disposed) return;
      // Only an unfiltered list read to its end can be extended without leaving a gap.
      if (!filtered && !cursor) {
        const q = [['limit', '500']];
        if (lastId) q.push(['after', lastId]);
        const page = await envGet(env, `/operations/${id}/messages`, q);
        if (disposed) return;
        if (page.data.length) {
          list.querySelector('li.empty')?.remove();
          list.append(...page.data.map(messageItem));
          lastId = page.data[page.data.length - 1].id;
        }
        msgCount.textContent = `(${o.message_count})`;
      }
      showOp(o);
      if (!active.has(o.state)) { clearInterval(timer); timer = null; }
    } catch { /* next tick */ }
  }

  (async () => {
    try {
      const [o, settings] = await Promise.all([envGet(env, `/operations/${id}`),
        traceUrlOf(env)]);
      traceUrl = settings;
      showOp(o);
      await loadMessages();
      if (searched && !filtered && !disposed) await showMatches();
      if (active.has(op.state) && !disposed) timer = setInterval(tail, TAIL_EVERY_MS);
    } catch (e) { errorBox.textContent = e.message; }
  })();
  const onKey = (e) => { if (e.key === 'Escape') close(); };
  document.addEventListener('keydown', onKey);
  return () => {
    disposed = true;
    if (timer) clearInterval(timer);
    document.removeEventListener('keydown', onKey);
  };
}
