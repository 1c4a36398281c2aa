// The dashboard shell: login, the environment switcher, and routing from the URL to a page and
// the operation drawer. Pages are re-rendered only when their part of the URL changes.
import { h } from './dom.js';
import * as api from './api.js';
import { params, navigate, setNavigateHandler } from './filters.js';
import { loadVocabulary } from './vocabulary.js';
import { setSession, isAdmin } from './role.js';
import { renderLogs } from './logs.js';
import { renderDrawer } from './drawer.js';
import { renderInsights } from './insights.js';
import { renderSignals } from './signals.js';
import { renderSettings } from './settings.js';
import { renderDeliveries } from './deliveries.js';
import { renderAudit } from './audit.js';

const PAGES = { logs: renderLogs, insights: renderInsights, signals: renderSignals, deliveries: renderDeliveries, settings: renderSettings, audit: renderAudit };
// Pages only the admin opens: a viewer's session gets 403 from their API anyway.
const ADMIN_PAGES = ['settings', 'audit'];
const DRAWER_KEYS = ['op', 'mq', 'mlevel', 'at'];
// What a page shows beside itself (the drawer, a delivery's detail): changing it keeps the page.
const DETAIL_KEYS = [...DRAWER_KEYS, 'delivery'];
const $ = (id) => document.getElementById(id);

let environments = [];
let page = null; // {key, view}
let drawer = null; // {key, dispose}

function showLogin(message) {
  page?.view.dispose(); page = null;
  drawer?.dispose(); drawer = null;
  $('shell').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('login-token').focus();
}

async function boot() {
  try {
    const session = await api.get('/v1/session');
    if (!session.authenticated) return showLogin();
    setSession(session);
    // Pages build their pickers from the server's vocabulary: it is there before any renders.
    const [envs] = await Promise.all([api.get('/v1/environments'), loadVocabulary()]);
    environments = envs.data.map((e) => e.name);
  } catch (e) {
    if (e.status === 401) return showLogin();
    return showLogin(e.message);
  }
  $('login').hidden = true;
  $('shell').hidden = false;
  for (const page of ADMIN_PAGES) document.querySelector(`nav a[data-page="${page}"]`).hidden = !isAdmin();
  $('whoami').textContent = isAdmin() ? 'admin' : `viewer of ${environments[0] || ''}`;
  const select = $('env-select');
  select.replaceChildren(...environments.map((name) => h('option', { value: name }, name)));
  route();
}

function route() {
  const p = params();
  let env = p.get('env');
  if (!environments.includes(env)) {
    env = environments.includes('prod') ? 'prod' : environments[0];
    if (!env) { $('page').textContent = 'No environment is configured.'; return; }
    p.set('env', env);
    history.replaceState(null, '', `?${p}`);
  }
  const wanted = p.get('page');
  const name = PAGES[wanted] && (isAdmin() || !ADMIN_PAGES.includes(wanted)) ? wanted : 'logs';
  $('env-select').value = env;
  for (const a of document.querySelectorAll('nav a')) {
    a.setAttribute('href', `?env=${encodeURIComponent(env)}&page=${a.dataset.page}`);
    if (a.dataset.page === name) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const pageParams = new URLSearchParams(p);
  DETAIL_KEYS.forEach((k) => pageParams.delete(k));
  const pageKey = pageParams.toString();
  // Re-rendering replaces inputs: keep the caret in the one being typed into.
  const focused = document.activeElement?.id ? document.activeElement : null;
  const caret = focused && typeof focused.selectionStart === 'number' ? focused.selectionStart : null;
  if (page?.key !== pageKey) {
    page?.view.dispose();
    page = { key: pageKey, view: PAGES[name]($('page'), env, p) };
    const title = `${name[0].toUpperCase()}${name.slice(1)} · ${env}`;
    // The page's level-one heading, for screen readers (the highlighted tab shows it on screen).
    $('page-title').textContent = title;
    document.title = `${title} · opslog`;
  }
  const opId = p.get('op');
  const drawerKey = opId ? `${env}|${DRAWER_KEYS.map((k) => p.getAll(k).join(',')).join('|')}` : null;
  if (drawer?.key !== drawerKey) {
    drawer?.dispose();
    drawer = null;
    if (opId) {
      drawer = { key: drawerKey, dispose: renderDrawer($('drawer'), env, opId, p, () => {}) };
    } else {
      $('drawer').hidden = true;
    }
  }
  page.view.select?.(p);
  if (focused && !focused.isConnected) {
    const again = document.getElementById(focused.id);
    again?.focus();
    if (again && caret !== null) again.setSelectionRange(caret, caret);
  }
}

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const token = $('login-token').value;
  try {
    await api.request('POST', '/v1/session', { token });
    $('login-token').value = '';
    await boot();
  } catch (err) {
    $('login-error').textContent = err.message;
  }
});
$('logout').addEventListener('click', async () => {
  try { await api.request('DELETE', '/v1/session'); } finally { showLogin('You are logged out.'); }
});
$('env-select').addEventListener('change', (e) => navigate((q) => {
  const pageName = q.get('page');
  for (const k of [...q.keys()]) q.delete(k);
  q.set('env', e.target.value);
  if (pageName) q.set('page', pageName);
}));
// Page links keep the SPA: no full reload, history entries like any navigation.
document.querySelector('nav').addEventListener('click', (e) => {
  const a = e.target.closest('a[data-page]');
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey) return;
  e.preventDefault();
  navigate((q) => {
    const keep = ['env', 'range', 'from', 'to'];
    for (const k of [...q.keys()]) if (!keep.includes(k)) q.delete(k);
    q.set('page', a.dataset.page);
  });
});
document.addEventListener('click', (e) => {
  const a = e.target.closest('a[href^="?"]');
  if (!a || a.closest('nav') || e.ctrlKey || e.metaKey || e.shiftKey) return;
  e.preventDefault();
  history.pushState(null, '', a.getAttribute('href'));
  route();
});
window.addEventListener('popstate', route);
setNavigateHandler(route);
api.setUnauthorizedHandler(() => showLogin('Your session has ended; log in again.'));
boot();
