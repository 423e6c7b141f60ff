// Saved dashboards: widgets (an option's value, a project's validity, an alarm list)
// placed on a grid, saved with CreateDashboard / UpdateDashboard, optionally shared.

import * as api from './api.js';
import { alarmItem, knownAlarms } from './alarms.js';
import { model } from './catalog.js';
import { byId, field, fill, h, say, statusLine } from './dom.js';
import { knownProjects } from './project.js';

const KINDS = { option_value: 'option_key', project_validity: 'project_key', alarm_list: 'topic' };
const LABELS = { option_value: "An option's value", project_validity: "A project's validity", alarm_list: 'Alarm list' };
let list = [];
let editing = { id: 0, name: '', description: '', shared: false, widgets: [] };
const status = statusLine();

/** Sets up the view. */
export function mountDashboards() {
  byId('dashboards-status').replaceWith(status);
  status.id = 'dashboards-status';
  byId('dashboard-select').addEventListener('change', (event) => choose(Number(event.target.value)));
  byId('dashboard-new').addEventListener('click', () => {
    editing = { id: 0, name: '', description: '', shared: false, widgets: [] };
    renderEditor();
  });
}

/** Lists the user's and the shared dashboards. */
export async function loadDashboards() {
  try {
    list = (await api.dashboards('ListDashboards', { page: { pageSize: 100 } })).dashboards || [];
  } catch (error) {
    say(status, error.message, true);
    return;
  }
  fill(byId('dashboard-select'), h('option', { value: '0', text: '— new dashboard —' }),
    list.map((d) => h('option', { value: d.id, text: `${d.name}${d.shared ? ' (shared)' : ''} — ${d.owner}`, selected: Number(d.id) === Number(editing.id) })));
  renderEditor();
}

function choose(id) {
  const found = list.find((d) => Number(d.id) === id);
  if (!found) {
    editing = { id: 0, name: '', description: '', shared: false, widgets: [] };
  } else {
    let widgets = [];
    try {
      widgets = JSON.parse(found.layoutJson || '{}').widgets || [];
    } catch {}
    editing = { id: found.id, name: found.name, description: found.description || '', shared: Boolean(found.shared), widgets };
  }
  renderEditor();
}

/** Draws the dashboard's widgets again with the current data (catalog, projects, alarms). */
export function redrawDashboard() {
  const grid = byId('dashboard-grid');
  if (!grid) return;
  fill(grid, editing.widgets.map((w, index) => {
    const card = h('article', { class: 'widget', 'aria-label': `Widget ${index + 1}: ${LABELS[w.type]}` }, h('h4', { text: LABELS[w.type] || w.type }), widgetBody(w));
    // Grid positions come from the layout: set from script, which the CSP allows.
    card.style.gridColumn = `${Number(w.x) + 1} / span ${w.w}`;
    card.style.gridRow = `${Number(w.y) + 1} / span ${w.h}`;
    return card;
  }));
}

function widgetBody(w) {
  if (w.type === 'option_value') {
    const option = model.option(w.option_key);
    return h('p', {}, h('span', { class: 'key', text: w.option_key }), ' = ', h('strong', { class: 'value', text: option ? option.defaultValue ?? '' : 'not in the catalog' }));
  }
  if (w.type === 'project_validity') {
    const project = knownProjects().find((p) => p.key === w.project_key);
    if (!project) return h('p', { class: 'muted', text: `${w.project_key}: not visible` });
    return h('p', {}, h('span', { class: 'key', text: w.project_key }), ' ', h('strong', { class: project.valid ? 'ok' : 'bad', text: project.valid ? 'valid' : 'invalid' }));
  }
  const projectKey = w.project_key || (String(w.topic || '').startsWith('alarms/') ? w.topic.slice(7) : '');
  const alarms = knownAlarms().filter((a) => !projectKey || a.projectKey === projectKey).filter((a) => a.status !== 'ALARM_STATUS_CLEARED');
  return alarms.length ? h('ul', { class: 'alarms' }, alarms.slice(0, 20).map((a) => alarmItem(a, false))) : h('p', { class: 'muted', text: 'No alarms.' });
}

