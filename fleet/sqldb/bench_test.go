package sqldb_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// The benchmarks size the store for the writes of a remote unlock and of the alert rules, on
// each engine: go test -run '^$' -bench . ./fleet/sqldb (PostgreSQL from scripts/postgres.sh,
// with its default durability: fsync and synchronous commit on). Figures in the commit message
// that last changed them.

// BenchmarkAuditAppend appends one entry to the hash chain: read and lock the head, insert,
// move the head, commit. "parallel" appends from 8 goroutines through two handles on the
// database (two hubs), which take turns on the head.
func BenchmarkAuditAppend(b *testing.B) {
	ctx := context.Background()
	entry := func(i int64) *fleet.AuditEntry {
		return &fleet.AuditEntry{Actor: "token:0123456789abcdef", Action: "command.unlock", Device: "bank-1",
			Detail: map[string]any{"door": i % 24, "reason": "parcel stuck", "command": fmt.Sprintf("c-%d", i)}}
	}
	for _, e := range engines {
		b.Run(string(e), func(b *testing.B) {
			s := sqldb.NewAuditService(openDB(b, e))
			var i int64
			for b.Loop() {
				i++
				if err := s.Append(ctx, entry(i)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(e)+"/parallel", func(b *testing.B) {
			st := newStore(b, e)
			hubs := []*sqldb.AuditService{sqldb.NewAuditService(st.open(b)), sqldb.NewAuditService(st.open(b))}
			var n atomic.Int64
			b.SetParallelism(4) // 8 goroutines on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					if err := hubs[i%2].Append(ctx, entry(i)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			if res, err := hubs[0].Verify(ctx); err != nil || !res.OK {
				b.Fatalf("Verify = %+v, %v", res, err)
			}
		})
	}
}

// BenchmarkCommandLifecycle stores a command and moves it as a remote unlock does: create, then
// the compare-and-set transitions created -> sent and sent -> succeeded (three writes).
func BenchmarkCommandLifecycle(b *testing.B) {
	ctx := context.Background()
	for _, e := range engines {
		b.Run(string(e), func(b *testing.B) {
			s := sqldb.NewCommandStore(openDB(b, e))
			var i int
			for b.Loop() {
				i++
				t0 := time.Now().UTC().Truncate(time.Millisecond)
				c := &fleet.Command{ID: fmt.Sprintf("c-%d", i), DeviceID: "bank-1", Type: wire.CommandUnlock, Door: i%24 + 1,
					Reason: "courier", Actor: "token:op", IdempotencyKey: fmt.Sprintf("k-%d", i), Status: fleet.CommandCreated,
					CreatedAt: t0, ExpiresAt: t0.Add(30 * time.Second)}
				if _, err := s.CreateCommand(ctx, c); err != nil {
					b.Fatal(err)
				}
				c.Status, c.SentAt = fleet.CommandSent, &t0
				if ok, err := s.UpdateCommand(ctx, c, fleet.CommandCreated); !ok || err != nil {
					b.Fatalf("created -> sent: %v, %v", ok, err)
				}
				c.Status, c.Outcome, c.CompletedAt = fleet.CommandSucceeded, wire.OutcomeOpened, &t0
				if ok, err := s.UpdateCommand(ctx, c, fleet.CommandSent); !ok || err != nil {
					b.Fatalf("sent -> succeeded: %v, %v", ok, err)
				}
			}
		})
	}
}

// BenchmarkAlertCreate stores one firing alert (each on another device, so none conflicts).
func BenchmarkAlertCreate(b *testing.B) {
	ctx := context.Background()
	for _, e := range engines {
		b.Run(string(e), func(b *testing.B) {
			s := sqldb.NewAlertStore(openDB(b, e))
			v := 9.5
			var i int
			for b.Loop() {
				i++
				a := &fleet.Alert{Rule: "cold-holding", Severity: fleet.SeverityMajor, Scope: fleet.ScopeCompartment,
					DeviceID: fmt.Sprintf("fridge-%d", i), Site: "oak", Door: 2, Summary: "compartment 2 at 9.5 °C", Value: &v, FiredAt: time.Now()}
				if err := s.CreateAlert(ctx, a); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
