// The fleet overview, for a fleet of any size: a table of the sites with their units counted by
// health, their compartments by kind (occupied, reserved, free), the units that need attention (critical, offline, warning first), then every unit a
// page at a time, and a search by id. The hub pages and filters (GET devices with q, health,
// order, limit, after); the page holds only what it shows, and the event stream keeps that
// current: health counts, the units shown, and a new fetch of the attention list when the
// counts say it changed.

import { query, request } from '../api.js';
import { announce, cell, fill, h, keyed, uid } from '../dom.js';
import { HEALTHS, celsius, healthLabel, kindLabel, presenceText } from '../format.js';
import { COMPARTMENTS, compartmentLabel } from '../parcels.js';

const COUNT_ORDER = ['ok', 'warning', 'critical', 'offline'];
const ATTENTION = ['critical', 'offline', 'warning'];
const PAGE = 50;
// A burst of changes (a site losing its network) refetches the attention list once.
const REFETCH_DELAY = 1000;

// The filters outlive the page, so that coming back from a unit finds the fleet as it was left.
const filters = { health: '', site: '', q: '' };

export function mount(main, { live, title }) {
  title('Fleet overview');
  let health = { sites: [], total: null };

  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const totals = h('p', { class: 'totals' }, 'Loading…');
  const sitesBody = h('tbody');
  const sitesTable = h('table', { class: 'sites' },
    h('caption', { class: 'visually-hidden' }, 'Units of each site by health'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Site'), h('th', { scope: 'col' }, 'Units'),
      COUNT_ORDER.map((k) => h('th', { scope: 'col' }, healthLabel(k))), h('th', { scope: 'col' }, 'Open alerts'))),
    sitesBody);

  const occupancyBody = h('tbody');
  const occupancyId = uid('occupancy');
  const occupancy = h('section', { class: 'occupancy', 'aria-labelledby': occupancyId, hidden: true },
    h('h2', { id: occupancyId }, 'Compartments'),
    h('table', { class: 'occupancy' },
      h('caption', { class: 'visually-hidden' }, 'Compartments of each site by kind: occupied, reserved and free'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Site'), COMPARTMENTS.map((k) => h('th', { scope: 'col' }, compartmentLabel(k))))),
      occupancyBody));

  const healthSelect = h('select', {}, h('option', { value: '' }, 'All'), HEALTHS.map((v) => h('option', { value: v }, healthLabel(v))));
  const siteSelect = h('select', {}, h('option', { value: '' }, 'All sites'));
  const search = h('input', { type: 'search', autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. bank-1' });
  healthSelect.value = filters.health;
  search.value = filters.q;
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Find units' },
    field('Unit id', search), field('Site', siteSelect), field('Health', healthSelect));
  form.addEventListener('submit', (e) => e.preventDefault());
  let typing = 0;
  form.addEventListener('input', () => {
    filters.health = healthSelect.value;
    filters.site = siteSelect.value;
    filters.q = search.value.trim().toLowerCase();
    // Each key would ask the hub; wait until typing pauses.
    clearTimeout(typing);
    typing = setTimeout(() => reload().catch(showError), 200);
  });

  const attention = unitList('attention', 'Needs attention');
  const units = unitList('units', 'All units');
  fill(main, h('h1', { tabindex: -1 }, 'Fleet overview'), error, totals, sitesTable, occupancy, form, attention.section, units.section);

  function showError(err) {
    error.textContent = err.text ?? err.message;
    error.hidden = false;
  }

  function renderHealth() {
    const t = health.total;
    totals.textContent = t
      ? `${t.units} units: ${COUNT_ORDER.map((k) => `${t[k]} ${healthLabel(k).toLowerCase()}`).join(', ')} · ${t.alerts_open} open alerts`
      : '';
    keyed(sitesBody, health.sites, (s) => s.site, siteRow, updateSiteRow);
    const names = health.sites.map((s) => s.site);
    const have = [...siteSelect.options].slice(1).map((o) => o.value);
    if (have.join() !== names.join()) {
      fill(siteSelect, h('option', { value: '' }, 'All sites'), names.map((n) => h('option', { value: n }, n)));
      siteSelect.value = filters.site;
    }
  }

  /** The query of each list: while searching, one list of the matches, those needing attention first. */
  function listQuery(which) {
    const base = { q: filters.q, site: filters.site, limit: PAGE };
    if (filters.q) return which === 'units' ? { ...base, health: filters.health, order: 'attention' } : null;
    return which === 'attention' ? { ...base, health: ATTENTION.join(), order: 'attention' } : { ...base, health: filters.health };
  }

  async function reload() {
    attention.reset();
    units.reset();
    await Promise.all([attention.load(listQuery('attention')), units.load(listQuery('units'))]);
    units.heading(filters.q ? `Units matching “${filters.q}”` : 'All units');
    error.hidden = true;
  }

  /** loadOccupancy shows the sites' compartments; a hub without parcel custody (503) has none. */
  async function loadOccupancy() {
    let occ;
    try {
      occ = await request('occupancy?units=false');
    } catch (err) {
      if (err.status !== 503) throw err;
      occ = { sites: [], fleet: [] };
    }
    keyed(occupancyBody, occ.sites, (s) => s.site, occupancyRow, (tr, s) => fill(tr, occupancyCells(s)));
    occupancy.hidden = !occ.fleet.length;
  }

  async function refresh() {
    const [summary] = await Promise.all([request('health'), attention.load(listQuery('attention')), units.load(listQuery('units')), loadOccupancy()]);
    health = summary;
    renderHealth();
    error.hidden = true;
  }

  let refetch = 0;
  let occupancyAgain = 0;
  function refetchAttention() {
    refetch ||= setTimeout(() => {
      refetch = 0;
      attention.load(listQuery('attention')).catch(showError);
    }, REFETCH_DELAY);
  }

  function unitList(name, heading) {
    const headingId = uid(name);
    const h2 = h('h2', { id: headingId }, heading);
    const list = h('ul', { class: 'tiles', 'aria-labelledby': headingId });
    const status = h('p', { class: 'muted', role: 'status' });
    const prev = h('button', { type: 'button', class: 'button secondary', dataset: { page: 'prev' } }, 'Previous page');
    const next = h('button', { type: 'button', class: 'button secondary', dataset: { page: 'next' } }, 'Next page');
    const section = h('section', { class: `panel ${name}`, 'aria-labelledby': headingId }, h2, status, list, h('div', { class: 'pager' }, prev, next));
    let cursors = ['']; // after= of each page up to the one shown
    let shown = new Map(); // id -> device, of the page shown
    let nextCursor = '';
    let q = null;

    async function load(lq, page = cursors.length - 1) {
      q = lq;
      section.hidden = !lq;
      // A hidden list holds nothing: its units would be found by whoever looks (tests included).
      const res = lq ? await request(`devices${query({ ...lq, after: cursors[page] })}`) : { devices: [] };
      cursors = cursors.slice(0, page + 1);
      nextCursor = res.next ?? '';
      shown = new Map(res.devices.map((d) => [d.id, d]));
      render(res.total ?? res.devices.length);
    }

    function render(total) {
      keyed(list, [...shown.values()], (d) => d.id, tile, updateTile);
      const first = (cursors.length - 1) * PAGE;
      status.textContent = total === 0 ? (name === 'attention' ? 'Every unit is fine.' : 'No units match.')
        : `Units ${first + 1}–${first + shown.size} of ${total}`;
      prev.hidden = cursors.length === 1;
      next.hidden = !nextCursor;
    }

    prev.addEventListener('click', () => load(q, cursors.length - 2).catch(showError));
    next.addEventListener('click', () => {
      cursors.push(nextCursor);
      load(q, cursors.length - 1).catch(showError);
    });

    return {
      section,
      load,
      reset() { cursors = ['']; },
      heading(text) { h2.textContent = text; },
      /** update shows a unit's new view if it is on the page; it returns whether it was. */
      update(d) {
        const el = list.querySelector(`:scope > [data-key="${CSS.escape(d.id)}"]`);
        if (!el) return false;
        shown.set(d.id, d);
        updateTile(el, d);
        return true;
      },
      get(id) { return shown.get(id); },
      /** wouldShow says whether a unit not shown belongs on the attention page shown. */
      wouldShow(d) {
        if (!q || !ATTENTION.includes(d.health)) return false;
        if (!nextCursor) return true;
        const last = [...shown.values()].at(-1);
        return !last || rankOf(d) < rankOf(last) || rankOf(d) === rankOf(last) && d.id < last.id;
      },
      reloadPage() { return q ? load(q) : Promise.resolve(); },
    };
  }

  refresh().catch(showError);
  live({
    poll: refresh,
    handlers: {
      health(summary) {
        const t = health.total;
        if (t && ATTENTION.some((k) => t[k] !== summary.total?.[k])) refetchAttention();
        health = summary;
        renderHealth();
      },
      device(d) {
        const old = attention.get(d.id) ?? units.get(d.id);
        attention.update(d);
        units.update(d);
        if (old && old.health !== d.health) announce(`${d.id} is now ${healthLabel(d.health).toLowerCase()}.`);
        if (!filters.q && (attention.get(d.id) ? !ATTENTION.includes(d.health) : attention.wouldShow(d))) refetchAttention();
      },
      // A parcel in or out changes its site's compartments: counted again once for a burst.
      parcel() {
        occupancyAgain ||= setTimeout(() => {
          occupancyAgain = 0;
          loadOccupancy().catch(showError);
        }, REFETCH_DELAY);
      },
      removed({ id }) {
        if (attention.get(id)) attention.reloadPage().catch(showError);
        if (units.get(id)) units.reloadPage().catch(showError);
      },
    },
  });

  // Offline units show how long ago they were seen, and the stream sends no change for them:
  // keep that current, and the compartments (in case a parcel's event was lost).
  const ticker = setInterval(() => {
    attention.reloadPage().catch(showError);
    units.reloadPage().catch(showError);
    loadOccupancy().catch(showError);
  }, 60000);
  return () => {
    clearInterval(ticker);
    clearTimeout(typing);
    clearTimeout(refetch);
    clearTimeout(occupancyAgain);
  };
}

function field(label, control) {
  control.id = uid('filter');
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control);
}

