package alerts

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// harness drives an engine on a fake clock with a simulated unit: the unit publishes its
// "world" as a snapshot every snapshotEvery, the test changes the world, sends events and
// commands, and checks which alerts are open. Alerts are stored in a real SQLite database.
type harness struct {
	t        *testing.T
	e        *Engine
	db       *sqldb.DB
	store    *sqldb.AlertStore
	presence *fakePresence
	notes    *recorder
	clock    time.Time
	dev      *fleet.Device
	world    wire.Telemetry
	silent   bool // the unit stops publishing snapshots
	stuck    bool // its readings stop moving: no sensor noise
	nextSnap time.Time
	// keepAlive is the connection's MQTT keepalive: a silent unit still pings this often.
	keepAlive time.Duration
	lastPing  time.Time
	seq       uint64
	cmdSeq    int
}

const snapshotEvery = 10 * time.Second

var t0 = time.Date(2026, 1, 10, 6, 0, 0, 0, time.UTC)

func f(v float64) *float64 { return &v }

// healthy returns a snapshot of a unit with nothing wrong.
func healthy(d *fleet.Device) wire.Telemetry {
	t := wire.Telemetry{V: wire.Version, AmbientC: f(12)}
	for n := 1; n <= d.Doors; n++ {
		ds := wire.DoorState{Door: n, Locked: true}
		if d.Kind == fleet.KindFridge {
			ds.TempC = f(3.5)
			if fleet.ClassOf(d) == fleet.ClassFreezer {
				ds.TempC = f(-18)
			}
		}
		t.Doors = append(t.Doors, ds)
	}
	switch d.Kind {
	case fleet.KindLockerBank:
		t.EnclosureC = f(10)
		t.Heater = &wire.Thermal{SetpointC: 5}
	case fleet.KindFridge:
		t.Compressor = &wire.Thermal{SetpointC: 3, Duty: 0.4}
		if fleet.ClassOf(d) == fleet.ClassFreezer {
			t.Compressor.SetpointC = -18
		}
	}
	return t
}

func newHarness(t *testing.T, d *fleet.Device) *harness {
	t.Helper()
	return newHarnessIn(t, t.TempDir(), d, DefaultConfig())
}

func newHarnessIn(t *testing.T, dir string, d *fleet.Device, cfg Config) *harness {
	t.Helper()
	return newHarnessWith(t, dir, d, cfg, Options{})
}

// newHarnessWith is newHarnessIn with the engine's options; the harness sets their Events and
// Audit.
func newHarnessWith(t *testing.T, dir string, d *fleet.Device, cfg Config, opts Options) *harness {
	t.Helper()
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	db, err := sqldb.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	devices := sqldb.NewDeviceService(db)
	stored, err := devices.FindDeviceByID(ctx, d.ID)
	if fleet.ErrorCode(err) == fleet.ENOTFOUND {
		stored = new(*d) // registered as the unit the test describes, which stays as it is
		_, err = devices.CreateDevice(ctx, stored)
	}
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, db: db, store: sqldb.NewAlertStore(db), presence: &fakePresence{m: make(map[string]fleet.Presence)},
		notes: &recorder{}, clock: t0, dev: stored, world: healthy(d)}
	opts.Events, opts.Audit = h.notes, sqldb.NewAuditService(db)
	h.e, err = New(cfg, h.store, devices, h.presence, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.e.now = func() time.Time { return h.clock }
	if err := h.e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h.connect()
	return h
}

// connect marks the unit online and publishes a snapshot at once.
func (h *harness) connect() {
	h.presence.set(fleet.Presence{DeviceID: h.dev.ID, Online: true, ConnectedSince: h.clock, LastSeen: h.clock, KeepAlive: h.keepAlive})
	h.nextSnap = h.clock
	h.publish()
}

func (h *harness) disconnect() {
	p, _ := h.presence.Presence(h.dev.ID)
	p.Online, p.DisconnectedAt = false, h.clock
	h.presence.set(p)
}

// publishNow sends the world as a snapshot at once, as a unit does when something changes.
func (h *harness) publishNow() {
	h.nextSnap = h.clock
	h.publish()
}

// publish sends the world as a snapshot if one is due.
func (h *harness) publish() {
	p, _ := h.presence.Presence(h.dev.ID)
	if p.Online && h.keepAlive > 0 && h.clock.Sub(p.LastSeen) >= h.keepAlive {
		p.LastSeen = h.clock // an MQTT PINGREQ: nothing to store, but the connection is alive
		h.presence.set(p)
	}
	if h.silent || !p.Online || h.clock.Before(h.nextSnap) {
		return
	}
	h.nextSnap = h.clock.Add(snapshotEvery)
	snap := h.world
	snap.Doors = slices.Clone(h.world.Doors)
	if !h.stuck {
		// Real sensors are never perfectly still; a reading that is, is the stuck-sensor rule's
		// business.
		noise := 0.01 * float64(h.seq%3)
		for i, d := range snap.Doors {
			if d.TempC != nil {
				snap.Doors[i].TempC = f(*d.TempC + noise)
			}
		}
		for _, c := range []**float64{&snap.EnclosureC, &snap.AmbientC} {
			if *c != nil {
				*c = f(**c + noise)
			}
		}
	}
	h.seq++
	snap.Seq, snap.TS = h.seq, h.clock.UnixMilli()
	h.observe(snap, 0)
}

