package alerts

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// Parcel custody rules (parcel_overdue, perishable_overdue) and the keypad rule
// (keypad_lockout). The engine learns the parcels inside the units from the parcel service's
// events (fleet.EventParcelChanged) and from a door that a parcel's pickup code opened. When it
// starts it reads every parcel inside a compartment (ParcelFinder); a hub of a cluster reads
// them again when it starts to lead and every parcelFollowInterval while it leads, since the
// events of parcel changes made through other hubs never reach it (each hub has its own bus).
// A parcel's deadline is its drop-off plus the rule's limit: the unit is scheduled for it, and
// nothing looks at a parcel before then.

// ParcelFinder finds parcels (fleet.ParcelService).
type ParcelFinder interface {
	FindParcels(ctx context.Context, f fleet.ParcelFilter) ([]*fleet.Parcel, error)
}

var _ ParcelFinder = fleet.ParcelService(nil)

// parcelPage is how many parcels a load reads at a time.
const parcelPage = 1000

// parcelFollowInterval is how often the leader of a cluster reads the parcels again. Parcel
// limits are hours long: a minute late is on time, and a read a minute costs the store little.
const parcelFollowInterval = time.Minute

// custody is what a unit's parcel and keypad rules look at. Most units have neither a parcel
// inside nor a lockout to judge at any moment: a unit holds it only while it has one, and the
// others pay one nil pointer.
type custody struct {
	parcels []parcel // inside the unit's compartments
	// lockouts counts the keypad lockouts since the last evaluation (a follower's: since the
	// leader judged them); failures, until and lockoutAt describe the newest.
	lockouts  int
	failures  int       // wrong codes in a row that locked the keypad
	until     int64     // edge time the lockout ends, ms
	lockoutAt time.Time // hub time it arrived
}

// parcel is a parcel inside a compartment, as the rules need it.
type parcel struct {
	id          string
	door        int
	dropped     time.Time
	compartment fleet.CompartmentKind
	perishable  bool
}

// empty reports whether c holds nothing to keep.
func (c *custody) empty() bool { return len(c.parcels) == 0 && c.lockouts == 0 }

// custodyOf returns u's custody, made on first use.
func (u *unit) custodyOf() *custody {
	if u.custody == nil {
		u.custody = &custody{}
	}
	return u.custody
}

// putParcel records p as inside its compartment (again: a change replaces what was known).
func (u *unit) putParcel(p *fleet.Parcel) {
	c := u.custodyOf()
	in := parcel{id: p.ID, door: p.Door, dropped: *p.DroppedAt, compartment: p.Compartment, perishable: p.Perishable}
	if i := slices.IndexFunc(c.parcels, func(q parcel) bool { return q.id == p.ID }); i >= 0 {
		c.parcels[i] = in
		return
	}
	c.parcels = append(c.parcels, in)
}

// dropParcel forgets parcel id: it left its compartment.
func (u *unit) dropParcel(id string) {
	c := u.custody
	if c == nil {
		return
	}
	c.parcels = slices.DeleteFunc(c.parcels, func(q parcel) bool { return q.id == id })
	u.releaseCustody()
}

// releaseCustody frees the custody of a unit that has nothing left in it.
func (u *unit) releaseCustody() {
	if u.custody != nil && u.custody.empty() {
		u.custody = nil
	}
}

// keypad takes a keypad event: only a lockout matters to the rules.
func (u *unit) keypad(m wire.Event, now time.Time) {
	if m.Keypad != wire.KeypadLockedOut {
		return
	}
	c := u.custodyOf()
	c.lockouts++
	c.failures, c.until, c.lockoutAt = m.Failures, m.LockedUntil, now
}

// limit returns how long rule r lets parcel p stay in its compartment; false when r does not
// watch p. Every parcel is watched by exactly one kind: a perishable one in a fridge or
// freezer compartment by perishable_overdue, any other by parcel_overdue.
func (r *Rule) limit(p *parcel) (time.Duration, bool) {
	chilled := p.perishable && p.compartment != fleet.CompartmentDry
	switch {
	case r.Kind == KindParcelOverdue && !chilled:
		return r.After, true
	case r.Kind == KindPerishableOverdue && chilled && p.compartment == fleet.CompartmentFreezer:
		return r.Freezer, true
	case r.Kind == KindPerishableOverdue && chilled:
		return r.Fridge, true
	}
	return 0, false
}

// parcels appends a condition per door that holds a parcel rule r watches, for the parcel
// there longest, and a clear one for each door whose alert of r is pending or firing but that
// holds no such parcel any more (it was picked up or retrieved, also while the hub was down).
func (u *unit) parcels(r *Rule, e env, out []cond) []cond {
	start := len(out)
	var due []time.Time // per condition from start: the deadline of its door's parcel
	if c := u.custody; c != nil {
		for i := range c.parcels {
			p := &c.parcels[i]
			limit, ok := r.limit(p)
			if !ok {
				continue
			}
			d := p.dropped.Add(limit)
			j := slices.IndexFunc(out[start:], func(c cond) bool { return c.door == p.door })
			if j >= 0 && !d.Before(due[j]) {
				continue
			}
			c := cond{door: p.door, state: clear, next: d}
			if !e.now.Before(d) {
				c = cond{door: p.door, state: active, began: d,
					summary: fmt.Sprintf("parcel %s in door %d since %s, %s: longer than %s", p.id, p.door,
						p.dropped.UTC().Format(time.RFC3339), e.now.Sub(p.dropped).Round(time.Minute), limit)}
			}
			if j >= 0 {
				out[start+j], due[j] = c, d
			} else {
				out, due = append(out, c), append(due, d)
			}
		}
	}
	for k := range u.trackers {
		if k.rule == r.Name && !slices.ContainsFunc(out[start:], func(c cond) bool { return c.door == k.door }) {
			out = append(out, cond{door: k.door, state: clear})
		}
	}
	return out
}

