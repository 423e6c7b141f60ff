// The catalog as the page holds it: modules → groups → options, with each module's
// states and transitions, replaced from a snapshot and changed in place by each live
// change event.

/** The option types by their proto names. */
export const OPTION_TYPES = ['OPTION_TYPE_BOOLEAN', 'OPTION_TYPE_INTEGER', 'OPTION_TYPE_STRING', 'OPTION_TYPE_ENUM'];

/** `OPTION_TYPE_INTEGER` → `integer`. */
export function typeName(type) {
  return String(type || 'OPTION_TYPE_UNSPECIFIED').replace('OPTION_TYPE_', '').toLowerCase().replace('boolean', 'bool');
}

/** An entity's meta JSON text as an object ({} when empty or not an object). */
export function meta(text) {
  if (!text) return {};
  try {
    const value = JSON.parse(text);
    return value && typeof value === 'object' && !Array.isArray(value) ? value : {};
  } catch {
    return {};
  }
}

/** The constraints an option's meta sets, as a short text (`1–100 step 5`). */
export function constraintsText(option) {
  const m = meta(option.metaJson);
  const parts = [];
  if (m.min !== undefined || m.max !== undefined) parts.push(`${m.min ?? '…'}–${m.max ?? '…'}`);
  if (m.step !== undefined) parts.push(`step ${m.step}`);
  if (Array.isArray(m.values)) parts.push(`one of ${m.values.join(', ')}`);
  if (m.max_length !== undefined) parts.push(`≤ ${m.max_length} chars`);
  if (m.pattern !== undefined) parts.push(`matches ${m.pattern}`);
  return parts.join('; ');
}

export class CatalogModel {
  constructor() {
    this.modules = new Map();
    // Where each option lives: option key → {moduleKey, groupKey}.
    this.placeOf = new Map();
    this.revision = 0;
  }

  /** Replaces everything with a `GetConfigResponse`. */
  replace(config) {
    this.modules = new Map();
    this.placeOf = new Map();
    this.revision = Number(config.revision || 0);
    for (const entry of config.modules || []) {
      const module = { module: entry.module, groups: new Map(), states: new Map(), transitions: new Map() };
      this.modules.set(entry.module.key, module);
      for (const g of entry.groups || []) {
        const group = { group: g.group, options: new Map() };
        module.groups.set(g.group.key, group);
        for (const option of g.options || []) {
          group.options.set(option.key, option);
          this.placeOf.set(option.key, { moduleKey: entry.module.key, groupKey: g.group.key });
        }
      }
      for (const state of entry.states || []) module.states.set(state.name, state);
      for (const t of entry.transitions || []) module.transitions.set(`${t.fromState}/${t.event}`, t);
    }
  }

  /** The option with this key, or undefined. */
  option(key) {
    const place = this.placeOf.get(key);
    return place && this.modules.get(place.moduleKey)?.groups.get(place.groupKey)?.options.get(key);
  }

  /** Counts: modules, groups, options. */
  counts() {
    let groups = 0;
    for (const module of this.modules.values()) groups += module.groups.size;
    return { modules: this.modules.size, groups, options: this.placeOf.size };
  }

  /**
   * Applies one catalog `ChangeEvent` (proto JSON). Returns `{entity, key, structural}`:
   * structural when rows appear, disappear or move (the row list must be rebuilt).
   */
  apply(event) {
    const deleted = String(event.action || '').includes('DELETED');
    const state = event.state || {};
    const revision = Number(event.revision || 0);
    if (revision > this.revision) this.revision = revision;
    if (state.option) return this.applyOption(state.option, deleted);
    if (state.group) return this.applyGroup(state.group, deleted);
    if (state.module) return this.applyModule(state.module, deleted);
    if (state.state) return this.applyMachine('states', state.state.moduleKey, state.state.name, state.state, deleted);
    if (state.transition) {
      const t = state.transition;
      return this.applyMachine('transitions', t.moduleKey, `${t.fromState}/${t.event}`, t, deleted);
    }
    return { entity: event.entity, key: event.key, structural: false };
  }

