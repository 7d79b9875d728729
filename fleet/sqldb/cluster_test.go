package sqldb_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// The tests in this file write through two handles on one database at once: on PostgreSQL two
// hubs of a cluster, on SQLite a hub and the CLI. Whatever holds there holds because of the
// database, since the two handles share no memory.

// race runs fn(i) in n goroutines, released together, and waits for them.
func race(n int, fn func(i int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

// hubs opens two handles on a fresh database of engine e.
func hubs(t *testing.T, e engine) (store, [2]*sqldb.DB) {
	st := newStore(t, e)
	return st, [2]*sqldb.DB{st.open(t), st.open(t)}
}

func TestConcurrentAlertCreates(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		_, dbs := hubs(t, e)
		const n = 8
		errs := make([]error, n)
		race(n, func(i int) {
			a := &fleet.Alert{Rule: "cold-holding", Severity: fleet.SeverityMajor, Scope: fleet.ScopeCompartment, DeviceID: "fridge-1",
				Site: "oak", Door: 2, Summary: fmt.Sprintf("fired by writer %d", i), FiredAt: time.Now()}
			errs[i] = sqldb.NewAlertStore(dbs[i%2]).CreateAlert(ctx, a)
		})
		created := 0
		for i, err := range errs {
			switch {
			case err == nil:
				created++
			case fleet.ErrorCode(err) != fleet.ECONFLICT:
				t.Errorf("writer %d: %v, want nil or ECONFLICT (what the alerts engine adopts)", i, err)
			}
		}
		open, err := sqldb.NewAlertStore(dbs[0]).FindAlerts(ctx, fleet.AlertFilter{Open: true})
		if created != 1 || err != nil || len(open) != 1 {
			t.Fatalf("%d creates succeeded, %d alerts open (%v); want exactly one", created, len(open), err)
		}
	})
}

func TestConcurrentCommandTransitions(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		_, dbs := hubs(t, e)
		t0 := time.Now().UTC().Truncate(time.Millisecond)
		c := &fleet.Command{ID: "c1", DeviceID: "bank-1", Type: wire.CommandUnlock, Door: 3, Reason: "courier", Actor: "token:op",
			Status: fleet.CommandSent, CreatedAt: t0, ExpiresAt: t0.Add(30 * time.Second), SentAt: &t0}
		if _, err := sqldb.NewCommandStore(dbs[0]).CreateCommand(ctx, c); err != nil {
			t.Fatal(err)
		}
		// Results and expiries of the same command, decided by both hubs on the status "sent".
		const n = 8
		won := make([]bool, n)
		errs := make([]error, n)
		race(n, func(i int) {
			next := *c
			done := t0.Add(time.Duration(i+1) * time.Millisecond)
			next.Status, next.Detail, next.CompletedAt = fleet.CommandSucceeded, fmt.Sprintf("writer %d", i), &done
			if i%2 == 1 {
				next.Status = fleet.CommandExpired
			}
			won[i], errs[i] = sqldb.NewCommandStore(dbs[i%2]).UpdateCommand(ctx, &next, fleet.CommandSent)
		})
		winner := -1
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("writer %d: %v", i, errs[i])
			}
			if won[i] {
				if winner >= 0 {
					t.Fatalf("writers %d and %d both applied a transition from sent", winner, i)
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatal("no transition applied")
		}
		got, err := sqldb.NewCommandStore(dbs[1]).FindCommandByID(ctx, "c1")
		if err != nil || got.Detail != fmt.Sprintf("writer %d", winner) {
			t.Fatalf("stored %+v, %v; want writer %d's transition", got, err, winner)
		}
	})
}

