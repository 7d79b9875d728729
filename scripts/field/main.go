// Command field is the field trial of issue 16 ("alerts a technician can trust", `make field`):
// it runs the real hub (bin/lockerhub serve) and the real simulator (bin/lockerhub simulate)
// against each other, on 127.0.0.1 only, with the run's own InfluxDB, and measures what a
// technician would see. Two parts, picked with -parts:
//
//   - faults: every fault the simulator can be given on demand (docs/simulator.md), each on
//     its own unit and all at once, against a hub whose rule windows are shortened -scale
//     times (the hub's built-in rules, every kind, with for, clear_for, window and the
//     heartbeat timeout divided). For each alert a fault should raise: the delay from the
//     fault (or from the moment the hub's live state first met the rule's condition, for the
//     rules that wait on a temperature) to the alert, and from the repair to its resolution,
//     against the rule's window plus a documented slack (see slackFor);
//   - quiet: -units simulated units (the simulator's default mix of locker banks and fridges
//     over -sites sites) with simulated people picking up parcels, remotely through the hub's
//     API and at the keypad, and no faults, for -duration against the hub's default rules.
//     Every alert raised is a false alert; the target is none.
//
// Results go to OUT/results.json and OUT/results.md, progress to stderr, the hubs' and
// simulators' logs and data to OUT/<part>/. The exit status is 1 if a part fails, 2 if the run
// could not complete (bad flags, InfluxDB or a hub would not start, -timeout or Ctrl-C; the
// report of what was measured is still written).
//
// Usage: go run ./scripts/field [flags]; see scripts/field.sh and -help.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

// options are the command's flags.
type options struct {
	parts        string
	faultNames   string
	scale        float64
	interval     time.Duration
	caseTimeout  time.Duration
	units        int
	sites        int
	duration     time.Duration
	deliveryRate float64
	seed         uint64
	timeout      time.Duration
	hubBin       string
	influxScript string
	out          string
}

func main() {
	var o options
	flag.StringVar(&o.parts, "parts", "faults,quiet", "comma-separated parts to run: faults, quiet")
	flag.StringVar(&o.faultNames, "faults", "", "faults: comma-separated faults to run (default: every one)")
	flag.Float64Var(&o.scale, "scale", 10, "faults: the rules' windows are divided by this")
	flag.DurationVar(&o.interval, "interval", 10*time.Second, "telemetry interval of every simulated unit (simulate's default)")
	flag.DurationVar(&o.caseTimeout, "case-timeout", 12*time.Minute, "faults: how long one fault may take to raise its alerts, and its repair to resolve them")
	flag.IntVar(&o.units, "units", 60, "quiet: simulated units")
	flag.IntVar(&o.sites, "sites", 3, "quiet: sites the units are spread over")
	flag.DurationVar(&o.duration, "duration", time.Hour, "quiet: how long the fleet runs once every unit is online")
	flag.Float64Var(&o.deliveryRate, "delivery-rate", 6, "quiet: parcels delivered (and collected with their codes) per unit and hour")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the simulated fleet")
	flag.DurationVar(&o.timeout, "timeout", 0, "bound on the whole run (default: -duration + 45m)")
	flag.StringVar(&o.hubBin, "hub", "bin/lockerhub", "lockerhub binary (both the hub and the simulator)")
	flag.StringVar(&o.influxScript, "influxdb-script", "scripts/influxdb.sh", "the script that runs InfluxDB")
	flag.StringVar(&o.out, "out", "var/field", "directory for results, logs, hub data and the run's InfluxDB")
	flag.Parse()
	failed, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "field:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

// trial is what both parts share.
type trial struct {
	o      options
	influx *testbed.PrivateInflux
	stamp  string
	log    io.Writer
}

func (t *trial) logf(format string, args ...any) {
	fmt.Fprintf(t.log, "%s field: %s\n", time.Now().Format(time.TimeOnly), fmt.Sprintf(format, args...))
}

// run runs the selected parts and writes the report; it reports whether any part failed.
func run(o options) (failed bool, err error) {
	parts := strings.Split(o.parts, ",")
	for _, p := range parts {
		if p != "faults" && p != "quiet" {
			return false, fmt.Errorf("unknown part %q: want faults, quiet", p)
		}
	}
	if o.scale < 1 || o.interval < time.Second || o.units < 1 || o.sites < 1 || o.duration <= 0 || o.deliveryRate < 0 ||
		o.caseTimeout <= 0 {
		return false, fmt.Errorf("-scale must be at least 1, -interval at least 1s, -units and -sites at least 1, -duration and -case-timeout positive, -delivery-rate >= 0")
	}
	if o.timeout == 0 {
		o.timeout = o.duration + 45*time.Minute
	}
	if o.hubBin, err = filepath.Abs(o.hubBin); err != nil {
		return false, err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, o.timeout)
	defer cancelTimeout()
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return false, err
	}
	t := &trial{o: o, stamp: time.Now().UTC().Format("20060102_150405"), log: os.Stderr}
	if t.influx, err = testbed.NewPrivateInflux(o.influxScript, filepath.Join(o.out, "influxdb"), os.Stderr); err != nil {
		return false, err
	}
	// A run stopped with SIGKILL leaves its influxd behind: reset stops it and starts afresh.
	if err := t.influx.Run(ctx, "reset"); err != nil {
		return false, err
	}
	if err := t.influx.Start(ctx); err != nil {
		return false, err
	}
	defer func() {
		if err := t.influx.Stop(); err != nil {
			t.logf("stopping InfluxDB: %v", err)
		}
	}()
	rep := &report{Started: time.Now().UTC(), Machine: machine(), Options: optionMap()}
	var runErr error
	if slices.Contains(parts, "faults") {
		rep.Faults, runErr = t.faults(ctx)
		if runErr != nil {
			t.logf("faults: %v", runErr)
		}
	}
	if slices.Contains(parts, "quiet") && ctx.Err() == nil {
		var err error
		rep.Quiet, err = t.quiet(ctx)
		if err != nil {
			t.logf("quiet: %v", err)
			runErr = err
		}
	}
	rep.Finished = time.Now().UTC()
	rep.decide(parts)
	if err := rep.write(o.out); err != nil {
		return true, err
	}
	t.logf("results: %s, %s", filepath.Join(o.out, "results.json"), filepath.Join(o.out, "results.md"))
	if runErr != nil {
		return true, runErr
	}
	return !rep.Pass, nil
}

// optionMap records the flags a run used, for the report.
func optionMap() map[string]string {
	m := map[string]string{}
	flag.VisitAll(func(f *flag.Flag) { m[f.Name] = f.Value.String() })
	return m
}

// sleepCtx waits for d unless ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
