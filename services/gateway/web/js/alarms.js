// The alarms panel: the alarms of the projects the user sees, acknowledged by operators.

import * as api from './api.js';
import { byId, fill, h, say, statusLine, when } from './dom.js';
import { may } from './roles.js';

let role = 'viewer';
let alarms = [];
let reloadTimer = 0;
const status = statusLine();
const listeners = new Set();

/** Calls `handler()` when the alarm list changed. */
export function onAlarmsChange(handler) {
  listeners.add(handler);
}

/** The alarms as last listed, newest first. */
export function knownAlarms() {
  return alarms;
}

/** Sets up the panel for a user with `userRole`. */
export function mountAlarms(userRole) {
  role = userRole;
  byId('alarms-status').replaceWith(status);
  status.id = 'alarms-status';
}

/** Lists the alarms again (on load, and when the `alarms` topic says one changed). */
export async function loadAlarms() {
  try {
    const reply = await api.alarms('ListAlarms', { page: { pageSize: 200 } });
    alarms = reply.alarms || [];
  } catch (error) {
    say(status, error.message, true);
    return;
  }
  render();
  for (const handler of listeners) handler();
}

/** An `alarms` delta: the changed alarm in place when the event carries it, else a new list. */
export function alarmsChanged(data) {
  // The gateway's outbox event carries the alarm itself (an `AlarmEvent` wraps it).
  const alarm = data.event?.alarm || (data.event?.id && data.event?.projectKey ? data.event : null);
  if (alarm) {
    const index = alarms.findIndex((a) => a.id === alarm.id);
    if (index >= 0) alarms[index] = alarm;
    else alarms.unshift(alarm);
    render();
    for (const handler of listeners) handler();
    return;
  }
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(loadAlarms, 100);
}

const name = (value, prefix) => String(value || '').replace(prefix, '').toLowerCase();

/** One alarm as a list item (also used by the dashboards' alarm widget). */
export function alarmItem(alarm, withActions) {
  const state = name(alarm.status, 'ALARM_STATUS_');
  const item = h('li', { class: `alarm ${state} ${name(alarm.severity, 'ALARM_SEVERITY_')}`, 'data-alarm': alarm.id },
    h('span', { class: 'severity', text: name(alarm.severity, 'ALARM_SEVERITY_') }), ' ',
    h('strong', { text: alarm.projectKey }), ` ${state} · raised ${when(alarm.raisedAtMs)} · `,
    h('span', { text: (alarm.violations || []).map((v) => v.message || v.ruleKey).join('; ') }),
    alarm.acknowledgedBy ? h('span', { class: 'muted', text: ` · acknowledged by ${alarm.acknowledgedBy}${alarm.acknowledgementNote ? `: ${alarm.acknowledgementNote}` : ''}` }) : null);
  if (withActions && state === 'active' && may(role, 'acknowledgeAlarm')) {
    const note = h('input', { type: 'text', 'aria-label': `Note for alarm ${alarm.id}`, placeholder: 'note' });
    item.append(' ', note, ' ', h('button', {
      type: 'button', text: 'Acknowledge', on: {
        click: async () => {
          try {
            const updated = await api.alarms('AcknowledgeAlarm', { id: alarm.id, note: note.value });
            alarmsChanged({ event: { alarm: updated } });
            say(status, `Alarm ${alarm.id} acknowledged.`);
          } catch (error) {
            say(status, error.message, true);
          }
        },
      },
    }));
  }
  return item;
}

function render() {
  fill(byId('alarms-list'), alarms.length ? alarms.map((a) => alarmItem(a, true)) : h('li', { class: 'muted', text: 'No alarms.' }));
}
