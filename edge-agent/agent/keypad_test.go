package agent_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/hardware"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/testhub"
)

// events returns the events of kind k the hub received, in order.
func events(t *testing.T, rec *testhub.Recorder, k wire.EventKind) []wire.Event {
	t.Helper()
	var out []wire.Event
	for _, m := range rec.Messages("/events") {
		ev, err := wire.DecodeEvent(m.Payload)
		if err != nil {
			t.Fatalf("hub got an invalid event: %v", err)
		}
		if ev.Kind == k {
			out = append(out, ev)
		}
	}
	return out
}

// keypadEvent waits for the n-th keypad event (1-based) and returns it.
func keypadEvent(t *testing.T, rec *testhub.Recorder, n int) wire.Event {
	t.Helper()
	testhub.WaitFor(t, wait, fmt.Sprintf("keypad event %d", n), func() bool { return len(events(t, rec, wire.EventKeypad)) >= n })
	return events(t, rec, wire.EventKeypad)[n-1]
}

// enter types code at the unit's keypad and returns the keypad event it caused.
func (u *unit) enter(rec *testhub.Recorder, code string) wire.Event {
	u.t.Helper()
	n := len(events(u.t, rec, wire.EventKeypad))
	if err := u.hw.EnterCode(code); err != nil {
		u.t.Fatal(err)
	}
	return keypadEvent(u.t, rec, n+1)
}

// describe renders the fields of a keypad event a test cares about.
func describe(ev wire.Event) string {
	return fmt.Sprintf("%s door=%d parcel=%q failures=%d", ev.Keypad, ev.Door, ev.Parcel, ev.Failures)
}

// codesReported returns the code set version of the latest snapshot, and how many there were.
func codesReported(t *testing.T, rec *testhub.Recorder) (version uint64, snapshots int) {
	t.Helper()
	msgs := rec.Messages("/telemetry")
	if len(msgs) == 0 {
		return 0, 0
	}
	tel, err := wire.DecodeTelemetry(msgs[len(msgs)-1].Payload)
	if err != nil {
		t.Fatal(err)
	}
	return tel.Codes, len(msgs)
}

// checkUnlocks asserts how often each door's lock was released.
func (u *unit) checkUnlocks(want ...int) {
	u.t.Helper()
	for i, w := range want {
		if n := u.hw.Unlocks(i + 1); n != w {
			u.t.Fatalf("door %d unlocked %d times, want %d", i+1, n, w)
		}
	}
}