func (h *harness) observe(msg wire.Message, lost uint64) {
	h.e.HandleEvent(messageEvent(h.dev, msg, lost))
	p, _ := h.presence.Presence(h.dev.ID)
	p.LastSeen = h.clock
	h.presence.set(p)
}

// advance moves the clock by d in steps of one tick, publishing and evaluating at each.
func (h *harness) advance(d time.Duration) {
	end := h.clock.Add(d)
	for h.clock.Before(end) {
		h.clock = h.clock.Add(h.e.cfg.Tick)
		h.publish()
		h.e.Evaluate(context.Background())
	}
}

// door sends a door event and updates the world to match.
func (h *harness) door(n int, open bool, cause wire.Cause) {
	ds := &h.world.Doors[n-1]
	ds.Open, ds.Locked = open, !open
	h.seq++
	h.observe(wire.Event{V: wire.Version, Seq: h.seq, TS: h.clock.UnixMilli(), Kind: wire.EventDoor, Door: n, Open: open,
		Locked: !open, Cause: cause}, 0)
}

// unlock plays a remote unlock of door n through its lifecycle with the given outcome; an
// opened door is opened with the remote cause, as the agent reports it.
func (h *harness) unlock(n int, outcome wire.Outcome) {
	h.cmdSeq++
	c := fleet.Command{ID: fmt.Sprint("c", h.cmdSeq), DeviceID: h.dev.ID, Type: wire.CommandUnlock, Door: n,
		Status: fleet.CommandCreated, CreatedAt: h.clock}
	h.e.HandleEvent(fleet.Event{Kind: fleet.EventCommandChanged, Command: c})
	c.Status = fleet.CommandSent
	h.e.HandleEvent(fleet.Event{Kind: fleet.EventCommandChanged, Command: c})
	h.advance(time.Second)
	if outcome == wire.OutcomeOpened {
		h.door(n, true, wire.CauseRemote)
		c.Status = fleet.CommandSucceeded
	} else {
		c.Status = fleet.CommandFailed
	}
	c.Outcome = outcome
	h.e.HandleEvent(fleet.Event{Kind: fleet.EventCommandChanged, Command: c})
}

// open returns the open alerts as "rule" or "rule:door", sorted.
func (h *harness) open() []string {
	h.t.Helper()
	alerts, err := h.store.FindAlerts(context.Background(), fleet.AlertFilter{Open: true})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, a := range alerts {
		s := a.Rule
		if a.Door != 0 {
			s += fmt.Sprint(":", a.Door)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// expect fails unless exactly the given alerts are open.
func (h *harness) expect(when string, want ...string) {
	h.t.Helper()
	slices.Sort(want)
	if got := h.open(); !slices.Equal(got, want) {
		h.t.Fatalf("%s (at +%s): open alerts %q, want %q", when, h.clock.Sub(t0), got, want)
	}
}

type fakePresence struct {
	mu sync.Mutex
	m  map[string]fleet.Presence
}

func (p *fakePresence) Presence(id string) (fleet.Presence, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.m[id]
	return v, ok
}

func (p *fakePresence) set(v fleet.Presence) {
	p.mu.Lock()
	p.m[v.DeviceID] = v
	p.mu.Unlock()
}

// recorder keeps the notified events.
// messageEvent is the event the telemetry pipeline publishes for a device's message.
func messageEvent(d *fleet.Device, msg wire.Message, lost uint64) fleet.Event {
	ev := fleet.Event{Kind: fleet.EventResultReceived, Device: d, Message: msg, Lost: lost}
	switch msg.(type) {
	case wire.Telemetry:
		ev.Kind = fleet.EventTelemetryStored
	case wire.Event:
		ev.Kind = fleet.EventDoorChanged
	}
	return ev
}

// recorder records the alert changes an engine publishes: its own, and those it mirrors.
type recorder struct {
	mu       sync.Mutex
	events   []fleet.AlertEvent
	mirrored []fleet.AlertEvent
}

func (r *recorder) Publish(ev fleet.Event) {
	if ev.Kind != fleet.EventAlertChanged {
		return
	}
	r.mu.Lock()
	if ev.Mirrored {
		r.mirrored = append(r.mirrored, ev.Alert)
	} else {
		r.events = append(r.events, ev.Alert)
	}
	r.mu.Unlock()
}

// kinds returns the changes the engine made itself, as "kind rule".
func (r *recorder) kinds() []string { return r.list(&r.events) }

// mirroredKinds returns the changes the engine learned other hubs made.
func (r *recorder) mirroredKinds() []string { return r.list(&r.mirrored) }

func (r *recorder) list(events *[]fleet.AlertEvent) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range *events {
		out = append(out, string(ev.Kind)+" "+ev.Alert.Rule)
	}
	return out
}
