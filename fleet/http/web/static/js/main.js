// The dashboard's shell: sign-in state, the header, hash routes and the live stream of the page
// on screen.
//
// Routes: #/ fleet overview, #/alerts open alerts, #/parcels parcels in lockers, #/unit/{id}
// one unit. Each view module
// exports mount(main, ctx) and returns a function that unmounts it; ctx gives it the token's
// capabilities, the route's parameters, live() to follow the event stream and title() to name
// the page.

import { session, whenUnauthorized, roleName } from './api.js';
import { announce, fill, h } from './dom.js';
import { LiveStream } from './stream.js';
import * as signin from './views/signin.js';
import * as overview from './views/overview.js';
import * as alerts from './views/alerts.js';
import * as unit from './views/unit.js';
import * as parcels from './views/parcels.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const sessionBar = document.getElementById('session');
const conn = document.getElementById('conn');
const alertCount = document.getElementById('alert-count');

let unmount = null;
let stream = null;
let notice = null; // {text, kind}: shown on the sign-in form (signed out, token refused)

const notFound = {
  mount(el, ctx) {
    ctx.title('Not found');
    fill(el, h('h1', { tabindex: -1 }, 'Page not found'),
      h('p', {}, 'There is nothing at this address. ', h('a', { href: '#/' }, 'Go to the fleet overview.')));
  },
};

/** route reads the URL fragment. */
function route() {
  const path = location.hash.replace(/^#/, '') || '/';
  if (path === '/') return { view: overview, nav: 'overview' };
  if (path === '/alerts') return { view: alerts, nav: 'alerts' };
  if (path === '/parcels') return { view: parcels, nav: 'parcels' };
  const m = path.match(/^\/unit\/([^/]+)$/);
  if (m) {
    try {
      return { view: unit, params: { id: decodeURIComponent(m[1]) } };
    } catch {
      // a malformed escape: not a unit
    }
  }
  return { view: notFound };
}

/** render shows the sign-in form or the page of the current route, replacing what was shown. */
function render({ focus = false } = {}) {
  unmount?.();
  unmount = null;
  stopLive();
  const s = session.get();
  nav.hidden = !s;
  sessionBar.hidden = !s;
  if (!s) {
    unmount = signin.mount(main, { notice, onSignedIn });
    notice = null;
    return;
  }
  document.getElementById('role').textContent = roleName(s.caps);
  const r = route();
  for (const a of nav.querySelectorAll('a[data-nav]')) {
    if (a.dataset.nav === r.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  unmount = r.view.mount(main, { caps: s.caps, params: r.params ?? {}, live, title }) ?? null;
  // Moving focus to the new page's heading tells screen reader users that the page changed.
  if (focus) main.querySelector('h1')?.focus();
}

function title(text) {
  document.title = `${text} · lockerhub`;
}

function onSignedIn() {
  announce('Signed in.');
  render({ focus: true });
}

/** live follows the event stream for the page (the fleet, or one device); one at a time. */
function live({ device = '', handlers = {}, poll }) {
  stopLive();
  stream = new LiveStream({
    device,
    poll,
    onState: showConnection,
    handlers: {
      ...handlers,
      health(summary) {
        showAlertCount(summary.total?.alerts_open);
        handlers.health?.(summary);
      },
    },
  }).start();
  return stream;
}

function stopLive() {
  stream?.stop();
  stream = null;
}

const CONNECTION_TEXT = {
  connecting: () => 'Connecting…',
  live: () => 'Live',
  reconnecting: (s) => (s ? `Reconnecting in ${s} s` : 'Reconnecting…'),
  polling: () => 'Updating every 5 s',
};

let interrupted = false; // the stream dropped and has not come back yet

function showConnection(state, detail) {
  if (conn.dataset.state === 'live' && state === 'reconnecting') {
    interrupted = true;
    announce('Live updates interrupted; reconnecting.');
  } else if (interrupted && state === 'live') {
    interrupted = false;
    announce('Live updates restored.');
  }
  conn.dataset.state = state;
  conn.textContent = CONNECTION_TEXT[state](detail);
}

function showAlertCount(n) {
  alertCount.textContent = n ? `(${n} open)` : '';
}

// A token refused later (revoked, or the hub's data reset) ends the session: back to sign-in,
// which says why (as an alert, so screen readers read it at once).
whenUnauthorized((err) => {
  if (nav.hidden) return; // already on the sign-in form
  notice = { kind: 'error', text: `The hub refused the token: ${err.message}. Sign in again.` };
  render({ focus: true });
});

document.getElementById('sign-out').addEventListener('click', () => {
  session.clear();
  notice = { kind: 'info', text: 'Signed out. The token is forgotten in this tab.' };
  render({ focus: true });
});

// The skip link jumps to the content without touching the URL fragment, which holds the route.
document.getElementById('skip-link').addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});

window.addEventListener('hashchange', () => render({ focus: true }));
render();
