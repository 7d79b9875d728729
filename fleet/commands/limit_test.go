package commands

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := newLimiter(3)
	t0 := time.Unix(0, 0)
	for i, want := range []bool{true, true, true, false} {
		if got := l.allow("tok", t0); got != want {
			t.Fatalf("request %d: allow = %v, want %v", i, got, want)
		}
	}
	if !l.allow("other", t0) {
		t.Fatal("another key shares the bucket")
	}
	if !l.allow("tok", t0.Add(20*time.Second)) {
		t.Fatal("no token refilled after a third of a minute")
	}
	if l.allow("tok", t0.Add(21*time.Second)) {
		t.Fatal("more than the refill allowed")
	}
	if !newLimiter(0).allow("x", t0) {
		t.Fatal("a zero limit must not limit")
	}
}
