package logs

import (
	"bytes"
	"log/slog"
	"testing"
)

func TestOrDiscard(t *testing.T) {
	var buf bytes.Buffer
	given := slog.New(slog.NewTextHandler(&buf, nil))
	if OrDiscard(given) != given {
		t.Error("OrDiscard replaced the logger it was given")
	}
	l := OrDiscard(nil)
	if l == nil || l.Enabled(t.Context(), slog.LevelError) {
		t.Errorf("OrDiscard(nil) = %v, want a logger that drops everything", l)
	}
}
