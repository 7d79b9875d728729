// One unit: its doors (and the parcels in them), latest readings, alerts, history charts, door events and commands, and
// the remote unlock for operators; kept current from the unit's own event stream.

import { idempotencyKey, query, request } from '../api.js';
import { AlertTable } from '../alerttable.js';
import { TimeChart } from '../chart.js';
import { openDialog } from '../dialog.js';
import { actor, announce, cell, fill, h, keyed, uid } from '../dom.js';
import { age, celsius, coldLimit, dateTime, healthLabel, kindLabel, percent, presenceText } from '../format.js';
import { carrierText, compartmentLabel, statusLabel } from '../parcels.js';

const MINUTE = 60e3;
const HOUR = 60 * MINUTE;
// Chart periods and their averaging windows: a few hundred points at most each. The short ones
// average over about one report of a unit (every 10 to 30 s), so that the minutes of a unit
// just added show as readings rather than one averaged dot.
const RANGES = [
  { label: '15 min', span: 15 * MINUTE, every: '10s' },
  { label: '1 h', span: HOUR, every: '30s' },
  { label: '6 h', span: 6 * HOUR, every: '1m' },
  { label: '24 h', span: 24 * HOUR, every: '5m' },
  { label: '7 d', span: 7 * 24 * HOUR, every: '30m' },
];
const DEFAULT_RANGE = 2; // 6 h
const CHART_REFRESH = 60000;
const EVENTS_KEPT = 20;
const COMMANDS_SHOWN = 20;
const REASON_MAX = 500; // bytes the hub accepts; characters here, the hub has the last word

let chosenRange = null; // the period the user chose last, for the next unit too; null: pick one

/** autoRange is the period for a unit when the user has not chosen one: the shortest that
 * covers its whole registration, so that a unit just added fills the chart rather than a sliver
 * at its edge, and the default for units older than that. */
function autoRange(device, now = Date.now()) {
  const age = now - Date.parse(device.created_at);
  const i = RANGES.findIndex((r) => r.span >= age);
  return i >= 0 && i < DEFAULT_RANGE ? i : DEFAULT_RANGE;
}

