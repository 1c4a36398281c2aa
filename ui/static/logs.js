// The Logs tab: operations newest first under the filters in the URL (or, with a level filter,
// the messages that match), a page at a time, with a live mode that adds new rows and updates
// running operations without moving the reader; beside it, the views: the built-in ones and those
// saved from this tab, opened with one click.
import { h, clear, fmtTime, fmtDuration, badge, debounce, marked } from './dom.js';
import { envGet } from './api.js';
import { navigate, opFilters, messageFilters, listsMessages, opQuery, rangeControl, picker, timeRange } from './filters.js';
import { states, activeStates, typeFilters, levels } from './vocabulary.js';
import { viewsPanel } from './views.js';

const LIVE_EVERY_MS = 2000;

export function renderLogs(main, env, p) {
  let disposed = false;
  let cursor = null;
  const active = activeStates();
  let loading = false;
  let pagedRange = null; // the range of the first page, which its cursors are bound to
  const rows = new Map(); // id -> {tr, op}
  const facet = (field) => async (prefix) => {
    const { from, to } = timeRange(p);
    const q = [['field', field], ['limit', '20']];
    if (prefix) q.push(['prefix', prefix]);
    if (from) q.push(['from', from]);
    if (to) q.push(['to', to]);
    return (await envGet(env, '/facets', q)).data;
  };
  const search = h('input', {
    type: 'search', id: 'search', placeholder: 'Search operations and their messages (e.g. "rate limit", refresh*, timeout OR 503)',
    'aria-label': 'Search', value: p.get('q') || '',
  });
  search.addEventListener('input', debounce(() => navigate((q) => {
    if (search.value.trim()) q.set('q', search.value); else q.delete('q');
  }, { replace: true }), 350));
  const live = p.get('live') === '1';
  const statusGroup = h('div', { class: 'states', role: 'group', 'aria-label': 'Status' },
    states().map((s) => h('button', {
      type: 'button', class: `chip-toggle state-${s}`, 'aria-pressed': String(p.getAll('state').includes(s)),
      onclick: () => navigate((q) => {
        const cur = q.getAll('state'); q.delete('state');
        (cur.includes(s) ? cur.filter((x) => x !== s) : [...cur, s]).forEach((x) => q.append('state', x));
      }),
    }, s)));
  const levelGroup = h('div', { class: 'msg-levels', id: 'message-levels', role: 'group', 'aria-label': 'Message level' },
    h('span', { class: 'hint' }, 'Messages:'),
    levels().map((l) => h('button', {
      type: 'button', class: `chip-toggle level-${l}`, 'aria-pressed': String(p.getAll('level').includes(l)),
      onclick: () => navigate((q) => {
        const cur = q.getAll('level'); q.delete('level');
        (cur.includes(l) ? cur.filter((x) => x !== l) : [...cur, l]).forEach((x) => q.append('level', x));
      }),
    }, l)));
  const messagesMode = listsMessages(p);
  const noun = messagesMode ? 'message' : 'operation';
  const columns = messagesMode
    ? ['Time', 'Level', 'Type', 'Integration', 'Connection', 'Message']
    : ['Time', 'Duration', 'Status', 'Type', 'Integration', 'Script', 'Connection'];
  const count = h('span', { id: 'result-count', class: 'count', 'aria-live': 'polite' }, 'Loading…');
  const tbody = h('tbody');
  const more = h('button', { type: 'button', id: 'load-more', hidden: true, onclick: () => loadPage() }, 'Load more');
  const errorBox = h('p', { class: 'error', role: 'alert' });
  const filtered = [...opFilters(), ...messageFilters()].map((f) => f.name).concat(['q', 'from', 'to', 'range']).some((k) => p.has(k));
  // A picker per filter that is not a closed list (those are chips, like the states above):
  // suggestions from the known types and actions, or the values /facets counts.
  const suggestTypes = async (pre) => typeFilters().filter((t) => t.startsWith(pre)).map((value) => ({ value }));
  const noSuggestions = async () => [];
  const pickers = opFilters().filter((f) => f.kind !== 'one_of').map((f) => picker({
    label: f.label, name: f.name, selected: p.getAll(f.name),
    suggest: f.kind === 'operation_type' ? suggestTypes : (f.facet ? facet(f.name) : noSuggestions),
  }));
  const views = viewsPanel(env, p);
  const content = h('div', { class: 'logs-main' });
  clear(main).append(h('div', { class: 'logs-layout' }, views.el, content));
  content.append(
    h('section', { class: 'filters', 'aria-label': 'Filters' },
      h('div', { class: 'row' }, search,
        h('button', {
          type: 'button', id: 'live-toggle', class: 'chip-toggle live', 'aria-pressed': String(live),
          onclick: () => navigate((q) => { if (live) q.delete('live'); else q.set('live', '1'); }),
        }, live ? '● Live' : 'Live')),
      h('div', { class: 'row' }, statusGroup, levelGroup, rangeControl(p)),
      h('div', { class: 'row pickers' },
        pickers,
        filtered ? h('a', { href: `?env=${encodeURIComponent(env)}`, class: 'reset' }, 'Reset filters') : null,
        views.saveButton)),
    h('div', { class: 'summary' }, count, views.status, ' ', h('a', {
      id: 'download-csv', class: 'download', download: '',
      // Every match of the filters (not the page shown), as CSV: the session cookie goes along.
      href: `/v1/environments/${encodeURIComponent(env)}/operations?${new URLSearchParams([...opQuery(p, timeRange(p)), ['format', 'csv']])}`,
    }, 'Download CSV')),
    errorBox,
    h('table', { class: 'ops', id: 'operations', dataset: { lists: `${noun}s` } },
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
      tbody),
    more);

  const searching = Boolean(p.get('q')?.trim());
  // `at`: the message the drawer scrolls to (the one a snippet came from).
  const open = (id, at) => navigate((q) => {
    q.set('op', id); q.delete('mq'); q.delete('mlevel');
    if (at) q.set('at', at); else q.delete('at');
  });
  const opCells = (op) => [
    h('td', { class: 'time' }, fmtTime(op.created_at)),
    h('td', { class: 'num' }, active.has(op.state) ? '…' : fmtDuration(op.duration_ms)),
    h('td', {}, badge('state', op.state)),
    h('td', {}, `${op.type}:${op.action}`),
    h('td', {}, op.integration || ''),
    h('td', {}, op.script || ''),
    h('td', {}, op.connection_id || ''),
  ];
  /** A message hit (`GET /messages`): the message and the operation it belongs to. */
  const messageCells = (m) => [
    h('td', { class: 'time' }, fmtTime(m.created_at)),
    h('td', {}, badge('level', m.level)),
    h('td', {}, `${m.operation.type}:${m.operation.action}`),
    h('td', {}, m.operation.integration || ''),
    h('td', {}, m.operation.connection_id || ''),
    h('td', { class: 'message-text', title: m.message }, m.message),
  ];
  const cells = messagesMode ? messageCells : opCells;
  // A message row opens its operation's drawer at the message.
  const target = (r) => (messagesMode ? [r.operation.id, r.id] : [r.id, r.snippet?.message_id]);
  /** The row and, when the search matched it, the matching text under it. */
  const row = (op) => {
    const [opId, at] = target(op);
    const tr = h('tr', {
      tabindex: '0', dataset: { id: op.id, state: op.state ?? op.operation?.state },
      onclick: () => open(opId, at), onkeydown: (e) => { if (e.key === 'Enter') open(opId, at); },
    }, cells(op));
    if (p.get('op') === opId) tr.classList.add('selected');
    rows.set(op.id, { tr, op, opId });
    if (!op.snippet) return [tr];
    const where = op.snippet.source === 'message' ? 'in a message' : 'in the operation';
    const under = h('tr', { class: 'snippet-row', dataset: { for: op.id }, onclick: () => open(opId, at) },
      h('td', { colspan: String(columns.length) }, h('span', { class: 'hint' }, `Matched ${where}: `), marked(op.snippet)));
    tr.classList.add('has-snippet');
    return [tr, under];
  };
  const update = (op) => {
    const r = rows.get(op.id);
    if (messagesMode || !r || (r.op.state === op.state && r.op.duration_ms === op.duration_ms)) return;
    r.op = op;
    r.tr.dataset.state = op.state;
    r.tr.replaceChildren(...cells(op));
  };
  const setCount = (total) => { count.textContent = `${total.toLocaleString('en')} ${noun}${total === 1 ? '' : 's'}`; };
  const path = messagesMode ? '/messages' : '/operations';

  async function loadPage() {
    if (loading || disposed) return;
    loading = true;
    try {
      pagedRange ||= timeRange(p);
      const q = opQuery(p, pagedRange);
      q.push(['limit', '50']);
      if (searching) q.push(['snippets', 'true']);
      if (cursor) q.push(['cursor', cursor]);
      const page = await envGet(env, path, q);
      if (disposed) return;
      errorBox.textContent = '';
      for (const op of page.data) if (!rows.has(op.id)) tbody.append(...row(op));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      setCount(page.total);
      if (!page.total) tbody.append(h('tr', { class: 'empty' }, h('td', { colspan: String(columns.length) }, `No ${noun}s match these filters in this time range.`)));
    } catch (e) {
      errorBox.textContent = e.message;
      count.textContent = '';
    } finally { loading = false; }
  }

  async function poll() {
    if (disposed || loading) return;
    try {
      const q = opQuery(p);
      q.push(['limit', '50']);
      if (searching) q.push(['snippets', 'true']);
      const page = await envGet(env, path, q);
      if (disposed) return;
      const fresh = page.data.filter((op) => !rows.has(op.id));
      page.data.forEach(update);
      if (fresh.length) {
        tbody.querySelector('tr.empty')?.remove();
        // Keep what the reader looks at in place: grow the page above them, then scroll by as much.
        const before = document.documentElement.scrollHeight;
        tbody.prepend(...fresh.flatMap((op) => { const trs = row(op); trs[0].classList.add('new'); return trs; }));
        if (window.scrollY > 0) window.scrollBy(0, document.documentElement.scrollHeight - before);
      }
      setCount(page.total);
      // Running operations further down are refreshed one by one (a handful at most).
      const seen = new Set(page.data.map((o) => o.id));
      const stale = messagesMode ? [] : [...rows.values()].filter((r) => active.has(r.op.state) && !seen.has(r.op.id)).slice(0, 20);
      await Promise.all(stale.map(async (r) => update(await envGet(env, `/operations/${r.op.id}`))));
    } catch { /* the next tick tries again */ }
  }

  loadPage();
  const sentinel = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && cursor) loadPage();
  });
  sentinel.observe(more);
  const timer = live ? setInterval(poll, LIVE_EVERY_MS) : null;
  return {
    select(q) { for (const r of rows.values()) r.tr.classList.toggle('selected', r.opId === q.get('op')); },
    dispose() { disposed = true; views.dispose(); sentinel.disconnect(); if (timer) clearInterval(timer); },
  };
}