// A resident's code opens its own door once; a used, expired, revoked or wrong code opens
// nothing, and the set the unit holds is the newest the hub sent.
func TestPickupCodes(t *testing.T) {
	hub := testhub.Start(t, "")
	const id = "bank-codes"
	rec := hub.Record("lockers/" + id + "/+")
	u := prepareUnit(t, hub.URL(), id, hub.AddDevice(id, fleet.KindLockerBank, 4), hardware.KindLockerBank, t.TempDir())
	u.cfg.TelemetryInterval = time.Hour // every snapshot seen is one the agent sent on its own
	u.start()
	u.waitOnline()
	time.Sleep(100 * time.Millisecond) // the subscription is made right after connecting

	hub.SendCodes(id, 2,
		testhub.Pickup{Parcel: "p-door3", Door: 3, Code: "31415926"},
		testhub.Pickup{Parcel: "p-late", Door: 4, Code: "27182818", Expires: time.Now().Add(-time.Second)},
		testhub.Pickup{Parcel: "p-door2", Door: 2, Code: "16180339"})
	testhub.WaitFor(t, wait, "a snapshot reporting code set 2", func() bool { v, _ := codesReported(t, rec); return v == 2 })

	t.Run("an older set is ignored", func(t *testing.T) {
		_, snapshots := codesReported(t, rec)
		hub.SendCodes(id, 1, testhub.Pickup{Parcel: "p-old", Door: 1, Code: "99999999"})
		if got := describe(u.enter(rec, "99999999")); got != `wrong door=0 parcel="" failures=1` {
			t.Fatalf("code of the older set: %s", got)
		}
		if v, n := codesReported(t, rec); v != 2 || n != snapshots {
			t.Fatalf("after an older set: %d snapshots reporting version %d, want still %d reporting 2", n, v, snapshots)
		}
		u.checkUnlocks(0, 0, 0, 0)
	})
	t.Run("the right code opens its door once", func(t *testing.T) {
		if got := describe(u.enter(rec, "31415926")); got != `accepted door=3 parcel="p-door3" failures=0` {
			t.Fatalf("right code: %s", got)
		}
		testhub.WaitFor(t, wait, "door 3 opened by the code", func() bool {
			for _, ev := range events(t, rec, wire.EventDoor) {
				if ev.Door == 3 && ev.Open {
					if ev.Cause != wire.CauseCode || ev.Parcel != "p-door3" {
						t.Fatalf("door 3 opening %+v, want cause code for parcel p-door3", ev)
					}
					return true
				}
			}
			return false
		})
		u.checkUnlocks(0, 0, 1, 0) // door 3 only: the door comes from the set, never from the entry
		if got := describe(u.enter(rec, "31415926")); got != `used door=0 parcel="p-door3" failures=0` {
			t.Fatalf("the same code again: %s", got)
		}
		u.checkUnlocks(0, 0, 1, 0)
	})
	t.Run("an expired code opens nothing", func(t *testing.T) {
		if got := describe(u.enter(rec, "27182818")); got != `expired door=0 parcel="p-late" failures=0` {
			t.Fatalf("expired code: %s", got)
		}
		u.checkUnlocks(0, 0, 1, 0)
	})
	t.Run("a code left out of a newer set is revoked", func(t *testing.T) {
		// The hub has not yet heard of p-door3's pickup, so its code is still in the set.
		hub.SendCodes(id, 3, testhub.Pickup{Parcel: "p-door3", Door: 3, Code: "31415926"})
		testhub.WaitFor(t, wait, "a snapshot reporting code set 3", func() bool { v, _ := codesReported(t, rec); return v == 3 })
		if got := describe(u.enter(rec, "16180339")); got != `wrong door=0 parcel="" failures=1` {
			t.Fatalf("revoked code: %s", got)
		}
		if got := describe(u.enter(rec, "31415926")); got != `used door=0 parcel="p-door3" failures=0` {
			t.Fatalf("used code resent by a hub that did not know: %s", got)
		}
		u.checkUnlocks(0, 0, 1, 0)
	})
	for _, code := range []string{"31415926", "27182818", "16180339", "99999999"} {
		if strings.Contains(u.logs.String(), code) {
			t.Fatalf("the agent logged the code %s", code)
		}
	}
}

// testClock is the agent's device clock, which a test may move forward.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// Wrong codes lock the keypad for longer each time, and neither waiting out a lockout's entries
// nor a restart gets an attacker more guesses; the set and the used codes survive a restart too.
func TestKeypadLockout(t *testing.T) {
	hub := testhub.Start(t, "")
	const id = "bank-lock"
	rec := hub.Record("lockers/" + id + "/+")
	clock := &testClock{}
	u := prepareUnit(t, hub.URL(), id, hub.AddDevice(id, fleet.KindLockerBank, 4), hardware.KindLockerBank, t.TempDir())
	u.clock = clock.Now
	u.start()
	u.waitOnline()
	time.Sleep(100 * time.Millisecond)
	hub.SendCodes(id, 1, testhub.Pickup{Parcel: "p-1", Door: 1, Code: "12345678"})
	testhub.WaitFor(t, wait, "code set 1 applied", func() bool { v, _ := codesReported(t, rec); return v == 1 })

	// lockedOut enters wrong codes until the keypad locks, checking each answer, and returns
	// the lockout's length as the unit announced it.
	lockedOut := func(from int) time.Duration {
		t.Helper()
		wrong := []string{"00000000", "abc", "1234567", "123456789", "87654321"}
		for f := from; f%5 != 0; f++ {
			if got := describe(u.enter(rec, wrong[f%5])); got != fmt.Sprintf(`wrong door=0 parcel="" failures=%d`, f) {
				t.Fatalf("wrong code %d: %s", f, got)
			}
		}
		entered := clock.Now()
		ev := u.enter(rec, "00000000")
		if ev.Keypad != wire.KeypadLockedOut || ev.Failures%5 != 0 {
			t.Fatalf("after a fifth wrong code: %s", describe(ev))
		}
		return time.UnixMilli(ev.LockedUntil).Sub(entered).Round(time.Second)
	}
	// ignored enters the right code during a lockout and waits until the agent has dropped it.
	ignored := func() {
		t.Helper()
		n := strings.Count(u.logs.String(), "locked out")
		if err := u.hw.EnterCode("12345678"); err != nil {
			t.Fatal(err)
		}
		testhub.WaitFor(t, wait, "the entry dropped", func() bool { return strings.Count(u.logs.String(), "locked out") > n })
	}

	if d := lockedOut(1); d != 30*time.Second {
		t.Fatalf("first lockout %s, want 30s", d)
	}
	keypadEvents := len(events(t, rec, wire.EventKeypad))
	ignored()
	u.stop()
	u.start()
	u.waitOnline()
	ignored()
	if n := len(events(t, rec, wire.EventKeypad)); n != keypadEvents {
		t.Fatalf("%d keypad events during the lockout, want none", n-keypadEvents)
	}
	u.checkUnlocks(0, 0, 0, 0)

	clock.Advance(31 * time.Second)
	if d := lockedOut(6); d != time.Minute {
		t.Fatalf("second lockout in a row %s, want 1m", d)
	}
	clock.Advance(61 * time.Second)
	if got := describe(u.enter(rec, "12345678")); got != `accepted door=1 parcel="p-1" failures=0` {
		t.Fatalf("right code after the lockout: %s", got)
	}
	testhub.WaitFor(t, wait, "door 1 opened by the code", func() bool {
		for _, ev := range events(t, rec, wire.EventDoor) {
			if ev.Door == 1 && ev.Open && ev.Cause == wire.CauseCode && ev.Parcel == "p-1" {
				return true
			}
		}
		return false
	})

	u.stop()
	u.start()
	u.waitOnline()
	testhub.WaitFor(t, wait, "a snapshot after the restart", func() bool {
		msgs := rec.Messages("/telemetry")
		tel, _ := wire.DecodeTelemetry(msgs[len(msgs)-1].Payload)
		return time.UnixMilli(tel.TS).After(time.Now().Add(-time.Second)) && tel.Codes == 1
	})
	if got := describe(u.enter(rec, "12345678")); got != `used door=0 parcel="p-1" failures=0` {
		t.Fatalf("used code after a restart: %s", got)
	}
	// The accepted code ended the run of wrong codes and its lockouts.
	if d := lockedOut(1); d != 30*time.Second {
		t.Fatalf("lockout after an accepted code %s, want 30s again", d)
	}
	u.checkUnlocks(1, 0, 0, 0)
}

