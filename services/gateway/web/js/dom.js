// A tiny DOM helper: build elements from a tag, properties and children.

/** The element with this id. */
export function byId(id) {
  return document.getElementById(id);
}

/**
 * An element: `props` sets attributes (`class`, `for`, `aria-*`, `data-*`, …), `text`
 * its text, `on` an object of event listeners; properties that elements carry as such
 * (`value`, `checked`, `disabled`, `hidden`, `type`) are set as properties.
 * Children are nodes, strings or arrays of them; null and false are skipped.
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'text') element.textContent = value;
    else if (name === 'on') for (const [event, listener] of Object.entries(value)) element.addEventListener(event, listener);
    else if (name in PROPERTIES) element[name] = value;
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  append(element, children);
  return element;
}

const PROPERTIES = { value: 1, checked: 1, disabled: 1, hidden: 1, type: 1, selected: 1, min: 1, max: 1, step: 1 };

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces the element's children. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** A labelled form field: the label, then the control, in one wrapper. */
export function field(label, control, hint) {
  if (!control.id) control.id = uniqueId('f');
  return h('div', { class: 'field' }, h('label', { for: control.id, text: label }), control,
    hint ? h('span', { class: 'hint', text: hint }) : null);
}

let counter = 0;
/** A fresh element id with this prefix. */
export function uniqueId(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** A status line for a view (errors and confirmations), announced politely. */
export function statusLine() {
  return h('p', { class: 'status', role: 'status', 'aria-live': 'polite' });
}

/** Shows `message` in a status line, as an error when `error`. */
export function say(line, message, error = false) {
  line.textContent = message;
  line.classList.toggle('error', error);
}

/** A time in milliseconds since the epoch as local date and time, or '' for none. */
export function when(ms) {
  const value = Number(ms || 0);
  return value ? new Date(value).toLocaleString() : '';
}
