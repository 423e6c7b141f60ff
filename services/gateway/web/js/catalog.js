// The catalog view: the tree of modules, groups and options, virtualised, merged in place
// from the live stream and briefly highlighted where it changed.

import { CatalogModel, constraintsText, typeName } from './catalog-model.js';
import { byId, fill, h } from './dom.js';
import { VirtualList } from './virtual-list.js';
import { metrics } from './metrics.js';

const ROW_HEIGHT = 30;
const HIGHLIGHT_MS = 2000;

/** The page's catalog, shared with the dashboards (an option's value). */
export const model = new CatalogModel();

let list = null;
const collapsed = new Set();
const changedAt = new Map();
let filter = '';
let editorHooks = null;
const changeListeners = new Set();

/** Calls `handler()` after the catalog changed (a snapshot or a delta). */
export function onCatalogChange(handler) {
  changeListeners.add(handler);
}

/**
 * Sets up the view in its section; `editor` (admin.js) adds the edit controls, or null
 * when the role may not edit the catalog.
 */
export function mountCatalog(editor) {
  editorHooks = editor;
  const viewport = byId('catalog-tree');
  list = new VirtualList(viewport, ROW_HEIGHT, renderRow);
  viewport.addEventListener('click', clicked);
  list.onRender = (ms) => {
    if (metrics.rowRenders.length < 10000) metrics.rowRenders.push(ms);
  };
  byId('catalog-filter').addEventListener('input', (event) => {
    filter = event.target.value;
    rebuild();
  });
  byId('catalog-add-module').hidden = !editor;
  byId('catalog-add-module').addEventListener('click', () => editorHooks?.open('module', null));
  window.stb = Object.assign(window.stb || {}, {
    catalog: {
      model,
      shownRows: () => [...viewport.querySelectorAll('.row')].length,
      rowCount: () => list.rows.length,
      rowKeyAt: (index) => list.rows[index]?.key,
      reveal,
    },
  });
}

/** Scrolls the tree to the row of `key` (an option key, `module`, `module/group`). */
export function reveal(key) {
  const index = list.rows.findIndex((row) => row.key === key);
  if (index >= 0) list.scrollToIndex(index);
  return index >= 0;
}

/** A `catalog` snapshot: the state is replaced. `receivedAt`: when it arrived (parsing counts). */
export function catalogSnapshot(payload, receivedAt = performance.now()) {
  const started = receivedAt;
  model.replace(payload);
  changedAt.clear();
  rebuild();
  const ms = performance.now() - started;
  metrics.snapshots.push({ topic: 'catalog', ms, options: model.placeOf.size });
  if (metrics.catalogFirstRenderMs === null) {
    metrics.catalogFirstRenderMs = ms;
    metrics.catalogFirstRenderAt = performance.now();
  }
  for (const handler of changeListeners) handler();
}

/** A `catalog` delta: the one entity is changed in place and highlighted. */
export function catalogDelta(delta, receivedAt = performance.now()) {
  const started = receivedAt;
  const event = delta.event || {};
  const change = model.apply(event);
  const now = Date.now();
  changedAt.set(change.key, now);
  if (change.moduleKey) changedAt.set(`${change.moduleKey}#machine`, now);
  if (change.structural) rebuild();
  else list.refreshWhere((row) => row.key === change.key || row.key === `${change.moduleKey}#machine`);
  setTimeout(() => list.refreshWhere((row) => changedAt.has(row.key) && Date.now() - changedAt.get(row.key) >= HIGHLIGHT_MS), HIGHLIGHT_MS + 50);
  const record = {
    entity: change.entity, key: change.key, action: event.action || delta.action || '',
    value: event.state?.option?.defaultValue ?? '', atMs: Number(event.atMs || 0), cursor: delta.cursor || event.cursor || '',
    scriptMs: performance.now() - started, visibleAt: 0,
  };
  metrics.applied.push(record);
  requestAnimationFrame(() => {
    record.visibleAt = Date.now();
  });
  for (const handler of changeListeners) handler();
}

function rebuild() {
  if (!list) return;
  list.setRows(model.rows(collapsed, filter));
  const counts = model.counts();
  byId('catalog-summary').textContent = `${counts.modules} modules, ${counts.groups} groups, ${counts.options} options · revision ${model.revision}`;
}

function toggle(key) {
  if (collapsed.has(key)) collapsed.delete(key);
  else collapsed.add(key);
  rebuild();
  // The rows were rebuilt: keep the keyboard on the same toggle.
  byId('catalog-tree').querySelector(`.row[data-key="${CSS.escape(key)}"] .toggle`)?.focus();
}

