// The hub's API: the signed-in token, requests with it, and its errors.

const STORAGE_KEY = 'lockerhub.session';

/** The session lives in sessionStorage: it ends with the tab, and other sites cannot read it. */
export const session = {
  get() {
    try {
      const s = JSON.parse(sessionStorage.getItem(STORAGE_KEY));
      return s && typeof s.token === 'string' ? s : null;
    } catch {
      return null;
    }
  },
  save(s) { sessionStorage.setItem(STORAGE_KEY, JSON.stringify(s)); },
  clear() { sessionStorage.removeItem(STORAGE_KEY); },
};

/** ApiError is an answer other than 2xx, with the hub's stable code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status; // 0: the hub was not reached
    this.code = code;
  }

  /** title says in a few words what went wrong, for the start of an error message. */
  get title() {
    return {
      0: 'Hub unreachable', 400: 'Invalid request', 401: 'Signed out', 403: 'Not allowed',
      404: 'Not found', 409: 'Conflict', 429: 'Too many requests', 503: 'Unavailable',
      504: 'No answer in time',
    }[this.status] ?? `Error ${this.status}`;
  }

  /** text is the whole message for people: "Not allowed (403): a viewer token may not do this". */
  get text() {
    return this.status ? `${this.title} (${this.status}): ${this.message}` : `${this.title}: ${this.message}`;
  }
}

let onUnauthorized = () => {};

/** whenUnauthorized sets what happens when the hub refuses the token (401): sign in again. */
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

/** authHeaders returns the headers extra with the session's token added. */
export function authHeaders(extra = {}) {
  const s = session.get();
  return s ? { ...extra, Authorization: `Bearer ${s.token}` } : extra;
}

/** unauthorized reports a 401 answer: the session ends with the hub's message. */
export function unauthorized(err) {
  session.clear();
  onUnauthorized(err);
}

/**
 * request calls the API: path relative to /api/v1/, JSON in and out. It throws ApiError for
 * anything but 2xx (with status 0 when the hub cannot be reached) and ends the session on 401.
 * token overrides the session's (signing in), and then a 401 ends nothing: there is no session.
 * Relative URLs keep the app working behind a reverse proxy that mounts the hub under a prefix.
 */
export async function request(path, { method = 'GET', body, headers = {}, token } = {}) {
  const h = token ? { ...headers, Authorization: `Bearer ${token}` } : authHeaders(headers);
  h.Accept = 'application/json';
  if (body !== undefined) h['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(`api/v1/${path}`, {
      method, headers: h, cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'network', `the hub did not answer (${e.message})`);
  }
  const data = await resp.json().catch(() => null);
  if (resp.ok) return data;
  const err = data?.error
    ? new ApiError(resp.status, data.error.code, data.error.message)
    : new ApiError(resp.status, 'http', resp.statusText || 'unexpected answer');
  if (resp.status === 401 && !token) unauthorized(err);
  throw err;
}

/** query builds a query string from the defined values of params. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** idempotencyKey makes a random key for a command, so that a retried request sends one
 * command. crypto.randomUUID needs a secure context; a hub on a plain-HTTP LAN address is not. */
export function idempotencyKey() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return `dash-${Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')}`;
}

/**
 * capabilities asks the hub which role a token has (GET whoami), as a courtesy to hide buttons
 * it may not use; the API enforces the roles whatever the dashboard shows.
 */
export async function capabilities(token) {
  const me = await request('whoami', { token });
  const rank = ['viewer', 'technician', 'operator', 'admin'].indexOf(me.role);
  return { role: me.role, ack: rank >= 1, unlock: rank >= 2 };
}

/** roleName is the token's role, for the header. */
export function roleName(caps) {
  return caps?.role ?? 'viewer';
}
