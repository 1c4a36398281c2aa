// Signals: one-click views of the four things worth watching (failed recurring syncs, 4xx/5xx
// calls from actions, auth failures, incoming webhooks that failed), each with its count over the
// selected range.
import { h, clear, fmtTime, badge } from './dom.js';
import { envGet } from './api.js';
import { navigate, hrefWith, rangeControl, timeRange } from './filters.js';

export const SIGNALS = [
  { key: 'sync_failures', title: 'Sync health', what: 'Failed or timed-out sync runs', path: '/operations',
    filters: [['type', 'sync'], ['state', 'failed'], ['state', 'timeout']] },
  { key: 'action_errors', title: 'Action errors', what: '4xx / 5xx responses from external API calls in actions', path: '/messages',
    filters: [['type', 'action'], ['level', 'error'], ['message_type', 'http']] },
  { key: 'auth_failures', title: 'Connection status', what: 'Auth failures and token refresh errors', path: '/operations',
    filters: [['type', 'auth'], ['state', 'failed'], ['state', 'timeout']] },
  { key: 'webhook_failures', title: 'Webhook processing', what: 'Incoming webhooks whose processing failed (your backend\'s answer or the platform\'s), or that nobody processed by their deadline', path: '/operations',
    filters: [['type', 'webhook:incoming'], ['state', 'failed'], ['state', 'timeout']] },
];

export function renderSignals(main, env, p) {
  let disposed = false;
  const { from, to } = timeRange(p);
  const range = [['from', from]];
  if (to) range.push(['to', to]);
  const chosen = SIGNALS.find((s) => s.key === p.get('signal'));
  const list = h('div', { class: 'signal-list' });
  clear(main).append(
    h('section', { class: 'filters' }, h('div', { class: 'row' }, rangeControl(p))),
    h('div', { class: 'signals' }, SIGNALS.map((s) => {
      const count = h('span', { class: 'signal-count' }, '…');
      envGet(env, s.path, [...s.filters, ...range, ['limit', '1']])
        .then((r) => { if (!disposed) count.textContent = r.total.toLocaleString('en'); })
        .catch(() => { count.textContent = '?'; });
      return h('a', {
        class: `signal${chosen === s ? ' active' : ''}`, href: hrefWith((q) => q.set('signal', s.key)), dataset: { signal: s.key },
      }, h('span', { class: 'signal-title' }, s.title), count, h('span', { class: 'hint' }, s.what));
    })),
    list);
  if (chosen) showList(list, env, chosen, range, () => disposed);
  return { dispose() { disposed = true; } };
}

async function showList(el, env, signal, range, isDisposed) {
  const open = (id) => navigate((q) => q.set('op', id));
  const logsLink = signal.path === '/operations'
    ? h('a', { class: 'button', href: hrefWith((q) => { q.set('page', 'logs'); q.delete('signal'); signal.filters.forEach(([k, v]) => q.append(k, v)); }) }, 'Open in Logs')
    : null;
  el.append(h('h2', {}, signal.title, ' ', logsLink));
  try {
    const page = await envGet(env, signal.path, [...signal.filters, ...range, ['limit', '100']]);
    if (isDisposed()) return;
    if (!page.data.length) { el.append(h('p', {}, 'Nothing to worry about in this range.')); return; }
    el.append(h('table', { class: 'ops' },
      h('thead', {}, h('tr', {}, ['Time', 'Status', 'Type', 'Integration', 'Connection', 'What'].map((c) => h('th', {}, c)))),
      h('tbody', {}, page.data.map((row) => {
        const op = row.operation || row; // message hits carry their operation
        const what = row.operation
          ? `${row.request?.method || ''} ${row.request?.url || ''} → ${row.response?.status ?? ''} ${row.message || ''}`
          : (row.error?.message || row.message || '');
        return h('tr', { tabindex: '0', onclick: () => open(op.id), onkeydown: (e) => { if (e.key === 'Enter') open(op.id); } },
          h('td', { class: 'time' }, fmtTime(row.created_at)), h('td', {}, badge('state', op.state)), h('td', {}, `${op.type}:${op.action}`),
          h('td', {}, op.integration || ''), h('td', {}, op.connection_id || ''), h('td', {}, what));
      }))));
  } catch (e) { el.append(h('p', { class: 'error' }, e.message)); }
}