function renderEditor() {
  const form = h('form', { id: 'dashboard-form', 'aria-label': 'Dashboard' },
    field('Name', h('input', { type: 'text', name: 'name', value: editing.name, required: true })),
    field('Description', h('input', { type: 'text', name: 'description', value: editing.description })),
    field('Shared with every user', h('input', { type: 'checkbox', name: 'shared', checked: editing.shared })),
    h('fieldset', {}, h('legend', { text: 'Widgets' }), editing.widgets.map(widgetEditor)),
    h('div', { class: 'buttons' },
      h('select', { id: 'widget-kind', 'aria-label': 'Widget to add' }, Object.keys(KINDS).map((k) => h('option', { value: k, text: LABELS[k] }))),
      h('button', { type: 'button', text: 'Add widget', on: { click: addWidget } }),
      h('button', { type: 'submit', text: editing.id ? 'Save dashboard' : 'Create dashboard' })));
  form.addEventListener('input', () => {
    editing.name = form.elements.name.value;
    editing.description = form.elements.description.value;
    editing.shared = form.elements.shared.checked;
  });
  form.addEventListener('submit', save);
  fill(byId('dashboard-editor'), form);
  redrawDashboard();
}

function addWidget() {
  const type = byId('widget-kind').value;
  const y = editing.widgets.reduce((bottom, w) => Math.max(bottom, Number(w.y) + Number(w.h)), 0);
  const widget = { type, x: 0, y, w: 4, h: type === 'alarm_list' ? 3 : 1 };
  widget[KINDS[type]] = type === 'alarm_list' ? 'alarms' : '';
  editing.widgets.push(widget);
  renderEditor();
  byId('dashboard-editor').querySelector('fieldset .widget-editor:last-of-type input')?.focus();
}

function widgetEditor(w, index) {
  const number = (name, least) => field(name, h('input', {
    type: 'number', min: String(least), max: '1000', step: '1', value: String(w[name]), on: {
      change: (e) => {
        w[name] = Math.max(least, Math.round(Number(e.target.value) || 0));
        redrawDashboard();
      },
    },
  }));
  const keyName = KINDS[w.type];
  const move = (delta) => {
    const to = index + delta;
    if (to < 0 || to >= editing.widgets.length) return;
    [editing.widgets[index], editing.widgets[to]] = [editing.widgets[to], editing.widgets[index]];
    renderEditor();
  };
  return h('div', { class: 'widget-editor' },
    h('strong', { text: `${index + 1}. ${LABELS[w.type]}` }),
    field(keyName === 'topic' ? 'Topic (alarms or alarms/<project>)' : keyName.replace('_', ' '), h('input', {
      type: 'text', value: w[keyName] || '', required: true, on: {
        change: (e) => {
          w[keyName] = e.target.value.trim();
          redrawDashboard();
        },
      },
    })),
    number('x', 0), number('y', 0), number('w', 1), number('h', 1),
    h('button', { type: 'button', text: 'Up', 'aria-label': `Move widget ${index + 1} up`, on: { click: () => move(-1) } }),
    h('button', { type: 'button', text: 'Down', 'aria-label': `Move widget ${index + 1} down`, on: { click: () => move(1) } }),
    h('button', { type: 'button', text: 'Remove', 'aria-label': `Remove widget ${index + 1}`, on: { click: () => { editing.widgets.splice(index, 1); renderEditor(); } } }));
}

async function save(event) {
  event.preventDefault();
  // Only the members the layout document allows (DashboardLayout.swift refuses others).
  const widgets = editing.widgets.map((w) => {
    const out = { type: w.type, x: Number(w.x), y: Number(w.y), w: Number(w.w), h: Number(w.h), [KINDS[w.type]]: w[KINDS[w.type]] };
    if (w.type === 'alarm_list' && w.project_key) out.project_key = w.project_key;
    return out;
  });
  const body = { name: editing.name, description: editing.description, shared: editing.shared, layoutJson: JSON.stringify({ widgets }) };
  try {
    const saved = editing.id ? await api.dashboards('UpdateDashboard', { id: editing.id, ...body }) : await api.dashboards('CreateDashboard', body);
    editing.id = saved.id;
    say(status, `Dashboard “${saved.name}” saved.`);
    await loadDashboards();
  } catch (error) {
    const details = error.violations?.map((v) => `${v.subject}: ${v.description}`).join('; ');
    say(status, `${error.message}${details ? ` (${details})` : ''}`, true);
  }
}