export function mount(main, { caps, params, live, title }) {
  const id = params.id;
  const path = `devices/${encodeURIComponent(id)}`;
  title(id);
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const meta = h('p', { class: 'unit-meta' }, 'Loading…');
  const body = h('div', { class: 'unit' });
  fill(main,
    h('nav', { 'aria-label': 'Breadcrumb', class: 'breadcrumb' }, h('a', { href: '#/' }, 'Fleet overview'), ' / ', id),
    h('h1', { tabindex: -1 }, id), meta, error, body);

  let device = null;
  let events = [];
  let compartments = null; // door -> its compartment and parcel (GET occupancy?device=); null without parcel custody
  const commands = new Map();
  const cleanups = [];
  let stopped = false;

  const showError = (err) => {
    error.textContent = err.text ?? err.message;
    error.hidden = false;
  };

  request(path).then((d) => {
    if (stopped) return;
    device = d;
    build();
  }, showError);

  function build() {
    events = device.live?.last_event ? [device.live.last_event] : [];
    const openAlerts = new AlertTable({ caption: `Open alerts of ${id}`, caps, showDevice: false, onChange: () => schedule() });
    const pastAlerts = new AlertTable({ caption: `Recently resolved alerts of ${id}`, caps, show: 'resolved', showDevice: false, empty: 'None.', limit: 10 });
    const doors = h('ul', { class: 'doors' });
    const readings = h('dl', { class: 'readings' });
    const eventList = h('ol', { class: 'events' });
    const noEvents = h('p', { class: 'empty' }, 'None yet.');
    const commandRows = h('tbody');
    const noCommands = h('p', { class: 'empty' }, 'No commands yet.');
    const charts = chartsSection();
    cleanups.push(charts.destroy);

    fill(body,
      section('Alerts', openAlerts.el, h('h3', {}, 'Recently resolved'), pastAlerts.el),
      section('Doors', doors),
      caps.unlock ? unlockSection() : null,
      section('Latest readings', readings),
      section('Door events', h('p', { class: 'muted' }, 'The latest door event, then every one while this page is open.'), eventList, noEvents),
      charts.el,
      wide(section('Commands', h('table', { class: 'commands' },
        h('caption', { class: 'visually-hidden' }, `Latest commands to ${id}`),
        h('thead', {}, h('tr', {}, ['Sent', 'Command', 'Reason', 'By', 'Status', 'Outcome', 'Latency'].map((t) => h('th', { scope: 'col' }, t)))),
        commandRows), noCommands)));

    let frame = 0;
    function schedule() {
      frame ||= requestAnimationFrame(() => {
        frame = 0;
        render();
      });
    }
    cleanups.push(() => cancelAnimationFrame(frame));

    function render() {
      meta.replaceChildren(
        h('span', { class: `badge health-${device.health || 'disabled'}` }, healthLabel(device.health)),
        ` ${kindLabel(device)} · ${device.doors} doors · site ${device.site} · ${presenceText(device)}`);
      renderDoors(doors, device, [...openAlerts.alerts.values()], compartments);
      renderReadings(readings, device);
      keyed(eventList, events, (e) => `${e.seq}-${e.ts}`, eventItem, () => {});
      noEvents.hidden = events.length > 0;
      const list = [...commands.values()].sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at)).slice(0, COMMANDS_SHOWN);
      keyed(commandRows, list, (c) => c.id, commandRow, (tr, c) => fill(tr, commandCells(c)));
      commandRows.parentElement.hidden = !list.length;
      noCommands.hidden = list.length > 0;
    }

    async function loadCommands() {
      const res = await request(`commands${query({ device: id, limit: COMMANDS_SHOWN })}`);
      commands.clear();
      for (const c of res.commands) commands.set(c.id, c);
      schedule();
    }

    async function loadCompartments() {
      try {
        const occ = await request(`occupancy${query({ device: id })}`);
        compartments = new Map(occ.doors.map((d) => [d.door, d]));
      } catch (err) {
        if (err.status !== 503) throw err; // 503: the hub keeps no parcels
        compartments = null;
      }
      schedule();
    }

    async function loadAlerts() {
      const [open, past] = await Promise.all([
        request(`alerts${query({ device: id, state: 'open' })}`),
        request(`alerts${query({ device: id, state: 'resolved', limit: 10 })}`),
      ]);
      openAlerts.set(open.alerts);
      pastAlerts.set(past.alerts);
    }

    async function refresh() {
      const [d] = await Promise.all([request(path), loadCommands(), loadAlerts(), loadCompartments()]);
      device = d;
      error.hidden = true;
      schedule();
    }

    render();
    Promise.all([loadCommands(), loadAlerts(), loadCompartments()]).catch(showError);
    live({
      device: id,
      poll: refresh,
      handlers: {
        device(d) {
          device = d;
          schedule();
        },
        telemetry(t) {
          charts.follow(t);
          const state = liveState();
          if (!state.snapshot || t.ts >= state.snapshot.ts) state.snapshot = t;
          for (const d of t.doors) setDoor(state, d);
          touch(state, t.ts);
          schedule();
        },
        door(e) {
          const state = liveState();
          setDoor(state, e);
          touch(state, e.ts);
          events = [e, ...events.filter((x) => x.seq !== e.seq || x.ts !== e.ts)].slice(0, EVENTS_KEPT);
          schedule();
        },
        command(c) {
          commands.set(c.id, c);
          schedule();
        },
        parcel() {
          loadCompartments().catch(showError);
        },
        alert({ event, alert }) {
          openAlerts.apply(alert);
          pastAlerts.apply(alert);
          if (event === 'fired') announce(`New ${alert.severity} alert on ${id}: ${alert.summary}`);
        },
      },
    });
    // A parcel turns overdue without any event: its door is asked again with the ages' tick.
    const ticker = setInterval(() => {
      openAlerts.tick();
      pastAlerts.tick();
      schedule();
      loadCompartments().catch(showError);
    }, 30000);
    cleanups.push(() => clearInterval(ticker));
  }

  function liveState() {
    device.live ??= { doors: [] };
    device.live.doors ??= [];
    return device.live;
  }

  /** chartsSection: temperature and heater or compressor duty over the chosen period. */
  function chartsSection() {
    const fridge = device.kind === 'fridge';
    const limit = coldLimit(device);
    const temperature = new TimeChart({
      title: fridge ? 'Compartment temperature' : 'Enclosure and ambient temperature',
      format: celsius,
      limit: fridge ? { value: limit, label: `Food-safety limit (${celsius(limit)})` } : null,
    });
    const duty = new TimeChart({ title: fridge ? 'Compressor duty' : 'Heater duty', format: percent, range: [0, 1] });
    // Each series with the history field it is read from, and how to read it from a snapshot
    // of the live stream (the MQTT payload).
    const temperatureSeries = fridge
      ? Array.from({ length: device.doors }, (_, i) => ({
        label: `Door ${i + 1}`, field: 'compartment_c', door: i + 1, live: (t) => t.doors?.find((d) => d.door === i + 1)?.temp_c,
      }))
      : [{ label: 'Enclosure', field: 'enclosure_c', live: (t) => t.enclosure_c }, { label: 'Ambient', field: 'ambient_c', live: (t) => t.ambient_c }];
    const dutySeries = [fridge
      ? { label: 'Compressor', field: 'compressor_duty', live: (t) => t.compressor?.duty }
      : { label: 'Heater', field: 'heater_duty', live: (t) => t.heater?.duty }];

    let rangeIndex = chosenRange ?? autoRange(device);
    const buttons = RANGES.map((r, i) => h('button', {
      type: 'button', class: 'button small secondary', 'aria-pressed': String(i === rangeIndex),
      onclick: () => {
        rangeIndex = chosenRange = i;
        buttons.forEach((b, j) => b.setAttribute('aria-pressed', String(j === i)));
        load();
      },
    }, r.label));

    let loading = false;
    async function load() {
      if (loading) return;
      loading = true;
      const range = RANGES[rangeIndex];
      const to = new Date();
      const from = new Date(to.getTime() - range.span);
      const history = (s) => request(`${path}/telemetry${query({ field: s.field, door: s.door, from: rfc3339(from), to: rfc3339(to), every: range.every })}`)
        .then((res) => ({ label: s.label, points: res.points }));
      await Promise.all([[temperature, temperatureSeries], [duty, dutySeries]].map(async ([chart, series]) => {
        chart.loading();
        try {
          chart.draw(await Promise.all(series.map(history)), from, to);
        } catch (err) {
          chart.failed(err.text ?? err.message);
        }
      }));
      loading = false;
    }
    load();
    const timer = setInterval(load, CHART_REFRESH);

    return {
      el: wide(section('History',
        h('div', { class: 'range', role: 'group', 'aria-label': 'Period' }, h('span', { class: 'muted' }, 'Period: '), buttons),
        h('div', { class: 'charts' }, temperature.el, duty.el))),
      /** follow adds a snapshot from the live stream to the charts. */
      follow(t) {
        temperature.follow(t.ts, temperatureSeries.map((s) => s.live(t)));
        duty.follow(t.ts, dutySeries.map((s) => s.live(t)));
      },
      destroy() {
        clearInterval(timer);
        temperature.destroy();
        duty.destroy();
      },
    };
  }

  /** unlockSection: choose a door, give a reason, confirm, and see what the door did. */
  function unlockSection() {
    const doorId = uid('door');
    const reasonId = uid('reason');
    const reasonHint = uid('hint');
    const reasonError = uid('error');
    const door = h('select', { id: doorId, name: 'door' },
      Array.from({ length: device.doors }, (_, i) => h('option', { value: i + 1 }, `Door ${i + 1}`)));
    const reason = h('input', { id: reasonId, name: 'reason', type: 'text', maxlength: REASON_MAX, autocomplete: 'off', 'aria-describedby': `${reasonHint} ${reasonError}` });
    const invalid = h('p', { class: 'field-error', id: reasonError, hidden: true }, 'Give a reason: it is recorded with the command.');
    const submit = h('button', { type: 'submit', class: 'button danger' }, 'Unlock…');
    const outcome = h('p', { class: 'outcome', role: 'status', dataset: { outcome: '' } });
    const form = h('form', { class: 'unlock', novalidate: true },
      h('div', { class: 'field' }, h('label', { for: doorId }, 'Door'), door),
      h('div', { class: 'field grow' },
        h('label', { for: reasonId }, 'Reason (required)'), reason,
        h('p', { class: 'hint', id: reasonHint }, 'Who asked and why; kept with the command in the audit trail.'),
        invalid),
      submit);

    let pending = false;
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const why = reason.value.trim();
      invalid.hidden = Boolean(why);
      reason.setAttribute('aria-invalid', String(!why));
      if (!why) {
        reason.focus();
        return;
      }
      if (pending) return;
      const n = Number(door.value);
      openDialog({
        title: `Unlock door ${n} of ${id}?`,
        content: [
          h('p', {}, `This releases the lock of door ${n} at site ${device.site}: anyone there can open it.`),
          h('p', {}, 'Reason: ', h('q', {}, why)),
        ],
        confirmLabel: `Unlock door ${n}`,
        danger: true,
        // The dialog closes at once; the outcome is shown (and announced) next to the form.
        onConfirm: async () => { unlock(n, why); },
      });
    });

    async function unlock(n, why) {
      pending = true;
      submit.setAttribute('aria-disabled', 'true');
      show('pending', `Unlocking door ${n}… waiting for ${id} to answer.`);
      try {
        const res = await request(`${path}/doors/${n}/unlock`, {
          method: 'POST', body: { reason: why }, headers: { 'Idempotency-Key': idempotencyKey() },
        });
        const c = res.command;
        const result = c.outcome || c.status;
        if (result === 'opened') show('opened', `Door ${n} opened, ${res.latency_ms} ms after the request.`, res.latency_ms);
        else if (result === 'already-open') show(result, `Door ${n} was already open; the lock was left as it was (${res.latency_ms} ms).`, res.latency_ms);
        else show(result, `Door ${n} did not open: ${result}${c.detail ? ` (${c.detail})` : ''}, after ${res.latency_ms} ms.`, res.latency_ms);
        reason.value = '';
      } catch (err) {
        if (err.status === 504) show('expired', `Expired: ${id} did not answer in time. It refuses the command from now on; if it had already started, its outcome appears in the command list. ${err.message}`);
        else if (err.status === 409) show('conflict', `Not sent: ${err.message}`);
        else show('error', err.text ?? err.message);
      } finally {
        pending = false;
        submit.removeAttribute('aria-disabled');
      }
    }

    function show(result, text, latency) {
      outcome.dataset.outcome = result;
      const ok = result === 'opened' || result === 'already-open';
      outcome.className = `outcome outcome-${ok ? 'ok' : result === 'pending' ? 'pending' : 'bad'}`;
      if (latency != null) outcome.dataset.latency = latency;
      else delete outcome.dataset.latency;
      outcome.textContent = text;
    }

    return section('Remote unlock', form, outcome);
  }

  return () => {
    stopped = true;
    cleanups.forEach((f) => f());
  };
}

