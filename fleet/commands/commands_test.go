package commands_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/commands"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// outbox records what the service publishes; the end-to-end tests use the real broker.
type outbox struct {
	mu   sync.Mutex
	cmds []wire.Command
}

func (o *outbox) PublishRequest(_ string, payload []byte, _ time.Duration, _ string, _ []byte) error {
	c, err := wire.DecodeCommand(payload)
	o.mu.Lock()
	o.cmds = append(o.cmds, c)
	o.mu.Unlock()
	return err
}

func (o *outbox) last() wire.Command {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.cmds[len(o.cmds)-1]
}

type allOnline struct{}

func (allOnline) Presence(id string) (fleet.Presence, bool) {
	return fleet.Presence{DeviceID: id, Online: true}, true
}

func setup(t *testing.T) (*commands.Service, *outbox) {
	db, err := sqldb.Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	devices := sqldb.NewDeviceService(db)
	for _, id := range []string{"a", "b"} {
		if _, err := devices.CreateDevice(context.Background(), &fleet.Device{ID: id, Kind: fleet.KindLockerBank, Site: "s", Doors: 4}); err != nil {
			t.Fatal(err)
		}
	}
	pub := &outbox{}
	svc, err := commands.New(sqldb.NewCommandStore(db), devices, allOnline{}, pub, commands.Options{Limits: commands.Limits{PerDevicePerMinute: 5}})
	if err != nil {
		t.Fatal(err)
	}
	return svc, pub
}

func request(key string, timeout time.Duration) commands.Request {
	return commands.Request{DeviceID: "a", Type: wire.CommandUnlock, Door: 2, Reason: "test", Actor: "token:t1",
		IdempotencyKey: key, Timeout: timeout}
}

func TestResultOnlyFromTheDeviceCommanded(t *testing.T) {
	svc, pub := setup(t)
	ctx := context.Background()
	c, err := svc.Send(ctx, request("", 10*time.Second), false)
	if err != nil {
		t.Fatal(err)
	}
	sent := pub.last()
	if sent.ID != c.ID || sent.Door != 2 || sent.Expires != c.ExpiresAt.UnixMilli() {
		t.Fatalf("published %+v for %+v", sent, c)
	}
	svc.HandleResult("b", wire.Result{ID: c.ID, Outcome: wire.OutcomeOpened}) // another device
	if got, _ := svc.Find(ctx, c.ID); got.Status != fleet.CommandSent {
		t.Fatalf("a result from another device changed the command: %+v", got)
	}
	svc.HandleResult("a", wire.Result{ID: c.ID, Outcome: wire.OutcomeJammed, Detail: "stuck"})
	got, _ := svc.Find(ctx, c.ID)
	if got.Status != fleet.CommandFailed || got.Outcome != wire.OutcomeJammed || got.CompletedAt == nil {
		t.Fatalf("after the device's result: %+v", got)
	}
}

func TestExpiryAndLateResult(t *testing.T) {
	svc, _ := setup(t)
	ctx := context.Background()
	c, err := svc.Send(ctx, request("", time.Second), true)
	if fleet.ErrorCode(err) != fleet.ETIMEOUT || c.Status != fleet.CommandExpired {
		t.Fatalf("Send = %+v, %v; want an expired command and a timeout", c, err)
	}
	svc.HandleResult("a", wire.Result{ID: c.ID, Outcome: wire.OutcomeOpened})
	got, _ := svc.Find(ctx, c.ID)
	if got.Outcome != wire.OutcomeOpened || got.Detail == "" {
		t.Fatalf("a late result is not on record: %+v", got)
	}
}

func TestIdempotencyKey(t *testing.T) {
	svc, pub := setup(t)
	ctx := context.Background()
	first, err := svc.Send(ctx, request("k1", 10*time.Second), false)
	if err != nil {
		t.Fatal(err)
	}
	again, err := svc.Send(ctx, request("k1", 10*time.Second), false)
	if err != nil || again.ID != first.ID || len(pub.cmds) != 1 {
		t.Fatalf("retry made %d publishes, ids %s %s, %v", len(pub.cmds), first.ID, again.ID, err)
	}
	other := request("k1", 10*time.Second)
	other.Actor = "token:t2" // keys are per actor
	if c, _ := svc.Send(ctx, other, false); c.ID == first.ID {
		t.Fatal("another actor's request with the same key returned the first actor's command")
	}
}

func TestRateLimitPerDevice(t *testing.T) {
	svc, _ := setup(t)
	for i := range 6 {
		_, err := svc.Send(context.Background(), request("", 10*time.Second), false)
		if limited := fleet.ErrorCode(err) == fleet.ERATELIMITED; limited != (i == 5) {
			t.Fatalf("request %d: %v", i, err)
		}
	}
}

func TestSetpoint(t *testing.T) {
	svc, pub := setup(t)
	ctx := context.Background()
	c5 := 7.5
	req := commands.Request{DeviceID: "a", Type: wire.CommandSetpoint, Target: "compressor", SetpointC: &c5,
		Reason: "cold snap", Actor: "token:t1", Timeout: 10 * time.Second}
	if _, err := svc.Send(ctx, req, false); fleet.ErrorCode(err) != fleet.EINVALID {
		t.Fatalf("a compressor setpoint for a locker bank: %v, want invalid", err)
	}
	req.Target = "heater"
	c, err := svc.Send(ctx, req, false)
	if err != nil {
		t.Fatal(err)
	}
	if sent := pub.last(); sent.Type != wire.CommandSetpoint || sent.Target != "heater" || *sent.SetpointC != 7.5 {
		t.Fatalf("published %+v", sent)
	}
	if got, _ := svc.Find(ctx, c.ID); got.Target != "heater" || got.SetpointC == nil || *got.SetpointC != 7.5 {
		t.Fatalf("stored %+v", got)
	}
	req.SetpointC = nil
	if _, err := svc.Send(ctx, req, false); fleet.ErrorCode(err) != fleet.EINVALID {
		t.Fatalf("a setpoint without a value: %v, want invalid", err)
	}
}
