package commands_test

import (
	"context"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/broker"
	"github.com/lockerhub/lockerhub/edge-agent/agent"
	"github.com/lockerhub/lockerhub/edge-agent/hardware"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/commands"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/testhub"
	"github.com/lockerhub/lockerhub/internal/testproxy"
)

// An unlock that reaches the unit only after it expired never opens the door. The link to the
// unit goes dead without either side noticing (a frozen proxy, like a cellular dead zone), so
// the hub still sees the unit online, sends the unlock into its session and times out; when the
// link comes back, the unlock is dropped by the broker or redelivered from the unit's persistent
// session and refused by the agent. Asserted on the simulated lock itself.
func TestUnlockDeliveredAfterExpiryNeverOpens(t *testing.T) {
	r := newRealUnit(t)
	hub, proxy, hw, a, svc, store, ctx := r.hub, r.proxy, r.hw, r.agent, r.svc, r.store, context.Background()

	proxy.Freeze()
	c, err := svc.Send(fleet.NewContextWithActor(ctx, fleet.Actor{ID: "token:t"}), commands.Request{DeviceID: "bank-1",
		Type: wire.CommandUnlock, Door: 1, Reason: "test", Timeout: time.Second}, true)
	if fleet.ErrorCode(err) != fleet.ETIMEOUT || c.Status != fleet.CommandExpired {
		t.Fatalf("Send over a dead link = %+v, %v; want expired", c, err)
	}

	// The link comes back: the unit reconnects, and either the broker has already dropped the
	// stale unlock (its MQTT expiry) or it redelivers it from the session and the agent refuses
	// it. Either way the door stays shut.
	proxy.Cut()
	testhub.WaitFor(t, 30*time.Second, "the unit back online", func() bool {
		p, _ := hub.Presence("bank-1")
		return p.Online && a.Online()
	})
	time.Sleep(2 * time.Second) // room for a redelivery and its answer
	got, _ := store.FindCommandByID(ctx, c.ID)
	if got.Status != fleet.CommandExpired || (got.Outcome != "" && got.Outcome != wire.OutcomeExpired) {
		t.Fatalf("late unlock: %+v; want it expired and, if answered, refused as expired", got)
	}
	if n := hw.Unlocks(1); n != 0 {
		t.Fatalf("the lock was actuated %d times by an expired unlock", n)
	}
}

// realUnit is the command path with real parts: the broker, the SQLite store, and one locker
// bank running the real agent on the simulator, connected through a proxy the test can break.
type realUnit struct {
	hub   *testhub.Hub
	proxy *testproxy.Proxy
	hw    *hardware.Simulator
	agent *agent.Agent
	svc   *commands.Service
	store *sqldb.CommandStore
}

func newRealUnit(t *testing.T) *realUnit {
	t.Helper()
	r := &realUnit{hub: testhub.Open(t)}
	r.hub.Restart("")
	r.proxy = testproxy.New(t, r.hub.Addr(broker.ListenerTCP).String())
	var err error
	if r.hw, err = hardware.NewSimulator(hardware.SimConfig{Kind: hardware.KindLockerBank, Doors: 4, OpenDelay: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	cfg := agent.DefaultConfig()
	cfg.Hubs, cfg.DeviceID, cfg.Secret, cfg.DataDir = []string{"tcp://" + r.proxy.Addr}, "bank-1", r.hub.AddDevice("bank-1", fleet.KindLockerBank, 4), t.TempDir()
	cfg.ReconnectMax, cfg.Unlock.ConfirmWindow = time.Second, 2*time.Second
	if r.agent, err = agent.New(cfg, r.hw, agent.Options{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.agent.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testhub.WaitFor(t, 15*time.Second, "unit online", r.agent.Online)
	time.Sleep(200 * time.Millisecond) // its command subscription follows the connect

	r.store = sqldb.NewCommandStore(r.hub.DB)
	if r.svc, err = commands.New(r.store, r.hub.Devices, r.hub.Broker, r.hub.Broker, commands.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.TakeResults(r.hub.Broker); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *realUnit) unlock(t *testing.T, door int) *fleet.Command {
	t.Helper()
	c, err := r.svc.Send(fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "token:t"}), commands.Request{DeviceID: "bank-1",
		Type: wire.CommandUnlock, Door: door, Reason: "test", Timeout: 5 * time.Second}, true)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Through the real hub and agent: an unlock opens exactly the requested door, a jammed door says
// so, and a command delivered twice actuates the lock once.
func TestUnlockThroughRealAgent(t *testing.T) {
	r := newRealUnit(t)
	c := r.unlock(t, 2)
	if c.Status != fleet.CommandSucceeded || c.Outcome != wire.OutcomeOpened || c.Latency() <= 0 {
		t.Fatalf("unlock: %+v", c)
	}
	for door, want := range map[int]int{1: 0, 2: 1, 3: 0, 4: 0} {
		if n := r.hw.Unlocks(door); n != want {
			t.Fatalf("door %d actuated %d times, want %d", door, n, want)
		}
	}

	if err := r.hw.SetFault(hardware.FaultJammed, 3, true); err != nil {
		t.Fatal(err)
	}
	if c := r.unlock(t, 3); c.Status != fleet.CommandFailed || c.Outcome != wire.OutcomeJammed {
		t.Fatalf("jammed door: %+v", c)
	}

	// The broker may deliver a QoS 1 message twice; the same command id must unlock once.
	now := time.Now()
	payload, _ := wire.Marshal(wire.Command{V: wire.Version, ID: "dup-1", Type: wire.CommandUnlock, Door: 4,
		Issued: now.UnixMilli(), Expires: now.Add(5 * time.Second).UnixMilli()})
	for range 2 {
		if err := r.hub.PublishRequest(wire.Topic("bank-1", wire.ChannelCommand), payload, 5*time.Second, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	testhub.WaitFor(t, 10*time.Second, "door 4 opened", func() bool { return r.hw.Unlocks(4) > 0 })
	time.Sleep(500 * time.Millisecond) // room for the second delivery to be handled
	if n := r.hw.Unlocks(4); n != 1 {
		t.Fatalf("a command delivered twice actuated the lock %d times", n)
	}
}
