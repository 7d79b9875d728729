package sqldb_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// Two hubs compete for one leadership: exactly one runs fn at a time, and closing the leader
// hands it to the other.
func TestLead(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, dbs := hubs(t, e)
		var running atomic.Int32
		var overlap atomic.Bool
		leaders := make(chan int, 10)
		returned := make(chan error, 2)
		for i, db := range dbs {
			go func() {
				returned <- db.Lead(ctx, "alerts", func(ctx context.Context) {
					if running.Add(1) > 1 {
						overlap.Store(true)
					}
					leaders <- i
					<-ctx.Done()
					running.Add(-1)
				})
			}()
		}
		var first int
		select {
		case first = <-leaders:
		case <-time.After(5 * time.Second):
			t.Fatal("no hub leads after 5 s")
		}
		// Longer than the retry interval: the other hub tries and fails at least once.
		select {
		case i := <-leaders:
			t.Fatalf("hub %d leads while hub %d does", i, first)
		case <-time.After(1500 * time.Millisecond):
		}
		t0 := time.Now()
		dbs[first].Close()
		select {
		case i := <-leaders:
			if i == first {
				t.Fatalf("hub %d leads again after its database was closed", i)
			}
			t.Logf("hub %d took over %v after hub %d closed", i, time.Since(t0).Round(time.Millisecond), first)
		case <-time.After(5 * time.Second):
			t.Fatal("the other hub does not lead 5 s after the leader closed")
		}
		if err := <-returned; !errors.Is(err, sqldb.ErrClosed) {
			t.Errorf("the closed hub's Lead returned %v, want ErrClosed", err)
		}
		cancel()
		if err := <-returned; err != nil {
			t.Errorf("Lead returned %v when its context ended, want nil", err)
		}
		if overlap.Load() {
			t.Fatal("two hubs ran fn at the same time")
		}
	})
}

// A leader whose connection dies loses the leadership: fn's context ends, and the other hub
// takes over once the server has released the lock.
func TestLeadLostWithTheConnection(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, dbs := hubs(t, postgresEngine)
	leaders := make(chan int, 10)
	lost := make(chan int, 10)
	for i, db := range dbs {
		go db.Lead(ctx, "alerts", func(ctx context.Context) {
			leaders <- i
			<-ctx.Done()
			lost <- i
		})
	}
	var first int
	select {
	case first = <-leaders:
	case <-time.After(5 * time.Second):
		t.Fatal("no hub leads after 5 s")
	}
	// As a network cut or a DBA would: the server ends the session holding the lock.
	var n int
	if err := st.raw(t).QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("terminated %d sessions holding an advisory lock (%v), want 1", n, err)
	}
	select {
	case i := <-lost:
		if i != first {
			t.Fatalf("hub %d lost a leadership it did not have", i)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the leader's fn still runs 5 s after its session was terminated")
	}
	select {
	case <-leaders:
	case <-time.After(5 * time.Second):
		t.Fatal("no hub leads 5 s after the leader's session was terminated")
	}
}