// A pickup while the hub is unreachable opens the door at once and reaches the hub later, with
// the time it happened.
func TestPickupOffline(t *testing.T) {
	hub := testhub.Start(t, "")
	const id = "bank-off"
	rec := hub.Record("lockers/" + id + "/+")
	u := newUnit(t, hub.URL(), id, hub.AddDevice(id, fleet.KindLockerBank, 4), hardware.KindLockerBank, t.TempDir())
	u.waitOnline()
	time.Sleep(100 * time.Millisecond)
	hub.SendCodes(id, 1, testhub.Pickup{Parcel: "p-off", Door: 2, Code: "55501234"})
	testhub.WaitFor(t, wait, "code set 1 applied", func() bool { v, _ := codesReported(t, rec); return v == 1 })

	u.agent.SetNetwork(false)
	testhub.WaitFor(t, wait, "offline", func() bool { return !u.agent.Online() })
	picked := time.Now()
	if err := u.hw.EnterCode("55501234"); err != nil {
		t.Fatal(err)
	}
	testhub.WaitFor(t, wait, "door 2 opened and closed", func() bool {
		st, _ := u.hw.Read()
		return st.Doors[1].Opens == 1 && !st.Doors[1].Open
	})
	testhub.WaitFor(t, wait, "events queued", func() bool { return u.agent.Pending() >= 3 })
	if len(events(t, rec, wire.EventKeypad)) != 0 {
		t.Fatal("an event reached the hub while the network was down")
	}
	back := time.Now()
	u.agent.SetNetwork(true)
	ev := keypadEvent(t, rec, 1)
	if describe(ev) != `accepted door=2 parcel="p-off" failures=0` || ev.TS < picked.UnixMilli() || ev.TS > back.UnixMilli() {
		t.Fatalf("keypad event %s at %d, want accepted between %d and %d", describe(ev), ev.TS, picked.UnixMilli(), back.UnixMilli())
	}
	var open wire.Event
	testhub.WaitFor(t, wait, "the opening", func() bool {
		for _, ev := range events(t, rec, wire.EventDoor) {
			if ev.Open {
				open = ev
				return true
			}
		}
		return false
	})
	if !open.Open || open.Door != 2 || open.Cause != wire.CauseCode || open.Parcel != "p-off" || open.TS > back.UnixMilli() || open.Seq <= ev.Seq {
		t.Fatalf("door event %+v, want door 2 opened by p-off's code before %d, after the keypad event", open, back.UnixMilli())
	}
}

