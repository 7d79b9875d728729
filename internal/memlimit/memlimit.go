// Package memlimit sets the Go runtime's soft memory limit from the hub's configuration, the
// way GOMEMLIMIT does, with GOMEMLIMIT itself taking precedence: an operator who sets the
// runtime's own variable expects it to hold.
package memlimit

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Minimum is the smallest limit accepted: below it the garbage collector would run almost
// continuously in any hub, which is a misconfiguration rather than a choice.
const Minimum = 64 << 20

// units are the suffixes GOMEMLIMIT accepts, largest first so that "GiB" is not read as "B".
var units = []struct {
	suffix string
	shift  uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// Parse reads a limit written as GOMEMLIMIT is: a whole number of bytes with an optional
// suffix B, KiB, MiB, GiB or TiB ("2GiB", "1536MiB"). The empty string means no limit and
// returns 0. It returns an error naming the accepted forms for anything else, and for limits
// below Minimum.
func Parse(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	num, shift := s, uint(0)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			num, shift = strings.TrimSpace(rest), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size: want a whole number of bytes with an optional suffix B, KiB, MiB, GiB or TiB, e.g. 2GiB", s)
	}
	if n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("%q is too large", s)
	}
	if n <<= shift; n < Minimum {
		return 0, fmt.Errorf("%q is below the minimum of %d MiB", s, Minimum>>20)
	}
	return n, nil
}

// Apply sets the runtime's memory limit to configured bytes (0: none), unless GOMEMLIMIT is
// set in the environment, which the runtime has applied already and which wins. It logs which
// limit applies and returns it (math.MaxInt64 when there is none).
func Apply(configured int64, log *slog.Logger) int64 {
	if env := os.Getenv("GOMEMLIMIT"); env != "" {
		limit := debug.SetMemoryLimit(-1) // reads it without changing it
		attrs := []any{"source", "GOMEMLIMIT", "limit_bytes", limit}
		if configured > 0 {
			attrs = append(attrs, "ignored_memory_limit_bytes", configured)
		}
		log.Info("memory limit", attrs...)
		return limit
	}
	if configured <= 0 {
		log.Info("memory limit", "source", "none")
		return debug.SetMemoryLimit(-1)
	}
	debug.SetMemoryLimit(configured)
	log.Info("memory limit", "source", "memory_limit", "limit_bytes", configured)
	return configured
}
