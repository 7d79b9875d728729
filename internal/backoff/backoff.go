// Package backoff computes the delays between retries of something that fails until what it
// depends on comes back: a listener out of file descriptors, a database or InfluxDB away, a
// webhook receiver down, the hub itself for an edge agent. It imports only the standard
// library, so that the edge agent can use it too.
package backoff

import (
	"errors"
	"math/rand/v2"
	"time"
)

// Jitter says how a Policy spreads its delays at random.
type Jitter int

const (
	// None waits exactly the delay: for a retrier that is alone with what it waits for.
	None Jitter = iota
	// Full waits between half of Min and the delay: many retriers that lost the same peer at
	// the same moment (units their hub, hubs their database) come back spread over the whole
	// delay instead of in step. The floor keeps a retry from coming at once.
	Full
	// Equal waits between half the delay and the delay: spread like Full, but never much
	// sooner than the exponential delay, for a peer that should not be asked again too soon.
	Equal
)

// Policy is an exponential backoff: the delay before retry n (n = 1 after the first failure)
// is Min·Factorⁿ⁻¹, never more than Max, spread at random as Jitter says.
type Policy struct {
	Min, Max time.Duration
	Factor   float64 // 2 when 0
	Jitter   Jitter
}

// Delay returns how long to wait before retry n; 0 when n < 1, as before a first attempt.
func (p Policy) Delay(n int) time.Duration {
	if n < 1 {
		return 0
	}
	factor := p.Factor
	if factor == 0 {
		factor = 2
	}
	d := p.Min
	for i := 1; i < n && d < p.Max; i++ {
		d = time.Duration(float64(d) * factor)
	}
	d = min(d, p.Max)
	switch p.Jitter {
	case Full:
		return between(p.Min/2, d)
	case Equal:
		return between(d/2, d)
	}
	return d
}

// Wait returns how long to wait before retry n after err: Delay(n), or longer when err is or
// wraps a *RetryAfter asking for longer. A peer's request is honoured beyond Max: it knows
// better when it will take requests again.
func (p Policy) Wait(n int, err error) time.Duration {
	d := p.Delay(n)
	if ra, ok := errors.AsType[*RetryAfter](err); ok {
		d = max(d, ra.After)
	}
	return d
}

// between returns a duration drawn uniformly from [lo, hi], or lo when hi <= lo.
func between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo+1)
}

// RetryAfter is a failure whose peer said when to try again: an HTTP 429 or 503 with a
// Retry-After header. Retriers find it with errors.As and wait at least After (see
// Policy.Wait).
type RetryAfter struct {
	Err   error
	After time.Duration
}

func (e *RetryAfter) Error() string { return e.Err.Error() }
func (e *RetryAfter) Unwrap() error { return e.Err }