// lockout is the keypad rule's condition: a lockout is an event, active at the evaluation
// that takes it up; the next one, a tick later, starts the count of the quiet period.
func (u *unit) lockout(e env) cond {
	c := u.custody
	if c == nil || c.lockouts == 0 {
		return cond{state: clear}
	}
	s := fmt.Sprintf("keypad locked out after %d wrong codes in a row, until %s", c.failures,
		time.UnixMilli(c.until).UTC().Format(time.RFC3339))
	if c.lockouts > 1 {
		s += fmt.Sprintf(" (%d lockouts)", c.lockouts)
	}
	return cond{state: active, next: e.now.Add(e.cfg.Tick), summary: s}
}

// parcelChanged takes a parcel as the parcel service changed it: in its compartment, or gone
// from it.
func (e *Engine) parcelChanged(p *fleet.Parcel) {
	if p == nil {
		return
	}
	u := e.unit(p.DeviceID)
	if u == nil || p.Registration != "" && p.Registration != u.registration {
		return // a unit not watched, or a parcel of an earlier registration of the id
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if p.Occupies() {
		u.putParcel(p)
		e.told(p.ID, true)
	} else {
		e.parcelLeft(u, p.ID)
	}
	e.touch(u, e.now())
}

// parcelLeft forgets parcel id of u. The caller holds u.mu.
func (e *Engine) parcelLeft(u *lockedUnit, id string) {
	u.dropParcel(id)
	e.told(id, false)
}

// told notes, while loadParcels runs, that parcel id came in or left: what the load read
// before may be older than that. The caller holds the parcel's unit's lock.
func (e *Engine) told(id string, inside bool) {
	e.loadMu.Lock()
	if e.changed != nil {
		e.changed[id] = inside
	}
	e.loadMu.Unlock()
}

// loadParcels makes what the engine knows of the parcels inside the units agree with what the
// parcel service says, paging through the parcels inside a compartment, newest first. Only
// units whose parcels differ are touched. Changes told while it reads win over what it read.
func (e *Engine) loadParcels(ctx context.Context) error {
	if e.parcels == nil {
		return nil
	}
	e.loadMu.Lock()
	e.changed = make(map[string]bool)
	e.loadMu.Unlock()
	defer func() {
		e.loadMu.Lock()
		e.changed = nil
		e.loadMu.Unlock()
	}()
	inside := make(map[string][]*fleet.Parcel) // by device id
	f := fleet.ParcelFilter{Occupies: true, Limit: parcelPage}
	seen := make(map[string]bool)
	for {
		page, err := e.parcels.FindParcels(ctx, f)
		if err != nil {
			return fmt.Errorf("alerts: load parcels: %w", err)
		}
		fresh := 0
		for _, p := range page {
			if seen[p.ID] {
				continue
			}
			seen[p.ID] = true
			fresh++
			if p.Occupies() {
				inside[p.DeviceID] = append(inside[p.DeviceID], p)
			}
		}
		// Newest first: the next page is of parcels created before the oldest of this one,
		// or at the same time, which are read again rather than skipped.
		if len(page) < f.Limit || fresh == 0 {
			break
		}
		f.To = page[len(page)-1].CreatedAt.Add(time.Nanosecond)
	}
	now := e.now()
	for _, u := range e.watched() {
		e.reconcile(u, inside[u.id], now)
	}
	return nil
}

// reconcile sets u's parcels to those read, but for the changes told since the read began.
func (e *Engine) reconcile(u *lockedUnit, read []*fleet.Parcel, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(read) == 0 && u.custody == nil {
		return
	}
	var want []parcel
	e.loadMu.Lock()
	for _, p := range read {
		if in, ok := e.changed[p.ID]; (!ok || in) && (p.Registration == "" || p.Registration == u.registration) {
			want = append(want, parcel{id: p.ID, door: p.Door, dropped: *p.DroppedAt, compartment: p.Compartment, perishable: p.Perishable})
		}
	}
	var have []parcel
	if u.custody != nil {
		have = u.custody.parcels
	}
	for _, q := range have {
		if e.changed[q.id] && !slices.ContainsFunc(want, func(w parcel) bool { return w.id == q.id }) {
			want = append(want, q) // came in after the read
		}
	}
	e.loadMu.Unlock()
	if sameParcels(have, want) {
		return
	}
	u.custodyOf().parcels = want
	u.releaseCustody()
	e.touch(u, now)
}

// sameParcels reports whether a and b hold the same parcels, in any order.
func sameParcels(a, b []parcel) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(p parcel) bool {
		return !slices.ContainsFunc(b, func(q parcel) bool {
			return p.id == q.id && p.door == q.door && p.dropped.Equal(q.dropped) && p.compartment == q.compartment && p.perishable == q.perishable
		})
	})
}
