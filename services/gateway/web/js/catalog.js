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
}

function renderRow(element, row) {
  element.className = `row depth-${row.depth} ${row.entity}`;
  element.dataset.entity = row.entity;
  element.dataset.key = row.key;
  const at = changedAt.get(row.key);
  if (at && Date.now() - at < HIGHLIGHT_MS) element.classList.add('changed');
  const module = model.modules.get(row.moduleKey);
  if (!module) return fill(element);
  switch (row.entity) {
    case 'module': {
      const m = module.module;
      return fill(element,
        toggleButton(row.key, m.name || m.key),
        h('span', { class: 'kind', text: 'module' }),
        h('span', { class: 'key', text: m.key }), h('span', { class: 'name', text: m.name || '' }),
        m.active === false || m.active === undefined ? h('span', { class: 'flag', text: 'inactive' }) : null,
        m.initialState ? h('span', { class: 'detail', text: `starts in ${m.initialState}` }) : null,
        editorHooks && h('span', { class: 'actions' },
          h('button', { type: 'button', text: 'Edit', 'aria-label': `Edit module ${m.key}`, on: { click: () => editorHooks.open('module', m.key) } }),
          h('button', { type: 'button', text: 'Add group', 'aria-label': `Add a group to ${m.key}`, on: { click: () => editorHooks.open('group', null, { moduleKey: m.key }) } })));
    }
    case 'machine': {
      const states = [...module.states.keys()].map((name) => (name === module.module.initialState ? `${name}*` : name));
      const transitions = [...module.transitions.values()].map((t) => `${t.fromState} —${t.event}→ ${t.toState}${t.conditionJson ? ' (if …)' : ''}`);
      const text = `states: ${states.join(', ')}${transitions.length ? ` · ${transitions.join(' · ')}` : ''}`;
      return fill(element, h('span', { class: 'kind', text: 'state machine' }), h('span', { class: 'detail machine-text', title: text, text }));
    }
    case 'group': {
      const group = module.groups.get(row.groupKey)?.group;
      if (!group) return fill(element);
      return fill(element,
        toggleButton(row.key, group.name || group.key),
        h('span', { class: 'kind', text: 'group' }),
        h('span', { class: 'key', text: group.key }), h('span', { class: 'name', text: group.name || '' }),
        editorHooks && h('span', { class: 'actions' },
          h('button', { type: 'button', text: 'Edit', 'aria-label': `Edit group ${row.key}`, on: { click: () => editorHooks.open('group', row.key) } }),
          h('button', { type: 'button', text: 'Add option', 'aria-label': `Add an option to ${row.key}`, on: { click: () => editorHooks.open('option', null, { moduleKey: row.moduleKey, groupKey: row.groupKey }) } })));
    }
    default: {
      const option = module.groups.get(row.groupKey)?.options.get(row.key);
      if (!option) return fill(element);
      const constraints = constraintsText(option);
      return fill(element,
        h('span', { class: 'kind', text: 'option' }),
        h('span', { class: 'key', text: option.key }), h('span', { class: 'name', text: option.name || '' }),
        h('span', { class: 'type', text: typeName(option.type) }),
        h('span', { class: 'default', title: 'default value', text: option.defaultValue ?? '' }),
        constraints ? h('span', { class: 'detail', title: constraints, text: constraints }) : null,
        option.editable ? null : h('span', { class: 'flag', text: 'fixed' }),
        option.includedByDefault ? h('span', { class: 'flag', text: 'included' }) : null,
        editorHooks && h('span', { class: 'actions' },
          h('button', { type: 'button', text: 'Edit', 'aria-label': `Edit option ${option.key}`, on: { click: () => editorHooks.open('option', option.key) } })));
    }
  }
}

function toggleButton(key, label) {
  const open = !collapsed.has(key);
  return h('button', {
    type: 'button', class: 'toggle', 'aria-expanded': String(open), 'aria-label': `${open ? 'Collapse' : 'Expand'} ${label}`,
    text: open ? '▾' : '▸', on: { click: () => toggle(key) },
  });
}
