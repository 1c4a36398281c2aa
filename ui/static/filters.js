// The view's state lives in the URL: reading it, changing it, and the controls shared by pages
// (time range, multi-value pickers). A link or a reload restores exactly the same view.
import { h, debounce } from './dom.js';
import { vocabulary } from './vocabulary.js';

export const PRESETS = { '5m': 300e3, '1h': 3600e3, '24h': 86400e3, '3d': 3 * 86400e3, '7d': 7 * 86400e3, '14d': 14 * 86400e3 };
export const DEFAULT_RANGE = '24h';

/**
 * The filters of GET /operations, as the server declares them (`query_parameters` of
 * /v1/vocabulary): name, label, kind, and whether /facets counts its values. A filter added on the
 * server shows here without a change to the dashboard.
 */
export const opFilters = () => vocabulary().query_parameters.filter((q) => q.filter && q.endpoints.includes('operations'));

/**
 * The filters only messages have (`level`, `message_type`: filters of GET /messages that
 * GET /operations does not take): with any of them the Logs tab lists messages instead.
 */
export const messageFilters = () => vocabulary().query_parameters.filter((q) => q.filter && q.endpoints.includes('messages') && !q.endpoints.includes('operations'));

export const params = () => new URLSearchParams(location.search);

let onNavigate = () => {};
export function setNavigateHandler(f) { onNavigate = f; }

/** Applies `update(params)` to the URL and re-renders; `replace` keeps history short (typing). */
export function navigate(update, { replace = false } = {}) {
  const p = params();
  update(p);
  const url = `${location.pathname}?${p}`;
  if (replace) history.replaceState(null, '', url); else history.pushState(null, '', url);
  onNavigate();
}

export function hrefWith(update) {
  const p = params();
  update(p);
  return `?${p}`;
}

/** The selected time range as API parameters: a preset counts back from now. */
export function timeRange(p) {
  const from = p.get('from'); const to = p.get('to');
  if (from || to) return { from: from || undefined, to: to || undefined, custom: true };
  const span = PRESETS[p.get('range')] || PRESETS[DEFAULT_RANGE];
  return { from: new Date(Date.now() - span).toISOString(), to: undefined, custom: false };
}

/**
 * Operation filters from the URL as API query pairs (repeatable names stay repeated). A cursor is
 * sealed to its query, so pages after the first must reuse the same `range`.
 */
export function opQuery(p, range = timeRange(p)) {
  const out = [];
  for (const { name } of [...opFilters(), ...messageFilters()]) for (const v of p.getAll(name)) out.push([name, v]);
  const { from, to } = range;
  if (from) out.push(['from', from]);
  if (to) out.push(['to', to]);
  if (p.get('q')) out.push(['q', p.get('q')]);
  return out;
}

/** An ISO time as the value of a datetime-local input, in local time. */
export const toLocalInput = (iso) => {
  if (!iso) return '';
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
};

export function rangeControl(p) {
  const current = p.get('from') || p.get('to') ? 'custom' : (p.get('range') || DEFAULT_RANGE);
  const pick = (name) => navigate((q) => { q.delete('from'); q.delete('to'); q.set('range', name); });
  const from = h('input', { type: 'datetime-local', 'aria-label': 'From', value: toLocalInput(p.get('from')) });
  const to = h('input', { type: 'datetime-local', 'aria-label': 'To', value: toLocalInput(p.get('to')) });
  const apply = () => navigate((q) => {
    q.delete('range');
    if (from.value) q.set('from', new Date(from.value).toISOString()); else q.delete('from');
    if (to.value) q.set('to', new Date(to.value).toISOString()); else q.delete('to');
  });
  return h('div', { class: 'range', role: 'group', 'aria-label': 'Time range' },
    Object.keys(PRESETS).map((name) => h('button', {
      type: 'button', class: 'chip-toggle', 'aria-pressed': String(current === name), onclick: () => pick(name),
    }, name)),
    h('details', { class: 'custom-range', open: current === 'custom' },
      h('summary', {}, current === 'custom' ? 'Custom range' : 'Custom…'),
      h('label', {}, 'From ', from), h('label', {}, 'To ', to),
      h('button', { type: 'button', onclick: apply }, 'Apply')));
}

/**
 * A searchable multi-value picker: chips for what is selected, an input whose suggestions come
 * from `suggest(prefix)` (e.g. /facets). Enter adds what is typed.
 */
export function picker({ label, name, selected, suggest }) {
  const listId = `list-${name}`;
  const datalist = h('datalist', { id: listId });
  const input = h('input', { type: 'search', list: listId, placeholder: `${label}…`, 'aria-label': label, name: `pick-${name}` });
  const fill = debounce(async () => {
    try {
      const values = await suggest(input.value);
      datalist.replaceChildren(...values.map((v) => h('option', { value: v.value }, v.count !== undefined ? `${v.count}` : '')));
    } catch { /* suggestions are optional */ }
  }, 200);
  const add = (value) => {
    value = value.trim();
    if (!value || selected.includes(value)) { input.value = ''; return; }
    navigate((q) => { q.append(name, value); q.delete('cursor'); });
  };
  input.addEventListener('focus', fill, { once: true });
  input.addEventListener('input', (e) => {
    // Choosing a suggestion fires an input event without a keystroke.
    if (e.inputType === 'insertReplacementText' || e.inputType === undefined) add(input.value); else fill();
  });
  input.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); add(input.value); } });
  const chips = selected.map((v) => h('span', { class: 'chip', dataset: { filter: name } }, `${label}: ${v}`,
    h('button', {
      type: 'button', class: 'chip-x', 'aria-label': `Remove ${label} ${v}`,
      onclick: () => navigate((q) => { const rest = q.getAll(name).filter((x) => x !== v); q.delete(name); rest.forEach((x) => q.append(name, x)); }),
    }, '×')));
  return h('div', { class: 'picker' }, chips, input, datalist);
}

/** Whether the URL's filters select messages (a level or a message type) rather than operations. */
export const listsMessages = (p) => messageFilters().some(({ name }) => p.has(name));

/**
 * The Logs tab's query in the URL as a saved view's `query`: `q`, every filter as a list, the range
 * preset (a custom range is not kept: a view is opened over a preset).
 */
export function viewQuery(p) {
  const query = {};
  if (p.get('q')?.trim()) query.q = p.get('q');
  for (const { name } of [...opFilters(), ...messageFilters()]) query[name] = p.getAll(name);
  const range = p.get('range');
  if (range && PRESETS[range]) query.range = range;
  return query;
}

/** Replaces the URL's query with a view's: its filters, its range preset, `view` naming it. */
export function openView(q, view) {
  const keep = ['env', 'page', 'live'];
  for (const k of [...q.keys()]) if (!keep.includes(k)) q.delete(k);
  q.set('page', 'logs');
  q.set('view', view.id);
  for (const [k, v] of Object.entries(view.query)) {
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else if (k !== 'range' && v) q.set(k, v);
  }
  if (view.query.range) q.set('range', view.query.range);
}
