// Package supervise keeps the hub's background loops running. A loop that returns an error
// (the spool unreadable for a moment, the database away, out of file descriptors) is run
// again after a backoff, for as long as the hub runs, and readiness reports it while it
// fails: a loop that stops must never be only a log line.
package supervise

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lockerhub/lockerhub/internal/backoff"
)

// Backoff between runs of a failing loop: it doubles from MinBackoff to MaxBackoff, and starts
// again from MinBackoff after a run that lasted at least MaxBackoff. MaxBackoff is short because
// what makes these loops fail (descriptors exhausted, the database away) passes on its own,
// and the hub should follow within seconds once it has; a retry costs one log line. No jitter:
// at most the few hubs of a cluster retry in step, which costs what they wait for nothing.
const (
	MinBackoff = 100 * time.Millisecond
	MaxBackoff = 5 * time.Second
)

var policy = backoff.Policy{Min: MinBackoff, Max: MaxBackoff}

// Settle is how long a restarted loop must run without failing before readiness passes again.
const Settle = time.Second

// Loop is a supervised background loop.
type Loop struct {
	name string
	log  *slog.Logger
	now  func() time.Time

	mu      sync.Mutex
	lastErr error     // the error the last run returned; nil until a run fails
	retryAt time.Time // when the next run starts
}

// New returns a loop named name (in logs and readiness) that logs to log.
func New(name string, log *slog.Logger) *Loop {
	return &Loop{name: name, log: log, now: time.Now}
}

// Run runs fn until ctx is done, and again after a backoff each time it returns before that,
// with an error or without. It returns when ctx is done.
func (l *Loop) Run(ctx context.Context, fn func(ctx context.Context) error) {
	failures := 0
	for {
		start := l.now()
		err := fn(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = fmt.Errorf("%s returned", l.name)
		}
		if l.now().Sub(start) >= MaxBackoff {
			failures = 0
		}
		failures++
		delay := policy.Delay(failures)
		l.mu.Lock()
		l.lastErr, l.retryAt = err, l.now().Add(delay)
		l.mu.Unlock()
		l.log.Error("background loop stopped; restarting", "loop", l.name, "error", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// Check is a readiness check: it fails while the loop waits to run again, and until it has run
// again for Settle (a loop that fails at once after every restart stays not ready).
func (l *Loop) Check(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lastErr == nil {
		return nil
	}
	if l.now().Before(l.retryAt.Add(Settle)) {
		return fmt.Errorf("%s failing: %w", l.name, l.lastErr)
	}
	return nil
}
