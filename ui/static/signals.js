// Signals: one-click views of the four things worth watching (failed recurring syncs, 4xx/5xx
// calls from actions, auth failures, incoming webhooks that failed), each with its count over the
// selected range, the change against the previous period of the same length, a small chart and
// the integrations behind it (one click lists that integration's). Alert rules count the same.
import { h, clear, fmtTime, badge } from './dom.js';
import { envGet } from './api.js';
import { navigate, hrefWith, rangeControl, timeRange } from './filters.js';
import { vocabulary } from './vocabulary.js';

/** What each signal counts, in words; the server names the signals and gives their search. */
const WHAT = {
  sync_failures: 'Failed or timed-out sync runs',
  action_errors: '4xx / 5xx responses from external API calls in actions',
  auth_failures: 'Auth failures and token refresh errors',
  webhook_failures: 'Incoming webhooks whose processing failed (your backend\'s answer or the platform\'s), or that nobody processed by their deadline',
};

/** The server's signals: key, title, the list that shows what they count, and its filters. */
const signalList = () => vocabulary().signals.map((s) => ({
  key: s.signal, title: s.title, what: WHAT[s.signal] ?? '', path: `/${s.counts}`,
  filters: s.filters.map((f) => [f.name, f.value]),
}));

export function renderSignals(main, env, p) {
  let disposed = false;
  const { from, to } = timeRange(p);
  const range = [['from', from]];
  if (to) range.push(['to', to]);
  const integration = p.get('integration');
  const signals = signalList();
  const chosen = signals.find((s) => s.key === p.get('signal'));
  const list = h('div', { class: 'signal-list' });
  const cards = new Map(signals.map((s) => [s.key, card(s, chosen === s)]));
  clear(main).append(
    h('section', { class: 'filters' }, h('div', { class: 'row' }, rangeControl(p),
      integration ? h('a', { class: 'chip', id: 'signal-integration', href: hrefWith((q) => q.delete('integration')), title: 'Show every integration' }, `integration: ${integration} ×`) : null)),
    h('div', { class: 'signals' }, [...cards.values()].map((c) => c.el)),
    list);
  const q = [...range];
  if (integration) q.push(['integration', integration]);
  envGet(env, '/signals', q).then((r) => {
    if (disposed) return;
    for (const summary of r.data) cards.get(summary.signal)?.fill(summary);
  }).catch((e) => { for (const c of cards.values()) c.fail(e); });
  if (chosen) showList(list, env, chosen, integration ? [...range, ['integration', integration]] : range, () => disposed);
  return { dispose() { disposed = true; } };
}

/** One signal's card: count, change against the previous equal period, a series, its integrations. */
function card(s, active) {
  const count = h('span', { class: 'signal-count' }, '…');
  const change = h('span', { class: 'signal-change' });
  const spark = h('span', { class: 'spark' });
  const top = h('ul', { class: 'signal-top', 'aria-label': 'Top integrations' });
  const el = h('section', { class: `signal${active ? ' active' : ''}`, dataset: { signal: s.key } },
    h('a', { class: 'signal-main', href: hrefWith((q) => q.set('signal', s.key)) },
      h('span', { class: 'signal-title' }, s.title), h('span', { class: 'row' }, count, change), spark,
      h('span', { class: 'hint' }, s.what)),
    top);
  return {
    el,
    fail(e) { count.textContent = '?'; change.textContent = e.message; },
    fill(summary) {
      count.textContent = summary.count.toLocaleString('en');
      const [text, dir] = trend(summary.count, summary.previous_count);
      change.textContent = text;
      change.dataset.trend = dir;
      change.title = `${summary.previous_count.toLocaleString('en')} in the previous period of the same length`;
      spark.replaceChildren(sparkline(summary.series.map((pt) => pt.count)));
      spark.title = summary.series.map((pt) => `${fmtTime(pt.start)}: ${pt.count}`).join('\n');
      top.replaceChildren(...summary.top_integrations.map((t) => h('li', {},
        h('a', { href: hrefWith((q) => { q.set('signal', s.key); q.set('integration', t.integration); }), dataset: { integration: t.integration } },
          t.integration), ' ', h('span', { class: 'count' }, t.count.toLocaleString('en')))));
    },
  };
}

/** The change from `previous` to `now` as text and a direction (up is worse for every signal). */
export function trend(now, previous) {
  if (now === previous) return ['= same as previous period', 'flat'];
  const diff = now - previous;
  const sign = diff > 0 ? '+' : '−';
  const pct = previous ? ` (${sign}${Math.round((Math.abs(diff) / previous) * 100)}%)` : '';
  return [`${diff > 0 ? '▲' : '▼'} ${sign}${Math.abs(diff).toLocaleString('en')}${pct} vs previous period`, diff > 0 ? 'up' : 'down'];
}

/** A small bar chart of `values`, drawn as SVG elements (no markup strings). */
function sparkline(values) {
  const NS = 'http://www.w3.org/2000/svg';
  const width = 120; const height = 28; const gap = 1;
  const max = Math.max(1, ...values);
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('width', String(width));
  svg.setAttribute('height', String(height));
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `counts over the range: ${values.join(', ')}`);
  svg.classList.add('sparkline');
  const w = width / values.length;
  values.forEach((v, i) => {
    const bar = document.createElementNS(NS, 'rect');
    const bh = v ? Math.max(2, (v / max) * height) : 1;
    bar.setAttribute('x', String(i * w + gap / 2));
    bar.setAttribute('y', String(height - bh));
    bar.setAttribute('width', String(Math.max(1, w - gap)));
    bar.setAttribute('height', String(bh));
    if (!v) bar.setAttribute('class', 'zero');
    svg.append(bar);
  });
  return svg;
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