// A code whose door does not open stays live: typed again while its door is released it does
// nothing, and after the window it releases the door again.
func TestCodeDoorDoesNotOpen(t *testing.T) {
	hub := testhub.Start(t, "")
	const id = "bank-stuck"
	rec := hub.Record("lockers/" + id + "/+")
	u := prepareUnit(t, hub.URL(), id, hub.AddDevice(id, fleet.KindLockerBank, 4), hardware.KindLockerBank, t.TempDir())
	// A window long enough for two entries however loaded the machine, short to wait out.
	u.cfg.Unlock.Pulse, u.cfg.Unlock.ConfirmWindow = 100*time.Millisecond, time.Second
	u.start()
	u.waitOnline()
	time.Sleep(100 * time.Millisecond)
	hub.SendCodes(id, 1, testhub.Pickup{Parcel: "p-stuck", Door: 1, Code: "10203040"})
	testhub.WaitFor(t, wait, "code set 1 applied", func() bool { v, _ := codesReported(t, rec); return v == 1 })
	if err := u.hw.SetFault(hardware.FaultJammed, 1, true); err != nil {
		t.Fatal(err)
	}

	if got := describe(u.enter(rec, "10203040")); got != `accepted door=1 parcel="p-stuck" failures=0` {
		t.Fatalf("right code: %s", got)
	}
	if err := u.hw.EnterCode("10203040"); err != nil {
		t.Fatal(err)
	}
	testhub.WaitFor(t, wait, "the second entry dropped", func() bool { return strings.Contains(u.logs.String(), "its door is released already") })
	u.checkUnlocks(1, 0, 0, 0)
	if n := len(events(t, rec, wire.EventKeypad)); n != 1 {
		t.Fatalf("%d keypad events, want 1: the second entry did nothing new", n)
	}

	time.Sleep(u.cfg.Unlock.ConfirmWindow) // the window ends: the door never opened
	if got := describe(u.enter(rec, "10203040")); got != `accepted door=1 parcel="p-stuck" failures=0` {
		t.Fatalf("right code after the door did not open: %s", got)
	}
	u.checkUnlocks(2, 0, 0, 0)
}

// A code for a door that stands open (the last resident still holds it) releases nothing, and
// there will be no opening to confirm it: the sensor's open door is the access, so the code is
// used at once and the pickup reported, or the hub would never learn of it.
func TestCodeForADoorStandingOpen(t *testing.T) {
	hub := testhub.Start(t, "")
	const id = "bank-open"
	rec := hub.Record("lockers/" + id + "/+")
	u := prepareUnit(t, hub.URL(), id, hub.AddDevice(id, fleet.KindLockerBank, 4), hardware.KindLockerBank, t.TempDir())
	u.start()
	u.waitOnline()
	time.Sleep(200 * time.Millisecond) // the agent's first door poll records where the doors stand; the opening comes after it
	if err := u.hw.SetFault(hardware.FaultAjar, 2, true); err != nil {
		t.Fatal(err)
	}
	if err := u.hw.OpenByHand(2, hardware.AccessKey); err != nil {
		t.Fatal(err)
	}
	testhub.WaitFor(t, wait, "door 2 reported open", func() bool {
		for _, ev := range events(t, rec, wire.EventDoor) {
			if ev.Door == 2 && ev.Open {
				return true
			}
		}
		return false
	})
	hub.SendCodes(id, 1, testhub.Pickup{Parcel: "p-open", Door: 2, Code: "55667788"})
	testhub.WaitFor(t, wait, "code set 1 applied", func() bool { v, _ := codesReported(t, rec); return v == 1 })

	if got := describe(u.enter(rec, "55667788")); got != `accepted door=2 parcel="p-open" failures=0` {
		t.Fatalf("right code: %s", got)
	}
	testhub.WaitFor(t, wait, "the door reported open by the code", func() bool {
		for _, ev := range events(t, rec, wire.EventDoor) {
			if ev.Door == 2 && ev.Open && ev.Cause == wire.CauseCode && ev.Parcel == "p-open" {
				return true
			}
		}
		return false
	})
	u.checkUnlocks(0, 0, 0, 0)
	if got := describe(u.enter(rec, "55667788")); got != `used door=0 parcel="p-open" failures=0` {
		t.Fatalf("the code again: %s", got)
	}
}
