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
)

// Backoff between runs of a failing loop: it doubles from MinBackoff to MaxBackoff, and starts
// again from MinBackoff after a run that lasted at least MaxBackoff.
const (
	MinBackoff = 100 * time.Millisecond
	MaxBackoff = 30 * time.Second
)

// Loop is a supervised background loop.
type Loop struct {
	name string
	log  *slog.Logger
	now  func() time.Time

	mu       sync.Mutex
	lastErr  error     // the error the last run returned; nil while running after a good run
	failedAt time.Time // when it did
	retryAt  time.Time // when the next run starts
}

// New returns a loop named name (in logs and readiness) that logs to log.
func New(name string, log *slog.Logger) *Loop {
	return &Loop{name: name, log: log, now: time.Now}
}

// Run runs fn until ctx is done, and again after a backoff each time it returns before that,
// with an error or without. It returns when ctx is done.
func (l *Loop) Run(ctx context.Context, fn func(ctx context.Context) error) {
	delay := MinBackoff
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
			delay = MinBackoff
		}
		l.mu.Lock()
		l.lastErr, l.failedAt, l.retryAt = err, l.now(), l.now().Add(delay)
		l.mu.Unlock()
		l.log.Error("background loop stopped; restarting", "loop", l.name, "error", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, MaxBackoff)
	}
}

// Check is a readiness check: it fails while the loop waits to run again, and until it has run
// again for a whole backoff period (a loop that fails at once after every restart stays not
// ready).
func (l *Loop) Check(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lastErr == nil {
		return nil
	}
	if settled := l.retryAt.Add(l.retryAt.Sub(l.failedAt)); l.now().Before(settled) {
		return fmt.Errorf("%s failing: %w", l.name, l.lastErr)
	}
	return nil
}
