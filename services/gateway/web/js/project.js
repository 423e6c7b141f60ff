// The project view: effective values with their source, edits checked by the rules
// service (refusals shown next to the options), versions and their differences,
// signoffs and release status, change requests.

import * as api from './api.js';
import { meta } from './catalog-model.js';
import { byId, field, fill, h, say, statusLine, when } from './dom.js';
import { mayInProject } from './roles.js';

let role = 'viewer';
let projects = [];
let current = null;
let config = null;
let reloadTimer = 0;
const status = statusLine();

/** Sets up the view for a user with `userRole`. */
export function mountProjects(userRole) {
  role = userRole;
  byId('project-status').replaceWith(status);
  status.id = 'project-status';
  byId('project-select').addEventListener('change', (event) => select(event.target.value));
}

/** Loads the project list (and the selected project). */
export async function loadProjects() {
  try {
    const reply = await api.projects('ListProjects', { page: { pageSize: 200 } });
    projects = reply.projects || [];
  } catch (error) {
    say(status, error.message, true);
    return;
  }
  const selectElement = byId('project-select');
  const chosen = current?.key || projects[0]?.key || '';
  fill(selectElement, projects.map((p) => h('option', { value: p.key, text: `${p.name || p.key} (${p.key})`, selected: p.key === chosen })));
  if (chosen) await select(chosen);
  else fill(byId('project-body'), h('p', { text: 'No projects yet.' }));
}

let selectedHandler = () => {};
/** Calls `handler(key)` when another project is selected. */
export function onProjectSelected(handler) {
  selectedHandler = handler;
}

/** Lists the projects again without reloading the selected one (their validity changed). */
export function reloadProjectList() {
  clearTimeout(listTimer);
  listTimer = setTimeout(async () => {
    try {
      projects = (await api.projects('ListProjects', { page: { pageSize: 200 } })).projects || [];
      for (const handler of listListeners) handler();
    } catch {}
  }, 300);
}

let listTimer = 0;
const listListeners = new Set();
/** Calls `handler()` when the project list was read again. */
export function onProjectList(handler) {
  listListeners.add(handler);
}

/** The projects as last listed (the dashboards show their validity). */
export function knownProjects() {
  return projects;
}

/**
 * Reads the selected project again (shown again, or the catalog changed under it: its
 * defaults are the project's effective values), once for a burst of calls.
 */
export function refreshProject() {
  clearTimeout(reloadTimer);
  waiting = true;
  reloadTimer = setTimeout(() => {
    waiting = false;
    if (current) select(current.key, true);
  }, 200);
}

// Whether a reload is due or running (the tests wait for the view to settle).
let waiting = false;
let loading = 0;
window.stb = Object.assign(window.stb || {}, { project: { busy: () => waiting || loading > 0 } });

/** A `projects` snapshot or delta: reload what changed, the selected project in full. */
export function projectsChanged(data) {
  const key = data.event?.projectKey || '';
  if (data.payload?.projects) projects = data.payload.projects;
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(async () => {
    if (!current) return loadProjects();
    if (!key || key === current.key) await select(current.key, true);
    else {
      const found = projects.find((p) => p.key === key);
      if (found && data.event?.entity === 'validity') found.valid = Boolean(data.event.valid);
    }
  }, 100);
}

async function select(key, keepStatus = false) {
  if (!key) return;
  if (!keepStatus) say(status, '');
  loading += 1;
  try {
    const [project, cfg, versions, release, requests] = await Promise.all([
      api.projects('GetProject', { key }),
      api.projects('GetProjectConfig', { projectKey: key }),
      api.projects('ListVersions', { projectKey: key, page: { pageSize: 50 } }),
      api.projects('GetReleaseStatus', { projectKey: key }).catch(() => null),
      api.projects('ListChangeRequests', { projectKey: key, page: { pageSize: 50 } }),
    ]);
    if (current?.key !== project.key) selectedHandler(project.key);
    current = project;
    config = cfg;
    const index = projects.findIndex((p) => p.key === key);
    if (index >= 0) projects[index] = project;
    render(versions.versions || [], release, requests.requests || []);
  } catch (error) {
    say(status, error.message, true);
  } finally {
    loading -= 1;
  }
}

