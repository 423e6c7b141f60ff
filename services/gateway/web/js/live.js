// The live stream: one EventSource on /events for every topic the page shows, and the
// connection state (live, reconnecting, resynced) it reports.

const listeners = new Set();
let source = null;
let topics = [];
let state = 'reconnecting';
let lastEventId = '';
let reopenTimer = 0;
let resyncedTimer = 0;
let failures = 0;
let hadData = false;
let refresh = async () => false;

/**
 * Calls `handler({kind, topic, data, receivedAt})` for each snapshot, delta and resync
 * (`receivedAt`: performance.now() when the event arrived, before it was parsed).
 */
export function onEvent(handler) {
  listeners.add(handler);
  return () => listeners.delete(handler);
}

const stateListeners = new Set();
/** Calls `handler(state)` when the connection state changes. */
export function onState(handler) {
  stateListeners.add(handler);
  handler(state);
}

/** The connection state: `live`, `reconnecting` or `resynced`. */
export function connectionState() {
  return state;
}

function setState(next) {
  if (next === state) return;
  state = next;
  for (const handler of stateListeners) handler(state);
}

/** Opens the stream on `names`; `renew` renews the session when the server ends it. */
export function open(names, renew) {
  topics = names;
  refresh = renew;
  lastEventId = '';
  hadData = false;
  connect();
}

/** Closes the stream (signing out). */
export function close() {
  clearTimeout(reopenTimer);
  source?.close();
  source = null;
  setState('reconnecting');
}

function connect() {
  clearTimeout(reopenTimer);
  source?.close();
  const query = new URLSearchParams({ topics: topics.join(',') });
  // A fresh EventSource cannot send Last-Event-ID: the resume token (not a credential)
  // goes in the query so that a stream reopened after an outage resumes too.
  if (lastEventId) query.set('lastEventId', lastEventId);
  const stream = new EventSource(`/events?${query}`);
  source = stream;
  stream.addEventListener('snapshot', (event) => received(stream, event, 'snapshot'));
  stream.addEventListener('delta', (event) => received(stream, event, 'delta'));
  stream.addEventListener('resync', (event) => received(stream, event, 'resync'));
  stream.addEventListener('error', (event) => {
    if (stream !== source) return;
    if (event instanceof MessageEvent && event.data) {
      // The server ended the stream: renew the session when it expired, then reopen.
      let code = '';
      try {
        code = JSON.parse(event.data).code;
      } catch {}
      stream.close();
      setState('reconnecting');
      reopen(code === 'unauthenticated');
      return;
    }
    setState('reconnecting');
    // The browser retries by itself unless the answer was not an event stream (the
    // gateway down behind the edge, an expired cookie): then the page reopens it.
    if (stream.readyState === EventSource.CLOSED) reopen(true);
  });
}

function reopen(renew) {
  failures += 1;
  const delay = Math.min(5000, 250 * 2 ** Math.min(failures, 5)) * (0.5 + Math.random() / 2);
  reopenTimer = setTimeout(async () => {
    if (renew) await refresh();
    connect();
  }, delay);
}

function received(stream, event, kind) {
  if (stream !== source) return;
  const receivedAt = performance.now();
  if (event.lastEventId) lastEventId = event.lastEventId;
  failures = 0;
  let data;
  try {
    data = JSON.parse(event.data);
  } catch {
    return;
  }
  if (kind === 'resync' || (kind === 'snapshot' && state === 'reconnecting' && hadData)) {
    // Fresh snapshots after an outage replace the page's state: say so for a while.
    setState('resynced');
    clearTimeout(resyncedTimer);
    resyncedTimer = setTimeout(() => setState('live'), 3000);
  } else if (state === 'reconnecting') {
    setState('live');
  }
  hadData = true;
  for (const handler of listeners) handler({ kind, topic: data.topic || '', data, receivedAt });
}
