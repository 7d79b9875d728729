// Command resilience is the resilience suite of issues 8 and 15 (`make resilience`): it starts
// a fresh hub (the real bin/lockerhub) per case, on 127.0.0.1 only, with the suite's own
// InfluxDB, and reports for each case what was sent, what arrived and what was lost:
//
//   - influx-outage: InfluxDB stopped for a minute under load, then restarted: zero loss, the
//     spool drains, no duplicates;
//   - hub-kill: the hub killed with SIGKILL under load and restarted on the same data directory
//     and ports: agents reconnect by themselves, zero loss of acknowledged data, no command
//     executed twice or after its expiry;
//   - flood: 5,000 connections that never send CONNECT and a flood of wrong passwords aimed
//     at the probing units' own ids, from other addresses than the units: their connects and
//     publishes keep succeeding, p99 before and during (connect p99 under 100 ms), and what
//     the hub's per-source bounds held and reset;
//   - fd-exhaustion: the hub started with a low descriptor limit (prlimit) and run out of
//     descriptors by silent MQTT and idle HTTP connections from several addresses: what it
//     does meanwhile, then how long until a unit connects and publishes and /readyz answers
//     200 once the attack stops, with no restart;
//   - identity: 16 connects at once with one unit's valid credentials leave one live
//     connection; after each revocation through the CLI (rotate-secret, disable, remove and
//     add again) every connection is closed within 2 s and none is acknowledged after;
//   - malformed: malformed MQTT packets and oversized payloads: the offending connection is
//     closed, the hub stays up, other units keep working;
//   - soak: a steady load for -soak: hub memory, goroutines and open files stay flat.
//
// Load comes from the real edge agent (edge-agent/agent on simulated hardware) run in this
// process, one per unit, or, where a case measures single connects and publishes, from raw
// MQTT connections (mqttraw.go) keeping the same kind of ledger. Attacks come from loopback
// addresses other than the units' 127.0.0.1 (127.0.0.2 on), since the hub bounds and
// throttles per source address. Delivery is verified by seq per unit in InfluxDB against what
// each unit had seen acknowledged. Results go to OUT/results.json and OUT/results.md (and
// OUT/soak.svg), progress to stderr. The exit status is 1 if any case fails, 2 if the run
// could not complete (bad flags, InfluxDB would not start, -timeout or Ctrl-C; after the last
// two the report of the cases run so far is still written). Every phase has a timeout and -timeout bounds the
// run; Ctrl-C stops everything the suite started (the hubs run in their own process groups,
// influxd in its own session, so the suite stops them itself).
//
// Usage: go run ./scripts/resilience [flags]; see scripts/resilience.sh and -help.
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
	cases         string
	units         int
	interval      time.Duration
	lead          time.Duration
	outage        time.Duration
	down          time.Duration
	cmdEvery      time.Duration
	floodConns    int
	floodSources  int
	floodProbes   int
	floodWorkers  int
	floodRate     int
	floodPhase    time.Duration
	identityConns int
	fdLimit       int
	fdHold        time.Duration
	soak          time.Duration
	drain         time.Duration
	timeout       time.Duration
	hubBin        string
	influxScript  string
	out           string
}

// testCase is one case of the suite.
type testCase struct {
	name, title string
	run         func(*suite, context.Context, *caseResult) error
}

// cases in the order they run.
var cases = []testCase{
	{"influx-outage", "InfluxDB stopped under load, then restarted", (*suite).influxOutage},
	{"hub-kill", "hub killed with SIGKILL under load, then restarted", (*suite).hubKill},
	{"flood", "idle connections and a wrong-password flood", (*suite).flood},
	{"identity", "concurrent connects with one identity, then its revocation", (*suite).identity},
	{"fd-exhaustion", "hub out of file descriptors, then released", (*suite).fdExhaustion},
	{"malformed", "malformed MQTT packets and oversized payloads", (*suite).malformed},
	{"soak", "steady load: memory, goroutines and open files", (*suite).soak},
}

