package alerts

import (
	"context"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// transition is an alert to fire or resolve, found by an evaluation.
type transition struct {
	u       *lockedUnit
	key     trackerKey
	rule    *Rule
	fire    bool
	restate bool // a firing alert's count grew: its summary and value are replaced
	cond    cond
	alertID int64 // resolve, restate: the stored alert
}

// Evaluate runs the rules of the units that are due at the engine's clock, reschedules each at
// the next time its rules could say otherwise without a new message, and stores and notifies
// what fired and resolved. Units with nothing due cost nothing.
func (e *Engine) Evaluate(ctx context.Context) {
	e.evalMu.Lock()
	defer e.evalMu.Unlock()
	now := e.now()
	e.due = e.sched.popDue(now, e.due[:0])
	if len(e.due) == 0 {
		return
	}
	start := time.Now()
	var changes []transition
	evaluated := 0
	for _, u := range e.due {
		u.mu.Lock()
		// Presence is read under the unit's lock: a change told to the engine meanwhile
		// makes the unit due again (presenceChanged).
		online, since, change := e.online(u.id, now)
		if !u.touched && online && since.Equal(u.seenSince) && (u.rulesDue.IsZero() || now.Before(u.rulesDue)) {
			// Only its heartbeat deadline fell due, and the broker has heard from it since:
			// nothing its rules look at changed, and a later evaluation counts this time.
			e.sched.set(u, earliest(u.rulesDue, change))
			u.mu.Unlock()
			continue
		}
		var next time.Time
		changes, next = u.evaluate(env{now: now, online: online, since: since, change: change, judging: e.judging, cfg: &e.cfg, buf: &e.conds}, changes)
		u.touched, u.rulesDue, u.seenSince = false, next, since
		if online {
			next = earliest(next, change) // when silence would make it offline
		}
		e.sched.set(u, next)
		u.mu.Unlock()
		evaluated++
	}
	e.metrics.evaluations.Add(float64(evaluated))
	for i := range e.due {
		e.due[i] = nil // a unit removed from the registry is not kept alive by the buffer
	}
	for _, c := range changes {
		switch {
		case c.fire:
			e.fire(ctx, c, now)
		case c.restate:
			e.restate(ctx, c)
		default:
			e.resolveStored(ctx, c.alertID, "clear condition held")
		}
	}
	e.metrics.evaluation.Observe(time.Since(start).Seconds())
}

// online says whether a unit counts as online at now, and since when it is online or offline.
// A connection that has been silent for HeartbeatTimeout counts as offline: the broker may not
// have noticed yet that it is gone. One that pings within its MQTT keepalive (and the grace of
// half of it the protocol gives) is alive by the protocol's own measure, whatever the timeout.
// change is when the unit, online, turns offline by that silence unless it is heard from, and
// when, offline, it began to count as offline.
func (e *Engine) online(id string, now time.Time) (online bool, since, change time.Time) {
	p, ok := e.presence.Presence(id)
	if !ok {
		return false, e.started, e.started // not connected since the hub started
	}
	if !p.Online {
		return false, p.DisconnectedAt, p.DisconnectedAt
	}
	silentUntil := p.LastSeen.Add(max(e.cfg.HeartbeatTimeout, p.KeepAlive*3/2))
	if !now.After(silentUntil) {
		return true, p.ConnectedSince, silentUntil.Add(time.Nanosecond)
	}
	return false, p.LastSeen, silentUntil.Add(time.Nanosecond)
}

// evaluate runs the unit's rules at e.now and appends the transitions to out. It returns the
// earliest time after e.now at which an evaluation could find otherwise without a new
// message or presence change (zero: none), so that time-based rules (stale, ajar, for and
// clear_for windows, pickup grace, pull-downs) are looked at when they fall due and not
// before; a connected unit's heartbeat deadline is Evaluate's to add. The caller holds u.mu.
func (u *lockedUnit) evaluate(e env, out []transition) ([]transition, time.Time) {
	var next time.Time
	if e.online && !e.since.Equal(u.connSince) && u.pulldown.Max > 0 {
		// Came online: it may be starting from warm (installed, a power cut). The pull-down
		// starts from the connection's first snapshot, which may have come already.
		u.connSince = e.since
		if u.snap != nil && !u.snapAt.Before(e.since) {
			u.startPulldown(*u.snap, u.snapAt, true)
		} else {
			u.pulldownDue = true
		}
	}
	for _, d := range u.doors {
		d.authorize(e.cfg.AuthorizeWindow)
		d.prune(e.now, e.cfg.AuthorizeWindow)
	}
	for _, r := range u.rules {
		*e.buf = u.conditions(r, e, (*e.buf)[:0])
		for _, c := range *e.buf {
			next = earliest(next, c.next)
			k := trackerKey{rule: r.Name, door: c.door}
			t := u.trackers[k]
			if t == nil {
				if c.state != active {
					continue // nothing pending: no tracker needed
				}
				t = &tracker{}
				u.trackers[k] = t
			}
			fire, resolve := t.step(e.now, c, r)
			grew := kinds[r.Kind].counts && c.state == active && c.value != nil && *c.value > t.shown
			if grew {
				t.shown = *c.value
			}
			switch {
			case fire:
				out = append(out, transition{u: u, key: k, rule: r, fire: true, cond: c})
			case grew && t.firing && t.alertID != 0:
				out = append(out, transition{u: u, key: k, rule: r, restate: true, cond: c, alertID: t.alertID})
			case resolve:
				out = append(out, transition{u: u, key: k, rule: r, alertID: t.alertID})
				delete(u.trackers, k)
			case !t.firing && t.held == 0 && c.state != active:
				delete(u.trackers, k)
			default:
				next = earliest(next, t.due(e.now, c, r))
			}
		}
	}
	u.lost = 0
	if u.custody != nil {
		u.custody.lockouts = 0
		u.releaseCustody()
	}
	return out, next
}

// fire stores a new alert and notifies it. If the store refuses it, the tracker is set back so
// that the next evaluation tries again.
func (e *Engine) fire(ctx context.Context, c transition, now time.Time) {
	u := c.u
	u.mu.Lock()
	dev := u.dev
	u.mu.Unlock()
	a := &fleet.Alert{Rule: c.rule.Name, Severity: c.rule.Severity, Scope: c.rule.Scope(c.key.door), DeviceID: dev.ID, Site: dev.Site,
		Registration: u.registration, Door: c.key.door, Summary: c.cond.summary, Value: c.cond.value,
		FiredAt: now.UTC().Truncate(time.Millisecond)}
	err := e.store.CreateAlert(ctx, a)
	if fleet.ErrorCode(err) == fleet.ECONFLICT {
		// Already open in the store (written by another process): that one is ours.
		if open, ferr := e.store.FindAlerts(ctx, fleet.AlertFilter{DeviceID: dev.ID, Open: true, Limit: 1000}); ferr == nil {
			for _, o := range open {
				if o.Key() == a.Key() {
					e.setAlertID(c, o.ID)
					return
				}
			}
		}
	}
	if err != nil {
		e.log.Error("alert not stored; trying again", "rule", a.Rule, "device", a.DeviceID, "door", a.Door, "error", err)
		u.mu.Lock()
		if t := u.trackers[c.key]; t != nil {
			t.firing = false
		}
		e.touch(u, e.now().Add(e.cfg.Tick))
		u.mu.Unlock()
		return
	}
	e.setAlertID(c, a.ID)
	e.announce(fleet.NewContextWithActor(ctx, fleet.Hub), fleet.AlertEventFired, a, "")
}

// restate replaces the summary and value of a firing alert whose count grew. A failure is
// logged: the alert stands, saying less than it could.
func (e *Engine) restate(ctx context.Context, c transition) {
	_, err := e.store.RestateAlert(ctx, c.alertID, c.cond.summary, c.cond.value)
	if err != nil && fleet.ErrorCode(err) != fleet.ECONFLICT && fleet.ErrorCode(err) != fleet.ENOTFOUND {
		e.log.Error("alert summary not updated", "alert", c.alertID, "rule", c.rule.Name, "error", err)
	}
}

func (e *Engine) setAlertID(c transition, id int64) {
	c.u.mu.Lock()
	defer c.u.mu.Unlock()
	if t := c.u.trackers[c.key]; t != nil && t.firing {
		t.alertID = id
	}
}
