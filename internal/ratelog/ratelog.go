// Package ratelog logs repeated warnings at a bounded rate, so that a flood of bad logins or bad
// payloads from a misbehaving unit cannot flood the hub's log as well.
package ratelog

import (
	"log/slog"
	"sync"
	"time"
)

// Limiter logs at most one message per key and interval and counts what it held back. Keys
// should come from a small fixed set (refusal reasons), which bounds its memory.
type Limiter struct {
	out      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

// New returns a limiter writing to log at most once per key and interval.
func New(log *slog.Logger, interval time.Duration) *Limiter {
	return &Limiter{out: log, interval: interval, now: time.Now,
		last: make(map[string]time.Time), held: make(map[string]int)}
}

// Warn writes msg at warning level unless a message with the same key was written less than
// one interval ago; the next message written says how many were held back.
func (l *Limiter) Warn(key, msg string, args ...any) {
	now := l.now()
	l.mu.Lock()
	if now.Sub(l.last[key]) < l.interval {
		l.held[key]++
		l.mu.Unlock()
		return
	}
	held := l.held[key]
	l.last[key], l.held[key] = now, 0
	l.mu.Unlock()
	if held > 0 {
		args = append(args, "suppressed", held)
	}
	l.out.Warn(msg, args...)
}
