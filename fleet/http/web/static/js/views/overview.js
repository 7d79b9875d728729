// The fleet overview: every site with its units counted by health, and each unit as a tile,
// filtered by health, site and id, kept current from the event stream.

import { request } from '../api.js';
import { announce, fill, h, keyed, uid } from '../dom.js';
import { HEALTHS, celsius, healthLabel, kindLabel, presenceText } from '../format.js';

const COUNT_ORDER = ['ok', 'warning', 'critical', 'offline'];

// The filters outlive the page, so that coming back from a unit finds the fleet as it was left.
const filters = { health: '', site: '', q: '' };

export function mount(main, { live, title }) {
  title('Fleet overview');
  let health = { sites: [], total: null };
  let devices = new Map();
  let changes = []; // health changes to announce with the next render

  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const totals = h('p', { class: 'totals' }, 'Loading…');
  const healthSelect = select(h('option', { value: '' }, 'All'), HEALTHS.map((v) => h('option', { value: v }, healthLabel(v))));
  const siteSelect = select(h('option', { value: '' }, 'All sites'));
  const search = h('input', { type: 'search', autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. bank-1' });
  healthSelect.value = filters.health;
  search.value = filters.q;
  const shown = h('p', { class: 'muted', role: 'status' });
  const sites = h('div', { class: 'sites' });

  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter units' },
    field('Health', healthSelect), field('Site', siteSelect), field('Unit id', search));
  form.addEventListener('submit', (e) => e.preventDefault());
  form.addEventListener('input', () => {
    filters.health = healthSelect.value;
    filters.site = siteSelect.value;
    filters.q = search.value.trim().toLowerCase();
    render();
  });

  fill(main, h('h1', { tabindex: -1 }, 'Fleet overview'), error, totals, form, shown, sites);

  let frame = 0;
  const schedule = () => {
    frame ||= requestAnimationFrame(() => {
      frame = 0;
      render();
    });
  };

  function render() {
    const t = health.total;
    totals.textContent = t
      ? `${t.units} units: ${COUNT_ORDER.map((k) => `${t[k]} ${healthLabel(k).toLowerCase()}`).join(', ')} · ${t.alerts_open} open alerts`
      : '';

    // One pass over the units: a whole region can be thousands, and this runs on every change.
    const bySite = new Map(health.sites.map((s) => [s.site, []]));
    for (const d of devices.values()) {
      if (!bySite.has(d.site)) bySite.set(d.site, []);
      bySite.get(d.site).push(d);
    }
    const names = [...bySite.keys()].sort();
    updateSiteOptions(names);
    const filtering = filters.health || filters.q;
    let total = 0;
    let matching = 0;
    const visible = [];
    for (const name of names) {
      if (filters.site && name !== filters.site) continue;
      const units = bySite.get(name).sort((a, b) => a.id.localeCompare(b.id));
      const match = units.filter(matches);
      total += units.length;
      matching += match.length;
      if (match.length || !filtering) visible.push({ name, units: match, counts: health.sites.find((s) => s.site === name) });
    }
    keyed(sites, visible, (s) => s.name, siteSection, updateSite);
    shown.textContent = filtering || filters.site ? `Showing ${matching} of ${total} units.` : '';
    if (changes.length) {
      announce(changes.length > 3 ? `${changes.length} units changed health.` : changes.join(' '));
      changes = [];
    }
  }

  function updateSiteOptions(names) {
    const have = [...siteSelect.options].slice(1).map((o) => o.value);
    if (have.join() === names.join()) return;
    fill(siteSelect, h('option', { value: '' }, 'All sites'), names.map((n) => h('option', { value: n }, n)));
    siteSelect.value = names.includes(filters.site) ? filters.site : '';
    filters.site = siteSelect.value;
  }

  async function refresh() {
    const [summary, list] = await Promise.all([request('health'), request('devices')]);
    health = summary;
    devices = new Map(list.devices.map((d) => [d.id, d]));
    error.hidden = true;
    render();
  }

  refresh().catch((err) => {
    error.textContent = err.text ?? err.message;
    error.hidden = false;
  });
  live({
    poll: refresh,
    handlers: {
      health(summary) {
        health = summary;
        schedule();
      },
      device(d) {
        const before = devices.get(d.id);
        if (before && before.health !== d.health) changes.push(`${d.id} is now ${healthLabel(d.health).toLowerCase()}.`);
        devices.set(d.id, d);
        schedule();
      },
    },
  });

  // Offline units show how long ago they were seen: keep that current.
  const ticker = setInterval(render, 30000);
  return () => {
    clearInterval(ticker);
    cancelAnimationFrame(frame);
  };
}

function matches(d) {
  return (!filters.health || d.health === filters.health) && (!filters.q || d.id.toLowerCase().includes(filters.q));
}

function select(...options) {
  return h('select', {}, options);
}

function field(label, control) {
  control.id = uid('filter');
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control);
}

function siteSection(site) {
  const headingId = uid('site');
  const section = h('section', { class: 'site', dataset: { site: site.name }, 'aria-labelledby': headingId },
    h('h2', { id: headingId }, site.name),
    h('ul', { class: 'counts', 'aria-label': `Units at ${site.name} by health` }),
    h('ul', { class: 'tiles', 'aria-label': `Units at ${site.name}` }),
    h('p', { class: 'empty' }, 'No units match the filters.'));
  updateSite(section, site);
  return section;
}

function updateSite(section, site) {
  const [counts, tiles, empty] = ['counts', 'tiles', 'empty'].map((c) => section.querySelector(`:scope > .${c}`));
  const c = site.counts ?? { ok: 0, warning: 0, critical: 0, offline: 0, alerts_open: 0 };
  fill(counts,
    COUNT_ORDER.map((k) => h('li', { class: `count health-${k}`, dataset: { count: k } }, h('span', { class: 'n' }, String(c[k])), ` ${healthLabel(k)}`)),
    h('li', { class: 'count', dataset: { count: 'alerts' } }, h('span', { class: 'n' }, String(c.alerts_open)), c.alerts_open === 1 ? ' open alert' : ' open alerts'));
  keyed(tiles, site.units, (d) => d.id, tile, updateTile);
  empty.hidden = site.units.length > 0;
}

function tile(d) {
  const li = h('li', {}, h('a', { class: 'tile' }));
  updateTile(li, d);
  return li;
}

function updateTile(li, d) {
  const a = li.firstChild;
  const health = d.health || 'disabled';
  const lines = [`${kindLabel(d)} · ${d.doors} ${d.doors === 1 ? 'door' : 'doors'}`, presenceText(d), detailText(d)];
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
