package telemetry_test

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/internal/testhub"
	"github.com/lockerhub/lockerhub/telemetry"
	"github.com/lockerhub/lockerhub/telemetry/spool"
)

// heldWriter stores every batch at once except the one holding the line held, which waits
// for release: a store that answers requests out of order, which a real InfluxDB does only
// by chance.
type heldWriter struct {
	held    string
	release chan struct{}
	mu      sync.Mutex
	written []string
}

func (w *heldWriter) Write(ctx context.Context, lines []string) error {
	if slices.Contains(lines, w.held) {
		select {
		case <-w.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.written = append(w.written, lines...)
	return nil
}

func (w *heldWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.written)
}

// With several writes in flight, the spool is committed past a batch only once every batch
// before it is stored: a batch written early does not let a slow earlier one be lost.
func TestShipperCommitsInOrder(t *testing.T) {
	t.Parallel()
	lines := []string{"m a=1 1", "m a=2 2", "m a=3 3", "m a=4 4"}
	sp, p := spooled(t, lines)
	w := &heldWriter{held: lines[1], release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.NewShipper(w, 1, 3, t.TempDir()).Run(ctx) }()
	defer func() { cancel(); <-done }()

	testhub.WaitFor(t, 10*time.Second, "the batches around the held one written", func() bool { return w.count() == 3 })
	time.Sleep(50 * time.Millisecond) // a commit past the held batch would show by now
	if n := sp.Stats().Records; n != 3 {
		t.Fatalf("%d records left uncommitted while the second batch is unwritten, want 3 (only the first committed)", n)
	}
	close(w.release)
	testhub.WaitFor(t, 10*time.Second, "every record committed", func() bool { return sp.Stats().Records == 0 })
	if w.count() != len(lines) {
		t.Fatalf("wrote %d lines, want %d", w.count(), len(lines))
	}
}

// A shipper stopped while its writes are in flight, and run again on the same spool (as the
// hub restarts a failed shipper), writes what the first run had read ahead but not stored.
func TestShipperRunAgainRereadsWhatItDidNotStore(t *testing.T) {
	t.Parallel()
	lines := []string{"m a=1 1", "m a=2 2", "m a=3 3", "m a=4 4"}
	sp, p := spooled(t, lines)
	first := &heldWriter{held: lines[1], release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.NewShipper(first, 1, 3, t.TempDir()).Run(ctx) }()
	testhub.WaitFor(t, 10*time.Second, "the batches around the held one written", func() bool { return first.count() == 3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("stopped shipper: %v", err)
	}

	again := &heldWriter{release: make(chan struct{})}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go func() { done <- p.NewShipper(again, 1, 3, t.TempDir()).Run(ctx) }()
	testhub.WaitFor(t, 10*time.Second, "every record committed", func() bool { return sp.Stats().Records == 0 })
	again.mu.Lock()
	defer again.mu.Unlock()
	if !slices.Contains(again.written, lines[1]) {
		t.Fatalf("the second run wrote %q: not the record the first left unstored", again.written)
	}
}

// spooled returns a spool that holds lines, a record each, and a pipeline on it.
func spooled(t *testing.T, lines []string) (*spool.Spool, *telemetry.Pipeline) {
	t.Helper()
	sp, err := spool.Open(filepath.Join(t.TempDir(), "spool"), spool.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	p, err := telemetry.NewPipeline(sp, nil, telemetry.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		if _, err := sp.Append(context.Background(), []byte(l)); err != nil {
			t.Fatal(err)
		}
	}
	return sp, p
}
