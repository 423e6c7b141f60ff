// The live streams: EventSources on /events (one for the topics every view shows, one for
// the selected project), and the connection state (live, reconnecting, resynced) they
// report together.

const listeners = new Set();
const stateListeners = new Set();
const streams = new Map();
let shownState = 'reconnecting';
let renew = async () => false;

/**
 * Calls `handler({kind, topic, data, receivedAt})` for each snapshot, delta and resync
 * (`receivedAt`: performance.now() when the event arrived, before it was parsed).
 */
export function onEvent(handler) {
  listeners.add(handler);
  return () => listeners.delete(handler);
}

/** Calls `handler(state)` now and whenever the connection state changes. */
export function onState(handler) {
  stateListeners.add(handler);
  handler(shownState);
}

/** The connection state: `live`, `reconnecting` or `resynced`. */
export function connectionState() {
  return shownState;
}

// The page's state is the worst of its streams': reconnecting, then resynced, then live.
function update() {
  const states = [...streams.values()].map((stream) => stream.state);
  const next = !states.length || states.includes('reconnecting') ? 'reconnecting' : states.includes('resynced') ? 'resynced' : 'live';
  if (next === shownState) return;
  shownState = next;
  for (const handler of stateListeners) handler(shownState);
}

/**
 * Opens (or reopens on other topics) the stream `name` on `topics`; no topics closes it.
 * `renewSession` renews the cookies when the server ends a stream as unauthenticated.
 */
export function follow(name, topics, renewSession = renew) {
  renew = renewSession;
  const existing = streams.get(name);
  if (existing && existing.topics.join() === topics.join()) return;
  existing?.close();
  streams.delete(name);
  if (topics.length) streams.set(name, new Stream(topics));
  update();
}

// Each stream's topics and state, for diagnostics.
window.stb = Object.assign(window.stb || {}, {
  live: () => [...streams].map(([name, stream]) => ({ name, topics: stream.topics, state: stream.state, readyState: stream.source?.readyState })),
});

/** Closes every stream (signing out). */
export function closeAll() {
  for (const stream of streams.values()) stream.close();
  streams.clear();
  update();
}

// Stream endings that a reopened stream would meet again.
const FINAL = new Set(['permission_denied', 'not_found', 'invalid_argument']);

class Stream {
  constructor(topics) {
    this.topics = topics;
    this.state = 'reconnecting';
    this.lastEventId = '';
    this.failures = 0;
    this.hadData = false;
    this.fresh = true;
    this.source = null;
    this.reopenTimer = 0;
    this.resyncedTimer = 0;
    this.connect();
  }

  setState(next) {
    this.state = next;
    update();
  }

  close() {
    clearTimeout(this.reopenTimer);
    clearTimeout(this.resyncedTimer);
    this.source?.close();
    this.source = null;
  }

  connect() {
    clearTimeout(this.reopenTimer);
    this.source?.close();
    const query = new URLSearchParams({ topics: this.topics.join(',') });
    // A fresh EventSource cannot send Last-Event-ID: the resume token (not a credential)
    // goes in the query too, for a server that resumes from it after an outage.
    if (this.lastEventId) query.set('lastEventId', this.lastEventId);
    const source = new EventSource(`/events?${query}`);
    this.source = source;
    // A new EventSource starts with snapshots; after an outage they replace the state.
    this.fresh = true;
    // Accepted (the browser's own reconnects resume with Last-Event-ID): live again,
    // unless a resync follows.
    source.addEventListener('open', () => {
      if (source === this.source && this.state === 'reconnecting') this.setState('live');
    });
    for (const kind of ['snapshot', 'delta', 'resync']) source.addEventListener(kind, (event) => this.received(source, event, kind));
    source.addEventListener('error', (event) => {
      if (source !== this.source) return;
      if (event instanceof MessageEvent && event.data) {
        // The server ended the stream: renew the session when it expired, then reopen.
        let code = '';
        try {
          code = JSON.parse(event.data).code;
        } catch {}
        source.close();
        if (FINAL.has(code)) {
          // Reopening would be refused again (a project no longer visible, say): this
          // stream stops, and does not hold the page's state at reconnecting.
          this.source = null;
          this.setState('live');
          return;
        }
        this.setState('reconnecting');
        this.reopen(code === 'unauthenticated');
        return;
      }
      this.setState('reconnecting');
      // The browser retries by itself unless the answer was not an event stream (the
      // gateway down behind the edge, an expired cookie): then the page reopens it.
      if (source.readyState === EventSource.CLOSED) this.reopen(true);
    });
  }

  reopen(renewFirst) {
    this.failures += 1;
    const delay = Math.min(5000, 250 * 2 ** Math.min(this.failures, 5)) * (0.5 + Math.random() / 2);
    this.reopenTimer = setTimeout(async () => {
      if (renewFirst) await renew();
      if (this.source) this.connect();
    }, delay);
  }

  received(source, event, kind) {
    if (source !== this.source) return;
    const receivedAt = performance.now();
    if (event.lastEventId) this.lastEventId = event.lastEventId;
    this.failures = 0;
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    if (kind === 'delta') this.fresh = false;
    if (kind === 'resync' || (kind === 'snapshot' && this.fresh && this.hadData)) {
      // Fresh snapshots after an outage replace the page's state: say so for a while.
      clearTimeout(this.resyncedTimer);
      this.setState('resynced');
      this.resyncedTimer = setTimeout(() => this.setState('live'), 3000);
    } else if (this.state === 'reconnecting') {
      this.setState('live');
    }
    this.hadData = true;
    for (const handler of listeners) handler({ kind, topic: data.topic || '', data, receivedAt });
  }
}