/** section is a titled region of the page. */
function section(title, ...content) {
  const id = uid('section');
  return h('section', { class: 'panel', 'aria-labelledby': id }, h('h2', { id }, title), content);
}

/** wide makes a section span the page's columns on wide screens. */
function wide(el) {
  el.classList.add('wide');
  return el;
}

function rfc3339(d) {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** setDoor records a door's newest state (temperatures live in the snapshot). */
function setDoor(state, { door, open, locked }) {
  const i = state.doors.findIndex((d) => d.door === door);
  if (i >= 0) state.doors[i] = { door, open, locked };
  else state.doors.push({ door, open, locked });
}

function touch(state, ts) {
  if (!state.updated_at || ts > Date.parse(state.updated_at)) state.updated_at = new Date(ts).toISOString();
}

function renderDoors(list, device, alerts, compartments) {
  const states = new Map((device.live?.doors ?? []).map((d) => [d.door, d]));
  const temps = new Map((device.live?.snapshot?.doors ?? []).map((d) => [d.door, d.temp_c]));
  const fridge = device.kind === 'fridge';
  const limit = coldLimit(device);
  const doors = Array.from({ length: device.doors }, (_, i) => i + 1);
  const draw = (li, n) => {
    const s = states.get(n);
    const t = temps.get(n);
    const doorAlerts = alerts.filter((a) => a.door === n);
    const c = compartments?.get(n);
    li.className = `door${s?.open ? ' is-open' : ''}${doorAlerts.length ? ' has-alert' : ''}`;
    li.dataset.open = String(Boolean(s?.open));
    li.dataset.locked = String(Boolean(s?.locked));
    if (c) li.dataset.compartment = c.state;
    fill(li,
      h('span', { class: 'door-n' }, `Door ${n}`),
      s ? h('span', { class: 'door-state' }, `${s.open ? 'Open' : 'Closed'} · ${s.locked ? 'locked' : 'unlocked'}`)
        : h('span', { class: 'muted' }, 'No report yet'),
      fridge && h('span', { class: typeof t === 'number' && t > limit ? 'door-temp too-warm' : 'door-temp' },
        typeof t === 'number' ? celsius(t) : 'no reading', typeof t === 'number' && t > limit ? ' (above limit)' : ''),
      c && compartmentText(c),
      doorAlerts.map((a) => h('span', { class: `badge sev-${a.severity}` }, a.rule)));
  };
  keyed(list, doors, (n) => n, (n) => {
    const li = h('li');
    draw(li, n);
    return li;
  }, draw);
}

/** compartmentText says what a door's compartment holds: its kind, free or reserved, or the
 * parcel inside with its age, status and carrier (never a code: the hub has none to give). */
function compartmentText(c) {
  const p = c.parcel;
  const kind = compartmentLabel(c.kind);
  if (!p) return h('span', { class: 'door-parcel muted' }, `${kind} · free`);
  if (c.state === 'reserved') return h('span', { class: 'door-parcel' }, `${kind} · reserved for ${carrierText(p)}`);
  return h('span', { class: 'door-parcel' }, `${kind} · parcel ${age(p.dropped_at)} · ${statusLabel(p.status)} · ${carrierText(p)}`,
    p.overdue ? [' ', h('span', { class: 'badge overdue' }, 'Overdue')] : null);
}

function renderReadings(dl, device) {
  const l = device.live;
  const snap = l?.snapshot;
  const p = device.presence ?? {};
  const rows = [
    ['Connection', presenceText(device) + (p.online && p.connected_since ? ` since ${dateTime(p.connected_since)}` : '')],
    ['Last report', l?.updated_at ? `${age(l.updated_at)} ago (${dateTime(l.updated_at)})` : 'none since the hub started'],
    snap?.ambient_c != null && ['Ambient', celsius(snap.ambient_c)],
    snap?.enclosure_c != null && ['Enclosure', celsius(snap.enclosure_c)],
    snap?.heater && ['Heater', thermal(snap.heater)],
    snap?.compressor && ['Compressor', thermal(snap.compressor)],
    l && ['Lost readings', l.gaps ? `${l.gaps} (sequence gaps)` : 'none'],
    p.remote && ['Address', p.remote],
  ].filter(Boolean);
  fill(dl, rows.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))));
}

