// Audit (admin only): every admin action, newest first (GET /v1/audit), filtered by the action and
// the time window in the URL, a page at a time. Each row says who acted (the kind of key, how, from
// where), on what, and what changed: a settings change's keys with old and new values (secrets
// masked by the server), a replay's count, an erasure's selector and counts.
import { h, clear, fmtTime } from './dom.js';
import { get } from './api.js';
import { navigate, toLocalInput } from './filters.js';
import { vocabulary } from './vocabulary.js';

const COLUMNS = ['Time', 'Action', 'Who', 'Environment', 'Target', 'Details'];

export function renderAudit(main, env, p) {
  let disposed = false;
  let cursor = null;
  let loading = false;
  const action = p.get('action');
  const from = p.get('from');
  const to = p.get('to');
  const actionSelect = h('select', { id: 'audit-action', 'aria-label': 'Action' },
    h('option', { value: '' }, 'All actions'),
    vocabulary().audit_actions.map((a) => h('option', { value: a, selected: a === action }, a)));
  actionSelect.addEventListener('change', () => navigate((q) => {
    if (actionSelect.value) q.set('action', actionSelect.value); else q.delete('action');
  }));
  const time = (name, label, value) => {
    const input = h('input', { type: 'datetime-local', id: `audit-${name}`, 'aria-label': label, value: toLocalInput(value) });
    input.addEventListener('change', () => navigate((q) => {
      if (input.value) q.set(name, new Date(input.value).toISOString()); else q.delete(name);
    }));
    return h('label', {}, `${label} `, input);
  };
  const count = h('span', { id: 'audit-count', class: 'count', 'aria-live': 'polite' }, 'Loading…');
  const tbody = h('tbody');
  const more = h('button', { type: 'button', id: 'audit-more', hidden: true, onclick: () => loadPage() }, 'Load more');
  const errorBox = h('p', { class: 'error', role: 'alert' });
  const filtered = action || from || to;
  clear(main).append(
    h('section', { class: 'filters', 'aria-label': 'Filters' },
      h('div', { class: 'row' }, actionSelect, time('from', 'From', from), time('to', 'To', to),
        filtered ? h('a', { href: `?env=${encodeURIComponent(env)}&page=audit`, class: 'reset' }, 'Reset filters') : null)),
    h('div', { class: 'summary' }, count),
    errorBox,
    h('table', { class: 'ops', id: 'audit' },
      h('thead', {}, h('tr', {}, COLUMNS.map((c) => h('th', { scope: 'col' }, c)))),
      tbody),
    more);

  const row = (r) => h('tr', { dataset: { id: r.id, action: r.action } },
    h('td', { class: 'time' }, fmtTime(r.at)),
    h('td', {}, r.action),
    h('td', {}, who(r.actor)),
    h('td', {}, r.environment || h('span', { class: 'hint' }, 'server')),
    h('td', { class: 'url' }, r.target || ''),
    h('td', { class: 'audit-detail' }, details(r.detail)));

  async function loadPage() {
    if (loading || disposed) return;
    loading = true;
    try {
      const q = new URLSearchParams([['limit', '50']]);
      if (action) q.set('action', action);
      if (from) q.set('from', from);
      if (to) q.set('to', to);
      if (cursor) q.set('cursor', cursor);
      const page = await get(`/v1/audit?${q}`);
      if (disposed) return;
      errorBox.textContent = '';
      tbody.append(...page.data.map(row));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      count.textContent = `${page.total.toLocaleString('en')} record${page.total === 1 ? '' : 's'}`;
      if (!page.total) {
        tbody.append(h('tr', { class: 'empty' }, h('td', { colspan: String(COLUMNS.length) },
          filtered ? 'No record matches these filters.' : 'No admin action recorded yet.')));
      }
    } catch (e) {
      errorBox.textContent = e.message;
      count.textContent = '';
    } finally { loading = false; }
  }

  loadPage();
  return { dispose() { disposed = true; } };
}

/** The kind of key that acted, how and from where (never the key). */
function who(actor) {
  const kind = actor.role === 'key' ? `${actor.scope} key of ${actor.environment}` : actor.role;
  const how = actor.via === 'server' ? '' : ` via ${actor.via}`;
  return `${kind}${how}${actor.address ? ` from ${actor.address}` : ''}`;
}

/** A record's detail: each changed key as `key: old → new`, anything else as `key: value`. */
function details(detail) {
  const lines = [];
  for (const [key, value] of Object.entries(detail || {})) {
    if (key === 'changes' && Array.isArray(value)) {
      for (const c of value) lines.push(`${c.key}: ${show(c.old)} → ${show(c.new)}`);
    } else {
      lines.push(`${key}: ${show(value)}`);
    }
  }
  return lines.map((l) => h('div', {}, l));
}

const show = (v) => (v === null || v === undefined ? '—' : typeof v === 'string' ? v : JSON.stringify(v));
