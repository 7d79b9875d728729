package main

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

// Flatness thresholds of the soak: the mean of the last third of the samples after warm-up
// may exceed the first third's by at most rel (a fraction) plus abs.
//
//   - RSS: 10% + 16 MiB. Go's collector lets the heap grow to twice the live data before it
//     collects and returns freed pages to the OS only gradually, so RSS steps up and down by
//     megabytes with no leak; a leak of even 100 bytes per message at this load (100 units x
//     5 msg/s) adds 3 MiB a minute, 30 MiB over the default 10 minutes.
//   - goroutines: 5% + 10. One or two per connection and a fixed set for the pipeline, with a
//     few short-lived ones (a metrics scrape, a batch write) at any moment; a leak per message
//     or per reconnect adds hundreds.
//   - open file descriptors: + 5. The fleet's sockets are fixed; the spool opens a new segment
//     file as it rotates and closes the old one, and a scrape or an InfluxDB write holds a
//     socket for a moment.
//
// A short soak (RESILIENCE_SOAK=30s) sees far less of a slow leak than the default 10 minutes.
var soakLimits = []struct {
	series   string
	rel, abs float64
	value    func(sample) float64
}{
	{"rss_mib", 0.10, 16, func(s sample) float64 { return s.RSSMiB }},
	{"goroutines", 0.05, 10, func(s sample) float64 { return s.Goroutines }},
	{"open_fds", 0, 5, func(s sample) float64 { return s.OpenFDs }},
}

// soakWarmupShare is the share of the samples left out of the judgement: connecting the fleet
// and filling the hub's caches, pools and first spool segment.
const soakWarmupShare = 0.2

// soakStats is the soak's samples and judgement.
type soakStats struct {
	Seconds  float64  `json:"seconds"`
	Interval float64  `json:"sample_interval_s"`
	Warmup   int      `json:"warmup_samples"`
	Trends   []trend  `json:"trends"`
	Samples  []sample `json:"samples"`
}

// soak runs the fleet at a steady rate for -soak and samples the hub's memory, goroutines and
// open files.
func (s *suite) soak(ctx context.Context, r *caseResult) error {
	h, units, db, dir, err := s.setup(ctx, r.Name, s.o.units)
	if err != nil {
		return err
	}
	defer h.Stop()
	f, err := s.runFleet(ctx, r, h, units, dir)
	if err != nil {
		return err
	}
	every := min(max(s.o.soak/120, time.Second), 10*time.Second)
	st := &soakStats{Interval: every.Seconds()}
	r.Soak = st
	s.logf("%s: steady load for %s, a sample every %s", r.Name, s.o.soak, every)
	start := time.Now()
	lastLog := start
	for time.Since(start) < s.o.soak {
		if err := sleepCtx(ctx, every); err != nil {
			f.stop()
			return err
		}
		smp, err := sampleHub(h, time.Since(start))
		if err != nil {
			s.logf("%s: sample: %v", r.Name, err)
			continue
		}
		st.Samples = append(st.Samples, smp)
		if time.Since(lastLog) >= 30*time.Second {
			s.logf("%s: %.0f s: RSS %.1f MiB, %.0f goroutines, %.0f open fds, spool backlog %.0f",
				r.Name, smp.T, smp.RSSMiB, smp.Goroutines, smp.OpenFDs, smp.Backlog)
			lastLog = time.Now()
		}
	}
	st.Seconds = round1(time.Since(start).Seconds())
	st.Warmup = int(soakWarmupShare * float64(len(st.Samples)))
	for _, lim := range soakLimits {
		values := make([]float64, len(st.Samples))
		for i, smp := range st.Samples {
			values[i] = lim.value(smp)
		}
		t := flatness(lim.series, values, st.Warmup, lim.rel, lim.abs)
		st.Trends = append(st.Trends, t)
		r.check(lim.series+" flat", t.Pass, "first third %.1f, last third %.1f, limit %.1f (+%.0f%% +%g)",
			t.FirstMean, t.LastMean, t.Limit, lim.rel*100, lim.abs)
	}
	warmupT := 0.0
	if st.Warmup > 0 && st.Warmup < len(st.Samples) {
		warmupT = st.Samples[st.Warmup].T
	}
	chart := filepath.Join(s.o.out, "soak.svg")
	if err := os.WriteFile(chart, []byte(soakSVG(st.Samples, warmupT)), 0o644); err != nil {
		f.stop()
		return err
	}
	r.note("%d samples over %.0f s; chart: %s", len(st.Samples), st.Seconds, chart)
	hubAliveCheck(r, h)
	return s.finishFleet(ctx, r, h, f, db)
}

// sampleHub measures the hub once: RSS from /proc, the rest from its /metrics.
func sampleHub(h *hub, since time.Duration) (sample, error) {
	rss, err := testbed.RSS(h.pid())
	if err != nil {
		return sample{}, err
	}
	m, err := testbed.Metrics(h.HTTP, metricGoroutines, metricOpenFDs, metricSpoolMessages)
	if err != nil {
		return sample{}, err
	}
	return sample{
		T: round1(since.Seconds()), RSSMiB: round1(float64(rss) / (1 << 20)),
		Goroutines: m[metricGoroutines], OpenFDs: m[metricOpenFDs], Backlog: m[metricSpoolMessages],
	}, nil
}
