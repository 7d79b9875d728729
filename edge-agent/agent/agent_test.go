package agent_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/broker"
	"github.com/lockerhub/lockerhub/edge-agent/agent"
	"github.com/lockerhub/lockerhub/edge-agent/hardware"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/syncbuf"
	"github.com/lockerhub/lockerhub/internal/testhub"
)

const wait = 15 * time.Second

// unit is one agent with simulated hardware, running against a test hub.
type unit struct {
	t      *testing.T
	id     string
	hw     *hardware.Simulator
	cfg    agent.Config
	agent  *agent.Agent
	cancel context.CancelFunc
	done   chan struct{}
	clock  func() time.Time // the agent's device clock; nil: real time
	logs   syncbuf.Buffer   // what every run of the agent logged, debug included
}

// newUnit starts a unit with fast timings; hub may be nil for a unit whose hub is unreachable.
func newUnit(t *testing.T, hubURL, id, secret string, kind hardware.Kind, dataDir string) *unit {
	t.Helper()
	u := prepareUnit(t, hubURL, id, secret, kind, dataDir)
	u.start()
	return u
}

// prepareUnit is newUnit without the start, for a test to change the unit first.
func prepareUnit(t *testing.T, hubURL, id, secret string, kind hardware.Kind, dataDir string) *unit {
	t.Helper()
	hw, err := hardware.NewSimulator(hardware.SimConfig{Kind: kind, Doors: 4, Seed: 7,
		OpenDelay: 100 * time.Millisecond, HoldOpen: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cfg := agent.DefaultConfig()
	cfg.Hubs, cfg.DeviceID, cfg.Secret, cfg.DataDir = []string{hubURL}, id, secret, dataDir
	cfg.TelemetryInterval = 100 * time.Millisecond
	cfg.ReconnectMax = time.Second
	cfg.Unlock.Pulse, cfg.Unlock.ConfirmWindow = time.Second, 2*time.Second
	cfg.Thermostat.Period = 50 * time.Millisecond
	return &unit{t: t, id: id, hw: hw, cfg: cfg}
}

func (u *unit) start() {
	u.t.Helper()
	log := slog.New(slog.NewTextHandler(&u.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := agent.New(u.cfg, u.hw, agent.Options{Version: "test", Logger: log})
	if err != nil {
		u.t.Fatal(err)
	}
	if u.clock != nil {
		agent.SetClock(a, u.clock)
	}
	ctx, cancel := context.WithCancel(context.Background())
	u.agent, u.cancel, u.done = a, cancel, make(chan struct{})
	go func() {
		defer close(u.done)
		if err := a.Run(ctx); err != nil {
			u.t.Error(err)
		}
	}()
	u.t.Cleanup(u.stop)
}

func (u *unit) stop() {
	u.cancel()
	<-u.done
}

func (u *unit) waitOnline() {
	u.t.Helper()
	testhub.WaitFor(u.t, wait, u.id+" online", u.agent.Online)
}

// header is what every numbered message carries.
type header struct {
	Seq uint64
	TS  int64
}

func headerOf(t *testing.T, m testhub.Message) header {
	t.Helper()
	_, ch, _ := wire.ParseTopic(m.Topic)
	msg, err := wire.Decode(ch, m.Payload)
	if err != nil {
		t.Fatalf("hub got an invalid %s message: %v", ch, err)
	}
	switch v := msg.(type) {
	case wire.Telemetry:
		return header{v.Seq, v.TS}
	case wire.Event:
		return header{v.Seq, v.TS}
	case wire.Result:
		return header{v.Seq, v.TS}
	}
	t.Fatalf("unnumbered message on %s", m.Topic)
	return header{}
}

func TestTelemetryAndDoorEvents(t *testing.T) {
	hub := testhub.Start(t, "")
	rec := hub.Record("lockers/#")
	for _, kind := range []hardware.Kind{hardware.KindFridge, hardware.KindLockerBank} {
		t.Run(string(kind), func(t *testing.T) {
			id := "unit-" + string(kind)
			u := newUnit(t, hub.URL(), id, hub.AddDevice(id, fleet.Kind(kind), 4), kind, t.TempDir())
			u.waitOnline()
			topic := wire.Topic(id, wire.ChannelTelemetry)
			testhub.WaitFor(t, wait, "telemetry", func() bool { return len(rec.Messages(topic)) >= 2 })
			tel, err := wire.DecodeTelemetry(rec.Messages(topic)[0].Payload)
			if err != nil {
				t.Fatal(err)
			}
			if len(tel.Doors) != 4 || tel.AmbientC == nil {
				t.Fatalf("snapshot %+v", tel)
			}
			if kind == hardware.KindFridge && (tel.Compressor == nil || tel.Doors[0].TempC == nil || tel.Heater != nil) {
				t.Fatalf("fridge snapshot lacks compressor or compartment temperatures: %+v", tel)
			}
			if kind == hardware.KindLockerBank && (tel.Heater == nil || tel.EnclosureC == nil || tel.Compressor != nil) {
				t.Fatalf("locker bank snapshot lacks heater or enclosure temperature: %+v", tel)
			}

			if err := u.hw.OpenByHand(2, hardware.AccessKeypad); err != nil {
				t.Fatal(err)
			}
			events := wire.Topic(id, wire.ChannelEvents)
			testhub.WaitFor(t, wait, "open and close events", func() bool { return len(rec.Messages(events)) >= 2 })
			var got []string
			for _, m := range rec.Messages(events) {
				ev, err := wire.DecodeEvent(m.Payload)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, fmt.Sprintf("door %d open=%v cause=%q via=%q", ev.Door, ev.Open, ev.Cause, ev.Via))
			}
			// A keypad opening is an authorized local one; its closing has no cause.
			if got[0] != `door 2 open=true cause="local" via="keypad"` || got[1] != `door 2 open=false cause="" via=""` {
				t.Fatalf("events %v", got)
			}
		})
	}
}

// checkSequence asserts that msgs, as received by one hub, are strictly increasing in seq per
// channel, and returns the seqs seen.
func checkSequence(t *testing.T, msgs []testhub.Message) map[uint64]header {
	t.Helper()
	seen := map[uint64]header{}
	last := map[string]uint64{}
	for _, m := range msgs {
		if strings.HasSuffix(m.Topic, "/status") {
			continue // presence, published by the hub, carries no seq
		}
		h := headerOf(t, m)
		_, ch, _ := wire.ParseTopic(m.Topic)
		if h.Seq <= last[string(ch)] {
			t.Fatalf("%s: seq %d after %d: out of order or duplicated", m.Topic, h.Seq, last[string(ch)])
		}
		last[string(ch)] = h.Seq
		seen[h.Seq] = h
	}
	return seen
}

func TestHubOutageLosesNothing(t *testing.T) {
	hub := testhub.Start(t, "")
	addr := hub.Addr("tcp").String()
	before := hub.Record("lockers/+/+")
	u := newUnit(t, hub.URL(), "bank-1", hub.AddDevice("bank-1", fleet.KindLockerBank, 4), hardware.KindLockerBank, t.TempDir())
	u.waitOnline()
	testhub.WaitFor(t, wait, "telemetry before the outage", func() bool { return len(before.Messages("/telemetry")) >= 3 })

	hub.Close()
	outageStart := time.Now()
	testhub.WaitFor(t, wait, "agent to notice", func() bool { return !u.agent.Online() })
	u.hw.OpenByHand(1, hardware.AccessUnknown) // door events while the hub is away
	testhub.WaitFor(t, wait, "messages queued", func() bool { return u.agent.Pending() >= 10 })
	outageEnd := time.Now()

	hub.Restart(addr)
	after := hub.Record("lockers/+/+")
	u.waitOnline()
	testhub.WaitFor(t, wait, "outbox drained", func() bool { return u.agent.Pending() == 0 })

	old := checkSequence(t, before.Messages(""))
	got := checkSequence(t, after.Messages(""))
	var max uint64
	for seq := range got {
		max = maxU(max, seq)
	}
	queued := 0
	for seq := uint64(1); seq <= max; seq++ {
		h, ok := got[seq]
		if !ok {
			if _, ok = old[seq]; !ok {
				t.Fatalf("seq %d never reached the hub", seq)
			}
			continue
		}
		if ts := time.UnixMilli(h.TS); ts.After(outageStart) && ts.Before(outageEnd) {
			queued++
		}
	}
	if queued < 10 {
		t.Fatalf("only %d messages carry timestamps from the outage; replay must keep original timestamps", queued)
	}
	if len(after.Messages("/events")) < 2 {
		t.Fatal("door events from the outage did not arrive")
	}
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

func TestAgentRestartKeepsOutbox(t *testing.T) {
	hub := testhub.Start(t, "")
	secret := hub.AddDevice("f-1", fleet.KindFridge, 4)
	dir := t.TempDir()
	addr := hub.Addr("tcp").String()
	hub.Close() // the hub is unreachable while the first agent runs

	u := newUnit(t, "tcp://"+addr, "f-1", secret, hardware.KindFridge, dir)
	testhub.WaitFor(t, wait, "messages queued", func() bool { return u.agent.Pending() >= 5 })
	u.stop()

	hub.Restart(addr)
	rec := hub.Record("lockers/+/+")
	u2 := newUnit(t, "tcp://"+addr, "f-1", secret, hardware.KindFridge, dir)
	u2.waitOnline()
	testhub.WaitFor(t, wait, "outbox drained", func() bool { return u2.agent.Pending() == 0 })
	testhub.WaitFor(t, wait, "new telemetry", func() bool { return len(rec.Messages("")) >= 7 })
	seen := checkSequence(t, rec.Messages(""))
	for seq := uint64(1); seq <= 5; seq++ {
		if _, ok := seen[seq]; !ok {
			t.Fatalf("seq %d from before the restart is missing; got %d messages", seq, len(seen))
		}
	}
}

// commander sends commands to a unit as the hub does and collects its results.
type commander struct {
	t       *testing.T
	hub     *testhub.Hub
	id      string
	results *testhub.Recorder
	n       int
}

func (c *commander) send(cmd wire.Command) {
	c.t.Helper()
	if cmd.ID == "" {
		c.n++
		cmd.ID = fmt.Sprintf("cmd-%d", c.n)
	}
	cmd.V = wire.Version
	if cmd.Issued == 0 {
		cmd.Issued = time.Now().UnixMilli()
		cmd.Expires = cmd.Issued + 10_000
	}
	b, err := wire.Marshal(cmd)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.hub.Publish(wire.Topic(c.id, wire.ChannelCommand), b, false, 1); err != nil {
		c.t.Fatal(err)
	}
}

// result waits for the n-th result (1-based) of command id.
func (c *commander) result(id string, n int) wire.Result {
	c.t.Helper()
	var got []wire.Result
	testhub.WaitFor(c.t, wait, "result of "+id, func() bool {
		got = got[:0]
		for _, m := range c.results.Messages("/result") {
			r, err := wire.DecodeResult(m.Payload)
			if err != nil {
				c.t.Fatal(err)
			}
			if r.ID == id {
				got = append(got, r)
			}
		}
		return len(got) >= n
	})
	return got[n-1]
}

func TestCommands(t *testing.T) {
	hub := testhub.Start(t, "")
	u := newUnit(t, hub.URL(), "bank-2", hub.AddDevice("bank-2", fleet.KindLockerBank, 4), hardware.KindLockerBank, t.TempDir())
	c := &commander{t: t, hub: hub, id: "bank-2", results: hub.Record("lockers/bank-2/+")}
	u.waitOnline()
	time.Sleep(100 * time.Millisecond) // the subscription is made right after connecting

	t.Run("unlock opens the door", func(t *testing.T) {
		c.send(wire.Command{ID: "open-1", Type: wire.CommandUnlock, Door: 1})
		r := c.result("open-1", 1)
		if r.Outcome != wire.OutcomeOpened || !strings.Contains(r.Detail, "door 1 opened after") {
			t.Fatalf("result %+v", r)
		}
		if n := u.hw.Unlocks(1); n != 1 {
			t.Fatalf("door 1 actuated %d times", n)
		}
		for door := 2; door <= 4; door++ {
			if n := u.hw.Unlocks(door); n != 0 {
				t.Fatalf("door %d actuated %d times", door, n)
			}
		}
	})
	t.Run("opening reported as remote", func(t *testing.T) {
		testhub.WaitFor(t, wait, "door event with cause remote", func() bool {
			for _, m := range c.results.Messages("/events") {
				if ev, _ := wire.DecodeEvent(m.Payload); ev.Door == 1 && ev.Open && ev.Cause == wire.CauseRemote {
					return true
				}
			}
			return false
		})
	})
	t.Run("unlock of an open door answers at once without a pulse", func(t *testing.T) {
		// The person let in by the first unlock still holds the door open.
		if err := u.hw.SetFault(hardware.FaultAjar, 1, true); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { u.hw.SetFault(hardware.FaultAjar, 1, false) })
		if err := u.hw.OpenByHand(1, hardware.AccessUnknown); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		c.send(wire.Command{ID: "open-again", Type: wire.CommandUnlock, Door: 1})
		r := c.result("open-again", 1)
		if r.Outcome != wire.OutcomeAlreadyOpen || time.Since(start) >= u.cfg.Unlock.ConfirmWindow {
			t.Fatalf("result %+v after %s; want already-open before the confirm window", r, time.Since(start))
		}
		if n := u.hw.Unlocks(1); n != 1 {
			t.Fatalf("door 1 actuated %d times; the open door's lock must not be pulsed", n)
		}
	})
	t.Run("jammed door", func(t *testing.T) {
		if err := u.hw.SetFault(hardware.FaultJammed, 2, true); err != nil {
			t.Fatal(err)
		}
		c.send(wire.Command{ID: "open-2", Type: wire.CommandUnlock, Door: 2})
		if r := c.result("open-2", 1); r.Outcome != wire.OutcomeJammed {
			t.Fatalf("result %+v", r)
		}
	})
	t.Run("expired command never actuates", func(t *testing.T) {
		issued := time.Now().Add(-time.Minute).UnixMilli()
		c.send(wire.Command{ID: "late-1", Type: wire.CommandUnlock, Door: 3, Issued: issued, Expires: issued + 30_000})
		if r := c.result("late-1", 1); r.Outcome != wire.OutcomeExpired {
			t.Fatalf("result %+v", r)
		}
		if n := u.hw.Unlocks(3); n != 0 {
			t.Fatalf("expired command actuated door 3 %d times", n)
		}
	})
	t.Run("duplicate id answered, not executed", func(t *testing.T) {
		c.send(wire.Command{ID: "open-4", Type: wire.CommandUnlock, Door: 4})
		first := c.result("open-4", 1)
		c.send(wire.Command{ID: "open-4", Type: wire.CommandUnlock, Door: 4})
		second := c.result("open-4", 2)
		if first.Outcome != wire.OutcomeOpened || second.Outcome != first.Outcome || second.Seq <= first.Seq {
			t.Fatalf("first %+v, second %+v", first, second)
		}
		if n := u.hw.Unlocks(4); n != 1 {
			t.Fatalf("door 4 actuated %d times for one command id", n)
		}
	})
	t.Run("duplicate survives an agent restart", func(t *testing.T) {
		u.stop()
		u.start()
		u.waitOnline()
		time.Sleep(100 * time.Millisecond)
		c.send(wire.Command{ID: "open-4", Type: wire.CommandUnlock, Door: 4})
		if r := c.result("open-4", 3); r.Outcome != wire.OutcomeOpened {
			t.Fatalf("result after restart %+v", r)
		}
		if n := u.hw.Unlocks(4); n != 1 {
			t.Fatalf("door 4 actuated %d times after a redelivery across a restart", n)
		}
	})
	t.Run("bad parameters", func(t *testing.T) {
		c.send(wire.Command{ID: "bad-door", Type: wire.CommandUnlock, Door: 9})
		c.send(wire.Command{ID: "bad-target", Type: wire.CommandSetpoint, Target: "compressor", SetpointC: ptr(3)})
		for _, id := range []string{"bad-door", "bad-target"} {
			if r := c.result(id, 1); r.Outcome != wire.OutcomeInvalid || r.Detail == "" {
				t.Fatalf("%s: result %+v", id, r)
			}
		}
	})
	t.Run("setpoint applies and persists", func(t *testing.T) {
		c.send(wire.Command{ID: "sp-1", Type: wire.CommandSetpoint, Target: "heater", SetpointC: ptr(12)})
		if r := c.result("sp-1", 1); r.Outcome != wire.OutcomeOK {
			t.Fatalf("result %+v", r)
		}
		u.stop()
		u.start()
		testhub.WaitFor(t, wait, "snapshot with the new setpoint", func() bool {
			msgs := c.results.Messages("/telemetry")
			tel, err := wire.DecodeTelemetry(msgs[len(msgs)-1].Payload)
			return err == nil && tel.Heater != nil && tel.Heater.SetpointC == 12
		})
	})
	t.Run("lock and snapshot", func(t *testing.T) {
		c.send(wire.Command{ID: "lock-1", Type: wire.CommandLock, Door: 1})
		if r := c.result("lock-1", 1); r.Outcome != wire.OutcomeLocked {
			t.Fatalf("lock result %+v", r)
		}
		n := len(c.results.Messages("/telemetry"))
		c.send(wire.Command{ID: "snap-1", Type: wire.CommandSnapshot})
		if r := c.result("snap-1", 1); r.Outcome != wire.OutcomeOK {
			t.Fatalf("snapshot result %+v", r)
		}
		if len(c.results.Messages("/telemetry")) <= n {
			t.Fatal("no snapshot before the snapshot command's result")
		}
	})
}

// A command queued for an offline unit that expires before the unit returns is never executed.
func TestCommandExpiredWhileOffline(t *testing.T) {
	hub := testhub.Start(t, "")
	u := newUnit(t, hub.URL(), "bank-3", hub.AddDevice("bank-3", fleet.KindLockerBank, 4), hardware.KindLockerBank, t.TempDir())
	c := &commander{t: t, hub: hub, id: "bank-3", results: hub.Record("lockers/bank-3/result")}
	u.waitOnline()
	time.Sleep(100 * time.Millisecond)
	u.agent.SetNetwork(false)
	testhub.WaitFor(t, wait, "offline", func() bool { p, _ := hub.Presence("bank-3"); return !p.Online })

	issued := time.Now().UnixMilli()
	c.send(wire.Command{ID: "queued-1", Type: wire.CommandUnlock, Door: 1, Issued: issued, Expires: issued + 300})
	time.Sleep(500 * time.Millisecond)
	u.agent.SetNetwork(true)
	if r := c.result("queued-1", 1); r.Outcome != wire.OutcomeExpired {
		t.Fatalf("result %+v", r)
	}
	if n := u.hw.Unlocks(1); n != 0 {
		t.Fatalf("an expired command opened the lock %d times", n)
	}
}

func ptr(f float64) *float64 { return &f }

// The agent reaches the hub over TLS (checking the hub's certificate against ca_file) and over
// WebSocket when its hub URL says so.
func TestTransports(t *testing.T) {
	hub := testhub.Start(t, "")
	for _, listener := range []string{broker.ListenerTLS, broker.ListenerWS} {
		t.Run(listener, func(t *testing.T) {
			id := "bank-" + listener
			rec := hub.Record(wire.Topic(id, wire.ChannelTelemetry))
			hw, err := hardware.NewSimulator(hardware.SimConfig{Kind: hardware.KindLockerBank, Doors: 2})
			if err != nil {
				t.Fatal(err)
			}
			cfg := agent.DefaultConfig()
			cfg.Hubs, cfg.DeviceID, cfg.Secret, cfg.DataDir = []string{hub.URLOf(listener)}, id, hub.AddDevice(id, fleet.KindLockerBank, 2), t.TempDir()
			cfg.CAFile, cfg.TelemetryInterval = hub.CAFile, 100*time.Millisecond
			u := &unit{t: t, id: id, hw: hw, cfg: cfg}
			u.start()
			u.waitOnline()
			testhub.WaitFor(t, wait, "telemetry over "+listener, func() bool { return len(rec.Messages("")) > 0 })
		})
	}
	t.Run("untrusted certificate", func(t *testing.T) {
		other, _, _ := testhub.SelfSignedCert(t)
		cfg := agent.DefaultConfig()
		cfg.Hubs, cfg.DeviceID, cfg.Secret, cfg.DataDir = []string{hub.URLOf(broker.ListenerTLS)}, "bank-x", "s", t.TempDir()
		cfg.CAFile = other
		hw, _ := hardware.NewSimulator(hardware.SimConfig{Kind: hardware.KindLockerBank, Doors: 2})
		u := &unit{t: t, id: "bank-x", hw: hw, cfg: cfg}
		u.start()
		time.Sleep(500 * time.Millisecond)
		if u.agent.Online() {
			t.Fatal("connected to a hub whose certificate the CA file does not vouch for")
		}
	})
}

// A door opened and shut again between two polls is still reported, open then closed, and an
// unlock whose door opened that briefly is confirmed.
func TestShortOpeningNotMissed(t *testing.T) {
	hub := testhub.Start(t, "")
	rec := hub.Record("lockers/quick-1/+")
	hw, err := hardware.NewSimulator(hardware.SimConfig{Kind: hardware.KindLockerBank, Doors: 2, OpenDelay: 10 * time.Millisecond, HoldOpen: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cfg := agent.DefaultConfig()
	cfg.Hubs, cfg.DeviceID, cfg.Secret, cfg.DataDir = []string{hub.URL()}, "quick-1", hub.AddDevice("quick-1", fleet.KindLockerBank, 2), t.TempDir()
	u := &unit{t: t, id: "quick-1", hw: hw, cfg: cfg}
	u.start()
	u.waitOnline()
	time.Sleep(150 * time.Millisecond)
	if err := hw.OpenByHand(2, hardware.AccessUnknown); err != nil {
		t.Fatal(err)
	}
	testhub.WaitFor(t, wait, "open and close events for door 2", func() bool { return len(rec.Messages("/events")) >= 2 })
	var got []string
	for _, m := range rec.Messages("/events") {
		ev, _ := wire.DecodeEvent(m.Payload)
		got = append(got, fmt.Sprintf("%d:%v:%q", ev.Door, ev.Open, ev.Cause))
	}
	// Hardware that cannot tell how a door opened leaves the opening without a cause.
	if strings.Join(got[:2], " ") != `2:true:"" 2:false:""` {
		t.Fatalf("events %v, want door 2 open then closed, with no cause", got)
	}
	c := &commander{t: t, hub: hub, id: "quick-1", results: rec}
	c.send(wire.Command{ID: "quick-unlock", Type: wire.CommandUnlock, Door: 1})
	if r := c.result("quick-unlock", 1); r.Outcome != wire.OutcomeOpened {
		t.Fatalf("unlock of a door that opened briefly: %+v", r)
	}
}

// With its telemetry paused the unit stays connected and reports its doors, but sends no
// snapshot until telemetry resumes: what the hub's stale rule must tell from an offline unit.
func TestTelemetryPaused(t *testing.T) {
	hub := testhub.Start(t, "")
	rec := hub.Record("lockers/mute-1/+")
	u := newUnit(t, hub.URL(), "mute-1", hub.AddDevice("mute-1", fleet.KindLockerBank, 4), hardware.KindLockerBank, t.TempDir())
	u.waitOnline()
	testhub.WaitFor(t, wait, "a first snapshot", func() bool { return len(rec.Messages("/telemetry")) > 0 })
	u.agent.SetTelemetry(false)
	time.Sleep(150 * time.Millisecond) // a snapshot already in the outbox may still arrive
	paused := len(rec.Messages("/telemetry"))
	if err := u.hw.OpenByHand(1, hardware.AccessKey); err != nil {
		t.Fatal(err)
	}
	testhub.WaitFor(t, wait, "door events while paused", func() bool { return len(rec.Messages("/events")) >= 2 })
	if n := len(rec.Messages("/telemetry")); n != paused || u.agent.TelemetryOn() || !u.agent.Online() {
		t.Fatalf("paused: %d snapshots after %d, telemetry on %v, online %v", n, paused, u.agent.TelemetryOn(), u.agent.Online())
	}
	u.agent.SetTelemetry(true)
	testhub.WaitFor(t, wait, "snapshots again", func() bool { return len(rec.Messages("/telemetry")) > paused+1 })
}
