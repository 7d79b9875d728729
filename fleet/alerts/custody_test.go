package alerts

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// custodyConfig keeps the rules a parcel's and a keypad's story touches; the tests jump the
// clock by days without snapshots, which the telemetry rules would rightly report.
func custodyConfig() Config {
	cfg := DefaultConfig()
	cfg.Rules = slices.DeleteFunc(cfg.Rules, func(r Rule) bool {
		return !slices.Contains([]Kind{KindParcelOverdue, KindPerishableOverdue, KindKeypadLockout, KindForcedEntry, KindDoorOpen}, r.Kind)
	})
	return cfg
}

// inLocker returns a parcel of the harness's unit in door, dropped off at dropped.
func (h *harness) inLocker(id string, door int, dropped time.Time, perishable bool) *fleet.Parcel {
	return &fleet.Parcel{ID: id, DeviceID: h.dev.ID, Site: h.dev.Site, Door: door, Compartment: fleet.CompartmentOf(h.dev),
		Perishable: perishable, Status: fleet.ParcelInLocker, CreatedAt: dropped, DroppedAt: &dropped, Registration: h.dev.Registration}
}

// parcel tells the engine of a parcel as the parcel service does after changing it.
func (h *harness) parcel(p *fleet.Parcel) {
	c := *p
	h.e.HandleEvent(fleet.Event{Kind: fleet.EventParcelChanged, Parcel: &c})
}

// pickup sends the door event of door n opened by parcel id's pickup code, edge time ts.
func (h *harness) pickup(n int, id string, ts time.Time) {
	h.seq++
	h.observe(wire.Event{V: wire.Version, Seq: h.seq, TS: ts.UnixMilli(), Kind: wire.EventDoor, Door: n, Open: true,
		Cause: wire.CauseCode, Parcel: id}, 0)
}

// keypad sends a keypad event.
func (h *harness) keypad(result wire.KeypadResult, failures int) {
	h.seq++
	e := wire.Event{V: wire.Version, Seq: h.seq, TS: h.clock.UnixMilli(), Kind: wire.EventKeypad, Keypad: result, Failures: failures}
	if result == wire.KeypadLockedOut {
		e.LockedUntil = h.clock.Add(15 * time.Minute).UnixMilli()
	}
	h.e.HandleEvent(fleet.Event{Kind: fleet.EventKeypadEntered, Device: h.dev, Message: e})
}

// rulesDue returns when the engine next evaluates the unit's rules, as it scheduled them.
func (h *harness) rulesDue() time.Time {
	u := h.e.unit(h.dev.ID)
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.rulesDue
}

// A parcel left in a locker bank fires parcel-overdue when its 72 hours end, not a moment
// before, with the unit scheduled for that moment; it resolves when staff retrieve it, or when
// its code opens the door.
func TestParcelOverdue(t *testing.T) {
	for _, leaves := range []string{"retrieved", "picked up"} {
		t.Run(leaves, func(t *testing.T) {
			h := newHarnessIn(t, t.TempDir(), bank, custodyConfig())
			dropped := h.clock
			p := h.inLocker("p-1", 2, dropped, false)
			h.parcel(p)
			h.at(h.clock)
			due := dropped.Add(72 * time.Hour)
			if got := h.rulesDue(); !got.Equal(due) {
				t.Fatalf("rules due %s, want the parcel's deadline %s", got, due)
			}
			h.at(due.Add(-time.Nanosecond))
			h.expect("just before 72 hours")
			h.at(due)
			h.expect("72 hours", "parcel-overdue:2")
			a, _ := h.store.FindAlerts(context.Background(), fleet.AlertFilter{Open: true})
			if len(a) != 1 || a[0].Scope != fleet.ScopeDoor || a[0].Severity != fleet.SeverityWarning || !strings.Contains(a[0].Summary, "p-1") {
				t.Fatalf("alert %+v, want a warning about door 2 naming p-1", a)
			}
			h.at(due.Add(time.Hour))
			if leaves == "retrieved" {
				p.Status = fleet.ParcelRetrieved
				h.parcel(p)
			} else {
				h.pickup(2, "p-1", h.clock)
			}
			h.at(h.clock)
			h.expect(leaves)
		})
	}
}

