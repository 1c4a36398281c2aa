// Building DOM without HTML strings: every piece of data goes in as text, never as markup.

/** h('div', {class: 'x', onclick: f}, child, 'text', [more]) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined) return '';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3600000) return `${Math.floor(ms / 60000)} m ${Math.round((ms % 60000) / 1000)} s`;
  return `${(ms / 3600000).toFixed(1)} h`;
}

/**
 * A snippet (`{text, highlights: [[start, end], ...]}`, offsets in characters) as text with the
 * matched terms in <mark>: every piece goes in as a text node, never as markup.
 */
export function marked(snippet, attrs = {}) {
  const chars = Array.from(snippet.text);
  const parts = [];
  let at = 0;
  for (const [start, end] of snippet.highlights) {
    if (start > at) parts.push(chars.slice(at, start).join(''));
    parts.push(h('mark', {}, chars.slice(start, end).join('')));
    at = end;
  }
  if (at < chars.length) parts.push(chars.slice(at).join(''));
  return h('span', { class: 'snippet', ...attrs },
    snippet.truncated_start ? '…' : null, parts, snippet.truncated_end ? '…' : null);
}

export function badge(kind, text) {
  return h('span', { class: `badge ${kind}-${text}` }, text);
}

export function pretty(value) {
  // Focusable: a long payload scrolls, and the keyboard must reach it (tabindex 0).
  return h('pre', { class: 'json', tabindex: 0 }, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
}

export function debounce(fn, ms) {
  let t;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

/** A button that copies `text()` and says so beside it (or shows the text, to copy by hand). */
export function copyButton(attrs, label, text) {
  const said = h('span', { class: 'hint', 'aria-live': 'polite' });
  const copy = async () => {
    try { await navigator.clipboard.writeText(text()); said.textContent = 'Copied'; } catch { said.textContent = text(); }
  };
  return [h('button', { type: 'button', ...attrs, onclick: copy }, label), said];
}

/** Asks before a change that cannot be taken back; resolves true only if the person confirms. */
export function confirmDialog(title, text, confirmLabel) {
  return new Promise((resolve) => {
    const dialog = h('dialog', { class: 'confirm', 'aria-label': title });
    dialog.append(h('h3', {}, title), h('p', {}, text), h('div', { class: 'row end' },
      h('button', { type: 'button', autofocus: true, onclick: () => dialog.close('cancel') }, 'Cancel'),
      h('button', { type: 'button', class: 'primary', onclick: () => dialog.close('ok') }, confirmLabel)));
    dialog.addEventListener('close', () => { dialog.remove(); resolve(dialog.returnValue === 'ok'); });
    document.body.append(dialog);
    dialog.showModal();
  });
}
