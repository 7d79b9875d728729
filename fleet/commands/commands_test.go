package commands_test

import (
	"context"
	"strings"
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
	db := openDB(t)
	return hub(t, db, nil)
}

// openDB opens a store with the devices a and b.
func openDB(t *testing.T) *sqldb.DB {
	db, err := sqldb.Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	devices := sqldb.NewDeviceService(db)
	for _, id := range []string{"a", "b"} {
		if _, err := devices.CreateDevice(fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"}), &fleet.Device{ID: id, Kind: fleet.KindLockerBank, Site: "s", Doors: 4}); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// hub is one hub's command service on db.
func hub(t *testing.T, db *sqldb.DB, events fleet.EventPublisher) (*commands.Service, *outbox) {
	pub := &outbox{}
	svc, err := commands.New(sqldb.NewCommandStore(db), sqldb.NewDeviceService(db), allOnline{}, pub,
		commands.Options{Limits: commands.Limits{PerDevicePerMinute: 5}, Events: events})
	if err != nil {
		t.Fatal(err)
	}
	return svc, pub
}

// outcomes counts the outcomes a hub publishes, by command.
type outcomes struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *outcomes) Publish(ev fleet.Event) {
	if c := ev.Command; ev.Kind == fleet.EventCommandChanged && c.Done() {
		o.mu.Lock()
		o.n[c.ID]++
		o.mu.Unlock()
	}
}

func (o *outcomes) count(id string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[id]
}

// In a cluster the result may be stored by another hub before the one waiting for it sees it:
// the waiting call returns the outcome at once, and each hub publishes it once.
func TestResultStoredByAnotherHub(t *testing.T) {
	db := openDB(t)
	seenA, seenB := &outcomes{n: map[string]int{}}, &outcomes{n: map[string]int{}}
	a, pub := hub(t, db, seenA)
	b, _ := hub(t, db, seenB)
	type sent struct {
		c   *fleet.Command
		err error
	}
	done := make(chan sent, 1)
	go func() {
		c, err := a.Send(asOperator(), request("", 30*time.Second), true)
		done <- sent{c, err}
	}()
	var id string
	for id == "" {
		time.Sleep(5 * time.Millisecond)
		pub.mu.Lock()
		if len(pub.cmds) > 0 {
			id = pub.cmds[0].ID
		}
		pub.mu.Unlock()
	}
	result := wire.Result{ID: id, Outcome: wire.OutcomeOpened}
	b.HandleResult("a", result) // b's share of the stream: b stores it
	a.HandleResult("a", result) // a's copy of the whole stream
	a.HandleResult("a", result) // a duplicate
	select {
	case s := <-done:
		if s.err != nil || s.c.Status != fleet.CommandSucceeded {
			t.Fatalf("Send = %+v, %v; want the stored outcome", s.c, s.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting Send did not learn the result another hub stored")
	}
	if seenA.count(id) != 1 || seenB.count(id) != 1 {
		t.Errorf("published %d and %d times; want once on each hub", seenA.count(id), seenB.count(id))
	}
}

// A command its hub never finished (the hub died) is expired by whichever hub looks.
func TestExpireOverdue(t *testing.T) {
	db := openDB(t)
	store := sqldb.NewCommandStore(db)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	mk := func(id string, status fleet.CommandStatus, expires time.Time) {
		c := &fleet.Command{ID: id, DeviceID: "a", Type: wire.CommandUnlock, Door: 1, Reason: "r", Actor: "token:t",
			Status: fleet.CommandCreated, CreatedAt: now.Add(-time.Minute), ExpiresAt: expires}
		if _, err := store.CreateCommand(ctx, c); err != nil {
			t.Fatal(err)
		}
		if status != fleet.CommandCreated {
			c.Status = status
			if ok, err := store.UpdateCommand(ctx, c, fleet.CommandCreated); !ok || err != nil {
				t.Fatal(ok, err)
			}
		}
	}
	mk("orphan-sent", fleet.CommandSent, now.Add(-30*time.Second))
	mk("orphan-created", fleet.CommandCreated, now.Add(-30*time.Second))
	mk("in-flight", fleet.CommandSent, now.Add(time.Minute))
	mk("just-expired", fleet.CommandSent, now) // its own hub's timer is about to expire it
	svc, _ := hub(t, db, nil)
	if err := svc.ExpireOverdue(ctx); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]fleet.CommandStatus{"orphan-sent": fleet.CommandExpired, "orphan-created": fleet.CommandExpired,
		"in-flight": fleet.CommandSent, "just-expired": fleet.CommandSent} {
		if c, _ := svc.Find(ctx, id); c.Status != want {
			t.Errorf("%s: %s, want %s", id, c.Status, want)
		}
	}
}

func request(key string, timeout time.Duration) commands.Request {
	return commands.Request{DeviceID: "a", Type: wire.CommandUnlock, Door: 2, Reason: "test", IdempotencyKey: key, Timeout: timeout}
}

// asOperator returns the context the tests send commands in, as the operator token t1.
func asOperator() context.Context {
	return fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "token:t1"})
}

func TestResultOnlyFromTheDeviceCommanded(t *testing.T) {
	svc, pub := setup(t)
	ctx := asOperator()
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

// The device's outcome decides the command's status: an unlock of a door that was already open
// did what the operator wanted.
func TestStatusOfOutcome(t *testing.T) {
	svc, _ := setup(t)
	ctx := asOperator()
	for outcome, want := range map[wire.Outcome]fleet.CommandStatus{wire.OutcomeOpened: fleet.CommandSucceeded,
		wire.OutcomeAlreadyOpen: fleet.CommandSucceeded, wire.OutcomeJammed: fleet.CommandFailed, wire.OutcomeFailed: fleet.CommandFailed} {
		c, err := svc.Send(ctx, request("", 10*time.Second), false)
		if err != nil {
			t.Fatal(err)
		}
		svc.HandleResult("a", wire.Result{ID: c.ID, Outcome: outcome})
		if got, _ := svc.Find(ctx, c.ID); got.Status != want || got.Outcome != outcome {
			t.Errorf("%s: %s with outcome %s, want %s", outcome, got.Status, got.Outcome, want)
		}
	}
}

// A result after the expiry is the command's outcome when the device acted, since a device acts
// only on a command that had not expired when it started; a late refusal leaves it expired.
func TestExpiryAndLateResult(t *testing.T) {
	for _, tc := range []struct {
		outcome wire.Outcome
		status  fleet.CommandStatus
	}{
		{wire.OutcomeJammed, fleet.CommandFailed},
		{wire.OutcomeOpened, fleet.CommandSucceeded},
		{wire.OutcomeExpired, fleet.CommandExpired},
	} {
		t.Run(string(tc.outcome), func(t *testing.T) {
			svc, _ := setup(t)
			ctx := asOperator()
			c, err := svc.Send(ctx, request("", time.Second), true)
			if fleet.ErrorCode(err) != fleet.ETIMEOUT || c.Status != fleet.CommandExpired {
				t.Fatalf("Send = %+v, %v; want an expired command and a timeout", c, err)
			}
			svc.HandleResult("a", wire.Result{ID: c.ID, Outcome: tc.outcome, Detail: "as the device said"})
			got, _ := svc.Find(ctx, c.ID)
			if got.Status != tc.status || got.Outcome != tc.outcome || !strings.HasSuffix(got.Detail, "as the device said") ||
				got.CompletedAt.Before(got.ExpiresAt) { // stored in milliseconds: the same one may hold both
				t.Fatalf("after a late %s: %+v; want %s", tc.outcome, got, tc.status)
			}
		})
	}
}

func TestIdempotencyKey(t *testing.T) {
	svc, pub := setup(t)
	ctx := asOperator()
	first, err := svc.Send(ctx, request("k1", 10*time.Second), false)
	if err != nil {
		t.Fatal(err)
	}
	again, err := svc.Send(ctx, request("k1", 10*time.Second), false)
	if err != nil || again.ID != first.ID || len(pub.cmds) != 1 {
		t.Fatalf("retry made %d publishes, ids %s %s, %v", len(pub.cmds), first.ID, again.ID, err)
	}
	// Keys are per actor.
	if c, _ := svc.Send(fleet.NewContextWithActor(ctx, fleet.Actor{ID: "token:t2"}), request("k1", 10*time.Second), false); c.ID == first.ID {
		t.Fatal("another actor's request with the same key returned the first actor's command")
	}
	// The same key for another request is refused rather than answered with the first command.
	c5 := 5.0
	for name, change := range map[string]func(*commands.Request){
		"device": func(r *commands.Request) { r.DeviceID = "b" },
		"door":   func(r *commands.Request) { r.Door = 1 },
		"action": func(r *commands.Request) { r.Type = wire.CommandLock },
		"reason": func(r *commands.Request) { r.Reason = "another" },
		"setpoint": func(r *commands.Request) {
			r.Type, r.Door, r.Target, r.SetpointC = wire.CommandSetpoint, 0, "heater", &c5
		},
	} {
		req := request("k1", 10*time.Second)
		change(&req)
		if c, err := svc.Send(ctx, req, false); fleet.ErrorCode(err) != fleet.EKEYREUSED {
			t.Errorf("key reused for another %s: %+v, %v; want %s", name, c, err, fleet.EKEYREUSED)
		}
	}
	if len(pub.cmds) != 2 { // the first command and the other actor's
		t.Fatalf("%d commands published, want 2", len(pub.cmds))
	}
}

func TestRateLimitPerDevice(t *testing.T) {
	svc, _ := setup(t)
	for i := range 6 {
		_, err := svc.Send(asOperator(), request("", 10*time.Second), false)
		if limited := fleet.ErrorCode(err) == fleet.ERATELIMITED; limited != (i == 5) {
			t.Fatalf("request %d: %v", i, err)
		}
	}
}

// The limits hold for a cluster: the hubs count the commands in the store they share.
func TestRateLimitsAcrossHubs(t *testing.T) {
	db := openDB(t)
	a, _ := hub(t, db, nil)
	b, _ := hub(t, db, nil)
	ctx := asOperator()
	for i, svc := range []*commands.Service{a, b, a, b, a} {
		if _, err := svc.Send(ctx, request("", 10*time.Second), false); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if _, err := b.Send(ctx, request("", 10*time.Second), false); fleet.ErrorCode(err) != fleet.ERATELIMITED {
		t.Fatalf("sixth command for the device through the other hub: %v, want rate limited", err)
	}
	other := request("", 10*time.Second)
	other.DeviceID = "b" // the device's limit is its own
	if _, err := b.Send(ctx, other, false); err != nil {
		t.Fatalf("a command for another device: %v", err)
	}

	// The token's limit, counted the same way, in a store of its own.
	db = openDB(t)
	svc, err := commands.New(sqldb.NewCommandStore(db), sqldb.NewDeviceService(db), allOnline{}, &outbox{},
		commands.Options{Limits: commands.Limits{PerTokenPerMinute: 2}})
	if err != nil {
		t.Fatal(err)
	}
	for i, dev := range []string{"a", "b", "a"} {
		req := request("", 10*time.Second)
		req.DeviceID = dev
		_, err := svc.Send(ctx, req, false)
		if limited := fleet.ErrorCode(err) == fleet.ERATELIMITED; limited != (i == 2) {
			t.Fatalf("request %d of the token: %v", i, err)
		}
	}
}

func TestSetpoint(t *testing.T) {
	svc, pub := setup(t)
	ctx := asOperator()
	c5 := 7.5
	req := commands.Request{DeviceID: "a", Type: wire.CommandSetpoint, Target: "compressor", SetpointC: &c5,
		Reason: "cold snap", Timeout: 10 * time.Second}
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
