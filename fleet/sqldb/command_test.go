package sqldb_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/testhub"
)

// A transition applies only from the status it was decided on: a result and an expiry racing
// for one command cannot both win, whatever order they reach the store in.
func TestUpdateCommandFromStatus(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		s := sqldb.NewCommandStore(openDB(t, e))
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
	})
}

// Commits go to the write-ahead log only; the checkpointer moves them into the database file
// while the hub runs, so that no commit has to. (SQLite only: PostgreSQL checkpoints itself.)
func TestCheckpointerMovesTheLogIntoTheDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newStore(t, sqliteEngine)
	s := sqldb.NewCommandStore(st.open(t))
	size := func() int64 {
		fi, err := os.Stat(filepath.Join(st.dir, sqldb.FileName))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	t0 := time.Now().Truncate(time.Millisecond)
	for i := range 2000 {
		c := &fleet.Command{ID: fmt.Sprintf("c%04d", i), DeviceID: "bank-1", Type: wire.CommandUnlock, Door: 1,
			Reason: strings.Repeat("a delivery for flat 4b ", 8), Actor: "token:op", Status: fleet.CommandCreated, CreatedAt: t0, ExpiresAt: t0}
		if _, err := s.CreateCommand(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	testhub.WaitFor(t, 10*time.Second, "the database file to take the commands", func() bool { return size() > before+200<<10 })
}

func TestFindCommands(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		s := sqldb.NewCommandStore(openDB(t, e))
		t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
		for i, dev := range []string{"bank-1", "bank-2", "bank-1"} {
			sp := 4.5
			c := &fleet.Command{ID: fmt.Sprintf("c%d", i), DeviceID: dev, Type: wire.CommandUnlock, Door: 1, Reason: "courier",
				Actor: "token:op", Status: fleet.CommandCreated, CreatedAt: t0.Add(time.Duration(i) * time.Second), ExpiresAt: t0.Add(time.Hour)}
			if i == 1 {
				c.Type, c.Door, c.SetpointC, c.Status = wire.CommandSetpoint, 0, &sp, fleet.CommandSent
			}
			if _, err := s.CreateCommand(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			name string
			f    fleet.CommandFilter
			want string
		}{
			{"all, newest first", fleet.CommandFilter{}, "c2 c1 c0"},
			{"device", fleet.CommandFilter{DeviceID: "bank-1"}, "c2 c0"},
			{"status", fleet.CommandFilter{Status: fleet.CommandSent}, "c1"},
			{"both", fleet.CommandFilter{DeviceID: "bank-1", Status: fleet.CommandSent}, ""},
			{"limit", fleet.CommandFilter{Limit: 1}, "c2"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cs, err := s.FindCommands(ctx, tc.f)
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, c := range cs {
					ids = append(ids, c.ID)
				}
				if got := strings.Join(ids, " "); got != tc.want {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
			})
		}
		c, err := s.FindCommandByID(ctx, "c1")
		if err != nil || c.SetpointC == nil || *c.SetpointC != 4.5 || c.SentAt != nil || !c.CreatedAt.Equal(t0.Add(time.Second)) {
			t.Fatalf("FindCommandByID = %+v, %v", c, err)
		}
		if _, err := s.FindCommandByID(ctx, "nope"); fleet.ErrorCode(err) != fleet.ENOTFOUND {
			t.Fatalf("unknown command: %v, want not found", err)
		}
	})
}

// CountCommands counts what the rate limits count: commands since a time, by token or by device.
func TestCountCommands(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		s := sqldb.NewCommandStore(openDB(t, e))
		t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
		for i, c := range []struct {
			actor, device string
			at            time.Duration
		}{{"token:a", "bank-1", 0}, {"token:a", "bank-2", 30 * time.Second}, {"token:b", "bank-1", 45 * time.Second}, {"token:a", "bank-1", 61 * time.Second}} {
			created := t0.Add(c.at)
			if _, err := s.CreateCommand(ctx, &fleet.Command{ID: fmt.Sprint("c", i), DeviceID: c.device, Type: wire.CommandUnlock, Door: 1,
				Reason: "r", Actor: c.actor, Status: fleet.CommandCreated, CreatedAt: created, ExpiresAt: created.Add(time.Minute)}); err != nil {
				t.Fatal(err)
			}
		}
		since := t0.Add(time.Second) // the minute before t0+61s
		for _, tc := range []struct {
			actor, device string
			want          int
		}{{"token:a", "", 2}, {"token:b", "", 1}, {"", "bank-1", 2}, {"", "bank-2", 1}, {"token:c", "", 0}} {
			if n, err := s.CountCommands(ctx, tc.actor, tc.device, since); err != nil || n != tc.want {
				t.Errorf("CountCommands(%q, %q) = %d, %v; want %d", tc.actor, tc.device, n, err, tc.want)
			}
		}
	})
}
