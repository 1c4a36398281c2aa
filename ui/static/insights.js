// Insights: operations per time bucket (by when they started) for each type, stacked by state
// (uPlot bars). Clicking a
// bar opens the Logs tab filtered to that type and bucket.
import { h, clear } from './dom.js';
import { envGet } from './api.js';
import { navigate, opFilters, rangeControl, timeRange } from './filters.js';
import { vocabulary } from './vocabulary.js';

// The charts, in this order: the `type` filter each counts (a type, or `type:action`) and its
// title; those whose type the server lists. Incoming webhooks are `webhook:incoming` only: opslog's
// own deliveries are `webhook:deliver` operations and are not webhooks that came in.
const CHARTS = { sync: 'Sync runs', action: 'Actions', proxy: 'Proxy calls', 'webhook:incoming': 'Incoming webhooks', auth: 'Auth' };
const COLORS = { success: '#2f9e44', failed: '#e03131', timeout: '#f08c00', cancelled: '#868e96', running: '#1c7ed6' };
const OTHER_COLOR = '#adb5bd';
/**
 * Bottom to top, with colors: the server's final states, then `running` (a bucket counts waiting
 * and running operations together).
 */
const stack = () => [...vocabulary().states.filter((s) => s.terminal).map((s) => s.state), 'running']
  .map((state) => [state, COLORS[state] ?? OTHER_COLOR]);

export function renderInsights(main, env, p) {
  const charts = [];
  let disposed = false;
  const grid = h('div', { class: 'charts' });
  clear(main).append(h('section', { class: 'filters' }, h('div', { class: 'row' }, rangeControl(p))), grid);
  const { from, to } = timeRange(p);
  const types = new Set(vocabulary().types.map((t) => t.type));
  const layers = stack();
  for (const [type, title] of Object.entries(CHARTS).filter(([t]) => types.has(t.split(':')[0]))) {
    const total = h('span', { class: 'count' }, '…');
    const plot = h('div', { class: 'plot' });
    const legend = h('ul', { class: 'legend' }, layers.map(([s, c]) => h('li', {}, h('i', { class: `swatch state-${s}`, title: c }), s)));
    grid.append(h('figure', { class: 'chart', dataset: { type: type.split(':')[0], filter: type } }, h('figcaption', {}, title, ' ', total), plot, legend));
    const q = [['type', type], ['from', from]];
    if (to) q.push(['to', to]);
    envGet(env, '/insights', q).then((res) => {
      if (disposed) return;
      total.textContent = `${res.total.toLocaleString('en')} operation${res.total === 1 ? '' : 's'}`;
      charts.push(draw(plot, type, res, layers));
    }).catch((e) => { total.textContent = e.message; });
  }
  const onResize = () => charts.forEach((u) => u.setSize({ width: u.root.parentElement.clientWidth, height: 160 }));
  window.addEventListener('resize', onResize);
  return { dispose() { disposed = true; window.removeEventListener('resize', onResize); charts.forEach((u) => u.destroy()); } };
}

/**
 * A y axis as wide as its longest label ("1,000" and "100,000" included) plus the tick and the
 * gap, so no label is cut at the chart's left edge.
 */
export function fitLabels(u, values, axisIdx, cycleNum) {
  const axis = u.axes[axisIdx];
  // After two layout passes, keep the width (labels depend on it, it must settle).
  if (cycleNum > 1) return axis._size;
  let size = axis.ticks.size + axis.gap;
  const longest = (values || []).reduce((a, v) => (String(v).length > a.length ? String(v) : a), '');
  if (longest) {
    u.ctx.font = axis.font[0];
    size += u.ctx.measureText(longest).width / devicePixelRatio;
  }
  return Math.ceil(size) + 2;
}

function draw(el, type, res, layers) {
  const xs = res.buckets.map((b) => Date.parse(b.start) / 1000);
  // Cumulative sums: series k is drawn from 0 to the sum of states 0..k, the tallest first.
  const cum = [];
  let acc = res.buckets.map(() => 0);
  for (const [state] of layers) { acc = acc.map((v, i) => v + (res.buckets[i][state] ?? 0)); cum.push(acc); }
  const bars = window.uPlot.paths.bars({ size: [0.8, 40], align: 1 });
  const series = [{}];
  const data = [xs];
  for (let k = layers.length - 1; k >= 0; k--) {
    const [state, color] = layers[k];
    series.push({ label: state, fill: color, stroke: color, width: 0, paths: bars, points: { show: false },
      value: (u, v, si, i) => (i == null ? '' : res.buckets[i][state] ?? 0) });
    data.push(cum[k].map((v) => v || null));
  }
  const u = new window.uPlot({
    width: el.clientWidth || 400, height: 160, series, legend: { show: false },
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    scales: { x: { time: true, range: (u, min, max) => [xs[0], xs[xs.length - 1] + res.interval_ms / 1000] }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
    axes: [{}, { size: fitLabels, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 10000, 1e5, 1e6] }],
  }, data, el);
  el._uplot = u; // lets the browser tests find a bar's position
  el.dataset.buckets = String(xs.length);
  u.over.addEventListener('click', () => {
    const i = u.cursor.idx;
    if (i == null || !cum[layers.length - 1][i]) return;
    const start = res.buckets[i].start;
    const end = new Date(Date.parse(start) + res.interval_ms).toISOString();
    navigate((q) => {
      for (const k of ['page', 'range', 'from', 'to', ...opFilters().map((f) => f.name), 'q', 'op']) q.delete(k);
      q.set('page', 'logs'); q.set('type', type); q.set('from', new Date(Date.parse(start)).toISOString()); q.set('to', end);
    });
  });
  return u;
}
