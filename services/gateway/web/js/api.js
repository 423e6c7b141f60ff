// Connect JSON calls to the services through the edge, authenticated by the access
// cookie, and the sign-in endpoints that set the cookies.

/** A refused call: the Connect code (`failed_precondition`), message and details. */
export class CallError extends Error {
  constructor(code, message, details = []) {
    super(message || code);
    this.code = code;
    this.details = details;
  }

  /**
   * The violations a `PreconditionFailure` detail lists (`{type, subject, description}`)
   * and the field violations of a `BadRequest`, as `{type: 'FIELD', subject, description}`.
   */
  get violations() {
    const found = [];
    for (const detail of this.details) {
      const bytes = decodeBase64(detail.value || '');
      if (detail.type === 'google.rpc.PreconditionFailure') {
        for (const v of fields(bytes)[1] || []) {
          const f = fields(v);
          found.push({ type: text(f[1]), subject: text(f[2]), description: text(f[3]) });
        }
      } else if (detail.type === 'google.rpc.BadRequest') {
        for (const v of fields(bytes)[1] || []) {
          const f = fields(v);
          found.push({ type: 'FIELD', subject: text(f[1]), description: text(f[2]) });
        }
      }
    }
    return found;
  }
}

let onSignedOut = () => {};
/** Called when the session has ended (a refresh was refused). */
export function whenSignedOut(handler) {
  onSignedOut = handler;
}

/**
 * Calls `path` (`stb.catalog.v1.Catalog/GetConfig`) with `body`; resolves to the reply
 * message, rejects with a `CallError`. An expired access cookie is refreshed once.
 */
export async function call(path, body = {}, retried = false) {
  let response;
  try {
    response = await fetch(`/${path}`, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'connect-protocol-version': '1' },
      body: JSON.stringify(body),
    });
  } catch (error) {
    throw new CallError('unavailable', 'the server cannot be reached');
  }
  const reply = await readJSON(response);
  if (response.ok) return reply || {};
  const failure = new CallError(reply?.code || `http_${response.status}`, reply?.message || response.statusText, reply?.details || []);
  if (failure.code === 'unauthenticated' && !retried && await refresh()) return call(path, body, true);
  throw failure;
}

async function readJSON(response) {
  const type = response.headers.get('content-type') || '';
  if (!type.includes('json')) return null;
  try {
    return await response.json();
  } catch {
    return null;
  }
}

/** Shorthands per service: `catalog('GetConfig', {})`. */
export const catalog = (method, body) => call(`stb.catalog.v1.Catalog/${method}`, body);
export const projects = (method, body) => call(`stb.project.v1.Projects/${method}`, body);
export const alarms = (method, body) => call(`stb.gateway.v1.Alarms/${method}`, body);
export const dashboards = (method, body) => call(`stb.gateway.v1.Dashboards/${method}`, body);

// MARK: the session

let refreshTimer = 0;
let refreshing = null;

/** The session from the access cookie (`{user, accessExpiresAtMs}`), or null. */
export async function session(retried = false) {
  const response = await fetch('/auth/session', { credentials: 'same-origin' });
  if (!response.ok) return !retried && (await refresh()) ? session(true) : null;
  return started(await readJSON(response));
}

/** Signs in; resolves to the session, rejects with a `CallError`. */
export async function login(username, password) {
  const response = await fetch('/auth/login', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  const reply = await readJSON(response);
  if (!response.ok) throw new CallError(reply?.code || `http_${response.status}`, reply?.message || 'sign-in refused');
  return started(reply);
}

/** Renews the cookies; false when the refresh token is no longer valid. */
export function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      try {
        const response = await fetch('/auth/refresh', {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'content-type': 'application/json' },
          body: '{}',
        });
        if (!response.ok) {
          if (response.status === 401) ended();
          return false;
        }
        started(await readJSON(response));
        return true;
      } catch {
        return false;
      } finally {
        refreshing = null;
      }
    })();
  }
  return refreshing;
}

/** Signs out: the refresh token is revoked and the cookies cleared. */
export async function logout() {
  clearTimeout(refreshTimer);
  await fetch('/auth/logout', { method: 'POST', credentials: 'same-origin', headers: { 'content-type': 'application/json' }, body: '{}' }).catch(() => {});
}

let current = null;
/** The signed-in user (`{id, username, role}`), or null. */
export function currentUser() {
  return current?.user || null;
}

function started(reply) {
  current = reply;
  clearTimeout(refreshTimer);
  const expires = Number(reply?.accessExpiresAtMs || 0);
  if (expires) {
    // A minute early (or at two thirds of a short lifetime), so a call never meets an
    // expired cookie.
    const left = expires - Date.now();
    const wait = Math.max(5000, Math.min(left - 60000, (left * 2) / 3));
    refreshTimer = setTimeout(() => refresh(), wait);
  }
  return reply;
}

function ended() {
  current = null;
  clearTimeout(refreshTimer);
  onSignedOut();
}

// MARK: protobuf details

function decodeBase64(value) {
  const padded = value.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((value.length + 3) % 4);
  try {
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  } catch {
    return new Uint8Array();
  }
}

// The length-delimited fields of a message by number (varints and fixed fields skipped):
// enough for the string-only detail messages.
function fields(bytes) {
  const found = {};
  let at = 0;
  const varint = () => {
    let value = 0;
    let shift = 0;
    while (at < bytes.length) {
      const byte = bytes[at++];
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) break;
      shift += 7;
    }
    return value;
  };
  while (at < bytes.length) {
    const tag = varint();
    const kind = tag % 8;
    const number = Math.floor(tag / 8);
    if (kind === 2) {
      const length = varint();
      (found[number] ||= []).push(bytes.subarray(at, at + length));
      at += length;
    } else if (kind === 0) varint();
    else if (kind === 1) at += 8;
    else if (kind === 5) at += 4;
    else break;
  }
  return found;
}

function text(values) {
  return values && values.length ? new TextDecoder().decode(values[0]) : '';
}
