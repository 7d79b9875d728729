// Command bench measures the hub under load, for `make bench` (issue 8):
//
//   - ingest: N units x M snapshots at QoS 1 through a fresh hub into a fresh InfluxDB
//     database: acceptance and end-to-end rates, publish-to-PUBACK and publish-to-queryable
//     latency, and loss counted in InfluxDB;
//   - burst: 300 units x 1,000 snapshots as fast as the hub acknowledges them: time to accept,
//     time to drain into InfluxDB, and that every message arrived;
//   - ceiling: the same loads against Debian's Mosquitto (anonymous, no subscriber), so that
//     the hub's acceptance rate is reported as a ratio of a plain C broker's;
//   - commands: remote unlocks through the API, API call to result, with 1,000 and 10,000
//     units connected while telemetry flows at half the ingest scenario's end-to-end rate (what the hub sustains);
//   - connections: 10,000 units (50,000 where the file descriptor limit allows) connecting at
//     once to a fresh hub from several loopback addresses: time until all are online,
//     CONNECT-to-CONNACK latency, hub memory per connected unit, CPU while connecting and idle;
//   - agent: memory and CPU of one real edge-agent process, idle and publishing;
//   - cluster (not run by default; see cluster.go): hubs sharing Mosquitto and PostgreSQL,
//     ingest through 1 and 2 hubs and unlocks through each hub in turn.
//
// Everything runs on 127.0.0.1 and stops by itself: sizes are bounded by flags, every phase
// by a timeout. Results go to OUT/results.json and OUT/results.md; progress to stderr. The
// development InfluxDB must be running (scripts/bench.sh starts it).
//
// Usage: go run ./scripts/bench [flags]; see scripts/bench.sh and -help.
package main

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lockerhub/lockerhub/broker"
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
	phaseTimeout  time.Duration
	keepDB        bool
	cpuProfile    string

	commandUnits      []int
	unlocks           int
	unlockRate        float64
	operators         int
	commandIngestRate float64
	doorOpen          time.Duration
	unitInterval      time.Duration
	connUnits         int
	connSources       []netip.Addr
	connWindow        int
	connIdle          time.Duration
	agentBin          string
	agentDuration     time.Duration
	agentIdleInterval time.Duration
	agentInterval     time.Duration

	postgresURL       string
	mosquittoConf     string
	clusterHubs       []int
	clusterUnits      int
	clusterMessages   int
	clusterResponders int
	clusterUnlocks    int
	clusterBaseline   time.Duration
}

// allScenarios are the scenarios in the order they run, and the default.
var allScenarios = []string{"ingest", "burst", "ceiling", "commands", "connections", "agent"}

// optionalScenarios run only when asked for, after allScenarios: the cluster scenario needs
// PostgreSQL and takes minutes of its own.
var optionalScenarios = []string{"cluster"}

