package backoff

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	const s = time.Second
	for _, tc := range []struct {
		p    Policy
		n    int
		want time.Duration
	}{
		{Policy{Min: s, Max: time.Minute}, 0, 0},
		{Policy{Min: s, Max: time.Minute}, -1, 0},
		{Policy{Min: s, Max: time.Minute}, 1, s},
		{Policy{Min: s, Max: time.Minute}, 2, 2 * s},
		{Policy{Min: s, Max: time.Minute}, 3, 4 * s},
		{Policy{Min: s, Max: time.Minute}, 6, 32 * s},
		{Policy{Min: s, Max: time.Minute}, 7, time.Minute},
		{Policy{Min: s, Max: time.Minute}, 1 << 40, time.Minute},
		{Policy{Min: 5 * time.Millisecond, Max: s}, 8, 640 * time.Millisecond},
		{Policy{Min: 5 * time.Millisecond, Max: s}, 9, s},
		{Policy{Min: s, Max: time.Minute, Factor: 3}, 3, 9 * s},
		{Policy{Min: s, Max: time.Minute, Factor: 1.5}, 3, 2250 * time.Millisecond},
		{Policy{Min: 2 * s, Max: s}, 1, s},
	} {
		t.Run(fmt.Sprintf("%+v/%d", tc.p, tc.n), func(t *testing.T) {
			if got := tc.p.Delay(tc.n); got != tc.want {
				t.Errorf("Delay(%d) = %s, want %s", tc.n, got, tc.want)
			}
		})
	}
}

func TestJitter(t *testing.T) {
	const first, most = 500 * time.Millisecond, 5 * time.Second
	for _, tc := range []struct {
		jitter Jitter
		n      int
		lo, hi time.Duration
	}{
		{Full, 1, first / 2, first},
		{Full, 3, first / 2, 2 * time.Second},
		{Full, 10, first / 2, most},
		{Equal, 1, first / 2, first},
		{Equal, 3, time.Second, 2 * time.Second},
		{Equal, 10, most / 2, most},
	} {
		t.Run(fmt.Sprintf("%d/%d", tc.jitter, tc.n), func(t *testing.T) {
			p := Policy{Min: first, Max: most, Jitter: tc.jitter}
			seen := map[time.Duration]bool{}
			for range 1000 {
				d := p.Delay(tc.n)
				if d < tc.lo || d > tc.hi {
					t.Fatalf("Delay(%d) = %s, want within [%s, %s]", tc.n, d, tc.lo, tc.hi)
				}
				seen[d] = true
			}
			if len(seen) < 100 {
				t.Errorf("Delay(%d) took %d values in 1000 draws: not spread", tc.n, len(seen))
			}
		})
	}
}

func TestWait(t *testing.T) {
	p := Policy{Min: time.Second, Max: time.Minute}
	failed := errors.New("503 Service Unavailable")
	for _, tc := range []struct {
		n    int
		err  error
		want time.Duration
	}{
		{1, nil, time.Second},
		{1, failed, time.Second},
		{1, &RetryAfter{failed, 10 * time.Second}, 10 * time.Second},
		{4, &RetryAfter{failed, 3 * time.Second}, 8 * time.Second},
		{1, fmt.Errorf("write: %w", &RetryAfter{failed, 10 * time.Second}), 10 * time.Second},
		{1, &RetryAfter{failed, time.Hour}, time.Hour},
	} {
		t.Run(fmt.Sprintf("%d/%v", tc.n, tc.err), func(t *testing.T) {
			if got := p.Wait(tc.n, tc.err); got != tc.want {
				t.Errorf("Wait(%d, %v) = %s, want %s", tc.n, tc.err, got, tc.want)
			}
		})
	}
	ra := &RetryAfter{failed, time.Second}
	if ra.Error() != failed.Error() || !errors.Is(ra, failed) {
		t.Errorf("RetryAfter hides its error: %q", ra)
	}
}
