// Parcels: the parcels inside the compartments of the token's sites, overdue ones first
// (perishables first, oldest first: the hub's order), then the others, filtered by site. Kept
// current by asking again on a parcel's change in the event stream, when polling, and every
// half minute (a parcel turns overdue without any event).

import { query, request } from '../api.js';
import { cell, fill, h, keyed, uid } from '../dom.js';
import { carrierText, compartmentLabel, dwellText, statusLabel } from '../parcels.js';

const REFRESH = 30000;

// The site chosen outlives the page, as the overview's filters do.
let chosenSite = '';

export function mount(main, { live, title }) {
  title('Parcels');
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading…');
  const siteSelect = h('select', { id: uid('site'), name: 'site' }, h('option', { value: '' }, 'All sites'));
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter parcels' },
    h('div', { class: 'field' }, h('label', { for: siteSelect.id }, 'Site'), siteSelect));
  form.addEventListener('submit', (e) => e.preventDefault());
  siteSelect.addEventListener('change', () => {
    chosenSite = siteSelect.value;
    load().catch(showError);
  });
  const overdue = parcelTable('overdue', 'Overdue', 'No parcel is overdue.');
  const inside = parcelTable('inside', 'In lockers', 'No other parcel is in a locker.');
  fill(main, h('h1', { tabindex: -1 }, 'Parcels'), error, form, status, overdue.section, inside.section);

  function showError(err) {
    error.textContent = err.text ?? err.message;
    error.hidden = false;
  }

  let stopped = false;
  async function load() {
    // The sites come from the health counts, which the hub keeps at hand.
    const [res, health] = await Promise.all([request(`occupancy/parcels${query({ site: chosenSite })}`), request('health')]);
    if (stopped) return;
    const sites = health.sites.map((s) => s.site);
    if ([...siteSelect.options].slice(1).map((o) => o.value).join() !== sites.join()) {
      fill(siteSelect, h('option', { value: '' }, 'All sites'), sites.map((s) => h('option', { value: s }, s)));
    }
    siteSelect.value = chosenSite;
    const late = res.parcels.filter((p) => p.overdue);
    overdue.show(late);
    inside.show(res.parcels.filter((p) => !p.overdue));
    status.textContent = `${res.parcels.length} ${res.parcels.length === 1 ? 'parcel' : 'parcels'} in lockers, ${late.length} overdue`;
    error.hidden = true;
  }

  // A parcel's change on the stream asks again, once for a burst of them.
  let again = 0;
  const soon = () => {
    again ||= setTimeout(() => {
      again = 0;
      load().catch(showError);
    }, 500);
  };
  load().catch(showError);
  live({ poll: load, handlers: { parcel: soon } });
  const timer = setInterval(() => load().catch(showError), REFRESH);
  return () => {
    stopped = true;
    clearInterval(timer);
    clearTimeout(again);
  };
}

/** parcelTable is a titled table of parcels. */
function parcelTable(name, heading, empty) {
  const id = uid(name);
  const body = h('tbody');
  const table = h('table', { class: `parcels ${name}` },
    h('caption', { class: 'visually-hidden' }, heading),
    h('thead', {}, h('tr', {}, ['Unit', 'Door', 'Kind', 'Inside for', 'Status', 'Carrier', 'Parcel'].map((t) => h('th', { scope: 'col' }, t)))),
    body);
  const none = h('p', { class: 'empty' }, empty);
  const section = h('section', { class: `panel parcel-list ${name}`, 'aria-labelledby': id }, h('h2', { id }, heading), table, none);
  return {
    section,
    show(parcels) {
      keyed(body, parcels, (p) => p.id, row, (tr, p) => fill(tr, cells(p)));
      table.hidden = !parcels.length;
      none.hidden = parcels.length > 0;
    },
  };
}

function row(p) {
  return h('tr', { dataset: { parcel: p.id } }, cells(p));
}

function cells(p) {
  return [
    cell('Unit', h('a', { href: `#/unit/${encodeURIComponent(p.device)}` }, p.device), h('span', { class: 'note' }, p.site)),
    cell('Door', String(p.door)),
    cell('Kind', compartmentLabel(p.compartment), p.perishable ? h('span', { class: 'note' }, 'perishable') : null),
    cell('Inside for', dwellText(p), p.overdue ? [' ', h('span', { class: 'badge overdue' }, 'Overdue')] : null),
    cell('Status', statusLabel(p.status)),
    cell('Carrier', carrierText(p)),
    cell('Parcel', h('span', { class: 'parcel-id' }, p.id)),
  ];
}
