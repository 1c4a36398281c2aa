// Deliveries: webhook deliveries newest first under the status and event in the URL, a page at a
// time; a delivery's attempts timeline and payload beside the list (`delivery` in the URL), with
// Retry; and Replay, which sends a time window's deliveries again.
import { h, clear, fmtTime, fmtDuration, badge, pretty, confirmDialog } from './dom.js';
import { envGet, envSend } from './api.js';
import { navigate, toLocalInput } from './filters.js';
import { events, vocabulary } from './vocabulary.js';
import { isAdmin } from './role.js';

const FOLLOW_EVERY_MS = 1500;
const COLUMNS = ['Time', 'Event', 'URL', 'Status', 'Attempts', 'Last response · next attempt'];

export function renderDeliveries(main, env, p) {
  let disposed = false;
  let cursor = null;
  let loading = false;
  let detail = null; // {id, dispose}
  const rows = new Map(); // id -> tr
  const status = p.get('status');
  const event = p.get('event');
  const statusGroup = h('div', { class: 'states', role: 'group', 'aria-label': 'Status' },
    vocabulary().delivery_statuses.map((s) => h('button', {
      type: 'button', class: `chip-toggle delivery-${s}`, 'aria-pressed': String(status === s),
      onclick: () => navigate((q) => { if (status === s) q.delete('status'); else q.set('status', s); }),
    }, s)));
  const eventSelect = h('select', { id: 'delivery-event', 'aria-label': 'Event' },
    h('option', { value: '' }, 'All events'),
    events().map((e) => h('option', { value: e, selected: e === event }, e)));
  eventSelect.addEventListener('change', () => navigate((q) => {
    if (eventSelect.value) q.set('event', eventSelect.value); else q.delete('event');
  }));
  const count = h('span', { id: 'delivery-count', class: 'count', 'aria-live': 'polite' }, 'Loading…');
  const tbody = h('tbody');
  const more = h('button', { type: 'button', id: 'load-more', hidden: true, onclick: () => loadPage() }, 'Load more');
  const errorBox = h('p', { class: 'error', role: 'alert' });
  const panel = h('aside', { class: 'drawer', id: 'delivery-detail', 'aria-label': 'Delivery', tabindex: '-1', hidden: true });
  clear(main).append(
    h('section', { class: 'filters', 'aria-label': 'Filters' },
      h('div', { class: 'row' }, statusGroup, eventSelect,
        status || event ? h('a', { href: `?env=${encodeURIComponent(env)}&page=deliveries`, class: 'reset' }, 'Reset filters') : null,
        isAdmin() ? replayControl(env, () => reload()) : null)),
    h('div', { class: 'summary' }, count),
    errorBox,
    h('table', { class: 'ops', id: 'deliveries' },
      h('thead', {}, h('tr', {}, COLUMNS.map((c) => h('th', { scope: 'col' }, c)))),
      tbody),
    more, panel);

  const open = (id) => navigate((q) => q.set('delivery', id));
  const cells = (d) => [
    h('td', { class: 'time' }, fmtTime(d.created_at)),
    h('td', {}, d.event),
    h('td', { class: 'url', title: d.url }, d.url),
    h('td', {}, badge('delivery', d.status)),
    h('td', { class: 'num' }, String(d.attempts)),
    h('td', { title: d.last_error || '' }, lastResponse(d),
      d.status === 'pending' && d.next_attempt_at ? h('span', { class: 'hint' }, ` next ${fmtTime(d.next_attempt_at)}`) : null),
  ];
  const row = (d) => {
    const tr = h('tr', {
      tabindex: '0', dataset: { id: d.id, status: d.status },
      onclick: () => open(d.id), onkeydown: (e) => { if (e.key === 'Enter') open(d.id); },
    }, cells(d));
    rows.set(d.id, tr);
    return tr;
  };
  /** The detail is fresher than the list: its row follows it. */
  const update = (d) => {
    const tr = rows.get(d.id);
    if (!tr) return;
    tr.dataset.status = d.status;
    tr.replaceChildren(...cells(d));
  };

  async function loadPage() {
    if (loading || disposed) return;
    loading = true;
    try {
      const q = [['limit', '50']];
      if (status) q.push(['status', status]);
      if (event) q.push(['event', event]);
      if (cursor) q.push(['cursor', cursor]);
      const page = await envGet(env, '/deliveries', q);
      if (disposed) return;
      errorBox.textContent = '';
      for (const d of page.data) if (!rows.has(d.id)) tbody.append(row(d));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      count.textContent = `${page.total.toLocaleString('en')} deliver${page.total === 1 ? 'y' : 'ies'}`;
      if (!page.total) {
        tbody.append(h('tr', { class: 'empty' }, h('td', { colspan: String(COLUMNS.length) },
          status || event ? 'No delivery matches these filters.' : 'No deliveries yet: set a webhook URL in Settings.')));
      }
      if (detail) rows.get(detail.id)?.classList.add('selected');
    } catch (e) {
      errorBox.textContent = e.message;
      count.textContent = '';
    } finally { loading = false; }
  }

  function reload() {
    cursor = null;
    rows.clear();
    tbody.replaceChildren();
    loadPage();
  }

  loadPage();
  return {
    select(q) {
      const id = q.get('delivery');
      for (const [rid, tr] of rows) tr.classList.toggle('selected', rid === id);
      if (detail?.id === id) return;
      const from = detail && rows.get(detail.id);
      detail?.dispose();
      detail = null;
      panel.hidden = !id;
      if (id) {
        detail = { id, dispose: renderDetail(panel, env, id, update) };
        panel.focus();
      } else {
        from?.focus(); // back to the row the reader came from
      }
    },
    dispose() { disposed = true; detail?.dispose(); },
  };
}

