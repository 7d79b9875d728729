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
	"github.com/lockerhub/lockerhub/fleet/sqlite"
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
	hub := testhub.Open(t)
	hub.Restart("")
	proxy := testproxy.New(t, hub.Addr(broker.ListenerTCP).String())
	hw, err := hardware.NewSimulator(hardware.SimConfig{Kind: hardware.KindLockerBank, Doors: 2, OpenDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cfg := agent.DefaultConfig()
	cfg.Hubs, cfg.DeviceID, cfg.Secret, cfg.DataDir = []string{"tcp://" + proxy.Addr}, "bank-1", hub.AddDevice("bank-1", fleet.KindLockerBank, 2), t.TempDir()
	cfg.ReconnectMax = time.Second
	a, err := agent.New(cfg, hw, agent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testhub.WaitFor(t, 15*time.Second, "unit online", a.Online)
	time.Sleep(200 * time.Millisecond) // its command subscription follows the connect

	store := sqlite.NewCommandStore(hub.DB)
	svc, err := commands.New(store, hub.Devices, hub.Broker, hub.Broker, commands.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hub.Subscribe(wire.Topic("+", wire.ChannelResult), func(topic string, payload []byte) {
		if id, _, ok := wire.ParseTopic(topic); ok {
			if r, err := wire.DecodeResult(payload); err == nil {
				svc.HandleResult(id, r)
			}
		}
	})

	proxy.Freeze()
	c, err := svc.Send(ctx, commands.Request{DeviceID: "bank-1", Type: wire.CommandUnlock, Door: 1, Reason: "test",
		Actor: "token:t", Timeout: time.Second}, true)
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
