package alerts

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/lockerhub/lockerhub/fleet"
)

// restore takes up the open alerts in the store: their trackers start out firing, so that a
// condition that still holds does not raise a second alert, and one that cleared while the hub
// was down resolves. Alerts of rules no longer configured, or of registrations no longer
// watched (devices disabled, removed, or removed and registered again), are resolved.
func (e *Engine) restore(ctx context.Context) error {
	open, err := e.openAlerts(ctx)
	if err != nil {
		return fmt.Errorf("alerts: restore open alerts: %w", err)
	}
	for _, a := range open {
		e.remember(a)
		if why := e.adopt(a); why != "" && (e.leading == nil || e.leading()) {
			e.resolveStored(ctx, a.ID, why)
		}
	}
	return nil
}

// openAlerts returns every open alert in the store.
func (e *Engine) openAlerts(ctx context.Context) ([]*fleet.Alert, error) {
	var all []*fleet.Alert
	f := fleet.AlertFilter{Open: true, Limit: 1000}
	for {
		page, err := e.store.FindAlerts(ctx, f)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < f.Limit {
			return all, nil
		}
		f.BeforeID = page[len(page)-1].ID
	}
}

// adopt gives an open alert from the store to its tracker, or says why it cannot.
func (e *Engine) adopt(a *fleet.Alert) string {
	r := e.rule(a.Rule)
	if r == nil {
		return "rule " + a.Rule + " is no longer configured"
	}
	u := e.unit(a.DeviceID)
	if u == nil || u.registration != a.Registration {
		return "device disabled or removed from the registry"
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if !r.AppliesTo(u.dev) {
		return "rule " + a.Rule + " no longer applies to the device"
	}
	t := &tracker{firing: true, alertID: a.ID}
	u.trackers[trackerKey{rule: a.Rule, door: a.Door}] = t
	e.touch(u, e.now()) // whether it has cleared meanwhile
	if r.Kind == KindUnlockFailed {
		// The failures behind it are gone with the old process; the alert stands until
		// the door opens again, as it would have, and counts on from what it said.
		n := 1
		if a.Value != nil {
			n = min(max(int(*a.Value), 1), maxFailures)
		}
		d := u.door(a.Door)
		for range n {
			d.failures = append(d.failures, a.FiredAt)
		}
		t.shown = float64(n)
	}
	return ""
}

// resolveStored resolves a stored alert as the hub, and notifies it. An alert a person
// resolved in the meantime is left as they left it.
func (e *Engine) resolveStored(ctx context.Context, id int64, note string) {
	if id == 0 {
		return
	}
	a, err := e.store.ResolveAlert(ctx, id, fleet.Hub, note, e.now().UTC().Truncate(time.Millisecond))
	switch {
	case fleet.ErrorCode(err) == fleet.ECONFLICT || fleet.ErrorCode(err) == fleet.ENOTFOUND:
		return
	case err != nil:
		e.log.Error("alert not resolved in the store", "alert", id, "error", err)
		return
	}
	e.announce(fleet.NewContextWithActor(ctx, fleet.Hub), fleet.AlertEventResolved, a, note)
}

// auditActions are the audit trail's names for what people do to alerts.
var auditActions = map[fleet.AlertEventKind]fleet.AuditAction{
	fleet.AlertEventAcknowledged: fleet.AuditAlertAck,
	fleet.AlertEventResolved:     fleet.AuditAlertResolve,
}

// announce makes a lifecycle change that the actor in ctx made known: metrics, the log, the
// notifiers and, for what a person did, the audit trail (a failure to record is logged loudly
// but does not undo it).
func (e *Engine) announce(ctx context.Context, kind fleet.AlertEventKind, a *fleet.Alert, note string) {
	actor := fleet.ActorFromContext(ctx)
	e.remember(a)
	e.metrics.transitions.WithLabelValues(a.Rule, string(kind)).Inc()
	attrs := []any{"alert", a.ID, "rule", a.Rule, "severity", a.Severity, "device", a.DeviceID, "door", a.Door, "by", actor.ID}
	if kind == fleet.AlertEventFired {
		e.log.Warn("alert fired", append(attrs, "summary", a.Summary)...)
	} else {
		e.log.Info("alert "+string(kind), append(attrs, "note", note)...)
	}
	if e.events != nil {
		e.events.Publish(fleet.Event{Kind: fleet.EventAlertChanged, Alert: fleet.AlertEvent{Kind: kind, Alert: *a}})
	}
	if actor.ID == fleet.ActorHub || e.audit == nil {
		return
	}
	detail := map[string]any{"alert": a.ID, "rule": a.Rule, "severity": string(a.Severity)}
	if a.Door != 0 {
		detail["door"] = a.Door
	}
	if note != "" {
		detail["note"] = note
	}
	entry, err := fleet.NewAuditEntry(ctx, auditActions[kind], a.DeviceID, detail)
	if err == nil {
		err = e.audit.Append(ctx, entry)
	}
	if err != nil {
		e.log.Error("audit trail: alert action not recorded", "alert", a.ID, "action", auditActions[kind], "error", err)
	}
}

// Alert returns one alert.
func (e *Engine) Alert(ctx context.Context, id int64) (*fleet.Alert, error) {
	return e.store.FindAlertByID(ctx, id)
}

// Alerts returns the alerts matching f, newest first.
func (e *Engine) Alerts(ctx context.Context, f fleet.AlertFilter) ([]*fleet.Alert, error) {
	return e.store.FindAlerts(ctx, f)
}

// Ack acknowledges a firing alert on behalf of the actor in ctx: someone is on it. Errors:
// ENOTFOUND, ECONFLICT when it is not firing, EINVALID for a note that is too long, EINTERNAL
// without an actor.
func (e *Engine) Ack(ctx context.Context, id int64, note string) (*fleet.Alert, error) {
	if err := validNote(note); err != nil {
		return nil, err
	}
	actor, err := fleet.ActorRequired(ctx, "alert ack")
	if err != nil {
		return nil, err
	}
	a, err := e.store.AckAlert(ctx, id, actor, note, e.now().UTC().Truncate(time.Millisecond))
	if err != nil {
		return nil, err
	}
	e.announce(ctx, fleet.AlertEventAcknowledged, a, note)
	return a, nil
}

// Resolve resolves an open alert on behalf of the actor in ctx, such as after a repair. The
// rule starts over: if its condition still holds, a new alert fires after the rule's duration.
// Errors: ENOTFOUND, ECONFLICT when it is resolved already, EINVALID for a note that is too
// long, EINTERNAL without an actor.
func (e *Engine) Resolve(ctx context.Context, id int64, note string) (*fleet.Alert, error) {
	if err := validNote(note); err != nil {
		return nil, err
	}
	actor, err := fleet.ActorRequired(ctx, "alert resolve")
	if err != nil {
		return nil, err
	}
	e.evalMu.Lock() // not between an evaluation's decision and its store write
	a, err := e.store.ResolveAlert(ctx, id, actor, note, e.now().UTC().Truncate(time.Millisecond))
	if err == nil {
		e.forget(a)
	}
	e.evalMu.Unlock()
	if err != nil {
		return nil, err
	}
	e.announce(ctx, fleet.AlertEventResolved, a, note)
	return a, nil
}

// forget resets the tracker of an alert resolved by a person, and the events behind it.
func (e *Engine) forget(a *fleet.Alert) {
	u := e.unit(a.DeviceID)
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	k := trackerKey{rule: a.Rule, door: a.Door}
	if t := u.trackers[k]; t != nil && t.alertID == a.ID {
		delete(u.trackers, k)
		e.touch(u, e.now()) // the rule starts over
	}
	if d := u.doors[a.Door]; d != nil {
		switch r := e.rule(a.Rule); {
		case r == nil:
		case r.Kind == KindForcedEntry:
			d.forced = nil
		case r.Kind == KindUnlockFailed:
			d.failures = nil
		}
	}
}

func validNote(note string) error {
	if len(note) > fleet.MaxAlertNoteLen || !utf8.ValidString(note) {
		return fleet.Errorf(fleet.EINVALID, "note: at most %d bytes of UTF-8", fleet.MaxAlertNoteLen)
	}
	return nil
}