/** The latest attempt's status code, or why it got none. */
function lastResponse(d) {
  if (d.last_status) return badge('http', String(d.last_status));
  if (d.last_error) return h('span', { class: 'error-text' }, d.last_error);
  return d.attempts ? '' : h('span', { class: 'hint' }, 'not sent yet');
}

/** One delivery: facts, Retry, every attempt, the payload. Followed while it is pending. */
function renderDetail(panel, env, id, onChange) {
  let disposed = false;
  let timer = null;
  let retried = false; // say how a retry ended once it has
  const close = () => navigate((q) => q.delete('delivery'));
  const head = h('div', { class: 'drawer-head' });
  const status = h('p', { class: 'status', role: 'status', id: 'delivery-status' });
  const facts = h('dl', { class: 'facts' });
  const attempts = h('ol', { class: 'timeline', id: 'attempts' });
  const payload = h('div', { id: 'delivery-payload' });
  const retry = h('button', { type: 'button', id: 'retry-delivery', class: 'primary', hidden: true }, 'Retry now');
  clear(panel).append(
    h('div', { class: 'drawer-bar' }, retry, status,
      h('button', { type: 'button', class: 'close', id: 'delivery-close', 'aria-label': 'Close', onclick: close }, '×')),
    head, facts, h('h3', {}, 'Attempts'), attempts, h('h3', {}, 'Payload'), payload);

  const follow = (on) => {
    if (on && !timer && !disposed) timer = setInterval(load, FOLLOW_EVERY_MS);
    if (!on && timer) { clearInterval(timer); timer = null; }
  };
  const opLink = (opId, text) => h('a', { href: `?env=${encodeURIComponent(env)}&page=logs&op=${opId}` }, text);
  const show = (d) => {
    head.replaceChildren(h('h2', {}, d.event, ' ', badge('delivery', d.status)), h('p', { class: 'url' }, d.url));
    const fact = (k, v) => (v ? [h('dt', {}, k), h('dd', {}, v)] : []);
    facts.replaceChildren(...[
      fact('Status', d.status), fact('Attempts', String(d.attempts)),
      fact('Next attempt', d.status === 'pending' ? fmtTime(d.next_attempt_at) : null),
      fact('Last error', d.last_error), fact('Created', fmtTime(d.created_at)), fact('Updated', fmtTime(d.updated_at)),
      fact('Caused by', opLink(d.operation_id, 'the operation')),
      fact('Delivery log', opLink(d.log_operation_id, 'webhook:deliver operation')),
      fact('webhook-id', d.webhook_id), fact('Event id', d.event_id), fact('Delivery id', d.id),
    ].flat());
    attempts.replaceChildren(...(d.attempt_log.length ? d.attempt_log.map(attemptItem) : [h('li', { class: 'empty' }, 'No attempt yet.')]));
    payload.replaceChildren(pretty(d.body));
    // Retrying a delivered one would send it twice: that is what Replay is for.
    retry.hidden = d.status === 'delivered' || !isAdmin();
    onChange(d);
  };
  async function load() {
    try {
      const d = await envGet(env, `/deliveries/${id}`);
      if (disposed) return;
      show(d);
      follow(d.status === 'pending');
      if (retried && d.status !== 'pending') {
        retried = false;
        status.textContent = d.status === 'delivered' ? `Delivered on attempt #${d.attempts}.` : `Failed again: ${d.last_error || 'see the attempts'}.`;
        status.classList.toggle('error', d.status !== 'delivered');
      }
    } catch (e) { status.textContent = e.message; follow(false); }
  }
  retry.addEventListener('click', async () => {
    retry.disabled = true;
    try {
      await envSend(env, 'POST', `/deliveries/${id}/retry`);
      retried = true;
      status.textContent = 'Queued: sending now…';
      status.classList.remove('error');
      await load();
    } catch (e) {
      status.textContent = e.message;
      status.classList.add('error');
    } finally { retry.disabled = false; }
  });
  const onKey = (e) => { if (e.key === 'Escape' && !document.querySelector('dialog[open]')) close(); };
  document.addEventListener('keydown', onKey);
  load();
  return () => {
    disposed = true;
    follow(false);
    document.removeEventListener('keydown', onKey);
  };
}

