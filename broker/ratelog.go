package broker

import (
	"log/slog"
	"sync"
	"time"
)

// logLimiter logs at most one message per key and interval and counts what it held back, so that
// a flood of bad logins or bad payloads cannot flood the log as well. Keys come from a small
// fixed set (refusal reasons), which bounds its memory.
type logLimiter struct {
	out      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

func newLogLimiter(log *slog.Logger, interval time.Duration) *logLimiter {
	return &logLimiter{out: log, interval: interval, now: time.Now,
		last: make(map[string]time.Time), held: make(map[string]int)}
}

// log writes msg at warning level unless a message with the same key was written less than one
// interval ago.
func (l *logLimiter) log(key, msg string, args ...any) {
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
