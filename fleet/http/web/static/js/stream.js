// The hub's live event stream, GET /api/v1/stream: server-sent events read with fetch(), since
// EventSource cannot send the Authorization header. It reconnects with backoff when it drops,
// and falls back to polling where the hub has no stream (404).

import { ApiError, authHeaders, unauthorized } from './api.js';

/**
 * SSEParser turns the text of an event stream, in chunks split anywhere, into events
 * (onEvent(name, data)) as the HTML standard defines them: "event:" and "data:" fields, data
 * lines joined with newlines, comments (": keepalive") and other fields ignored, an event
 * dispatched at a blank line.
 */
export class SSEParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buf = '';
    this.name = '';
    this.data = [];
  }

  feed(text) {
    this.buf += text;
    for (;;) {
      const nl = this.buf.search(/[\r\n]/);
      // A \r at the very end may be the first half of \r\n: wait for the next chunk.
      if (nl < 0 || (this.buf[nl] === '\r' && nl === this.buf.length - 1)) return;
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(this.buf.startsWith('\r\n', nl) ? nl + 2 : nl + 1);
      this.line(line);
    }
  }

  line(line) {
    if (line === '') {
      if (this.data.length) this.onEvent(this.name || 'message', this.data.join('\n'));
      this.name = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.name = value;
    else if (field === 'data') this.data.push(value);
  }
}

// Reconnection: exponential backoff with jitter, reset once a connection delivered something.
// A stream silent for longer than three of the hub's keepalives (15 s) is taken for dead; phones
// moving between networks keep such half-open connections.
const BACKOFF_MIN = 1000;
const BACKOFF_MAX = 30000;
const SILENCE_LIMIT = 45000;
// Without a stream on the hub: poll every 5 s, and look for the stream again every minute.
export const POLL_INTERVAL = 5000;
const STREAM_RETRY = 60000;

/**
 * LiveStream follows the hub's events for the fleet in the token's scope, or one device.
 *   handlers: {health, device, alert, telemetry, door, command: (data) => void}
 *   poll: async () => void, fetches the same state with plain requests (fallback and resync)
 *   onState(state, detail): 'connecting' | 'live' | 'reconnecting' (detail: seconds) | 'polling'
 * Events missed while disconnected are made good by poll() on reconnecting: the hub sends
 * health and device views at connect, but alerts and commands only as they happen.
 */
export class LiveStream {
  constructor({ device = '', handlers = {}, poll = async () => {}, onState = () => {} }) {
    this.url = `api/v1/stream${device ? `?device=${encodeURIComponent(device)}` : ''}`;
    this.handlers = handlers;
    this.poll = poll;
    this.onState = onState;
    this.stopped = false;
    this.controller = null;
    this.timer = null;
    this.wake = null;
  }

  start() {
    this.run();
    return this;
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
    clearTimeout(this.timer);
    this.wake?.();
  }

  sleep(ms) {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(resolve, ms);
    });
  }

  async run() {
    let backoff = BACKOFF_MIN;
    let connections = 0;
    while (!this.stopped) {
      this.onState(connections ? 'reconnecting' : 'connecting');
      let result;
      try {
        result = await this.connect(connections > 0);
      } catch (e) {
        result = { error: e };
      }
      if (this.stopped) return;
      if (result.missing) {
        await this.pollFor(STREAM_RETRY);
        continue;
      }
      if (result.unauthorized) return;
      connections += 1;
      if (result.delivered) backoff = BACKOFF_MIN;
      const wait = backoff * (0.8 + Math.random() * 0.4);
      backoff = Math.min(backoff * 2, BACKOFF_MAX);
      this.onState('reconnecting', Math.round(wait / 1000));
      await this.sleep(wait);
    }
  }

  /** pollFor polls every POLL_INTERVAL for ms, while the hub has no stream. The page has just
   * loaded (or polled), so it waits first. */
  async pollFor(ms) {
    this.onState('polling');
    for (let t = 0; t < ms && !this.stopped; t += POLL_INTERVAL) {
      await this.sleep(POLL_INTERVAL);
      if (!this.stopped) await this.poll().catch(() => {}); // views show their own errors
    }
  }

  /** connect reads one connection of the stream until it ends. */
  async connect(resync) {
    const controller = new AbortController();
    this.controller = controller;
    let watchdog;
    const alive = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => controller.abort(), SILENCE_LIMIT);
    };
    alive();
    try {
      const resp = await fetch(this.url, {
        headers: authHeaders({ Accept: 'text/event-stream' }),
        cache: 'no-store',
        signal: controller.signal,
      });
      if (!resp.ok) {
        const { code, message } = (await resp.json().catch(() => null))?.error ?? {};
        if (resp.status === 401) {
          unauthorized(new ApiError(401, code, message ?? 'the token was refused'));
          return { unauthorized: true };
        }
        // A hub without the stream: no such route (a plain 404; the API's own 404 is JSON, for
        // an unknown device), or the API says the stream is unavailable.
        if (resp.status === 404 && !code || resp.status === 503 && code === 'unavailable') return { missing: true };
        return {};
      }
      this.onState('live');
      if (resync) await this.poll().catch(() => {});
      let delivered = false;
      const parser = new SSEParser((name, data) => {
        delivered = true;
        this.dispatch(name, data);
      });
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          alive();
          parser.feed(value);
        }
      } catch {
        // Dropped, or aborted by the watchdog or stop(): run() decides what comes next.
      }
      return { delivered };
    } finally {
      clearTimeout(watchdog);
    }
  }

  dispatch(name, data) {
    if (name === 'lost') {
      this.poll().catch(() => {}); // fell behind: fetch the whole state again
      return;
    }
    const handler = this.handlers[name];
    if (!handler) return;
    let value;
    try {
      value = JSON.parse(data);
    } catch {
      return; // not ours to fix; the next event will do
    }
    handler(value);
  }
}
