// The demo panel: the faults `lockerhub demo` injected, so that whoever watches the dashboard
// can tell the alerts they caused. Only the demo serves this file (and index.html loads it only
// there); it reuses the app's modules and draws above <main>, which the app's views redraw.

import { request, session } from '../js/api.js';
import { fill, h } from '../js/dom.js';

const POLL_MS = 5000;

const panel = h('aside', { class: 'demo-panel', 'aria-labelledby': 'demo-panel-title', hidden: true });
document.getElementById('main').before(panel);

function time(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

function faultItem(f) {
  const what = f.door ? `door ${f.door} ${f.fault}` : f.fault;
  const when = f.cleared
    ? `${time(f.started)}–${time(f.cleared)}`
    : `since ${time(f.started)}${f.until ? `, until ${time(f.until)}` : ''}`;
  return h('li', { class: f.cleared ? 'cleared' : 'active' },
    h('a', { href: `#/unit/${encodeURIComponent(f.unit)}` }, f.unit), ' ',
    h('strong', {}, what), f.on_demand ? ' (on demand)' : '', ' ',
    h('span', { class: 'when' }, when));
}

function show(answer) {
  const active = answer.active ?? [];
  const cleared = answer.cleared ?? [];
  fill(panel,
    h('h2', { id: 'demo-panel-title' }, `Demo: ${active.length} fault${active.length === 1 ? '' : 's'} injected now`),
    active.length ? h('ul', {}, active.map(faultItem)) : h('p', {}, 'No fault injected right now.'),
    cleared.length ? h('details', {}, h('summary', {}, `Cleared (${cleared.length})`), h('ul', {}, cleared.map(faultItem))) : null);
  panel.hidden = false;
}

async function poll() {
  if (!session.get()) {
    panel.hidden = true;
  } else {
    try {
      show(await request('demo'));
    } catch {
      panel.hidden = true; // the hub is away or the token went: the app says so itself
    }
  }
  setTimeout(poll, POLL_MS);
}

poll();