  applyOption(option, deleted) {
    const place = this.placeOf.get(option.key);
    const result = { entity: 'option', key: option.key, structural: true };
    if (place && !deleted && place.moduleKey === option.moduleKey && place.groupKey === option.groupKey) {
      this.modules.get(place.moduleKey).groups.get(place.groupKey).options.set(option.key, option);
      result.structural = false;
      return result;
    }
    if (place) {
      this.modules.get(place.moduleKey)?.groups.get(place.groupKey)?.options.delete(option.key);
      this.placeOf.delete(option.key);
    }
    if (!deleted) {
      const group = this.modules.get(option.moduleKey)?.groups.get(option.groupKey);
      if (group) {
        group.options.set(option.key, option);
        this.placeOf.set(option.key, { moduleKey: option.moduleKey, groupKey: option.groupKey });
      }
    }
    return result;
  }

  applyGroup(group, deleted) {
    const module = this.modules.get(group.moduleKey);
    const key = `${group.moduleKey}/${group.key}`;
    if (!module) return { entity: 'group', key, structural: false };
    const existing = module.groups.get(group.key);
    if (deleted) {
      if (existing) for (const optionKey of existing.options.keys()) this.placeOf.delete(optionKey);
      module.groups.delete(group.key);
      return { entity: 'group', key, structural: true };
    }
    if (existing) {
      const moved = existing.group.position !== group.position;
      existing.group = group;
      if (moved) this.sortGroups(module);
      return { entity: 'group', key, structural: moved };
    }
    module.groups.set(group.key, { group, options: new Map() });
    this.sortGroups(module);
    return { entity: 'group', key, structural: true };
  }

  sortGroups(module) {
    module.groups = new Map([...module.groups].sort(([, a], [, b]) => (a.group.position || 0) - (b.group.position || 0) || a.group.key.localeCompare(b.group.key)));
  }

  applyModule(module, deleted) {
    const existing = this.modules.get(module.key);
    if (deleted) {
      if (existing) for (const group of existing.groups.values()) for (const key of group.options.keys()) this.placeOf.delete(key);
      this.modules.delete(module.key);
      return { entity: 'module', key: module.key, structural: true };
    }
    if (existing) {
      existing.module = module;
      return { entity: 'module', key: module.key, structural: false };
    }
    this.modules.set(module.key, { module, groups: new Map(), states: new Map(), transitions: new Map() });
    return { entity: 'module', key: module.key, structural: true };
  }

  applyMachine(kind, moduleKey, key, value, deleted) {
    const module = this.modules.get(moduleKey);
    if (module) {
      if (deleted) module[kind].delete(key);
      else module[kind].set(key, value);
    }
    return { entity: kind === 'states' ? 'state' : 'transition', key: `${moduleKey}/${key}`, structural: false, moduleKey };
  }

  /**
   * The rows to show, in order: each module, its state machine, its groups and their
   * options; collapsed modules and groups hide their children; a filter keeps the
   * options whose key or name contains it (and their module and group).
   */
  rows(collapsed, filter = '') {
    const rows = [];
    const needle = filter.trim().toLowerCase();
    for (const [moduleKey, module] of this.modules) {
      const moduleRow = { entity: 'module', key: moduleKey, moduleKey, depth: 0 };
      if (needle) {
        const matches = [];
        for (const [groupKey, group] of module.groups) {
          const options = [];
          for (const [key, option] of group.options) {
            if (key.toLowerCase().includes(needle) || String(option.name || '').toLowerCase().includes(needle)) {
              options.push({ entity: 'option', key, moduleKey, groupKey, depth: 2 });
            }
          }
          if (options.length || groupKey.toLowerCase().includes(needle)) {
            matches.push({ entity: 'group', key: `${moduleKey}/${groupKey}`, moduleKey, groupKey, depth: 1 }, ...options);
          }
        }
        if (matches.length || moduleKey.toLowerCase().includes(needle)) rows.push(moduleRow, ...matches);
        continue;
      }
      rows.push(moduleRow);
      if (collapsed.has(moduleKey)) continue;
      if (module.states.size || module.transitions.size) rows.push({ entity: 'machine', key: `${moduleKey}#machine`, moduleKey, depth: 1 });
      for (const [groupKey, group] of module.groups) {
        const key = `${moduleKey}/${groupKey}`;
        rows.push({ entity: 'group', key, moduleKey, groupKey, depth: 1 });
        if (collapsed.has(key)) continue;
        for (const optionKey of group.options.keys()) rows.push({ entity: 'option', key: optionKey, moduleKey, groupKey, depth: 2 });
      }
    }
    return rows;
  }
}