// A perishable parcel's limit is the rule's for its compartment: 24 hours in a fridge, 12 in a
// freezer; parcel-overdue leaves it alone. A parcel that is not perishable is overdue after 72
// hours wherever it is.
func TestPerishableOverdue(t *testing.T) {
	for _, tc := range []struct {
		name       string
		dev        *fleet.Device
		perishable bool
		rule       string
		after      time.Duration
	}{
		{"fridge", fridge, true, "perishable-overdue", 24 * time.Hour},
		{"freezer", freezer, true, "perishable-overdue", 12 * time.Hour},
		{"not perishable, in a fridge", fridge, false, "parcel-overdue", 72 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarnessIn(t, t.TempDir(), tc.dev, custodyConfig())
			dropped := h.clock
			h.parcel(h.inLocker("p-1", 1, dropped, tc.perishable))
			h.at(h.clock)
			h.at(dropped.Add(tc.after - time.Nanosecond))
			h.expect("just before")
			h.at(dropped.Add(tc.after))
			h.expect("at the limit", fmt.Sprint(tc.rule, ":1"))
			h.at(dropped.Add(100 * time.Hour))
			h.expect("days later: one rule only", fmt.Sprint(tc.rule, ":1"))
			if tc.perishable {
				a, _ := h.store.FindAlerts(context.Background(), fleet.AlertFilter{Open: true})
				if len(a) != 1 || a[0].Scope != fleet.ScopeCompartment || a[0].Severity != fleet.SeverityMajor {
					t.Fatalf("alert %+v, want a major one about compartment 1", a)
				}
			}
		})
	}
}

// A door's alert is about the parcel there longest; a newer parcel in another door has its own
// deadline, and the first one leaving does not resolve the other door's alert.
func TestParcelsOfOneUnit(t *testing.T) {
	h := newHarnessIn(t, t.TempDir(), bank, custodyConfig())
	start := h.clock
	h.parcel(h.inLocker("p-1", 1, start, false))
	h.parcel(h.inLocker("p-2", 3, start.Add(time.Hour), false))
	h.at(start.Add(72 * time.Hour))
	h.expect("p-1 due", "parcel-overdue:1")
	h.at(start.Add(73*time.Hour - time.Nanosecond))
	h.expect("p-2 not yet", "parcel-overdue:1")
	h.at(start.Add(73 * time.Hour))
	h.expect("p-2 due", "parcel-overdue:1", "parcel-overdue:3")
	h.pickup(1, "p-1", h.clock)
	h.at(h.clock)
	h.expect("p-1 picked up", "parcel-overdue:3")
	if u := h.e.unit(h.dev.ID); len(u.custody.parcels) != 1 {
		t.Fatalf("the unit keeps %d parcels, want p-2 only", len(u.custody.parcels))
	}
	h.pickup(3, "p-2", h.clock)
	h.at(h.clock)
	h.expect("both gone")
	if u := h.e.unit(h.dev.ID); u.custody != nil {
		t.Fatalf("a unit without parcels keeps %+v", u.custody)
	}
}

// A keypad lockout fires at once and resolves after 15 minutes without another; a lockout in
// the meantime starts the quiet period over. Wrong codes alone raise nothing.
func TestKeypadBruteForce(t *testing.T) {
	h := newHarnessIn(t, t.TempDir(), bank, custodyConfig())
	h.keypad(wire.KeypadWrong, 1)
	h.at(h.clock)
	h.expect("a wrong code")
	h.keypad(wire.KeypadLockedOut, 5)
	h.at(h.clock)
	h.expect("locked out", "keypad-brute-force")
	a, _ := h.store.FindAlerts(context.Background(), fleet.AlertFilter{Open: true})
	if len(a) != 1 || a[0].Scope != fleet.ScopeDevice || a[0].Severity != fleet.SeverityMajor || !strings.Contains(a[0].Summary, "5 wrong codes") {
		t.Fatalf("alert %+v, want a major one about the unit saying 5 wrong codes", a)
	}
	h.at(h.rulesDue()) // the quiet period starts
	h.at(h.clock.Add(10 * time.Minute))
	h.keypad(wire.KeypadLockedOut, 5)
	h.at(h.clock)
	h.at(h.rulesDue())
	quiet := h.clock
	h.at(quiet.Add(15*time.Minute - time.Nanosecond))
	h.expect("15 minutes after the first lockout, 5 after the second", "keypad-brute-force")
	h.at(quiet.Add(15 * time.Minute))
	h.expect("15 quiet minutes")
	if all, _ := h.store.FindAlerts(context.Background(), fleet.AlertFilter{}); len(all) != 1 {
		t.Fatalf("%d alerts, want one for both lockouts", len(all))
	}
}

