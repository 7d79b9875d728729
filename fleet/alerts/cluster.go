package alerts

import (
	"context"
	"slices"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// followInterval is how often a hub of a cluster takes up the alerts in the shared store:
// what the leader fired and resolved, and what people acknowledged and resolved through
// other hubs.
const followInterval = 2 * time.Second

// idle keeps a follower's state bounded without judging anything, for the units that are due
// (a message came): door openings are the leader's to judge, and those older than
// followInterval it has judged, firing what it found into the store, which this hub takes up
// before it ever leads. Younger ones are kept, for a leader that died before judging them,
// and the unit is due again when they are old enough to go.
func (e *Engine) idle(now time.Time) {
	e.evalMu.Lock()
	defer e.evalMu.Unlock()
	e.due = e.sched.popDue(now, e.due[:0])
	for i, u := range e.due {
		e.due[i] = nil
		var next time.Time
		u.mu.Lock()
		for _, d := range u.doors {
			d.openings = slices.DeleteFunc(d.openings, func(o opening) bool { return now.Sub(o.at) > followInterval })
			d.prune(now, e.cfg.AuthorizeWindow)
			if len(d.openings) > 0 {
				next = earliest(next, d.openings[0].at.Add(followInterval+time.Nanosecond))
			}
		}
		if c := u.custody; c != nil && c.lockouts > 0 {
			// Keypad lockouts likewise: the leader judged those older than followInterval.
			if now.Sub(c.lockoutAt) > followInterval {
				c.lockouts = 0
				u.releaseCustody()
			} else {
				next = earliest(next, c.lockoutAt.Add(followInterval+time.Nanosecond))
			}
		}
		e.sched.set(u, next)
		u.mu.Unlock()
	}
}

// follow makes the trackers agree with the open alerts in the store: alerts no longer open
// are forgotten as if resolved here, and open alerts this hub does not track are taken up.
func (e *Engine) follow(ctx context.Context) error {
	open, err := e.openAlerts(ctx)
	if err != nil {
		return err
	}
	ids := make(map[int64]bool, len(open))
	for _, a := range open {
		ids[a.ID] = true
	}
	e.evalMu.Lock()
	defer e.evalMu.Unlock()
	var gone []*fleet.Alert
	tracked := make(map[int64]bool)
	for _, u := range e.watched() {
		u.mu.Lock()
		for k, t := range u.trackers {
			switch {
			case !t.firing || t.alertID == 0:
			case ids[t.alertID]:
				tracked[t.alertID] = true
			default:
				gone = append(gone, &fleet.Alert{ID: t.alertID, Rule: k.rule, DeviceID: u.id, Door: k.door})
			}
		}
		u.mu.Unlock()
	}
	for _, a := range gone {
		e.forget(a)
	}
	leading := e.leading != nil && e.leading()
	for _, a := range open {
		if tracked[a.ID] {
			continue
		}
		// An alert no hub can take up (its rule or its device is gone) is the leader's to
		// resolve, as restore does on a hub of its own.
		if why := e.adopt(a); why != "" && leading {
			e.resolveStored(ctx, a.ID, why)
		}
	}
	e.mirrorChanges(ctx, open)
	return nil
}

// mirrorChanges publishes how the open alerts differ from what this hub last knew: the changes
// other hubs made, marked Mirrored.
func (e *Engine) mirrorChanges(ctx context.Context, open []*fleet.Alert) {
	if e.events == nil {
		return
	}
	var events []fleet.AlertEvent
	var closed []int64
	e.knownMu.Lock()
	now := make(map[int64]fleet.AlertState, len(open))
	for _, a := range open {
		now[a.ID] = a.State
		switch was, ok := e.known[a.ID]; {
		case !ok && a.State == fleet.AlertFiring:
			events = append(events, fleet.AlertEvent{Kind: fleet.AlertEventFired, Alert: *a})
		case (!ok || was == fleet.AlertFiring) && a.State == fleet.AlertAcknowledged:
			events = append(events, fleet.AlertEvent{Kind: fleet.AlertEventAcknowledged, Alert: *a})
		}
	}
	for id := range e.known {
		if _, ok := now[id]; !ok {
			closed = append(closed, id)
		}
	}
	e.known = now
	e.knownMu.Unlock()
	for _, id := range closed {
		if a, err := e.store.FindAlertByID(ctx, id); err == nil && a.State == fleet.AlertResolved {
			events = append(events, fleet.AlertEvent{Kind: fleet.AlertEventResolved, Alert: *a})
		}
	}
	for _, ev := range events {
		e.events.Publish(fleet.Event{Kind: fleet.EventAlertChanged, Alert: ev, Mirrored: true})
	}
}

// remember records an alert as this hub changed or found it, so that only what others change
// is published as mirrored.
func (e *Engine) remember(a *fleet.Alert) {
	e.knownMu.Lock()
	defer e.knownMu.Unlock()
	if a.State.Open() {
		e.known[a.ID] = a.State
	} else {
		delete(e.known, a.ID)
	}
}
