package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), time.Minute)
	now := time.Unix(0, 0)
	l.now = func() time.Time { return now }
	for range 5 {
		l.Warn("bad_secret", "connect refused")
	}
	l.Warn("unknown_device", "connect refused") // another key has its own budget
	now = now.Add(time.Minute)
	l.Warn("bad_secret", "connect refused")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("logged %d lines, want 3:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[2], "suppressed=4") {
		t.Fatalf("the line after the pause does not say 4 were held back: %s", lines[2])
	}
}