// A door opened by a pickup code is authorized, also when the unit was offline and its event
// arrives days later from the outbox; left open, it is ajar as any door. The same late opening
// without a cause is forced.
func TestCodeOpeningIsAuthorized(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cause wire.Cause
		want  []string
	}{
		{"by a code", wire.CauseCode, nil},
		{"without a cause", wire.CauseNone, []string{"forced-entry:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarnessIn(t, t.TempDir(), bank, custodyConfig())
			opened := h.clock.Add(-3 * 24 * time.Hour) // while the unit was offline
			h.seq++
			h.observe(wire.Event{V: wire.Version, Seq: h.seq, TS: opened.UnixMilli(), Kind: wire.EventDoor, Door: 1, Open: true,
				Cause: tc.cause, Parcel: map[bool]string{true: "p-1"}[tc.cause == wire.CauseCode]}, 0)
			h.door(1, false, wire.CauseNone)
			h.at(h.clock)
			h.at(h.clock.Add(time.Hour))
			h.expect("the late opening", tc.want...)
		})
	}
	t.Run("left open", func(t *testing.T) {
		h := newHarnessIn(t, t.TempDir(), bank, custodyConfig())
		h.pickup(2, "p-1", h.clock)
		opened := h.clock
		h.at(opened)
		h.at(opened.Add(10*time.Minute - time.Nanosecond))
		h.expect("just before 10 minutes")
		h.at(opened.Add(10 * time.Minute))
		h.expect("10 minutes", "door-ajar:2")
	})
}

// parcelStore is the parcel service's FindParcels over parcels in memory: newest first, with
// the filter's Occupies, To and Limit. The parcel store is another part of the hub; the
// engine's use of the interface is what is tested here.
type parcelStore struct {
	mu      sync.Mutex
	parcels []*fleet.Parcel
	calls   int
	fail    error
	// during, when set, runs inside the next FindParcels, after its answer is read: a change
	// that the hub is told of while the answer is on its way.
	during func()
}

func (s *parcelStore) FindParcels(_ context.Context, f fleet.ParcelFilter) ([]*fleet.Parcel, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.fail != nil {
		return nil, s.fail
	}
	if f.Limit < 1 || f.Limit > 1000 {
		return nil, fleet.Errorf(fleet.EINVALID, "limit %d", f.Limit)
	}
	var out []*fleet.Parcel
	for _, p := range s.parcels {
		if (!f.Occupies || p.Occupies()) && (f.To.IsZero() || p.CreatedAt.Before(f.To)) {
			c := *p
			out = append(out, &c)
		}
	}
	slices.SortStableFunc(out, func(a, b *fleet.Parcel) int { return b.CreatedAt.Compare(a.CreatedAt) })
	if during := s.during; during != nil {
		s.during = nil
		s.mu.Unlock()
		during()
		s.mu.Lock()
	}
	return out[:min(len(out), f.Limit)], nil
}

// An engine that starts reads every parcel inside a compartment, page after page (parcels
// delivered at the same moment across a page's end included), and takes up the parcel alerts
// open when the hub stopped: one still overdue stays, one whose parcel was picked up while the
// hub was down resolves.
func TestParcelsAfterRestart(t *testing.T) {
	dir := t.TempDir()
	big := &fleet.Device{ID: "bank-64", Kind: fleet.KindLockerBank, Site: "oak", Doors: wire.MaxDoors}
	h := newHarnessIn(t, dir, big, custodyConfig())
	start := h.clock
	store := &parcelStore{}
	for i := range 2501 {
		// Three parcels per moment, the oldest first in doors 1, 2 and 3; the first engine is
		// told of the first two only.
		created := start.Add(time.Duration(i/3) * time.Second)
		p := h.inLocker(fmt.Sprint("p-", i), 1+i%wire.MaxDoors, created, false)
		store.parcels = append(store.parcels, p)
		if i < 2 {
			h.parcel(p)
		}
	}
	h.at(start.Add(72 * time.Hour))
	h.expect("before the restart", "parcel-overdue:1", "parcel-overdue:2")

	store.parcels[1].Status, store.parcels[1].PickedUpAt = fleet.ParcelPickedUp, &start // while no hub ran
	cfg := custodyConfig()
	h2 := newHarnessWith(t, dir, big, cfg, Options{Parcels: store})
	h2.clock = h.clock
	if store.calls < 3 {
		t.Fatalf("%d pages read, want at least 3 for 2,501 parcels", store.calls)
	}
	u := h2.e.unit(big.ID)
	if n := len(u.custody.parcels); n != 2500 {
		t.Fatalf("the engine knows %d parcels, want the 2,500 inside", n)
	}
	h2.at(h2.clock)
	// Door 3's parcel, which this engine learns of only now, was delivered with door 1's.
	h2.expect("after the restart", "parcel-overdue:1", "parcel-overdue:3")
	if all, _ := h2.store.FindAlerts(context.Background(), fleet.AlertFilter{}); len(all) != 3 {
		t.Fatalf("%d alerts, want the two from before the restart and door 3's", len(all))
	}
	// Every door holds parcels; each fires when its oldest is 72 hours in.
	h2.at(start.Add(72*time.Hour + time.Duration(2500/3)*time.Second))
	if n := len(h2.open()); n != wire.MaxDoors {
		t.Fatalf("%d open alerts once every parcel is overdue, want one per door (%d)", n, wire.MaxDoors)
	}
}