function siteRow(s) {
  const tr = h('tr', { dataset: { site: s.site } });
  updateSiteRow(tr, s);
  return tr;
}

function updateSiteRow(tr, s) {
  fill(tr,
    h('th', { scope: 'row', dataset: { label: 'Site' } }, s.site),
    cell('Units', String(s.units)),
    COUNT_ORDER.map((k) => countCell(healthLabel(k), k, s[k])),
    countCell('Open alerts', 'alerts', s.alerts_open));
}

function occupancyRow(s) {
  return h('tr', { dataset: { site: s.site } }, occupancyCells(s));
}

/** occupancyCells reads a site's compartments of each kind: "3 of 8 occupied · 1 reserved · 4 free". */
function occupancyCells(s) {
  const kinds = new Map(s.kinds.map((k) => [k.kind, k]));
  return [
    h('th', { scope: 'row', dataset: { label: 'Site' } }, s.site),
    COMPARTMENTS.map((kind) => {
      const k = kinds.get(kind);
      const td = cell(compartmentLabel(kind), k
        ? `${k.occupied} of ${k.total} occupied${k.reserved ? ` · ${k.reserved} reserved` : ''} · ${k.free} free`
        : '–');
      td.dataset.kind = kind;
      return td;
    }),
  ];
}

function countCell(label, key, n) {
  const td = cell(label, h('span', { class: 'n' }, String(n)));
  td.dataset.count = key;
  if (n && key !== 'ok' && key !== 'alerts') td.className = `health-${key}`;
  return td;
}

