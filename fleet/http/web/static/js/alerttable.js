// A table of alerts with their actions (acknowledge, resolve), shared by the alerts page and the
// unit page, kept current from the event stream.

import { request } from './api.js';
import { actor, announce, cell, fill, h, keyed, uid } from './dom.js';
import { openDialog } from './dialog.js';
import { age, capitalize, dateTime, severityRank } from './format.js';

const NOTE_MAX = 1024; // fleet.MaxAlertNoteLen

/** Open alerts: most severe first, then the longest waiting first. */
function byUrgency(a, b) {
  return severityRank(a.severity) - severityRank(b.severity) || Date.parse(a.fired_at) - Date.parse(b.fired_at) || a.id - b.id;
}

/** History: newest first, as the API lists it. */
function byRecency(a, b) {
  return b.id - a.id;
}

/**
 * AlertTable shows alerts as a table (cards on narrow screens).
 *   show: 'open' keeps firing and acknowledged alerts (resolved ones leave the table), most
 *         urgent first; 'resolved' keeps resolved ones, newest first, up to limit.
 *   caps: what the token may do ({ack}); actions are shown only when it may.
 *   showDevice: a column with the unit, linked to its page.
 *   onChange(table): called after the alerts shown changed.
 */
export class AlertTable {
  constructor({ caption, caps, show = 'open', showDevice = true, empty = 'No open alerts.', limit = Infinity, onChange = () => {} }) {
    this.onChange = onChange;
    this.open = show === 'open';
    this.actionable = this.open && caps.ack;
    this.showDevice = showDevice;
    this.limit = limit;
    this.alerts = new Map();
    this.body = h('tbody');
    this.empty = empty;
    this.emptyText = h('p', { class: 'empty' }, 'Loading…');
    const headers = ['Severity', this.open ? 'Open for' : 'Fired', 'Rule', showDevice && 'Unit', 'Door', 'Summary', 'State', this.actionable && 'Actions'];
    this.table = h('table', { class: 'alerts' },
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, headers.filter(Boolean).map((t) => h('th', { scope: 'col' }, t)))),
      this.body);
    this.el = h('div', { class: 'alert-table' }, this.table, this.emptyText);
    this.table.hidden = true; // until set()
  }

  /** set replaces the alerts. */
  set(alerts) {
    this.alerts = new Map(alerts.filter((a) => this.keeps(a)).map((a) => [a.id, a]));
    this.render();
  }

  /** apply takes an alert that changed: from the event stream, or returned by an action. */
  apply(alert) {
    if (this.keeps(alert)) this.alerts.set(alert.id, alert);
    else this.alerts.delete(alert.id);
    this.render();
  }

  keeps(alert) {
    return (alert.state !== 'resolved') === this.open;
  }

  render() {
    const list = [...this.alerts.values()].sort(this.open ? byUrgency : byRecency).slice(0, this.limit);
    keyed(this.body, list, (a) => a.id, (a) => this.row(a), (tr, a) => this.update(tr, a));
    this.table.hidden = list.length === 0;
    this.emptyText.textContent = this.empty;
    this.emptyText.hidden = list.length > 0;
    this.onChange(this);
  }

  /** tick refreshes the ages. */
  tick() {
    for (const el of this.body.querySelectorAll('time[data-since]')) el.textContent = age(el.dataset.since);
  }

  row(alert) {
    const tr = h('tr');
    this.update(tr, alert);
    return tr;
  }

  update(tr, alert) {
    const json = JSON.stringify(alert);
    if (tr.dataset.json === json) return; // unchanged: keep the row (and the focus in it) as it is
    tr.dataset.json = json;
    tr.dataset.alertId = alert.id;
    tr.dataset.state = alert.state;
    fill(tr,
      cell('Severity', h('span', { class: `badge sev-${alert.severity}` }, capitalize(alert.severity))),
      cell(this.open ? 'Open for' : 'Fired', h('time', { datetime: alert.fired_at, title: `fired ${dateTime(alert.fired_at)}`, dataset: { since: alert.fired_at } }, age(alert.fired_at)), this.open ? '' : ' ago'),
      cell('Rule', h('code', {}, alert.rule)),
      this.showDevice && cell('Unit', h('a', { href: `#/unit/${encodeURIComponent(alert.device)}` }, alert.device), h('span', { class: 'muted' }, ` · ${alert.site}`)),
      cell('Door', alert.door ? String(alert.door) : '–'),
      cell('Summary', alert.summary),
      cell('State', stateText(alert)),
      this.actionable && cell('Actions', this.actions(alert)));
  }

  actions(alert) {
    const what = `alert ${alert.id} (${alert.rule} on ${alert.device}${alert.door ? ` door ${alert.door}` : ''})`;
    return h('div', { class: 'actions' },
      alert.state === 'firing' && h('button', {
        type: 'button', class: 'button small', 'aria-label': `Acknowledge ${what}`, dataset: { action: 'ack' },
        onclick: () => this.act(alert, 'ack', what),
      }, 'Acknowledge'),
      h('button', {
        type: 'button', class: 'button small secondary', 'aria-label': `Resolve ${what}`, dataset: { action: 'resolve' },
        onclick: () => this.act(alert, 'resolve', what),
      }, 'Resolve'));
  }

  /** act acknowledges or resolves an alert with a note, from a dialog. */
  act(alert, action, what) {
    const verb = action === 'ack' ? 'Acknowledge' : 'Resolve';
    const noteId = uid('note');
    const hintId = uid('hint');
    const note = h('textarea', { id: noteId, name: 'note', rows: 3, maxlength: NOTE_MAX, 'aria-describedby': hintId });
    openDialog({
      title: `${verb} ${what}`,
      content: [
        h('p', {}, alert.summary),
        h('label', { for: noteId }, 'Note'),
        note,
        h('p', { class: 'hint', id: hintId }, action === 'ack'
          ? 'What you are doing about it. It is kept with the alert and in the audit trail.'
          : 'Why it is resolved. If the condition still holds, the alert fires again.'),
      ],
      confirmLabel: verb,
      // The row is rebuilt with the alert's new state: continue on its first remaining action.
      returnFocus: () => this.body.querySelector(`tr[data-alert-id="${alert.id}"] button`),
      onConfirm: async () => {
        const updated = await request(`alerts/${alert.id}/${action}`, { method: 'POST', body: { note: note.value.trim() } });
        this.apply(updated);
        announce(`Alert ${alert.id} ${updated.state}.`);
      },
    });
  }
}

/** stateText says where the alert is, who moved it there, when and with what note. */
function stateText(alert) {
  const moved = {
    acknowledged: [actor(alert.acked_by, alert.acked_by_name), alert.acked_at, alert.ack_note],
    resolved: [actor(alert.resolved_by, alert.resolved_by_name), alert.resolved_at, alert.resolve_note],
  }[alert.state];
  const state = h('strong', { class: 'state' }, capitalize(alert.state));
  if (!moved) return state;
  const [by, at, note] = moved;
  return [state, ' by ', by, ` ${age(at)} ago`, note && h('q', { class: 'note' }, note)];
}