func main() {
	var o options
	names := make([]string, len(cases))
	for i, c := range cases {
		names[i] = c.name
	}
	flag.StringVar(&o.cases, "cases", strings.Join(names, ","), "comma-separated cases to run")
	flag.IntVar(&o.units, "units", 100, "simulated units (real agents) per case")
	flag.DurationVar(&o.interval, "interval", 200*time.Millisecond, "telemetry interval of every unit (at least 100ms)")
	flag.DurationVar(&o.lead, "lead", 10*time.Second, "load before and after each fault")
	flag.DurationVar(&o.outage, "outage", 60*time.Second, "influx-outage: how long InfluxDB stays stopped")
	flag.DurationVar(&o.down, "down", 5*time.Second, "hub-kill: how long the hub stays dead")
	flag.DurationVar(&o.cmdEvery, "cmd-every", 150*time.Millisecond, "hub-kill: one unlock per this interval")
	flag.IntVar(&o.floodConns, "flood-conns", 5000, "flood: TCP connections that never send CONNECT")
	// Five addresses keep the held connections (100 per address) below the overall bound on
	// connections that have not sent CONNECT (1,000); at ten or more that bound is reached, and
	// the hub resets the busiest address's oldest pending connection for each unit's connect.
	flag.IntVar(&o.floodSources, "flood-sources", 5, "flood: addresses (127.0.0.3 on) the idle connections come from")
	flag.IntVar(&o.floodProbes, "flood-probes", 10, "flood: legitimate units measuring connect and publish latency")
	flag.IntVar(&o.floodWorkers, "flood-workers", 8, "flood: concurrent wrong-password logins")
	flag.IntVar(&o.floodRate, "flood-rate", 1000, "flood: wrong-password logins per second (0: as fast as the workers go)")
	flag.DurationVar(&o.floodPhase, "flood-phase", 20*time.Second, "flood: length of the baseline and of the flood measurement")
	flag.IntVar(&o.fdLimit, "fd-limit", 1500, "fd-exhaustion: the hub's descriptor limit (prlimit --nofile); it keeps 1,024 of them from MQTT")
	// An attack lasts as long as the attacker likes; 30 s lets the backoff of the hub's
	// supervised loops grow (100 ms doubling) as it would under a longer one.
	flag.DurationVar(&o.fdHold, "fd-hold", 30*time.Second, "fd-exhaustion: how long the hub is kept out of descriptors")
	flag.IntVar(&o.identityConns, "identity-conns", 16, "identity: connections made at once with one unit's valid credentials")
	flag.DurationVar(&o.soak, "soak", 10*time.Minute, "soak: length of the steady load")
	flag.DurationVar(&o.drain, "drain", 5*time.Minute, "how long the spool may take to drain into InfluxDB after the load")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Minute, "bound on the whole run")
	flag.StringVar(&o.hubBin, "hub", "bin/lockerhub", "lockerhub binary")
	flag.StringVar(&o.influxScript, "influxdb-script", "scripts/influxdb.sh", "the script that runs InfluxDB")
	flag.StringVar(&o.out, "out", "var/resilience", "directory for results, logs, hub data and the suite's InfluxDB")
	flag.Parse()
	failed, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "resilience:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

// suite is what every case shares.
type suite struct {
	o      options
	influx *testbed.PrivateInflux
	stamp  string
	log    io.Writer
}

func (s *suite) logf(format string, args ...any) {
	fmt.Fprintf(s.log, "%s resilience: %s\n", time.Now().Format(time.TimeOnly), fmt.Sprintf(format, args...))
}

// run runs the selected cases and writes the report; it reports whether any case failed.
func run(o options) (failed bool, err error) {
	selected := strings.Split(o.cases, ",")
	for _, name := range selected {
		if !slices.ContainsFunc(cases, func(c testCase) bool { return c.name == name }) {
			return false, fmt.Errorf("unknown case %q", name)
		}
	}
	if o.units < 1 || o.interval < 100*time.Millisecond || o.floodProbes < 1 || o.floodWorkers < 1 || o.floodConns < 0 || o.floodRate < 0 ||
		o.floodSources < 1 || o.floodSources > maxAttackerSources || o.identityConns < 2 || o.fdLimit <= fileReserve+fdProbes+1 {
		return false, fmt.Errorf("-units, -flood-probes, -flood-workers and -flood-sources must be at least 1 (-flood-sources at most %d), -identity-conns at least 2, -fd-limit above %d, -interval at least 100ms", maxAttackerSources, fileReserve+fdProbes+1)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, o.timeout)
	defer cancelTimeout()
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return false, err
	}
	// The hubs inherit this (testbed.HubEnv starts from os.Environ): hub-kill sends unlocks
	// faster than the default per-token limit of 60 a minute, which would answer 429.
	if err := os.Setenv("LOCKERHUB_COMMANDS_PER_TOKEN_PER_MINUTE", "0"); err != nil {
		return false, err
	}
	s := &suite{o: o, stamp: time.Now().UTC().Format("20060102_150405"), log: os.Stderr}
	if s.influx, err = testbed.NewPrivateInflux(o.influxScript, filepath.Join(o.out, "influxdb"), os.Stderr); err != nil {
		return false, err
	}
	// A run stopped with SIGKILL leaves its influxd behind: reset stops it and starts afresh.
	if err := s.influx.Run(ctx, "reset"); err != nil {
		return false, err
	}
	if err := s.influx.Start(ctx); err != nil {
		return false, err
	}
	defer func() {
		if err := s.influx.Stop(); err != nil {
			s.logf("stopping InfluxDB: %v", err)
		}
	}()
	rep := &report{Started: time.Now().UTC(), Options: optionMap()}
	for _, c := range cases {
		if !slices.Contains(selected, c.name) || ctx.Err() != nil {
			continue
		}
		r := &caseResult{Name: c.name, Title: c.title}
		s.logf("case %s: %s", c.name, c.title)
		start := time.Now()
		err := c.run(s, ctx, r)
		r.finish(start, err)
		s.logf("case %s: %s in %.0f s", c.name, verdict(r.Pass), r.Seconds)
		for _, ch := range r.Checks {
			if !ch.Pass {
				s.logf("  failed check %s: %s", ch.Name, ch.Detail)
			}
		}
		if err != nil {
			s.logf("  error: %v", err)
		}
		rep.Cases = append(rep.Cases, r)
	}
	rep.Finished = time.Now().UTC()
	rep.Pass = len(rep.Cases) == len(selected) && !slices.ContainsFunc(rep.Cases, func(c *caseResult) bool { return !c.Pass })
	if err := rep.write(o.out); err != nil {
		return true, err
	}
	s.logf("results: %s, %s", filepath.Join(o.out, "results.json"), filepath.Join(o.out, "results.md"))
	if ctx.Err() != nil {
		return true, ctx.Err()
	}
	return !rep.Pass, nil
}