function render(versions, release, requests) {
  const canEdit = mayInProject(role, current.myRole, 'editProject');
  const canSign = mayInProject(role, current.myRole, 'signProject');
  fill(byId('project-body'),
    h('p', { class: 'summary' },
      h('span', { class: current.valid ? 'ok' : 'bad', id: 'project-validity', text: current.valid ? 'valid' : 'invalid' }),
      ` · latest version ${current.latestVersion || 'none'} · your role ${(current.myRole || 'admin').replace('PROJECT_ROLE_', '').toLowerCase()}`),
    (config.violations || []).length
      ? h('ul', { class: 'violations' }, config.violations.map((v) => h('li', { text: `${v.ruleKey}: ${v.message || v.explanation}` })))
      : null,
    optionsTable(canEdit),
    versionsSection(versions, canEdit),
    releaseSection(release, canSign),
    requestsSection(requests, canEdit, canSign));
}

// MARK: options

function optionsTable(canEdit) {
  const rows = [];
  for (const module of config.modules || []) {
    for (const group of module.groups || []) {
      rows.push(h('tr', { class: 'group-row' }, h('th', { colspan: 6, scope: 'colgroup', text: `${module.name || module.key} / ${group.name || group.key}` })));
      for (const option of group.options || []) rows.push(optionRow(option, canEdit && option.editable));
    }
  }
  return h('section', { 'aria-labelledby': 'project-options-title' },
    h('h3', { id: 'project-options-title', text: 'Effective values' }),
    h('table', { id: 'project-options', class: 'grid' },
      h('thead', {}, h('tr', {}, ['Option', 'Type', 'Included', 'Value', 'Source', 'Problems'].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, rows)));
}

function source(value) {
  return String(value || '').replace('VALUE_SOURCE_', '').toLowerCase() || 'default';
}

function optionRow(option, editable) {
  const problems = h('td', { class: 'violation', 'data-option': option.key, role: 'alert' });
  const included = editable
    ? h('input', { type: 'checkbox', checked: Boolean(option.included), 'aria-label': `Include ${option.key}`, on: { change: (e) => change(option, { include: e.target.checked }, problems) } })
    : h('span', { text: option.included ? 'yes' : 'no' });
  return h('tr', { 'data-option': option.key },
    h('th', { scope: 'row' }, h('span', { class: 'key', text: option.key }), ' ', h('span', { class: 'name', text: option.name || '' })),
    h('td', { text: option.type }),
    h('td', {}, included, h('span', { class: 'source', text: ` ${source(option.includedSource)}` })),
    h('td', {}, editable ? valueControl(option, problems) : h('span', { class: 'value', text: option.valueJson ?? '' })),
    h('td', { class: 'source', text: source(option.valueSource) }),
    problems);
}

/** An input fitting the option's type and constraints. */
function valueControl(option, problems) {
  const m = meta(option.metaJson);
  const label = `Value of ${option.key}`;
  let current;
  try {
    current = JSON.parse(option.valueJson || 'null');
  } catch {
    current = null;
  }
  const send = (json) => change(option, { valueJson: json }, problems);
  switch (option.type) {
    case 'boolean':
      return h('input', { type: 'checkbox', class: 'value-input', checked: current === true, 'aria-label': label, on: { change: (e) => send(String(e.target.checked)) } });
    case 'integer':
      return h('input', {
        type: 'number', class: 'value-input', value: current ?? '', min: m.min ?? null, max: m.max ?? null, step: m.step ?? '1', 'aria-label': label,
        on: { change: (e) => send(e.target.value.trim() === '' ? 'null' : e.target.value.trim()) },
      });
    case 'enum':
      return h('select', { class: 'value-input', 'aria-label': label, on: { change: (e) => send(JSON.stringify(e.target.value)) } },
        (Array.isArray(m.values) ? m.values : [current]).map((v) => h('option', { value: v, text: v, selected: v === current })));
    default: {
      const input = h('input', { type: 'text', class: 'value-input', value: current ?? '', 'aria-label': label, maxlength: m.max_length ?? null, on: { change: (e) => send(JSON.stringify(e.target.value)) } });
      if (typeof m.pattern === 'string') {
        // The browser's own check, when the pattern reads the same as a JavaScript one.
        try {
          new RegExp(m.pattern, 'v');
          input.setAttribute('pattern', m.pattern);
          input.title = `matches ${m.pattern}`;
        } catch {}
      }
      return input;
    }
  }
}

async function change(option, changeValue, problems) {
  fill(problems);
  say(status, `Saving ${option.key}…`);
  try {
    const reply = await api.projects('SetOptions', { projectKey: current.key, changes: [{ key: option.key, ...changeValue }] });
    const warnings = (reply.warnings || []).map((w) => w.message).join('; ');
    await select(current.key, true);
    say(status, `${option.key} saved${warnings ? `; warnings: ${warnings}` : ''}.`);
  } catch (error) {
    showRefusal(error, option.key, problems);
  }
}

// Each violation next to the options it names: a constraint's subject is
// `option:<key>/<constraint>`; a rule's description ends with `[key=value, …]`.
function showRefusal(error, editedKey, editedCell) {
  const byOption = new Map();
  for (const v of error.violations || []) {
    const keys = new Set();
    const constraint = /^option:([^/]+)\//.exec(v.subject);
    if (constraint) keys.add(constraint[1]);
    const refs = /\[([^\]]*)\]\s*$/.exec(v.description);
    if (refs) for (const part of refs[1].split(', ')) keys.add(part.split('=')[0]);
    if (!keys.size) keys.add(editedKey);
    const text = v.type === 'RULE_VIOLATION' || constraint ? `${v.subject}: ${v.description}` : v.description || v.subject;
    for (const key of keys) byOption.set(key, [...(byOption.get(key) || []), text]);
  }
  if (!byOption.size) byOption.set(editedKey, [error.message]);
  for (const [key, texts] of byOption) {
    const cell = key === editedKey ? editedCell : byId('project-options').querySelector(`td.violation[data-option="${CSS.escape(key)}"]`);
    if (cell) fill(cell, h('ul', {}, texts.map((t) => h('li', { text: t }))));
  }
  // Nothing changed: the controls go back to the draft's values.
  const row = byId('project-options').querySelector(`tr[data-option="${CSS.escape(editedKey)}"]`);
  const option = findOption(editedKey);
  if (row && option) {
    const control = row.querySelector('.value-input');
    if (control?.type === 'checkbox') control.checked = option.valueJson === 'true';
    else if (control) control.value = safeParse(option.valueJson) ?? '';
    const include = row.querySelector('input[aria-label^="Include"]');
    if (include) include.checked = Boolean(option.included);
  }
  say(status, `Refused: ${error.message}`, true);
}

