package supervise

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// A loop that fails is run again, readiness fails meanwhile, and recovers once it runs.
func TestLoopRestartsAndReportsReadiness(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := New("shipper", slog.New(slog.DiscardHandler))
	var runs atomic.Int32
	failing := make(chan struct{})
	running := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(ctx, func(ctx context.Context) error {
			switch runs.Add(1) {
			case 1:
				return errors.New("too many open files")
			case 2:
				close(failing)
				return errors.New("too many open files")
			}
			close(running)
			<-ctx.Done()
			return nil
		})
	}()
	<-failing
	if err := l.Check(ctx); err == nil {
		t.Fatal("readiness passes while the loop fails")
	}
	select {
	case <-running:
	case <-time.After(5 * time.Second):
		t.Fatal("loop not run again after failing")
	}
	deadline := time.Now().Add(5 * time.Second)
	for l.Check(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("readiness not back once the loop runs: %v", l.Check(ctx))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if runs.Load() != 3 {
		t.Fatalf("%d runs, want 3", runs.Load())
	}
}