/** rankOf orders units as the hub's attention order does. */
function rankOf(d) {
  const i = ATTENTION.indexOf(d.health);
  return i < 0 ? ATTENTION.length : i;
}

function tile(d) {
  const li = h('li', {}, h('a', { class: 'tile' }));
  updateTile(li, d);
  return li;
}

function updateTile(li, d) {
  const a = li.firstChild;
  const health = d.health || 'disabled';
  const lines = [`${d.site} · ${kindLabel(d)} · ${d.doors} ${d.doors === 1 ? 'door' : 'doors'}`, presenceText(d), detailText(d)];
  // Most updates change nothing a tile shows (a unit's snapshot every few seconds): skip those.
  const signature = [d.id, health, ...lines].join('\n');
  if (a.dataset.signature === signature) return;
  a.dataset.signature = signature;
  a.href = `#/unit/${encodeURIComponent(d.id)}`;
  a.className = `tile health-${health}`;
  a.dataset.device = d.id;
  a.dataset.health = health;
  // Filling the link keeps it (and the focus on it) in place.
  fill(a,
    h('span', { class: 'tile-head' }, h('span', { class: 'tile-id', title: d.id }, d.id), ' ', h('span', { class: `badge health-${health}` }, healthLabel(d.health))),
    h('span', { class: 'tile-line' }, lines[0]),
    h('span', { class: 'tile-line' }, lines[1]),
    lines[2] && h('span', { class: 'tile-line muted' }, lines[2]));
}

/** detailText sums up the unit's live state: open doors and its key temperature. */
function detailText(d) {
  const snap = d.live?.snapshot;
  const parts = [];
  const open = (d.live?.doors ?? []).filter((x) => x.open).length;
  if (open) parts.push(`${open} ${open === 1 ? 'door' : 'doors'} open`);
  if (snap && d.kind === 'fridge') {
    const temps = (snap.doors ?? []).map((x) => x.temp_c).filter((v) => typeof v === 'number');
    if (temps.length) parts.push(`warmest ${celsius(Math.max(...temps))}`);
  } else if (snap?.enclosure_c != null) {
    parts.push(`enclosure ${celsius(snap.enclosure_c)}`);
  }
  return parts.join(' · ');
}