func TestConcurrentIdempotentCreates(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		_, dbs := hubs(t, e)
		t0 := time.Now().UTC().Truncate(time.Millisecond)
		const n = 8
		earlier := make([]*fleet.Command, n)
		errs := make([]error, n)
		race(n, func(i int) {
			c := &fleet.Command{ID: fmt.Sprintf("c%d", i), DeviceID: "bank-1", Type: wire.CommandUnlock, Door: 3, Reason: "courier",
				Actor: "token:op", IdempotencyKey: "retry-1", Status: fleet.CommandCreated, CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}
			earlier[i], errs[i] = sqldb.NewCommandStore(dbs[i%2]).CreateCommand(ctx, c)
		})
		var stored []string
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("writer %d: %v", i, errs[i])
			}
			if earlier[i] == nil {
				stored = append(stored, fmt.Sprintf("c%d", i))
			}
		}
		if len(stored) != 1 {
			t.Fatalf("stored %v, want exactly one command for the key", stored)
		}
		for i := range n {
			if earlier[i] != nil && earlier[i].ID != stored[0] {
				t.Errorf("writer %d was given %s as the earlier command, want %s", i, earlier[i].ID, stored[0])
			}
		}
	})
}

// Two imports racing over a shared id: one is stored whole, the other not at all.
func TestConcurrentImportsAllOrNothing(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
		_, dbs := hubs(t, e)
		batch := func(prefix string) []*fleet.Device {
			var ds []*fleet.Device
			for i := range 20 {
				ds = append(ds, &fleet.Device{ID: fmt.Sprintf("%s-%d", prefix, i), Kind: fleet.KindFridge, Site: "oak", Doors: 2})
			}
			return append(ds, &fleet.Device{ID: "shared", Kind: fleet.KindFridge, Site: "oak", Doors: 2})
		}
		errs := make([]error, 2)
		race(2, func(i int) {
			_, errs[i] = sqldb.NewDeviceService(dbs[i]).CreateDevices(ctx, batch(fmt.Sprintf("hub%d", i)))
		})
		ok := 0
		for i, err := range errs {
			if err == nil {
				ok++
			} else if fleet.ErrorCode(err) != fleet.ECONFLICT {
				t.Errorf("import %d: %v, want nil or ECONFLICT", i, err)
			}
		}
		all, err := sqldb.NewDeviceService(dbs[0]).FindDevices(ctx, fleet.DeviceFilter{})
		if ok != 1 || err != nil || len(all) != 21 {
			t.Fatalf("%d imports succeeded, the registry holds %d devices (%v); want 1 import of 21", ok, len(all), err)
		}
	})
}

// Hubs starting at once against an empty database: every one opens it, and each migration is
// applied once (twice would fail: its tables would exist already).
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
		st := newStore(t, e)
		const n = 4
		dbs := make([]*sqldb.DB, n)
		errs := make([]error, n)
		race(n, func(i int) { dbs[i], errs[i] = sqldb.Open(ctx, st.url, st.dir) })
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("Open %d: %v", i, errs[i])
			}
			defer dbs[i].Close()
		}
		for i, db := range dbs {
			if _, err := sqldb.NewDeviceService(db).CreateDevice(ctx, &fleet.Device{ID: fmt.Sprintf("f-%d", i), Kind: fleet.KindFridge, Site: "s", Doors: 1}); err != nil {
				t.Fatalf("handle %d: %v", i, err)
			}
		}
		names := queryStrings(t, st.raw(t), `SELECT name FROM schema_migrations ORDER BY name`)
		if len(names) != 9 || names[0] != "migrations/0001_devices.sql" || names[8] != "migrations/0009_parcels.sql" {
			t.Fatalf("schema_migrations holds %v, want the nine portable names once each", names)
		}
	})
}

// One schema: the two engines have the same tables with the same columns.
func TestSchemaIsTheSameOnBothEngines(t *testing.T) {
	t.Parallel()
	columns := map[engine]string{}
	for _, e := range engines {
		st := newStore(t, e)
		st.open(t)
		q := `SELECT m.name || '.' || p.name FROM sqlite_master m, pragma_table_info(m.name) p
			WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`
		if e == postgresEngine {
			q = `SELECT table_name || '.' || column_name FROM information_schema.columns WHERE table_schema = 'public'`
		}
		cols := queryStrings(t, st.raw(t), q)
		sort.Strings(cols)
		columns[e] = strings.Join(cols, "\n")
	}
	if columns[sqliteEngine] != columns[postgresEngine] {
		t.Fatalf("SQLite's columns:\n%s\n\nPostgreSQL's:\n%s", columns[sqliteEngine], columns[postgresEngine])
	}
}
