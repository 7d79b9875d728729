package sqlite_test

import (
	"context"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqlite"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// A transition applies only from the status it was decided on: a result and an expiry racing
// for one command cannot both win, whatever order they reach the store in.
func TestUpdateCommandFromStatus(t *testing.T) {
	ctx := context.Background()
	s := sqlite.NewCommandStore(openDB(t, t.TempDir()))
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC).Truncate(time.Millisecond)
	c := &fleet.Command{ID: "c1", DeviceID: "bank-1", Type: wire.CommandUnlock, Door: 3, Reason: "courier", Actor: "token:op",
		Status: fleet.CommandCreated, CreatedAt: t0, ExpiresAt: t0.Add(30 * time.Second)}
	if _, err := s.CreateCommand(ctx, c); err != nil {
		t.Fatal(err)
	}
	sent := t0.Add(time.Millisecond)
	c.Status, c.SentAt = fleet.CommandSent, &sent
	if ok, err := s.UpdateCommand(ctx, c, fleet.CommandCreated); !ok || err != nil {
		t.Fatalf("created -> sent: %v, %v", ok, err)
	}

	done := t0.Add(time.Second)
	result, expiry := *c, *c
	result.Status, result.Outcome, result.CompletedAt = fleet.CommandSucceeded, wire.OutcomeOpened, &done
	expiry.Status, expiry.CompletedAt = fleet.CommandExpired, &done
	if ok, err := s.UpdateCommand(ctx, &result, fleet.CommandSent); !ok || err != nil {
		t.Fatalf("sent -> succeeded: %v, %v", ok, err)
	}
	if ok, err := s.UpdateCommand(ctx, &expiry, fleet.CommandSent); ok || err != nil {
		t.Fatalf("sent -> expired after the result: %v, %v; want not applied", ok, err)
	}
	got, err := s.FindCommandByID(ctx, "c1")
	if err != nil || got.Status != fleet.CommandSucceeded || got.Outcome != wire.OutcomeOpened || !got.CompletedAt.Equal(done) {
		t.Fatalf("stored %+v, %v; want the result", got, err)
	}
	ghost := expiry
	ghost.ID = "c2"
	if ok, err := s.UpdateCommand(ctx, &ghost, fleet.CommandSent); ok || err != nil {
		t.Fatalf("unknown command: %v, %v; want not applied", ok, err)
	}
}
