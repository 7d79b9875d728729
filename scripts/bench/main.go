// Command bench measures the hub's telemetry ingest under load, for `make bench` (issue 8):
//
//   - ingest: N units x M snapshots at QoS 1 through a fresh hub into a fresh InfluxDB
//     database: acceptance and end-to-end rates, publish-to-PUBACK and publish-to-queryable
//     latency, and loss counted in InfluxDB;
//   - burst: 300 units x 1,000 snapshots as fast as the hub acknowledges them: time to accept,
//     time to drain into InfluxDB, and that every message arrived;
//   - ceiling: the same loads against Debian's Mosquitto (anonymous, no subscriber), so that
//     the hub's acceptance rate is reported as a ratio of a plain C broker's.
//
// Everything runs on 127.0.0.1 and stops by itself: sizes are bounded by flags, every phase
// by a timeout. Results go to OUT/results.json and OUT/results.md; progress to stderr. The
// development InfluxDB must be running (scripts/bench.sh starts it).
//
// Usage: go run ./scripts/bench [flags]; see scripts/bench.sh and -help.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

// options are the command's flags.
type options struct {
	scenarios     string
	units         int
	messages      int
	burstUnits    int
	burstMessages int
	window        int
	connects      int
	hubBin        string
	mosquitto     string
	influxURL     string
	influxPID     string
	out           string
	probeUnits    int
	probeInterval time.Duration
	drainTimeout  time.Duration
	timeout       time.Duration
	keepDB        bool
	cpuProfile    string
}

func main() {
	var o options
	flag.StringVar(&o.scenarios, "scenarios", "ingest,burst,ceiling", "comma-separated: ingest, burst, ceiling (Mosquitto with the load of each hub scenario run)")
	flag.IntVar(&o.units, "units", 200, "ingest: units")
	flag.IntVar(&o.messages, "messages", 500, "ingest: telemetry messages per unit")
	flag.IntVar(&o.burstUnits, "burst-units", 300, "burst: units")
	flag.IntVar(&o.burstMessages, "burst-messages", 1000, "burst: telemetry messages per unit")
	flag.IntVar(&o.window, "window", 32, "unacknowledged QoS 1 messages per unit at most")
	flag.IntVar(&o.connects, "connects", 8, "concurrent connects (the hub verifies an argon2id hash for each)")
	flag.StringVar(&o.hubBin, "hub", "bin/lockerhub", "lockerhub binary")
	flag.StringVar(&o.mosquitto, "mosquitto", "/usr/sbin/mosquitto", "mosquitto binary")
	flag.StringVar(&o.influxURL, "influx", "http://127.0.0.1:8086", "InfluxDB 1.8 URL (loopback)")
	flag.StringVar(&o.influxPID, "influx-pidfile", "var/influxdb/influxd.pid", "influxd's pid file, to report its CPU use")
	flag.StringVar(&o.out, "out", "var/bench", "directory for results.json, results.md and the servers' logs")
	flag.IntVar(&o.probeUnits, "probe-units", 10, "units whose every message is timed until queryable in InfluxDB")
	flag.DurationVar(&o.probeInterval, "probe-interval", 10*time.Millisecond, "how often the latency probe queries InfluxDB")
	flag.DurationVar(&o.drainTimeout, "drain-timeout", 5*time.Minute, "how long to wait, after the last PUBACK, for InfluxDB to hold every message")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "bound on the whole run")
	flag.BoolVar(&o.keepDB, "keep-db", false, "keep the InfluxDB databases the run created")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write the load generator's CPU profile to this file")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	scenarios := strings.Split(o.scenarios, ",")
	for _, s := range scenarios {
		if s != "ingest" && s != "burst" && s != "ceiling" {
			return fmt.Errorf("unknown scenario %q", s)
		}
	}
	if o.units < 1 || o.messages < 1 || o.burstUnits < 1 || o.burstMessages < 1 || o.window < 1 || o.connects < 1 {
		return errors.New("sizes, -window and -connects must be at least 1")
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, o.timeout)
	defer cancelTimeout()
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	b := &bench{o: o, stamp: time.Now().UTC().Format("20060102_150405"), log: os.Stderr}
	b.report.Machine = machine(o.mosquitto)
	b.report.Started = time.Now().UTC()
	for _, s := range []struct {
		name            string
		units, messages int
	}{{"ingest", o.units, o.messages}, {"burst", o.burstUnits, o.burstMessages}} {
		if !slices.Contains(scenarios, s.name) {
			continue
		}
		hub, err := b.hubScenario(ctx, s.name, s.units, s.messages)
		b.add(hub, err)
		if slices.Contains(scenarios, "ceiling") && ctx.Err() == nil {
			b.add(b.mosquittoScenario(ctx, "ceiling-"+s.name, s.units, s.messages))
		}
	}
	if !slices.Contains(scenarios, "ingest") && !slices.Contains(scenarios, "burst") {
		b.add(b.mosquittoScenario(ctx, "ceiling-ingest", o.units, o.messages))
	}
	b.report.Finished = time.Now().UTC()
	b.report.Targets = targets(b.report.Scenarios)
	if err := b.write(); err != nil {
		return err
	}
	fmt.Fprintf(b.log, "results: %s, %s\n", filepath.Join(o.out, "results.json"), filepath.Join(o.out, "results.md"))
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// bench is one run of the selected scenarios.
type bench struct {
	o      options
	stamp  string // names this run's databases and directories
	log    io.Writer
	report report
}

