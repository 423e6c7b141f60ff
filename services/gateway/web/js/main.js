// The page: sign-in, the views behind tabs, and the live stream feeding them.

import * as api from './api.js';
import { editor } from './admin.js';
import { alarmsChanged, loadAlarms, mountAlarms, onAlarmsChange } from './alarms.js';
import { catalogDelta, catalogSnapshot, mountCatalog, onCatalogChange } from './catalog.js';
import { loadDashboards, mountDashboards, redrawDashboard } from './dashboards.js';
import { byId, say } from './dom.js';
import * as live from './live.js';
import { loadProjects, mountProjects, onProjectList, onProjectSelected, projectsChanged, refreshProject, reloadProjectList } from './project.js';
import { may, roleName } from './roles.js';

const TOPICS = ['catalog', 'projects', 'alarms'];
const VIEWS = ['catalog', 'project', 'alarms', 'dashboards'];

live.onState((state) => {
  const element = byId('connection-state');
  element.textContent = state;
  element.className = `connection ${state}`;
});

live.onEvent(({ kind, topic, data, receivedAt }) => {
  if (kind === 'resync') return;
  if (topic === 'catalog') {
    if (kind === 'snapshot') catalogSnapshot(data.payload || {}, receivedAt);
    else {
      catalogDelta(data, receivedAt);
      if (!byId('view-project').hidden) refreshProject();
    }
  } else if (topic === 'projects') {
    projectsChanged(data);
    redrawDashboard();
  } else if (topic.startsWith('project:')) {
    // The selected project's own feed: options, versions, signoffs, change requests.
    refreshProject();
  } else if (topic === 'alarms' || topic.startsWith('alarms')) {
    if (kind === 'delta') {
      alarmsChanged(data);
      // An alarm follows a project's validity, which the dashboards show.
      reloadProjectList();
    } else loadAlarms();
  }
});
onCatalogChange(redrawDashboard);
onProjectList(redrawDashboard);
onProjectSelected((key) => live.follow('project', key ? [`project:${key}`] : []));
onAlarmsChange(redrawDashboard);

function showView(name) {
  for (const view of VIEWS) {
    byId(`view-${view}`).hidden = view !== name;
    const tab = byId(`tab-${view}`);
    tab.setAttribute('aria-selected', String(view === name));
    tab.tabIndex = view === name ? 0 : -1;
  }
  if (name === 'dashboards') redrawDashboard();
  if (name === 'project') refreshProject();
}

function setUpTabs() {
  const tabs = VIEWS.map((view) => byId(`tab-${view}`));
  tabs.forEach((tab, index) => {
    tab.addEventListener('click', () => showView(VIEWS[index]));
    // Arrow keys move between tabs, as in the WAI-ARIA tabs pattern.
    tab.addEventListener('keydown', (event) => {
      const step = event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0;
      if (!step) return;
      const next = tabs[(index + step + tabs.length) % tabs.length];
      next.focus();
      next.click();
    });
  });
  showView('catalog');
}

let mounted = false;

function signedIn(reply) {
  const user = reply.user || {};
  const role = roleName(user.role);
  byId('sign-in').hidden = true;
  byId('app').hidden = false;
  byId('whoami').textContent = `${user.username} (${role})`;
  byId('sign-out').hidden = false;
  document.body.dataset.role = role;
  if (!mounted) {
    mounted = true;
    mountCatalog(may(role, 'editCatalog') ? editor : null);
    mountProjects(role);
    mountAlarms(role);
    mountDashboards();
    setUpTabs();
  }
  live.follow('main', TOPICS, api.refresh);
  loadProjects();
  loadAlarms();
  loadDashboards();
}

function signedOut() {
  live.closeAll();
  // Everything the page held belonged to the user: start afresh.
  if (mounted) window.location.reload();
  byId('app').hidden = true;
  byId('sign-out').hidden = true;
  byId('whoami').textContent = '';
  byId('sign-in').hidden = false;
  byId('username').focus();
}

api.whenSignedOut(signedOut);

byId('sign-in-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const message = byId('sign-in-status');
  say(message, 'Signing in…');
  try {
    const reply = await api.login(byId('username').value, byId('password').value);
    byId('password').value = '';
    say(message, '');
    signedIn(reply);
  } catch (error) {
    say(message, error.code === 'unauthenticated' ? 'Wrong username or password.' : error.message, true);
  }
});

byId('sign-out').addEventListener('click', async () => {
  await api.logout();
  signedOut();
});

(async () => {
  const current = await api.session().catch(() => null);
  if (current) signedIn(current);
  else signedOut();
})();