// optionMap records the flags a run used, for the report.
func optionMap() map[string]string {
	m := map[string]string{}
	flag.VisitAll(func(f *flag.Flag) { m[f.Name] = f.Value.String() })
	return m
}

// setup is the start of every case: a fresh InfluxDB database, a fresh hub with n units
// provisioned, run by wrapper if any (see testbed.StartHubUnder), and the case's directory.
func (s *suite) setup(ctx context.Context, name string, n int, wrapper ...string) (*hub, []testbed.Unit, *testbed.Influx, string, error) {
	dir, err := filepath.Abs(filepath.Join(s.o.out, name))
	if err != nil {
		return nil, nil, nil, "", err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, nil, nil, "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, nil, "", err
	}
	dbName := "resilience_" + strings.ReplaceAll(name, "-", "_") + "_" + s.stamp
	db := testbed.NewInflux(s.influx.URL(), dbName)
	if _, err := db.Query("CREATE DATABASE " + dbName); err != nil {
		return nil, nil, nil, "", err
	}
	s.logf("%s: provisioning %d units and starting the hub", name, n)
	h, units, err := startHub(ctx, wrapper, s.o.hubBin, dir, s.influx.URL(), dbName, n)
	if err != nil {
		return nil, nil, nil, "", err
	}
	return h, units, db, dir, nil
}

// runFleet starts agents for units and waits until all are online.
func (s *suite) runFleet(ctx context.Context, r *caseResult, h *hub, units []testbed.Unit, dir string) (*fleet, error) {
	f, err := startFleet(ctx, units, h.MQTT, filepath.Join(dir, "agents"), s.o.interval)
	if err != nil {
		return nil, err
	}
	took, err := f.waitOnline(ctx, 2*time.Minute)
	if err != nil {
		f.stop()
		return nil, err
	}
	s.logf("%s: %d units online after %s", r.Name, len(units), took.Round(time.Millisecond))
	return f, nil
}

// finishFleet stops the agents and verifies what they sent (see verify).
func (s *suite) finishFleet(ctx context.Context, r *caseResult, h *hub, f *fleet, db *testbed.Influx) error {
	ledgers, err := f.stop()
	if err != nil {
		return err
	}
	return s.verify(ctx, r, h, ledgers, db)
}

// verify waits for the spool to drain and checks every acknowledged seq of ledgers in
// InfluxDB; it records the delivery and the hub's metrics in r.
func (s *suite) verify(ctx context.Context, r *caseResult, h *hub, ledgers []unitLedger, db *testbed.Influx, metrics ...string) error {
	took, err := h.waitDrained(ctx, s.o.drain)
	r.check("spool drained into InfluxDB", err == nil, "after the load stopped: %s%s", took.Round(100*time.Millisecond), errSuffix(err))
	d, err := verifyDelivery(db, ledgers)
	if err != nil {
		return fmt.Errorf("verify in InfluxDB: %w", err)
	}
	r.checkDelivery(d)
	s.logf("%s: sent %d, acknowledged %d, in InfluxDB %d, lost %d", r.Name, d.Sent, d.Acked, d.Arrived, d.Lost)
	if m, err := h.metrics(metrics...); err == nil {
		r.HubMetrics = m
	}
	return nil
}

// errSuffix is "; err" for a report line, or nothing.
func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return "; " + err.Error()
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
