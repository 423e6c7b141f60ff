// The catalog editor (engineers and admins): create, update and delete modules, groups and
// options. The tree changes when the live stream brings the committed change back.

import * as api from './api.js';
import { model } from './catalog.js';
import { OPTION_TYPES, typeName } from './catalog-model.js';
import { byId, field, fill, h, say, statusLine } from './dom.js';

/** The hooks catalog.js calls to open the editor. */
export const editor = { open };

function open(kind, key, parent = {}) {
  const panel = byId('catalog-editor');
  panel.hidden = false;
  const form = kind === 'module' ? moduleForm(key) : kind === 'group' ? groupForm(key, parent) : optionForm(key, parent);
  fill(panel, form);
  form.querySelector('input:not([disabled]), select, textarea')?.focus();
}

function text(name, value = '', props = {}) {
  return h('input', { type: 'text', name, value: value ?? '', ...props });
}

function checkbox(name, checked) {
  return h('input', { type: 'checkbox', name, checked: Boolean(checked) });
}

function area(name, value) {
  return h('textarea', { name, rows: 2, text: value || '' });
}

function form(title, fields, save, remove) {
  const status = statusLine();
  let armed = false;
  const element = h('form', { class: 'editor', 'aria-label': title },
    h('h3', { text: title }), fields,
    h('div', { class: 'buttons' },
      h('button', { type: 'submit', text: 'Save' }),
      remove && h('button', {
        type: 'button', class: 'danger', text: 'Delete', on: {
          click: async (event) => {
            // A second press confirms: no modal dialog, and it works from the keyboard.
            if (!armed) {
              armed = true;
              event.target.textContent = 'Press again to delete';
              return;
            }
            await run(status, remove, 'Deleted.');
          },
        },
      }),
      h('button', { type: 'button', text: 'Close', on: { click: () => { byId('catalog-editor').hidden = true; } } })),
    status);
  element.addEventListener('submit', async (event) => {
    event.preventDefault();
    await run(status, () => save(new FormData(element), element), 'Saved.');
  });
  return element;
}

async function run(status, action, done) {
  say(status, 'Saving…');
  try {
    await action();
    say(status, done);
  } catch (error) {
    const details = error.violations?.map((v) => `${v.subject}: ${v.description}`).join('; ');
    say(status, `${error.message}${details ? ` (${details})` : ''}`, true);
  }
}

function moduleForm(key) {
  const m = key ? model.modules.get(key)?.module || {} : {};
  const editing = Boolean(key);
  const states = key ? [...(model.modules.get(key)?.states.keys() || [])] : [];
  return form(editing ? `Module ${key}` : 'New module', [
    field('Key', text('key', m.key, { required: true, disabled: editing })),
    field('Name', text('name', m.name)),
    field('Description', area('description', m.description)),
    field('Active', checkbox('active', editing ? m.active : true)),
    field('Initial state', text('initialState', m.initialState, { list: states.length ? 'module-states' : null })),
    states.length ? h('datalist', { id: 'module-states' }, states.map((s) => h('option', { value: s }))) : null,
    field('Meta (JSON)', area('metaJson', m.metaJson)),
  ], async (data, element) => {
    const values = {
      name: data.get('name'), description: data.get('description'), active: element.elements.active.checked,
      initialState: data.get('initialState'), metaJson: data.get('metaJson') || '',
    };
    if (editing) await api.catalog('UpdateModule', { ref: { key }, ...values });
    else await api.catalog('CreateModule', { module: { key: data.get('key'), ...values } });
  }, editing && (() => api.catalog('DeleteModule', { key })));
}

function groupForm(ref, parent) {
  const [moduleKey, key] = ref ? ref.split('/') : [parent.moduleKey, ''];
  const g = ref ? model.modules.get(moduleKey)?.groups.get(key)?.group || {} : {};
  const editing = Boolean(ref);
  return form(editing ? `Group ${ref}` : `New group in ${moduleKey}`, [
    field('Key', text('key', g.key, { required: true, disabled: editing })),
    field('Name', text('name', g.name)),
    field('Description', area('description', g.description)),
    field('Position', h('input', { type: 'number', name: 'position', value: String(g.position || 0), step: '1' })),
    field('Meta (JSON)', area('metaJson', g.metaJson)),
  ], async (data) => {
    const values = {
      name: data.get('name'), description: data.get('description'), position: Number(data.get('position') || 0),
      metaJson: data.get('metaJson') || '',
    };
    if (editing) await api.catalog('UpdateGroup', { ref: { moduleKey, key }, ...values });
    else await api.catalog('CreateGroup', { group: { moduleKey, key: data.get('key'), ...values } });
  }, editing && (() => api.catalog('DeleteGroup', { moduleKey, key })));
}

function optionForm(key, parent) {
  const o = key ? model.option(key) || {} : { moduleKey: parent.moduleKey, groupKey: parent.groupKey, editable: true };
  const editing = Boolean(key);
  const type = h('select', { name: 'type' },
    OPTION_TYPES.map((t) => h('option', { value: t, text: typeName(t), selected: t === (o.type || 'OPTION_TYPE_BOOLEAN') })));
  return form(editing ? `Option ${key}` : `New option in ${o.moduleKey}/${o.groupKey}`, [
    field('Key', text('key', o.key, { required: true, disabled: editing })),
    field('Name', text('name', o.name)),
    field('Description', area('description', o.description)),
    field('Type', type),
    field('Default value', text('defaultValue', o.defaultValue)),
    field('Editable in projects', checkbox('editable', o.editable)),
    field('Included by default', checkbox('includedByDefault', o.includedByDefault)),
    field('Module', text('moduleKey', o.moduleKey, { required: true })),
    field('Group', text('groupKey', o.groupKey, { required: true })),
    field('Constraints and meta (JSON)', area('metaJson', o.metaJson), 'min, max, step, max_length, pattern, values'),
  ], async (data, element) => {
    const values = {
      name: data.get('name'), description: data.get('description'), type: data.get('type'),
      defaultValue: data.get('defaultValue'), editable: element.elements.editable.checked,
      includedByDefault: element.elements.includedByDefault.checked, metaJson: data.get('metaJson') || '',
      moduleKey: data.get('moduleKey'), groupKey: data.get('groupKey'),
    };
    if (editing) await api.catalog('UpdateOption', { ref: { key }, ...values });
    else await api.catalog('CreateOption', { option: { key: data.get('key'), ...values } });
  }, editing && (() => api.catalog('DeleteOption', { key })));
}
