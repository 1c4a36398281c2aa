// Views beside the Logs tab: the built-in ones (the four signals) and those saved per environment,
// each opened with one click (its query replaces the tab's filters; `view` in the URL names it).
// "Save view" keeps the tab's query under a name; a saved view is renamed or deleted from its row.
import { h, confirmDialog } from './dom.js';
import { envGet, envSend } from './api.js';
import { navigate, openView, viewQuery } from './filters.js';

// What to say once the tab is drawn again (a save opens the view, which redraws the tab).
let said = null;

/** The panel, the Save button and a status line for the Logs tab. */
export function viewsPanel(env, p) {
  let disposed = false;
  const list = h('ul', { class: 'view-list', id: 'view-list' });
  const status = h('span', { class: 'status', role: 'status', id: 'views-status' });
  const el = h('nav', { class: 'views-panel', 'aria-label': 'Views' }, h('h2', {}, 'Views'), list);
  const say = (text, error = false) => { status.textContent = text; status.classList.toggle('error', error); };
  if (said) { say(said); said = null; }
  const current = p.get('view');

  const item = (view) => {
    const open = h('a', {
      href: '#', class: 'view-link', dataset: { view: view.id }, 'aria-current': view.id === current ? 'true' : null,
      title: view.builtin ? 'Built in' : `Saved ${view.updated_at ? `(changed ${view.updated_at.slice(0, 10)})` : ''}`,
      onclick: (e) => { e.preventDefault(); navigate((q) => openView(q, view)); },
    }, view.name);
    const actions = view.builtin ? [h('span', { class: 'hint' }, 'built-in')] : [
      h('button', { type: 'button', class: 'chip-x', 'aria-label': `Rename view ${view.name}`, onclick: () => rename(view) }, '✎'),
      h('button', { type: 'button', class: 'chip-x', 'aria-label': `Delete view ${view.name}`, onclick: () => remove(view) }, '×'),
    ];
    return h('li', { dataset: { view: view.id } }, open, ...actions);
  };

  async function load() {
    try {
      const page = await envGet(env, '/views');
      if (disposed) return;
      list.replaceChildren(...page.data.map(item));
    } catch (e) { say(e.message, true); }
  }

  async function rename(view) {
    const name = await askName(`Rename “${view.name}”`, view.name, 'Rename');
    if (!name || name === view.name) return;
    try {
      await envSend(env, 'PUT', `/views/${encodeURIComponent(view.id)}`, { name });
      say(`Renamed to “${name}”.`);
      await load();
    } catch (e) { say(e.message, true); }
  }

  async function remove(view) {
    const ok = await confirmDialog(`Delete the view “${view.name}”?`, 'Its query is forgotten; what it showed is not deleted.', 'Delete view');
    if (!ok) return;
    try {
      await envSend(env, 'DELETE', `/views/${encodeURIComponent(view.id)}`);
      if (view.id === current) {
        said = `Deleted “${view.name}”.`;
        navigate((q) => q.delete('view'), { replace: true });
      } else {
        say(`Deleted “${view.name}”.`);
        await load();
      }
    } catch (e) { say(e.message, true); }
  }

  const saveButton = h('button', {
    type: 'button', id: 'save-view',
    onclick: async () => {
      const name = await askName('Save this view', '', 'Save view');
      if (!name) return;
      try {
        const view = await envSend(env, 'POST', '/views', { name, query: viewQuery(p) });
        said = `Saved “${view.name}”.`;
        navigate((q) => q.set('view', view.id), { replace: true });
      } catch (e) { say(e.message, true); }
    },
  }, 'Save view');

  load();
  return { el, saveButton, status, dispose() { disposed = true; } };
}

/** Asks for a name in a dialog; resolves to the trimmed name, or null when cancelled. */
function askName(title, value, confirmLabel) {
  return new Promise((resolve) => {
    const input = h('input', { type: 'text', id: 'view-name', value, maxlength: '100', required: true, 'aria-label': 'View name', autocomplete: 'off' });
    const form = h('form', { method: 'dialog' },
      h('h3', {}, title), h('label', { for: 'view-name' }, 'Name'), input,
      h('div', { class: 'row end' },
        h('button', { type: 'button', onclick: () => dialog.close('cancel') }, 'Cancel'),
        h('button', { type: 'submit', class: 'primary', value: 'ok', id: 'view-name-ok' }, confirmLabel)));
    const dialog = h('dialog', { class: 'confirm', 'aria-label': title }, form);
    dialog.addEventListener('close', () => {
      dialog.remove();
      const name = input.value.trim();
      resolve(dialog.returnValue === 'ok' && name ? name : null);
    });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
    input.select();
  });
}