func main() {
	var o options
	var commandUnits, clusterHubs, connSources string
	flag.StringVar(&o.scenarios, "scenarios", strings.Join(allScenarios, ","), "comma-separated: ingest, burst, ceiling (Mosquitto with the load of each hub scenario run), commands, connections, agent, cluster (not by default)")
	flag.IntVar(&o.units, "units", 200, "ingest: units")
	flag.IntVar(&o.messages, "messages", 500, "ingest: telemetry messages per unit")
	flag.IntVar(&o.burstUnits, "burst-units", 300, "burst: units")
	flag.IntVar(&o.burstMessages, "burst-messages", 1000, "burst: telemetry messages per unit")
	flag.IntVar(&o.window, "window", 32, "unacknowledged QoS 1 messages per unit at most")
	flag.IntVar(&o.connects, "connects", 8, "concurrent connects while a scenario's units are set up")
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
	flag.DurationVar(&o.phaseTimeout, "phase-timeout", 3*time.Minute, "bound on each connect, settle and measuring phase of the commands, connections and agent scenarios")
	flag.StringVar(&commandUnits, "command-units", "1000,10000", "commands: comma-separated numbers of connected units, one run each")
	flag.IntVar(&o.unlocks, "unlocks", 3000, "commands: unlocks per run")
	flag.Float64Var(&o.unlockRate, "unlock-rate", 40, "commands: unlocks per second, all operators together")
	flag.IntVar(&o.operators, "operators", 60, "commands: operator tokens the unlocks are spread over (the hub allows 60 commands per token and minute by default)")
	flag.Float64Var(&o.commandIngestRate, "command-ingest-rate", 5000, "commands: background telemetry, msg/s, when the ingest scenario does not run (else half its end-to-end rate)")
	flag.DurationVar(&o.doorOpen, "door-open", 0, "commands: how long after an unlock the simulated door opens (the real one waits for a person)")
	flag.DurationVar(&o.unitInterval, "unit-interval", 10*time.Second, "commands: telemetry interval of the units answering commands (the agent's default)")
	flag.IntVar(&o.connUnits, "connection-units", 10000, "connections: units connecting at once")
	flag.StringVar(&connSources, "connection-sources", "127.0.0.2-127.0.0.9", "connections: loopback addresses the units connect from, round-robin: a range FIRST-LAST or a comma-separated list (one address has about 28,000 ephemeral ports)")
	flag.IntVar(&o.connWindow, "connection-window", broker.DefaultMaxPendingPerSource, "connections: connects in flight per source address at most (the hub's mqtt.max_pending_per_source refuses more)")
	flag.DurationVar(&o.connIdle, "connection-idle", 10*time.Second, "connections: how long the hub's CPU is measured while it holds every unit connected and idle")
	flag.StringVar(&o.agentBin, "agent", "bin/edge-agent", "agent: edge-agent binary")
	flag.DurationVar(&o.agentDuration, "agent-duration", 30*time.Second, "agent: how long each phase is measured")
	flag.DurationVar(&o.agentIdleInterval, "agent-idle-interval", 10*time.Second, "agent: telemetry interval of the idle phase (the agent's default)")
	flag.DurationVar(&o.agentInterval, "agent-interval", 100*time.Millisecond, "agent: telemetry interval of the publishing phase")
	flag.StringVar(&o.postgresURL, "postgres", "postgres://lockerhub@127.0.0.1:5433/lockerhub?sslmode=disable", "cluster: PostgreSQL server on this machine, whose role may create databases; its CPU is measured whole, so best its own (scripts/bench.sh starts one)")
	flag.StringVar(&o.mosquittoConf, "mosquitto-conf", "configs/mosquitto/lockerhub.conf", "cluster: the Mosquitto configuration for hubs; listener, files and logging are replaced")
	flag.StringVar(&clusterHubs, "cluster-hubs", "1,2", "cluster: comma-separated numbers of hubs, one ingest run each; unlocks go through the largest")
	flag.IntVar(&o.clusterUnits, "cluster-units", 200, "cluster: ingest units, and background publishers of the unlocks")
	flag.IntVar(&o.clusterMessages, "cluster-messages", 500, "cluster: telemetry messages per ingest unit")
	flag.IntVar(&o.clusterResponders, "cluster-responders", 1000, "cluster: units answering unlocks")
	flag.IntVar(&o.clusterUnlocks, "cluster-unlocks", 2000, "cluster: unlocks per phase (without, then with background telemetry), at -unlock-rate")
	flag.DurationVar(&o.clusterBaseline, "cluster-baseline", 10*time.Second, "cluster: how long the CPU is measured before each phase of unlocks, as its baseline")
	flag.Parse()
	var err error
	if o.commandUnits, err = parseSizes(commandUnits); err != nil {
		fmt.Fprintln(os.Stderr, "bench: -command-units:", err)
		os.Exit(2)
	}
	if o.connSources, err = parseSources(connSources); err != nil {
		fmt.Fprintln(os.Stderr, "bench: -connection-sources:", err)
		os.Exit(2)
	}
	if o.clusterHubs, err = parseSizes(clusterHubs); err != nil {
		fmt.Fprintln(os.Stderr, "bench: -cluster-hubs:", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	scenarios := strings.Split(o.scenarios, ",")
	for _, s := range scenarios {
		if !slices.Contains(allScenarios, s) && !slices.Contains(optionalScenarios, s) {
			return fmt.Errorf("unknown scenario %q", s)
		}
	}
	if o.units < 1 || o.messages < 1 || o.burstUnits < 1 || o.burstMessages < 1 || o.window < 1 || o.connects < 1 ||
		o.unlocks < 1 || o.operators < 1 || o.connUnits < 1 || o.connWindow < 1 ||
		o.clusterUnits < 1 || o.clusterMessages < 1 || o.clusterResponders < 1 || o.clusterUnlocks < 1 {
		return errors.New("sizes, -window, -connects, -connection-window, -unlocks and -operators must be at least 1")
	}
	if o.unlockRate <= 0 || o.commandIngestRate <= 0 || o.clusterBaseline <= 0 || o.connIdle <= 0 || o.agentDuration <= 0 || o.agentInterval <= 0 || o.agentIdleInterval <= 0 || o.unitInterval <= 0 {
		return errors.New("rates, durations and intervals must be positive")
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
	if slices.Contains(scenarios, "ceiling") && !slices.Contains(scenarios, "ingest") && !slices.Contains(scenarios, "burst") {
		b.add(b.mosquittoScenario(ctx, "ceiling-ingest", o.units, o.messages))
	}
	if slices.Contains(scenarios, "commands") {
		// Half the ingest the hub sustains: its end-to-end rate. Half its acceptance rate would
		// be more than it can store, and the spool would grow for the whole scenario.
		rate := o.commandIngestRate
		for _, r := range b.report.Scenarios {
			if r.Name == "ingest" && r.StoredMsgPerSec > 0 {
				rate = r.StoredMsgPerSec / 2
			}
		}
		for _, n := range o.commandUnits {
			if ctx.Err() == nil {
				r, err := b.commands(ctx, n, rate)
				b.report.Commands = append(b.report.Commands, r)
				b.failed(&r.Errors, err)
			}
		}
	}
	if slices.Contains(scenarios, "connections") && ctx.Err() == nil {
		r, err := b.connections(ctx, o.connUnits)
		b.report.Connections = r
		b.failed(&r.Errors, err)
	}
	if slices.Contains(scenarios, "agent") && ctx.Err() == nil {
		r, err := b.agent(ctx)
		b.report.Agent = r
		b.failed(&r.Errors, err)
	}
	if slices.Contains(scenarios, "cluster") && ctx.Err() == nil {
		b.clusterResult = b.clusterScenario(ctx)
	}
	b.report.Finished = time.Now().UTC()
	b.report.Targets = b.report.targets()
	if err := b.write(); err != nil {
		return err
	}
	if err := b.writeCluster(); err != nil {
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
	// clusterResult is the cluster scenario's, written into the results by writeCluster.
	clusterResult *clusterResult
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

// failed reports a scenario's failure on stderr and in its errors.
func (b *bench) failed(errs *[]string, err error) {
	if err != nil {
		fmt.Fprintf(b.log, "  FAILED: %v\n", err)
		*errs = append(*errs, err.Error())
	}
}

// parseSizes parses a comma-separated list of positive numbers.
func parseSizes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseSources parses loopback source addresses: a range "127.0.0.2-127.0.0.9" or a
// comma-separated list.
func parseSources(s string) ([]netip.Addr, error) {
	if first, last, ok := strings.Cut(s, "-"); ok {
		a, err1 := netip.ParseAddr(strings.TrimSpace(first))
		b, err2 := netip.ParseAddr(strings.TrimSpace(last))
		if err := cmp.Or(err1, err2); err != nil {
			return nil, err
		}
		if !a.Is4() || !b.Is4() || b.Less(a) || binary.BigEndian.Uint32(b.AsSlice())-binary.BigEndian.Uint32(a.AsSlice()) >= 256 {
			return nil, fmt.Errorf("%q: want an ascending IPv4 range of at most 256 addresses", s)
		}
		var out []netip.Addr
		for ip := a; ip.Compare(b) <= 0; ip = ip.Next() {
			out = append(out, ip)
		}
		return out, nil
	}
	var out []netip.Addr
	for f := range strings.SplitSeq(s, ",") {
		ip, err := netip.ParseAddr(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, ip)
	}
	return out, nil
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
	// Every door of every snapshot (no door keyframes): pointsPerMessage and settle's door
	// count hold, and the ingest figures compare with earlier runs.
	hub, err := b.startHub(ctx, name, units, "LOCKERHUB_TELEMETRY_DOOR_KEYFRAME_INTERVAL=0")
	if err != nil {
		return r, err
	}
	defer hub.close()
	r.Database = hub.database
	db, creds := hub.db, hub.units

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
	if res.Acked > 0 {
		r.HubCPUMicrosPerMsgAccepting = testbed.Round(cpu.Seconds()["lockerhub"]/float64(res.Acked)*1e6, 1)
	}
	fmt.Fprintf(b.log, "  accepted %d/%d messages in %s: %.0f msg/s\n", res.Acked, res.Sent, res.End.Sub(res.Start).Round(time.Millisecond), res.Rate())
	if atAck, err := db.Count("unit", "seq"); err == nil && res.Acked > 0 {
		r.StoredAtLastAck = testbed.Round(float64(atAck)/float64(res.Acked), 3)
		fmt.Fprintf(b.log, "  InfluxDB held %d of them at the last PUBACK\n", atAck)
	}

	stored, _ := b.drain(ctx, r, db, res, func() (float64, error) {
		m, err := testbed.HubMetrics(hub.HTTP)
		return m["lockerhub_telemetry_points_written_total"], err
	})
	r.CPUCores = cpu.Usage()
	if stored > 0 {
		r.HubCPUMicrosPerMsg = testbed.Round(cpu.Seconds()["lockerhub"]/float64(stored)*1e6, 1)
	}
	r.HubPeakRSSMiB = testbed.Round(float64(testbed.PeakRSS(hub.Cmd.Process.Pid))/(1<<20), 1)

	if r.HubMetrics, err = testbed.HubMetrics(hub.HTTP); err != nil {
		r.Errors = append(r.Errors, fmt.Sprintf("scraping the hub's metrics: %v", err))
	}

	settle(r, pr, stopProbe, probeDone, db, res, stored)
	fmt.Fprintf(b.log, "  lost %d of %d; publish-to-queryable p50 %.1f ms, p99 %.1f ms (%d samples)\n",
		r.Lost, res.Sent, r.Queryable.P50Ms, r.Queryable.P99Ms, r.Queryable.Samples)
	return r, nil
}

// drain waits until the hubs have written every acknowledged message's points (written: their
// lockerhub_telemetry_points_written_total, cheap to poll), then until InfluxDB holds a unit
// point for each (a COUNT over all of them, too heavy to poll every 100 ms without slowing
// InfluxDB down). It records the end-to-end figures in r and returns the messages stored and
// when they were.
func (b *bench) drain(ctx context.Context, r *scenarioResult, db *testbed.Influx, res *loadResult, written func() (float64, error)) (int64, time.Time) {
	deadline := time.Now().Add(b.o.drainTimeout)
	var stored int64
	lastReport := time.Now()
	for {
		w, err := written()
		if err == nil && w >= float64(res.Acked*pointsPerMessage) {
			stored, err = db.Count("unit", "seq")
			if err == nil && stored >= res.Acked {
				break
			}
		}
		if time.Since(lastReport) > 5*time.Second {
			fmt.Fprintf(b.log, "  hubs wrote %.0f of %d messages\n", w/pointsPerMessage, res.Acked)
			lastReport = time.Now()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stored, _ = db.Count("unit", "seq")
			r.Errors = append(r.Errors, fmt.Sprintf("InfluxDB holds %d of %d acknowledged messages after waiting %s (last error: %v)", stored, res.Acked, b.o.drainTimeout, err))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	drained := time.Now()
	r.DrainAfterAcceptSeconds = testbed.Round(drained.Sub(res.End).Seconds(), 3)
	r.EndToEndSeconds = testbed.Round(drained.Sub(res.Start).Seconds(), 3)
	if s := drained.Sub(res.Start).Seconds(); stored >= res.Acked && s > 0 {
		r.StoredMsgPerSec = testbed.Round(float64(res.Acked)/s, 0)
		r.StoredPointsPerSec = testbed.Round(float64(res.Acked*pointsPerMessage)/s, 0)
	}
	fmt.Fprintf(b.log, "  InfluxDB holds %d unit points %s after the last PUBACK\n", stored, drained.Sub(res.End).Round(time.Millisecond))
	return stored, drained
}

// settle gives the latency probe a moment to see the last of its messages, stops it, and
// records in r its latencies and the loss counted in InfluxDB: one unit point per message
// (timestamps are unique per unit), and the doors.
func settle(r *scenarioResult, pr *probe, stopProbe func(), probeDone <-chan struct{}, db *testbed.Influx, res *loadResult, stored int64) {
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
	r.StoredMessages = stored
	var err error
	if r.StoredDoorPoints, err = db.Count("door", "open"); err != nil {
		r.Errors = append(r.Errors, err.Error())
	}
	r.Lost = res.Sent - stored
	if want := stored * testbed.DoorsPerUnit; stored >= res.Acked && r.StoredDoorPoints != want {
		r.Errors = append(r.Errors, fmt.Sprintf("InfluxDB holds %d door points, want %d for %d messages", r.StoredDoorPoints, want, stored))
	}
}

// freshHub is a hub started for one scenario, with its own data directory, provisioned
// units and InfluxDB database.
type freshHub struct {
	*testbed.Server
	units    []testbed.Unit
	database string
	db       *testbed.Influx
	keepDB   bool
}

// startHub creates the scenario's database and starts a hub writing to it with units
// provisioned. The hub serves Go's profiler: to profile a slow run while it runs, and for the
// forced GC that settledMemory needs. extraEnv (KEY=value) adds to the hub's environment.
func (b *bench) startHub(ctx context.Context, name string, units int, extraEnv ...string) (*freshHub, error) {
	dir, err := b.dir(name)
	if err != nil {
		return nil, err
	}
	h := &freshHub{database: "bench_" + b.stamp + "_" + strings.ReplaceAll(name, "-", "_"), keepDB: b.o.keepDB}
	h.db = testbed.NewInflux(b.o.influxURL, h.database)
	if _, err := h.db.Query("CREATE DATABASE " + h.database); err != nil {
		return nil, err
	}
	t0 := time.Now()
	env := append([]string{"LOCKERHUB_HTTP_PPROF=true"}, extraEnv...)
	h.Server, h.units, err = testbed.StartHub(ctx, b.o.hubBin, dir, b.o.influxURL, h.database, units, env...)
	if err != nil {
		h.dropDB()
		return nil, err
	}
	fmt.Fprintf(b.log, "  provisioned %d units and started the hub (HTTP %s) in %s\n", units, h.HTTP, time.Since(t0).Round(time.Millisecond))
	return h, nil
}

// close stops the hub and drops its database unless -keep-db.
func (h *freshHub) close() {
	h.Stop()
	h.dropDB()
}

func (h *freshHub) dropDB() {
	if !h.keepDB {
		h.db.Query("DROP DATABASE " + h.database)
	}
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