function thermal(t) {
  return `${t.on ? 'On' : 'Off'} · setpoint ${celsius(t.setpoint_c)} · duty ${percent(t.duty)}`;
}

const CAUSES = { remote: 'by a remote command', local: 'by a local action' };

function eventItem(e) {
  return h('li', {},
    h('time', { datetime: new Date(e.ts).toISOString() }, dateTime(e.ts)), ' ',
    `Door ${e.door}: ${e.open ? 'open' : 'closed'}, ${e.locked ? 'locked' : 'unlocked'}`,
    // An opening nobody authorized is what a forced door looks like; a door shutting needs none.
    e.cause ? `, ${CAUSES[e.cause] ?? e.cause}` : e.open ? ', no command or local action reported' : '');
}

function commandRow(c) {
  return h('tr', {}, commandCells(c));
}

function commandCells(c) {
  const latency = c.completed_at && c.status !== 'expired' ? `${Date.parse(c.completed_at) - Date.parse(c.created_at)} ms` : '–';
  const what = c.type === 'setpoint' ? `setpoint ${c.target} ${celsius(c.setpoint_c)}` : `${c.type}${c.door ? ` door ${c.door}` : ''}`;
  return [
    cell('Sent', dateTime(c.created_at)),
    cell('Command', what),
    cell('Reason', c.reason),
    cell('By', actor(c.actor, c.actor_name)),
    cell('Status', c.status),
    cell('Outcome', c.outcome ? `${c.outcome}${c.detail ? ` (${c.detail})` : ''}` : '–'),
    cell('Latency', latency),
  ];
}
