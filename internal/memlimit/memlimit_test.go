package memlimit

import (
	"bytes"
	"log/slog"
	"math"
	"runtime/debug"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{
		"":          0,
		"2GiB":      2 << 30,
		" 1536MiB ": 1536 << 20,
		"64MiB":     64 << 20,
		"1TiB":      1 << 40,
		"67108864":  64 << 20,
		"67108864B": 64 << 20,
		"65536KiB":  64 << 20,
		"512 MiB":   512 << 20,
	} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, wantErr := range map[string]string{
		"2GB":                 "not a size",
		"two":                 "not a size",
		"-1GiB":               "not a size",
		"1.5GiB":              "not a size",
		"GiB":                 "not a size",
		"63MiB":               "below the minimum of 64 MiB",
		"0":                   "below the minimum",
		"9999999999TiB":       "too large",
		"9223372036854775808": "not a size",
	} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", in, err, wantErr)
		}
	}
}

func TestApply(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	t.Setenv("GOMEMLIMIT", "")
	debug.SetMemoryLimit(math.MaxInt64)
	if got := Apply(1<<30, log); got != 1<<30 || debug.SetMemoryLimit(-1) != 1<<30 {
		t.Errorf("configured limit: Apply = %d, runtime %d", got, debug.SetMemoryLimit(-1))
	}
	if !strings.Contains(logs.String(), "source=memory_limit limit_bytes=1073741824") {
		t.Errorf("log = %s", logs.String())
	}

	logs.Reset()
	debug.SetMemoryLimit(math.MaxInt64)
	if got := Apply(0, log); got != math.MaxInt64 || !strings.Contains(logs.String(), "source=none") {
		t.Errorf("no limit: Apply = %d, log %s", got, logs.String())
	}

	// The runtime reads GOMEMLIMIT at start; here it stands for a limit set that way.
	logs.Reset()
	t.Setenv("GOMEMLIMIT", "3GiB")
	debug.SetMemoryLimit(3 << 30)
	if got := Apply(1<<30, log); got != 3<<30 || debug.SetMemoryLimit(-1) != 3<<30 {
		t.Errorf("GOMEMLIMIT: Apply = %d, runtime %d", got, debug.SetMemoryLimit(-1))
	}
	if !strings.Contains(logs.String(), "source=GOMEMLIMIT limit_bytes=3221225472 ignored_memory_limit_bytes=1073741824") {
		t.Errorf("log = %s", logs.String())
	}
}