// Row elements are reused while scrolling: each keeps the parts of its kind of row
// (built once) and only their text changes, so a frame costs little script time.
function partsFor(element, entity) {
  if (element.rowKind === entity) return element.rowParts;
  const parts = {};
  const span = (name, cls = name) => (parts[name] = h('span', { class: cls }));
  let children;
  if (entity === 'module' || entity === 'group') {
    parts.toggle = h('button', { type: 'button', class: 'toggle', 'data-action': 'toggle' });
    children = [parts.toggle, h('span', { class: 'kind', text: entity }), span('key'), span('name'), span('flag'), span('detail')];
  } else if (entity === 'machine') {
    children = [h('span', { class: 'kind', text: 'state machine' }), span('detail', 'detail machine-text')];
  } else {
    children = [h('span', { class: 'kind', text: 'option' }), span('key'), span('name'), span('type'), span('default'), span('detail'),
      span('fixed', 'flag'), span('included', 'flag')];
    parts.default.title = 'default value';
  }
  if (editorHooks && entity !== 'machine') {
    parts.edit = h('button', { type: 'button', 'data-action': 'edit', text: 'Edit' });
    if (entity !== 'option') parts.add = h('button', { type: 'button', 'data-action': 'add', text: entity === 'module' ? 'Add group' : 'Add option' });
    children.push(h('span', { class: 'actions' }, parts.edit, parts.add));
  }
  fill(element, children);
  element.rowKind = entity;
  element.rowParts = parts;
  return parts;
}

function setText(part, text) {
  part.textContent = text;
  part.hidden = !text;
}

function renderRow(element, row) {
  element.className = `row depth-${row.depth} ${row.entity}`;
  element.dataset.entity = row.entity;
  element.dataset.key = row.key;
  element.dataset.module = row.moduleKey;
  element.dataset.group = row.groupKey || '';
  const at = changedAt.get(row.key);
  if (at && Date.now() - at < HIGHLIGHT_MS) element.classList.add('changed');
  const module = model.modules.get(row.moduleKey);
  const entity = row.entity === 'module' ? module?.module
    : row.entity === 'group' ? module?.groups.get(row.groupKey)?.group
      : row.entity === 'option' ? module?.groups.get(row.groupKey)?.options.get(row.key) : module;
  if (!entity) {
    element.rowKind = '';
    fill(element);
    return;
  }
  const parts = partsFor(element, row.entity);
  if (row.entity === 'machine') {
    const states = [...module.states.keys()].map((name) => (name === module.module.initialState ? `${name}*` : name));
    const transitions = [...module.transitions.values()].map((t) => `${t.fromState} —${t.event}→ ${t.toState}${t.conditionJson ? ' (if …)' : ''}`);
    const text = `states: ${states.join(', ')}${transitions.length ? ` · ${transitions.join(' · ')}` : ''}`;
    parts.detail.textContent = text;
    parts.detail.title = text;
    return;
  }
  const label = entity.name || entity.key;
  setText(parts.key, entity.key);
  setText(parts.name, entity.name || '');
  if (row.entity === 'option') {
    const constraints = constraintsText(entity);
    parts.type.textContent = typeName(entity.type);
    parts.default.textContent = entity.defaultValue ?? '';
    setText(parts.detail, constraints);
    parts.detail.title = constraints;
    setText(parts.fixed, entity.editable ? '' : 'fixed');
    setText(parts.included, entity.includedByDefault ? 'included' : '');
  } else {
    const open = !collapsed.has(row.key);
    parts.toggle.textContent = open ? '▾' : '▸';
    parts.toggle.setAttribute('aria-expanded', String(open));
    parts.toggle.setAttribute('aria-label', `${open ? 'Collapse' : 'Expand'} ${label}`);
    setText(parts.flag, row.entity === 'module' && !entity.active ? 'inactive' : '');
    setText(parts.detail, row.entity === 'module' && entity.initialState ? `starts in ${entity.initialState}` : '');
  }
  if (parts.edit) parts.edit.setAttribute('aria-label', `Edit ${row.entity} ${row.key}`);
  if (parts.add) parts.add.setAttribute('aria-label', `${parts.add.textContent} to ${row.key}`);
}

// One listener for every row's buttons (rows come and go while scrolling).
function clicked(event) {
  const button = event.target.closest('button[data-action]');
  const row = button?.closest('.row');
  if (!row) return;
  const { entity, key, module, group } = row.dataset;
  const action = button.dataset.action;
  if (action === 'toggle') toggle(key);
  else if (action === 'edit') editorHooks?.open(entity, key);
  else if (action === 'add' && entity === 'module') editorHooks?.open('group', null, { moduleKey: key });
  else if (action === 'add') editorHooks?.open('option', null, { moduleKey: module, groupKey: group });
}