// Without the parcels, an engine does not start: it would resolve every parcel alert.
func TestParcelsUnreadableAtStart(t *testing.T) {
	store := &parcelStore{fail: fleet.Errorf(fleet.EINTERNAL, "database is locked")}
	e, err := New(custodyConfig(), nil, listOf{bank}, &fakePresence{m: map[string]fleet.Presence{}}, Options{Parcels: store})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "database is locked") {
		t.Fatalf("Start = %v, want the parcel store's error", err)
	}
}

// listOf lists fixed devices, for an engine that fails before it reads its store.
type listOf []*fleet.Device

func (l listOf) FindDevices(context.Context, fleet.DeviceFilter) ([]*fleet.Device, error) {
	return l, nil
}

// A hub that starts to lead a cluster reads the parcels again, and again while it leads: a
// parcel delivered or retrieved through another hub, whose event it never saw, is judged.
func TestLeaderReadsTheParcels(t *testing.T) {
	cfg := custodyConfig()
	cfg.Tick = 10 * time.Millisecond
	store := &parcelStore{}
	var leading atomic.Bool
	h := newHarnessWith(t, t.TempDir(), bank, cfg, Options{Parcels: store, Leading: leading.Load})
	h.e.now = time.Now
	h.e.parcelFollow = 20 * time.Millisecond
	store.mu.Lock()
	store.parcels = append(store.parcels, h.inLocker("p-1", 4, time.Now().Add(-73*time.Hour), false))
	store.mu.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.e.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	leading.Store(true)
	waitOpen := func(what string, want ...string) {
		t.Helper()
		giveUp := time.Now().Add(10 * time.Second)
		for !slices.Equal(h.open(), want) {
			if time.Now().After(giveUp) {
				t.Fatalf("%s: open alerts %q, want %q", what, h.open(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitOpen("this hub leads", "parcel-overdue:4")

	// Retrieved through another hub: the leader reads it while it leads.
	store.mu.Lock()
	store.parcels[0].Status = fleet.ParcelRetrieved
	store.mu.Unlock()
	waitOpen("retrieved through another hub")
}

// What the hub is told while it reads the parcels wins over what it read: a parcel picked up
// meanwhile does not come back, one delivered meanwhile is not forgotten.
func TestParcelsToldWhileReading(t *testing.T) {
	store := &parcelStore{}
	h := newHarnessWith(t, t.TempDir(), bank, custodyConfig(), Options{Parcels: store})
	old := h.clock.Add(-73 * time.Hour)
	picked, delivered := h.inLocker("p-1", 1, old, false), h.inLocker("p-2", 2, old, false)
	store.parcels = []*fleet.Parcel{picked}
	store.during = func() {
		h.pickup(1, "p-1", h.clock)
		h.parcel(delivered)
	}
	if err := h.e.loadParcels(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.at(h.clock)
	h.expect("after the read", "parcel-overdue:2")
}

// A follower keeps a keypad lockout only as long as the leader may not have judged it yet: a
// hub that starts to lead right after one fires for it, one that leads later does not fire
// for what the leader judged long ago.
func TestFollowerKeepsLockoutsBounded(t *testing.T) {
	var leading atomic.Bool
	h := newHarnessWith(t, t.TempDir(), bank, custodyConfig(), Options{Leading: leading.Load})
	h.keypad(wire.KeypadLockedOut, 5)
	h.e.idle(h.clock)
	leading.Store(true)
	h.e.allDue() // as Run does when this hub starts to lead
	h.at(h.clock)
	h.expect("leading right after the lockout", "keypad-brute-force")

	h2 := newHarnessWith(t, t.TempDir(), bank, custodyConfig(), Options{Leading: func() bool { return false }})
	h2.keypad(wire.KeypadLockedOut, 5)
	h2.e.idle(h2.clock)
	if u := h2.e.unit(bank.ID); u.custody == nil {
		t.Fatal("a follower forgot a lockout the leader may not have judged yet")
	}
	h2.e.idle(h2.clock.Add(followInterval + time.Nanosecond))
	if u := h2.e.unit(bank.ID); u.custody != nil {
		t.Fatalf("a follower keeps %+v, judged by the leader long ago", u.custody)
	}
}