// add records a scenario's result, or that it failed.
func (b *bench) add(r *scenarioResult, err error) {
	if err != nil {
		fmt.Fprintf(b.log, "  FAILED: %v\n", err)
		if r == nil {
			return
		}
		r.Errors = append(r.Errors, err.Error())
	}
	b.report.Scenarios = append(b.report.Scenarios, r)
}

// dir makes the scenario's directory for data and logs.
func (b *bench) dir(name string) (string, error) {
	dir, err := filepath.Abs(filepath.Join(b.o.out, "run-"+b.stamp, name))
	if err != nil {
		return "", err
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// hubScenario provisions units in a fresh hub writing to a fresh database, publishes messages
// per unit, waits until InfluxDB holds every acknowledged message and counts what it stores.
func (b *bench) hubScenario(ctx context.Context, name string, units, messages int) (*scenarioResult, error) {
	fmt.Fprintf(b.log, "%s: %d units x %d messages through lockerhub into InfluxDB\n", name, units, messages)
	r := &scenarioResult{Name: name, Broker: "lockerhub", Units: units, MessagesPerUnit: messages, Window: b.o.window, PointsPerMessage: pointsPerMessage}
	dir, err := b.dir(name)
	if err != nil {
		return r, err
	}
	r.Database = "bench_" + b.stamp + "_" + name
	db := testbed.NewInflux(b.o.influxURL, r.Database)
	if _, err := db.Query("CREATE DATABASE " + r.Database); err != nil {
		return r, err
	}
	if !b.o.keepDB {
		defer db.Query("DROP DATABASE " + r.Database)
	}
	t0 := time.Now()
	hub, creds, err := testbed.StartHub(ctx, b.o.hubBin, dir, b.o.influxURL, r.Database, units)
	if err != nil {
		return r, err
	}
	defer hub.Stop()
	fmt.Fprintf(b.log, "  provisioned %d units and started the hub in %s\n", units, time.Since(t0).Round(time.Millisecond))

	tsStart := time.Now().UnixMilli()
	pr := newProbe(db, creds, b.o.probeUnits, messages, tsStart, b.o.probeInterval)
	probeCtx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	probeDone := make(chan struct{})
	go func() { pr.run(probeCtx); close(probeDone) }()

	l := &load{broker: "tcp://" + hub.MQTT, units: creds, messages: messages, window: b.o.window, connects: b.o.connects, progress: b.log, onPublish: pr.onPublish, tsStart: tsStart}
	pids := map[string]int{"lockerhub": hub.Cmd.Process.Pid, "bench": os.Getpid()}
	if pid, err := readPID(b.o.influxPID); err == nil {
		pids["influxd"] = pid
	}
	var cpu *testbed.CPUMeter
	res, err := l.runAfterConnect(ctx, func() { cpu = testbed.NewCPUMeter(pids) })
	if err != nil {
		return r, err
	}
	r.fromLoad(res)
	fmt.Fprintf(b.log, "  accepted %d/%d messages in %s: %.0f msg/s\n", res.Acked, res.Sent, res.End.Sub(res.Start).Round(time.Millisecond), res.Rate())

	// Drain: wait until the hub has written every acknowledged message's points (its metrics,
	// cheap to poll), then until InfluxDB holds a unit point for each (a COUNT over all of
	// them, too heavy to poll every 100 ms without slowing InfluxDB down).
	deadline := time.Now().Add(b.o.drainTimeout)
	var stored int64
	for {
		var m map[string]float64
		if m, err = testbed.HubMetrics(hub.HTTP); err == nil && m["lockerhub_telemetry_points_written_total"] >= float64(res.Acked*pointsPerMessage) {
			stored, err = db.Count("unit", "seq")
			if err == nil && stored >= res.Acked {
				break
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stored, _ = db.Count("unit", "seq")
			r.Errors = append(r.Errors, fmt.Sprintf("InfluxDB holds %d of %d acknowledged messages after waiting %s (last error: %v)", stored, res.Acked, b.o.drainTimeout, err))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	drained := time.Now()
	r.CPUCores = cpu.Usage()
	r.HubPeakRSSMiB = testbed.Round(float64(testbed.PeakRSS(hub.Cmd.Process.Pid))/(1<<20), 1)
	r.DrainAfterAcceptSeconds = testbed.Round(drained.Sub(res.End).Seconds(), 3)
	r.EndToEndSeconds = testbed.Round(drained.Sub(res.Start).Seconds(), 3)
	if s := drained.Sub(res.Start).Seconds(); stored >= res.Acked && s > 0 {
		r.StoredMsgPerSec = testbed.Round(float64(res.Acked)/s, 0)
		r.StoredPointsPerSec = testbed.Round(float64(res.Acked*pointsPerMessage)/s, 0)
	}
	fmt.Fprintf(b.log, "  InfluxDB holds %d unit points %s after the last PUBACK\n", stored, drained.Sub(res.End).Round(time.Millisecond))

	if r.HubMetrics, err = testbed.HubMetrics(hub.HTTP); err != nil {
		r.Errors = append(r.Errors, fmt.Sprintf("scraping the hub's metrics: %v", err))
	}

	// Give the probe a moment to see the last of its messages, then stop it.
	select {
	case <-probeDone:
	case <-time.After(2 * time.Second):
	}
	stopProbe()
	<-probeDone
	r.Queryable = summarize(pr.latencies())
	if pr.errs > 0 {
		r.Errors = append(r.Errors, fmt.Sprintf("latency probe: %d queries failed", pr.errs))
	}

	// Loss, counted: one unit point per message (timestamps are unique per unit), and the doors.
	r.StoredMessages = stored
	if r.StoredDoorPoints, err = db.Count("door", "open"); err != nil {
		r.Errors = append(r.Errors, err.Error())
	}
	r.Lost = res.Sent - stored
	if want := stored * testbed.DoorsPerUnit; stored >= res.Acked && r.StoredDoorPoints != want {
		r.Errors = append(r.Errors, fmt.Sprintf("InfluxDB holds %d door points, want %d for %d messages", r.StoredDoorPoints, want, stored))
	}
	fmt.Fprintf(b.log, "  lost %d of %d; publish-to-queryable p50 %.1f ms, p99 %.1f ms (%d samples)\n",
		r.Lost, res.Sent, r.Queryable.P50Ms, r.Queryable.P99Ms, r.Queryable.Samples)
	return r, nil
}

// mosquittoScenario publishes the same load to Mosquitto with no subscriber: its acceptance
// rate is the ceiling the hub is compared with.
func (b *bench) mosquittoScenario(ctx context.Context, name string, units, messages int) (*scenarioResult, error) {
	fmt.Fprintf(b.log, "%s: %d units x %d messages to Mosquitto, no subscriber\n", name, units, messages)
	r := &scenarioResult{Name: name, Broker: "mosquitto", Units: units, MessagesPerUnit: messages, Window: b.o.window, PointsPerMessage: pointsPerMessage}
	dir, err := b.dir(name)
	if err != nil {
		return r, err
	}
	m, err := testbed.StartMosquitto(ctx, b.o.mosquitto, dir)
	if err != nil {
		return r, err
	}
	defer m.Stop()
	creds := make([]testbed.Unit, units)
	for i := range creds {
		creds[i] = testbed.Unit{ID: fmt.Sprintf("bench-%05d", i+1)}
	}
	l := &load{broker: "tcp://" + m.MQTT, units: creds, messages: messages, window: b.o.window, connects: b.o.connects, progress: b.log, tsStart: time.Now().UnixMilli()}
	var cpu *testbed.CPUMeter
	res, err := l.runAfterConnect(ctx, func() {
		cpu = testbed.NewCPUMeter(map[string]int{"mosquitto": m.Cmd.Process.Pid, "bench": os.Getpid()})
	})
	if err != nil {
		return r, err
	}
	r.fromLoad(res)
	r.CPUCores = cpu.Usage()
	fmt.Fprintf(b.log, "  accepted %d/%d messages in %s: %.0f msg/s\n", res.Acked, res.Sent, res.End.Sub(res.Start).Round(time.Millisecond), res.Rate())
	return r, nil
}

func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var pid int
	_, err = fmt.Sscan(string(b), &pid)
	return pid, err
}