function attemptItem(a) {
  return h('li', { class: 'attempt', dataset: { outcome: a.outcome, number: String(a.number) } },
    h('div', { class: 'msg-line' },
      h('b', {}, `#${a.number}`),
      h('span', { class: 'time' }, fmtTime(a.started_at)),
      a.status ? badge('http', String(a.status)) : h('span', { class: 'badge' }, 'no response'),
      h('span', { class: 'num' }, fmtDuration(a.duration_ms)),
      badge('delivery', a.outcome),
      a.retry_at ? h('span', { class: 'hint' }, `retry at ${fmtTime(a.retry_at)}`) : null),
    a.error ? h('p', { class: 'error-text' }, a.error) : null,
    a.response_excerpt ? h('details', { class: 'part', open: a.outcome !== 'delivered' }, h('summary', {}, 'Response'), pretty(a.response_excerpt)) : null);
}

/** Sends again every delivery created in a window with a status (the server's default first). */
function replayControl(env, onDone) {
  const from = h('input', { type: 'datetime-local', 'aria-label': 'Replay from', value: toLocalInput(new Date(Date.now() - 86400e3).toISOString()) });
  const to = h('input', { type: 'datetime-local', 'aria-label': 'Replay to' });
  const which = h('select', { 'aria-label': 'Replay which status' },
    vocabulary().replay_statuses.map((s) => h('option', { value: s }, s)));
  const said = h('span', { class: 'status', role: 'status', id: 'replay-status' });
  const run = async () => {
    said.classList.remove('error');
    if (!from.value) { said.textContent = 'Choose where the window starts.'; said.classList.add('error'); return; }
    const chosen = `${which.value} deliveries created from ${from.value.replace('T', ' ')}${to.value ? ` to ${to.value.replace('T', ' ')}` : ' until now'}`;
    if (!await confirmDialog('Replay deliveries?', `Every one of the ${chosen} is sent again, to the URL it was first sent to.`, 'Replay')) return;
    const params = { from: new Date(from.value).toISOString(), status: which.value };
    if (to.value) params.to = new Date(to.value).toISOString();
    try {
      const r = await envSend(env, 'POST', '/deliveries/replay', undefined, params);
      said.textContent = `${r.requeued} deliver${r.requeued === 1 ? 'y' : 'ies'} queued again${r.limit_reached ? ' (the limit of one replay: replay again for the rest)' : ''}.`;
      onDone();
    } catch (e) { said.textContent = e.message; said.classList.add('error'); }
  };
  return h('details', { class: 'replay', id: 'replay' },
    h('summary', {}, 'Replay…'),
    h('label', {}, 'From ', from), h('label', {}, 'To ', to), h('label', {}, 'Status ', which),
    h('button', { type: 'button', id: 'replay-run', onclick: run }, 'Replay'), said);
}
