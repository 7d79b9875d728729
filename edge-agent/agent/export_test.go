package agent

import "time"

// SetClock makes a, before it runs, judge code expiry and keypad lockouts by now, so a test can
// step over a lockout without waiting for it.
func SetClock(a *Agent, now func() time.Time) { a.now = now }
