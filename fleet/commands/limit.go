package commands

import (
	"sync"
	"time"
)

// Limits caps how fast commands may be sent: per operator token (a leaked or runaway script)
// and per device (a door cannot usefully be unlocked many times a minute). Zero disables one.
type Limits struct {
	PerTokenPerMinute  int `mapstructure:"per_token_per_minute"`
	PerDevicePerMinute int `mapstructure:"per_device_per_minute"`
}

// limiter is a set of token buckets, one per key, each holding up to a minute's allowance and
// refilling continuously. Once it tracks many keys, buckets that are full again are forgotten,
// which bounds its memory by the keys active within the last minute.
type limiter struct {
	perMinute int
	mu        sync.Mutex
	buckets   map[string]*bucket
}

// sweepAbove is how many keys the limiter tracks before it looks for full buckets to forget.
const sweepAbove = 1024

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(perMinute int) *limiter {
	return &limiter{perMinute: perMinute, buckets: make(map[string]*bucket)}
}

// allow takes one token for key at now, reporting false when none is left.
func (l *limiter) allow(key string, now time.Time) bool {
	if l.perMinute <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	capacity := float64(l.perMinute)
	for k, b := range l.buckets {
		if len(l.buckets) < sweepAbove {
			break
		}
		if b.tokens+now.Sub(b.last).Minutes()*capacity >= capacity {
			delete(l.buckets, k)
		}
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: capacity, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(capacity, b.tokens+now.Sub(b.last).Minutes()*capacity)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