function safeParse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function findOption(key) {
  for (const module of config.modules || []) for (const group of module.groups || []) for (const o of group.options || []) if (o.key === key) return o;
  return null;
}

// MARK: versions

function versionsSection(versions, canEdit) {
  const choices = (id, label) => field(label, h('select', { id }, h('option', { value: '0', text: 'draft' }),
    versions.map((v) => h('option', { value: String(v.number), text: `v${v.number}` }))));
  const diffOut = h('div', { id: 'project-diff', 'aria-live': 'polite' });
  const diffForm = h('form', { class: 'inline', 'aria-label': 'Compare versions' },
    choices('diff-from', 'From'), choices('diff-to', 'To'), h('button', { type: 'submit', text: 'Compare' }));
  if (versions.length) diffForm.querySelector('#diff-from').value = String(versions[0].number);
  diffForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const diff = await api.projects('DiffVersions', {
        projectKey: current.key, from: Number(byId('diff-from').value), to: Number(byId('diff-to').value),
      });
      const line = (kind, d) => h('li', { class: kind, text: `${kind} ${d.key}: ${d.fromJson || '—'} → ${d.toJson || '—'}` });
      const items = [...(diff.added || []).map((d) => line('added', d)), ...(diff.removed || []).map((d) => line('removed', d)),
        ...(diff.changed || []).map((d) => line('changed', d))];
      fill(diffOut, items.length ? h('ul', {}, items) : h('p', { text: 'No differences.' }));
    } catch (error) {
      say(status, error.message, true);
    }
  });
  let commit = null;
  if (canEdit) {
    commit = h('form', { class: 'inline', 'aria-label': 'Commit the draft' },
      field('Message', h('input', { type: 'text', name: 'message', required: true })), h('button', { type: 'submit', text: 'Commit version' }));
    commit.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        const v = await api.projects('CommitVersion', { projectKey: current.key, message: commit.elements.message.value });
        await select(current.key, true);
        say(status, `Committed version ${v.number}.`);
      } catch (error) {
        say(status, error.message, true);
      }
    });
  }
  return h('section', { 'aria-labelledby': 'versions-title' },
    h('h3', { id: 'versions-title', text: 'Versions' }), commit,
    h('ul', { id: 'project-versions' }, versions.map((v) => h('li', {
      text: `v${v.number} — ${v.message || ''} — ${v.author || ''} — ${when(v.createdAtMs)}${v.valid === false ? ' — invalid' : ''}${v.rolledBackFrom ? ` — rollback of v${v.rolledBackFrom}` : ''}`,
    }))),
    diffForm, diffOut);
}

// MARK: release

function releaseSection(release, canSign) {
  if (!release) return h('section', {}, h('h3', { text: 'Release' }), h('p', { text: 'No version to release yet.' }));
  const sign = canSign && (release.missing || []).length
    ? h('form', { class: 'inline', 'aria-label': 'Sign off' },
      field('Aspect', h('select', { name: 'aspect' }, release.missing.map((a) => h('option', { value: a, text: a })))),
      field('Notes', h('input', { type: 'text', name: 'notes' })),
      h('button', { type: 'submit', text: 'Sign off' }))
    : null;
  sign?.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await api.projects('Signoff', { projectKey: current.key, version: release.version, aspect: sign.elements.aspect.value, notes: sign.elements.notes.value });
      await select(current.key, true);
      say(status, 'Signed.');
    } catch (error) {
      say(status, error.message, true);
    }
  });
  return h('section', { 'aria-labelledby': 'release-title' },
    h('h3', { id: 'release-title', text: 'Release' }),
    h('p', { id: 'release-status', text: `v${release.version}: ${release.released ? 'released' : 'not released'}` }),
    h('ul', {}, (release.signed || []).map((s) => h('li', { text: `signed ${s.aspect} by ${s.signer} ${when(s.signedAtMs)}` })),
      (release.missing || []).map((a) => h('li', { class: 'bad', text: `missing ${a}` })),
      (release.stale || []).map((s) => h('li', { class: 'muted', text: `stale ${s.aspect} (v${s.version})` }))),
    sign);
}

// MARK: change requests

function requestsSection(requests, canEdit, canSign) {
  const describe = (c) => `${c.key}: ${c.valueJson ?? (c.include !== undefined ? (c.include ? 'include' : 'exclude') : 'reset')}`;
  const act = (label, method, body) => h('button', {
    type: 'button', text: label, on: {
      click: async () => {
        try {
          await api.projects(method, body);
          await select(current.key, true);
          say(status, `${label}: done.`);
        } catch (error) {
          say(status, error.message, true);
        }
      },
    },
  });
  return h('section', { 'aria-labelledby': 'requests-title' },
    h('h3', { id: 'requests-title', text: 'Change requests' }),
    requests.length ? h('ul', { id: 'change-requests' }, requests.map((r) => {
      const state = String(r.status || '').replace('CHANGE_REQUEST_STATUS_', '').toLowerCase();
      return h('li', { 'data-request': r.id },
        h('span', { text: `#${r.id} ${state} — ${r.reason || ''} — ${(r.changes || []).map(describe).join(', ')} — by ${r.author || ''}` }),
        canSign && state === 'pending' ? [act('Approve', 'ReviewChangeRequest', { projectKey: current.key, id: r.id, approve: true }),
          act('Reject', 'ReviewChangeRequest', { projectKey: current.key, id: r.id, approve: false })] : null,
        canEdit && state === 'approved' ? act('Apply', 'ApplyChangeRequest', { projectKey: current.key, id: r.id }) : null);
    })) : h('p', { text: 'No change requests.' }));
}
