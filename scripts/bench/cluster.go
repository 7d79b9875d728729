package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

// The cluster scenario (issue 9): hubs that run no broker of their own but share Debian's
// Mosquitto 2 (configs/mosquitto/lockerhub.conf) and a PostgreSQL store, for the sizing
// figures of the deployment guide.
//
//   - ingest through 1 hub and through 2 hubs (-cluster-hubs): the ingest scenario's load (the
//     same generator, units connecting to Mosquitto with their device credentials), Mosquitto's
//     acceptance rate, the end-to-end rate into InfluxDB, loss counted there, how the stored
//     share splits between the hubs, and the CPU seconds per 10,000 messages of every process
//     (each hub, Mosquitto, PostgreSQL, InfluxDB);
//   - unlocks through a cluster of the largest size, sent alternately through each hub to
//     units that answer like the commands scenario's, without and then with background
//     telemetry.
//
// Every configuration gets a fresh PostgreSQL database, InfluxDB database and Mosquitto (its
// persistence in the run's directory). PostgreSQL's CPU is that of the whole server (postmaster
// and children), so the server should be the run's own: scripts/bench.sh starts one for it.

// clusterResult is the cluster scenario in results.json.
type clusterResult struct {
	// LoadAverage{Start,End} are the machine's 1, 5 and 15 minute load averages when the
	// scenario started and ended: other work on the cores that every process here shares.
	LoadAverageStart [3]float64        `json:"load_average_start"`
	LoadAverageEnd   [3]float64        `json:"load_average_end"`
	Postgres         string            `json:"postgres"`
	Ingest           []*clusterIngest  `json:"ingest"`
	Unlocks          []*clusterUnlocks `json:"unlocks"`
	Errors           []string          `json:"errors,omitempty"`
}

// clusterIngest is one ingest run through a cluster. The embedded result's rates are as in the
// ingest scenario, accepted meaning acknowledged by Mosquitto; its CPUCores, HubPeakRSSMiB
// and HubMetrics are left empty for the per-hub figures below.
type clusterIngest struct {
	scenarioResult
	Hubs int `json:"hubs"`
	// SharedTelemetry is, per hub, the telemetry messages it received through the shared
	// subscription (lockerhub_external_messages_received_total{subscription="shared"}): those
	// it stored.
	SharedTelemetry map[string]float64 `json:"shared_telemetry_by_hub"`
	// CPUSeconds is, per process, the CPU used from the first publish until InfluxDB held every
	// message, with "other" for the rest of the machine (see withOther); CPUSecondsPer10k the
	// same per 10,000 acknowledged messages, without "other".
	CPUSeconds       map[string]float64            `json:"cpu_seconds"`
	CPUSecondsPer10k map[string]float64            `json:"cpu_seconds_per_10k_messages"`
	CPUCoresByProc   map[string]float64            `json:"cpu_cores_by_process"`
	HubRSSMiB        map[string]float64            `json:"hub_peak_rss_mib_by_hub"`
	HubMetricsByHub  map[string]map[string]float64 `json:"hub_metrics_by_hub"`
	Logs             map[string]logSummary         `json:"logs"`
}

// clusterUnlocks is one phase of unlocks through a cluster.
type clusterUnlocks struct {
	Phase string `json:"phase"` // "idle": only the answering units' own snapshots; "telemetry": with background ingest
	Hubs  int    `json:"hubs"`
	commandsResult
	RoundTripByHub map[string]latency `json:"round_trip_by_hub"` // the opened ones, by the hub the call went to
	// CPUCoresBefore is, per process, the cores used in the -cluster-baseline before the idle
	// phase's unlocks: what the connected units and the hubs' own work cost without them.
	// CPUMsPerUnlock is the CPU above that baseline per unlock, in milliseconds. Neither is
	// measured in the telemetry phase, whose background ingest costs far more than the unlocks.
	CPUCoresBefore  map[string]float64            `json:"cpu_cores_before,omitempty"`
	CPUMsPerUnlock  map[string]float64            `json:"cpu_ms_per_unlock,omitempty"`
	HubRSSMiB       map[string]float64            `json:"hub_peak_rss_mib_by_hub"`
	HubMetricsByHub map[string]map[string]float64 `json:"hub_metrics_by_hub,omitempty"`
	Logs            map[string]logSummary         `json:"logs,omitempty"` // the whole run so far: the last phase has both
}

// logSummary is what a server logged at warning level or above during a run.
type logSummary struct {
	Warnings int      `json:"warnings"`
	Errors   int      `json:"errors"`
	Messages []string `json:"messages,omitempty"` // the first distinct ones, with their count
	Dropped  int      `json:"dropped,omitempty"`  // Mosquitto: "Outgoing messages are being dropped" notices
}

// clusterScenario runs the cluster scenario's ingest and unlock runs.
func (b *bench) clusterScenario(ctx context.Context) *clusterResult {
	r := &clusterResult{LoadAverageStart: testbed.LoadAverage()}
	defer func() { r.LoadAverageEnd = testbed.LoadAverage() }()
	fmt.Fprintf(b.log, "cluster: load average %.2f %.2f %.2f at the start\n", r.LoadAverageStart[0], r.LoadAverageStart[1], r.LoadAverageStart[2])
	var err error
	if _, r.Postgres, err = testbed.PostgresServer(ctx, b.o.postgresURL); err != nil {
		b.failed(&r.Errors, fmt.Errorf("PostgreSQL (-postgres; scripts/bench.sh starts one): %w", err))
		return r
	}
	for _, n := range b.o.clusterHubs {
		if ctx.Err() != nil {
			break
		}
		res, err := b.clusterIngest(ctx, n)
		b.failed(&res.Errors, err)
		r.Ingest = append(r.Ingest, res)
	}
	// The background telemetry of the unlocks: half what the largest cluster stored, as the
	// commands scenario takes half of the ingest scenario's.
	rate := b.o.commandIngestRate
	if len(r.Ingest) > 0 {
		if last := r.Ingest[len(r.Ingest)-1]; last.StoredMsgPerSec > 0 && last.Lost == 0 {
			rate = last.StoredMsgPerSec / 2
		}
	}
	if ctx.Err() == nil {
		res, err := b.clusterUnlocks(ctx, slices.Max(b.o.clusterHubs), rate)
		r.Unlocks = res
		b.failed(&r.Errors, err)
	}
	r.LoadAverageEnd = testbed.LoadAverage()
	fmt.Fprintf(b.log, "cluster: load average %.2f %.2f %.2f at the end\n", r.LoadAverageEnd[0], r.LoadAverageEnd[1], r.LoadAverageEnd[2])
	return r
}

// cluster is Mosquitto, hubs and a PostgreSQL database set up for one run.
type cluster struct {
	b          *bench
	name, dir  string
	pgDB       string
	influxDB   string
	db         *testbed.Influx
	cliEnv     []string // the CLI's environment: the shared store
	units      []testbed.Unit
	mosquitto  *testbed.Server
	hubs       []*testbed.Server
	hubNames   []string
	postmaster int
}

// startCluster creates the run's databases, registers units in the store, writes Mosquitto's
// password and ACL files with export-acl, and starts Mosquitto and the hubs, each hub with its
// own data directory (its spool) and Mosquitto user (hub_1, ...: hub names must not be device
// IDs).
func (b *bench) startCluster(ctx context.Context, name string, hubs, units int) (c *cluster, err error) {
	t0 := time.Now()
	dir, err := b.dir(name)
	if err != nil {
		return nil, err
	}
	c = &cluster{b: b, name: name, dir: dir}
	defer func() {
		if err != nil {
			c.close()
			c = nil
		}
	}()
	dbName := "bench_" + b.stamp + "_" + strings.ReplaceAll(name, "-", "_")
	if c.postmaster, _, err = testbed.PostgresServer(ctx, b.o.postgresURL); err != nil {
		return c, err
	}
	pgURL, err := testbed.CreatePostgresDB(ctx, b.o.postgresURL, dbName)
	if err != nil {
		return c, err
	}
	c.pgDB = dbName
	c.db = testbed.NewInflux(b.o.influxURL, dbName)
	if _, err := c.db.Query("CREATE DATABASE " + dbName); err != nil {
		return c, err
	}
	c.influxDB = dbName
	shared := func(dataDir string) []string {
		return append(testbed.HubEnv(dataDir, b.o.influxURL, dbName, "127.0.0.1:0", "127.0.0.1:0"), "LOCKERHUB_STORE_URL="+pgURL)
	}
	c.cliEnv = shared(filepath.Join(dir, "cli"))
	if c.units, err = testbed.Provision(ctx, b.o.hubBin, c.cliEnv, units); err != nil {
		return c, err
	}
	passwords := map[string]string{}
	for i := range hubs {
		var s [16]byte
		rand.Read(s[:])
		name := fmt.Sprint("hub_", i+1)
		passwords[name] = hex.EncodeToString(s[:])
		c.hubNames = append(c.hubNames, name)
	}
	passwd, acl, err := testbed.ExportACL(ctx, b.o.hubBin, c.cliEnv, dir, passwords)
	if err != nil {
		return c, err
	}
	conf, err := testbed.MosquittoConf(b.o.mosquittoConf, passwd, acl, dir)
	if err != nil {
		return c, err
	}
	if c.mosquitto, err = testbed.StartMosquittoConf(ctx, b.o.mosquitto, dir, conf); err != nil {
		return c, err
	}
	for _, h := range c.hubNames {
		env := append(shared(filepath.Join(dir, h)), "LOCKERHUB_HTTP_PPROF=true",
			"LOCKERHUB_MQTT_EXTERNAL_URL=mqtt://"+c.mosquitto.MQTT, "LOCKERHUB_MQTT_EXTERNAL_USERNAME="+h,
			"LOCKERHUB_MQTT_EXTERNAL_PASSWORD="+passwords[h])
		s, err := testbed.StartClusterHub(ctx, b.o.hubBin, h, dir, env)
		if err != nil {
			return c, err
		}
		c.hubs = append(c.hubs, s)
	}
	var addrs []string
	for i, h := range c.hubs {
		addrs = append(addrs, c.hubNames[i]+" "+h.HTTP)
	}
	fmt.Fprintf(b.log, "  provisioned %d units, started Mosquitto (%s) and %d hub(s) (HTTP %s) in %s\n",
		units, c.mosquitto.MQTT, hubs, strings.Join(addrs, ", "), time.Since(t0).Round(time.Millisecond))
	return c, nil
}

// cpuMeter measures every process of the cluster, the load generator and InfluxDB.
func (c *cluster) cpuMeter() *testbed.CPUMeter {
	read := map[string]func() (float64, error){
		"mosquitto": func() (float64, error) { return testbed.CPUSeconds(c.mosquitto.Cmd.Process.Pid) },
		"postgres":  func() (float64, error) { return testbed.TreeCPUSeconds(c.postmaster) },
		"bench":     func() (float64, error) { return testbed.CPUSeconds(os.Getpid()) },
	}
	for i, h := range c.hubs {
		read[c.hubNames[i]] = func() (float64, error) { return testbed.CPUSeconds(h.Cmd.Process.Pid) }
	}
	if pid, err := readPID(c.b.o.influxPID); err == nil {
		read["influxd"] = func() (float64, error) { return testbed.CPUSeconds(pid) }
	}
	read["machine"] = testbed.MachineCPUSeconds
	return testbed.NewCPUMeterOf(read)
}

// withOther replaces the machine's CPU in m by "other": the machine's less every measured
// process, which is the kernel's work for them (softirqs of loopback traffic, writeback) and
// whatever else ran on the machine meanwhile.
func withOther(m map[string]float64, digits int) map[string]float64 {
	machine, ok := m["machine"]
	if !ok {
		return m
	}
	delete(m, "machine")
	for _, v := range m {
		machine -= v
	}
	m["other"] = testbed.Round(max(machine, 0), digits)
	return m
}

// hubsMetric sums a metric over the hubs.
func (c *cluster) hubsMetric(name string, labels map[string]string) (float64, error) {
	sum := 0.0
	for _, h := range c.hubs {
		v, err := testbed.MetricWith(h.HTTP, name, labels)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// hubStats fills the per-hub figures every run reports: peak RSS, metrics, logs.
func (c *cluster) hubStats() (rss map[string]float64, metrics map[string]map[string]float64, logs map[string]logSummary, errs []string) {
	rss, metrics, logs = map[string]float64{}, map[string]map[string]float64{}, map[string]logSummary{}
	for i, h := range c.hubs {
		n := c.hubNames[i]
		rss[n] = testbed.Round(float64(testbed.PeakRSS(h.Cmd.Process.Pid))/(1<<20), 1)
		m, err := testbed.HubMetrics(h.HTTP)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: scraping metrics: %v", n, err))
		}
		metrics[n] = m
		logs[n] = summarizeLog(filepath.Join(c.dir, n+".log"))
	}
	logs["mosquitto"] = summarizeLog(filepath.Join(c.dir, "mosquitto.log"))
	return rss, metrics, logs, errs
}

// close stops the hubs, then Mosquitto, and drops the databases unless -keep-db.
func (c *cluster) close() {
	var wg sync.WaitGroup
	for _, h := range c.hubs {
		wg.Go(h.Stop)
	}
	wg.Wait()
	if c.mosquitto != nil {
		c.mosquitto.Stop()
	}
	if c.b.o.keepDB {
		return
	}
	if c.influxDB != "" {
		c.db.Query("DROP DATABASE " + c.influxDB)
	}
	if c.pgDB != "" {
		if err := testbed.DropPostgresDB(c.b.o.postgresURL, c.pgDB); err != nil {
			fmt.Fprintf(c.b.log, "  dropping PostgreSQL database %s: %v\n", c.pgDB, err)
		}
	}
}

// clusterIngest publishes the ingest load to Mosquitto with hubs sharing the stream and waits
// until InfluxDB holds every acknowledged message.
func (b *bench) clusterIngest(ctx context.Context, hubs int) (*clusterIngest, error) {
	units, messages := b.o.clusterUnits, b.o.clusterMessages
	name := fmt.Sprintf("cluster-ingest-%dhub", hubs)
	fmt.Fprintf(b.log, "%s: %d units x %d messages to Mosquitto, %d hub(s) storing into InfluxDB\n", name, units, messages, hubs)
	r := &clusterIngest{scenarioResult: scenarioResult{Name: name, Broker: "mosquitto", Units: units, MessagesPerUnit: messages,
		Window: b.o.window, PointsPerMessage: pointsPerMessage}, Hubs: hubs}
	c, err := b.startCluster(ctx, name, hubs, units)
	if err != nil {
		return r, err
	}
	defer c.close()
	r.Database = c.influxDB

	tsStart := time.Now().UnixMilli()
	pr := newProbe(c.db, c.units, b.o.probeUnits, messages, tsStart, b.o.probeInterval)
	probeCtx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	probeDone := make(chan struct{})
	go func() { pr.run(probeCtx); close(probeDone) }()

	l := &load{broker: "tcp://" + c.mosquitto.MQTT, units: c.units, messages: messages, window: b.o.window, connects: b.o.connects,
		progress: b.log, onPublish: pr.onPublish, tsStart: tsStart}
	var cpu *testbed.CPUMeter
	res, err := l.runAfterConnect(ctx, func() { cpu = c.cpuMeter() })
	if err != nil {
		return r, err
	}
	r.fromLoad(res)
	fmt.Fprintf(b.log, "  Mosquitto accepted %d/%d messages in %s: %.0f msg/s\n", res.Acked, res.Sent, res.End.Sub(res.Start).Round(time.Millisecond), res.Rate())

	stored, _ := b.drain(ctx, &r.scenarioResult, c.db, res, func() (float64, error) {
		return c.hubsMetric("lockerhub_telemetry_points_written_total", nil)
	})
	secs := withOther(cpu.Seconds(), 2)
	r.CPUCoresByProc = withOther(cpu.Usage(), 2)
	r.CPUSeconds, r.CPUSecondsPer10k = map[string]float64{}, map[string]float64{}
	for p, s := range secs {
		r.CPUSeconds[p] = testbed.Round(s, 2)
		if res.Acked > 0 && p != "other" {
			r.CPUSecondsPer10k[p] = testbed.Round(s/float64(res.Acked)*10000, 3)
		}
	}

	r.SharedTelemetry = map[string]float64{}
	for i, h := range c.hubs {
		v, err := testbed.MetricWith(h.HTTP, "lockerhub_external_messages_received_total", map[string]string{"subscription": "shared", "channel": "telemetry"})
		if err != nil {
			r.Errors = append(r.Errors, fmt.Sprintf("%s: %v", c.hubNames[i], err))
		}
		r.SharedTelemetry[c.hubNames[i]] = v
	}
	var errs []string
	r.HubRSSMiB, r.HubMetricsByHub, r.Logs, errs = c.hubStats()
	r.Errors = append(r.Errors, errs...)

	settle(&r.scenarioResult, pr, stopProbe, probeDone, c.db, res, stored)
	var split []string
	for _, n := range c.hubNames {
		split = append(split, fmt.Sprintf("%s %.0f", n, r.SharedTelemetry[n]))
	}
	fmt.Fprintf(b.log, "  lost %d of %d; stored by %s; CPU s per 10k messages: %s\n", r.Lost, res.Sent, strings.Join(split, ", "), perProcess(r.CPUSecondsPer10k, c.hubNames, 3))
	return r, nil
}

// clusterUnlocks connects units that answer commands (and send a snapshot every
// -unit-interval, like the agent) to Mosquitto, then sends unlocks through the hubs' APIs in
// turn: first with nothing else going on, then while publishing units add background
// telemetry up to ingestRate.
func (b *bench) clusterUnlocks(ctx context.Context, hubs int, ingestRate float64) ([]*clusterUnlocks, error) {
	name := fmt.Sprintf("cluster-unlocks-%dhub", hubs)
	responders, publishers := b.o.clusterResponders, b.o.clusterUnits
	publisherRate := ingestRate - float64(responders)/b.o.unitInterval.Seconds()
	if publisherRate < 1 {
		return nil, fmt.Errorf("%d units sending telemetry every %s exceed the background rate of %.0f msg/s alone", responders, b.o.unitInterval, ingestRate)
	}
	fmt.Fprintf(b.log, "%s: %d unlocks at %.0f/s through %d hubs in turn to %d units (telemetry every %s), then again while %d units publish %.0f msg/s\n",
		name, b.o.clusterUnlocks, b.o.unlockRate, hubs, responders, b.o.unitInterval, publishers, publisherRate)
	phase := time.Duration(float64(b.o.clusterUnlocks) / b.o.unlockRate * float64(time.Second))
	ctx, cancel := context.WithTimeout(ctx, b.o.phaseTimeout+2*phase)
	defer cancel()
	c, err := b.startCluster(ctx, name, hubs, publishers+responders)
	if err != nil {
		return nil, err
	}
	defer c.close()
	t0 := time.Now()
	tokens := make([]string, b.o.operators)
	for i := range tokens {
		if tokens[i], err = testbed.CreateToken(ctx, b.o.hubBin, c.cliEnv, fmt.Sprintf("bench-operator-%d", i+1), "operator"); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(b.log, "  %d operator tokens created in %s\n", len(tokens), time.Since(t0).Round(time.Millisecond))

	pubUnits, answering := c.units[:publishers], c.units[publishers:]
	rs := make(map[string]*responder, len(answering))
	for _, u := range answering {
		rs[u.ID] = &responder{unit: u, doorOpen: b.o.doorOpen}
	}
	t0 = time.Now()
	conn := connectUnits(ctx, answering, b.o.connects, func(u testbed.Unit) (*paho.ClientOptions, error) {
		return unitOptions("tcp://"+c.mosquitto.MQTT, u, 30*time.Second, rs[u.ID].handle)
	}, b.log)
	defer conn.disconnect()
	if err := conn.firstErr(answering); err != nil {
		return nil, err
	}
	// On a plain broker a unit announces itself: the retained online status the agent
	// publishes once subscribed (the embedded broker publishes it for the unit). Without it
	// the hubs refuse unlocks to an offline device.
	if err := announce(ctx, conn.clients, answering); err != nil {
		return nil, err
	}
	if err := c.waitOnline(ctx, len(answering)); err != nil {
		return nil, err
	}
	fmt.Fprintf(b.log, "  %d answering units connected and online at every hub in %s\n", len(answering), time.Since(t0).Round(time.Millisecond))

	stopUnits := make(chan struct{})
	defer close(stopUnits)
	var unitTelemetry atomic.Int64
	for i, u := range answering {
		offset := b.o.unitInterval * time.Duration(i) / time.Duration(len(answering))
		go rs[u.ID].telemetry(conn.clients[i], b.o.unitInterval, offset, stopUnits, &unitTelemetry)
	}
	var addrs []string
	for _, h := range c.hubs {
		addrs = append(addrs, h.HTTP)
	}
	rng := mrand.New(mrand.NewPCG(1, 2))

	var out []*clusterUnlocks
	newPhase := func(p string) *clusterUnlocks {
		return &clusterUnlocks{Phase: p, Hubs: hubs, commandsResult: commandsResult{Units: publishers + responders, Responders: responders,
			Operators: len(tokens), ConnectSeconds: testbed.Round(time.Since(t0).Seconds(), 3), DoorOpenMs: float64(b.o.doorOpen.Milliseconds()),
			UnlockRate: b.o.unlockRate}}
	}
	// baseline measures the cores the cluster uses without unlocks, unrounded.
	baseline := func() (map[string]float64, error) {
		cpu, t := c.cpuMeter(), time.Now()
		select {
		case <-time.After(b.o.clusterBaseline):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		cores := cpu.Seconds()
		for p := range cores {
			cores[p] /= time.Since(t).Seconds()
		}
		return withOther(cores, 6), nil
	}
	var idleBase map[string]float64 // the idle phase's baseline, unrounded
	finish := func(r *clusterUnlocks, answers []unlockAnswer, cpu *testbed.CPUMeter, since time.Time, sentBefore int64) {
		used := withOther(cpu.Seconds(), 6)
		r.CPUCores = map[string]float64{}
		for p, v := range used {
			r.CPUCores[p] = testbed.Round(v/time.Since(since).Seconds(), 2)
			if r.Phase != "idle" || idleBase == nil || len(answers) == 0 {
				continue // with background telemetry, its cost could not be told from the unlocks'
			}
			if r.CPUMsPerUnlock == nil {
				r.CPUMsPerUnlock, r.CPUCoresBefore = map[string]float64{}, map[string]float64{}
			}
			r.CPUCoresBefore[p] = testbed.Round(idleBase[p], 2)
			if p != "other" && p != "bench" {
				r.CPUMsPerUnlock[p] = testbed.Round(1000*(v-idleBase[p]*time.Since(since).Seconds())/float64(len(answers)), 2)
			}
		}
		r.UnitTelemetryMsgPerSec = testbed.Round(float64(unitTelemetry.Load()-sentBefore)/time.Since(since).Seconds(), 0)
		byHub := map[string][]time.Duration{}
		for _, a := range answers {
			if a.status == http.StatusOK && a.outcome == wire.OutcomeOpened {
				byHub[c.hubNames[a.hub]] = append(byHub[c.hubNames[a.hub]], a.took)
			}
		}
		r.tally(answers)
		r.RoundTripByHub = map[string]latency{}
		for h, d := range byHub {
			slices.Sort(d)
			r.RoundTripByHub[h] = summarize(d)
		}
		var errs []string
		r.HubRSSMiB, r.HubMetricsByHub, r.Logs, errs = c.hubStats()
		r.Errors = append(r.Errors, errs...)
		for _, v := range r.HubRSSMiB {
			r.HubPeakRSSMiB = max(r.HubPeakRSSMiB, v)
		}
		var hubLat []string
		for _, h := range c.hubNames {
			hubLat = append(hubLat, fmt.Sprintf("%s p50 %.1f / p99 %.1f ms", h, r.RoundTripByHub[h].P50Ms, r.RoundTripByHub[h].P99Ms))
		}
		fmt.Fprintf(b.log, "  %s: %d/%d opened; round trip p50 %.1f ms, p99 %.1f ms (%s); telemetry alongside %.0f + %.0f msg/s; CPU %s\n",
			r.Phase, r.Opened, r.Sent, r.RoundTrip.P50Ms, r.RoundTrip.P99Ms, strings.Join(hubLat, ", "),
			r.UnitTelemetryMsgPerSec, r.IngestMsgPerSec, perProcess(r.CPUCores, c.hubNames, 2))
		out = append(out, r)
	}

	// Phase 1: the answering units' own snapshots only.
	idle := newPhase("idle")
	if idleBase, err = baseline(); err != nil {
		return out, err
	}
	since, before := time.Now(), unitTelemetry.Load()
	cpu := c.cpuMeter()
	answers := b.sendUnlocks(ctx, addrs, b.o.clusterUnlocks, tokens, answering, rng)
	finish(idle, answers, cpu, since, before)
	if ctx.Err() != nil {
		return out, ctx.Err()
	}

	// Phase 2: the same with background telemetry from the publishing units, paced.
	busy := newPhase("telemetry")
	busy.IngestUnits, busy.IngestTargetMsgPerSec = publishers, testbed.Round(ingestRate, 0)
	stop := make(chan struct{})
	interval := time.Duration(float64(publishers) / publisherRate * float64(time.Second))
	l := &load{broker: "tcp://" + c.mosquitto.MQTT, units: pubUnits, messages: int((phase+10*time.Second)/interval) + 1, window: b.o.window,
		connects: b.o.connects, progress: io.Discard, tsStart: time.Now().UnixMilli(), interval: interval, stop: stop}
	var sent []unlockAnswer
	res, err := l.runAfterConnect(ctx, func() {
		since, before = time.Now(), unitTelemetry.Load()
		cpu = c.cpuMeter()
		go func() {
			defer close(stop)
			time.Sleep(time.Second) // the ingest has reached its pace
			sent = b.sendUnlocks(ctx, addrs, b.o.clusterUnlocks, tokens, answering, rng)
		}()
	})
	if err != nil {
		return out, err
	}
	busy.IngestMsgPerSec = testbed.Round(res.Rate(), 0)
	busy.IngestAck = summarize(res.AckLatencies)
	busy.Errors = append(busy.Errors, res.Errors...)
	finish(busy, sent, cpu, since, before)
	return out, nil
}

// announce publishes each unit's retained online status, as the agent does once subscribed.
func announce(ctx context.Context, clients []paho.Client, units []testbed.Unit) error {
	toks := make([]paho.Token, len(clients))
	for i, cl := range clients {
		now := time.Now().UnixMilli()
		st, err := wire.Marshal(wire.Status{V: wire.Version, TS: now, Online: true, Since: now, Agent: "bench"})
		if err != nil {
			return err
		}
		toks[i] = cl.Publish(wire.Topic(units[i].ID, wire.ChannelStatus), 1, true, st)
	}
	for i, t := range toks {
		select {
		case <-t.Done():
			if err := t.Error(); err != nil {
				return fmt.Errorf("%s: online status: %w", units[i].ID, err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// waitOnline waits until every hub counts n devices online (from their status documents).
func (c *cluster) waitOnline(ctx context.Context, n int) error {
	for {
		ok := true
		for i, h := range c.hubs {
			v, err := testbed.MetricWith(h.HTTP, "lockerhub_devices_connected", nil)
			if err != nil {
				return fmt.Errorf("%s: %w", c.hubNames[i], err)
			}
			ok = ok && int(v) >= n
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d units online at every hub: %w", n, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// summarizeLog counts a JSON log's warnings and errors (the hubs') or Mosquitto's warnings,
// errors and notices that it drops messages.
func summarizeLog(path string) logSummary {
	var s logSummary
	f, err := os.Open(path)
	if err != nil {
		return s
	}
	defer f.Close()
	counts := map[string]int{}
	var order []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var rec struct{ Level, Msg string }
		msg := ""
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Level != "" {
			switch rec.Level {
			case "WARN":
				s.Warnings++
			case "ERROR":
				s.Errors++
			default:
				continue
			}
			msg = rec.Level + " " + rec.Msg
		} else {
			// Mosquitto: "1700000000: Outgoing messages are being dropped for client hub_1."
			_, text, _ := strings.Cut(line, ": ")
			switch {
			case strings.Contains(text, "being dropped"):
				s.Dropped++
				msg = text
			case strings.Contains(text, "should not be run as root"):
				continue // StartMosquittoConf keeps it root on purpose
			case strings.HasPrefix(text, "Error"):
				s.Errors++
				msg = text
			case strings.HasPrefix(text, "Warning"):
				s.Warnings++
				msg = text
			default:
				continue
			}
		}
		if counts[msg] == 0 {
			order = append(order, msg)
		}
		counts[msg]++
	}
	for _, m := range order[:min(len(order), 8)] {
		s.Messages = append(s.Messages, fmt.Sprintf("%dx %s", counts[m], m))
	}
	return s
}

// perProcess formats per-process figures: the hubs first, then the servers.
func perProcess(m map[string]float64, hubs []string, digits int) string {
	var out []string
	for _, p := range append(slices.Clone(hubs), "mosquitto", "postgres", "influxd", "bench", "other") {
		if v, ok := m[p]; ok {
			out = append(out, fmt.Sprintf("%s %.*f", p, digits, v))
		}
	}
	return strings.Join(out, ", ")
}

// writeCluster adds the cluster scenario to results.json (as "cluster") and results.md, which
// b.write has written without it.
func (b *bench) writeCluster() error {
	if b.clusterResult == nil {
		return nil
	}
	j, err := json.MarshalIndent(struct {
		report
		Cluster *clusterResult `json:"cluster"`
	}{b.report, b.clusterResult}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.o.out, "results.json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(b.o.out, "results.md"), os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.WriteString(f, b.clusterResult.markdown())
	return err
}

func (r *clusterResult) markdown() string {
	var s strings.Builder
	s.WriteString("\n## Cluster (Mosquitto + PostgreSQL)\n\n")
	fmt.Fprintf(&s, "PostgreSQL %s. Load average (1, 5, 15 min) %.2f %.2f %.2f at the start, %.2f %.2f %.2f at the end.\n\n",
		r.Postgres, r.LoadAverageStart[0], r.LoadAverageStart[1], r.LoadAverageStart[2], r.LoadAverageEnd[0], r.LoadAverageEnd[1], r.LoadAverageEnd[2])
	if len(r.Ingest) > 0 {
		s.WriteString("| hubs | units × messages (window) | Mosquitto accepted msg/s | PUBACK p50 / p99 ms | end-to-end msg/s | drain after last PUBACK s | queryable p50 / p99 ms | stored / sent | stored by hub | CPU s per 10k msg | CPU cores | hub peak RSS MiB |\n")
		s.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, in := range r.Ingest {
			hubs := slices.Sorted(maps.Keys(in.SharedTelemetry))
			var split, rss []string
			for _, h := range hubs {
				share := 0.0
				if in.Acked > 0 {
					share = 100 * in.SharedTelemetry[h] / float64(in.Acked)
				}
				split = append(split, fmt.Sprintf("%s %.0f (%.1f%%)", h, in.SharedTelemetry[h], share))
				rss = append(rss, fmt.Sprintf("%s %.0f", h, in.HubRSSMiB[h]))
			}
			fmt.Fprintf(&s, "| %d | %d × %d (%d) | %.0f | %.1f / %.1f | %.0f | %.2f | %.0f / %.0f | %d / %d | %s | %s | %s | %s |\n",
				in.Hubs, in.Units, in.MessagesPerUnit, in.Window, in.AcceptMsgPerSec, in.Ack.P50Ms, in.Ack.P99Ms, in.StoredMsgPerSec,
				in.DrainAfterAcceptSeconds, in.Queryable.P50Ms, in.Queryable.P99Ms, in.StoredMessages, in.Sent, strings.Join(split, ", "),
				perProcess(in.CPUSecondsPer10k, hubs, 3), perProcess(in.CPUCoresByProc, hubs, 2), strings.Join(rss, ", "))
		}
		s.WriteString("\nAccepted: first publish to last PUBACK from Mosquitto, which acknowledges on receipt; the hubs take their share from Mosquitto's queue for them and acknowledge it once stored in their spool. " +
			"End to end: first publish until InfluxDB holds every acknowledged message (COUNT(seq) on `unit`). " +
			"Stored by hub: telemetry received through the shared subscription. CPU: from the first publish until InfluxDB held everything; PostgreSQL is the whole server (postmaster and children); " +
			"`other` is the machine's busy time less the processes listed: the kernel's work for them and anything else that ran.\n")
	}
	if len(r.Unlocks) > 0 {
		s.WriteString("\n| phase | hubs | units (answering + publishing) | unlocks (rate) | opened | round trip p50 / p99 / p99.9 / max ms | by hub p50 / p99 ms | hub's latency_ms p50 / p99 | telemetry alongside msg/s: answering + publishing | CPU cores: before → during | CPU ms per unlock | hub peak RSS MiB |\n")
		s.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, u := range r.Unlocks {
			hubs := slices.Sorted(maps.Keys(u.RoundTripByHub))
			var by, rss []string
			for _, h := range hubs {
				by = append(by, fmt.Sprintf("%s %.1f / %.1f", h, u.RoundTripByHub[h].P50Ms, u.RoundTripByHub[h].P99Ms))
			}
			for _, h := range slices.Sorted(maps.Keys(u.HubRSSMiB)) {
				rss = append(rss, fmt.Sprintf("%s %.0f", h, u.HubRSSMiB[h]))
			}
			fmt.Fprintf(&s, "| %s | %d | %d (%d + %d) | %d (%.0f/s) | %d | %.1f / %.1f / %.1f / %.1f | %s | %.0f / %.0f | %.0f + %.0f | %s → %s | %s | %s |\n",
				u.Phase, u.Hubs, u.Units, u.Responders, u.Units-u.Responders, u.Sent, u.UnlockRate, u.Opened,
				u.RoundTrip.P50Ms, u.RoundTrip.P99Ms, u.RoundTrip.P999Ms, u.RoundTrip.MaxMs, strings.Join(by, "; "),
				u.HubLatency.P50Ms, u.HubLatency.P99Ms, u.UnitTelemetryMsgPerSec, u.IngestMsgPerSec,
				cmp.Or(perProcess(u.CPUCoresBefore, hubs, 2), "–"), perProcess(u.CPUCores, hubs, 2), cmp.Or(perProcess(u.CPUMsPerUnlock, hubs, 1), "–"), strings.Join(rss, ", "))
		}
		s.WriteString("\nUnlocks go through the hubs' APIs in turn; the call waits for the unit's result, which Mosquitto gives to every hub (plain subscription) and to one of them to store (shared). " +
			"In the idle phase the only telemetry is the answering units' own snapshot every 10 s; in the telemetry phase publishing units add the rest, paced. " +
			"CPU before: the cores used in the seconds before the idle phase, without unlocks; CPU ms per unlock: what the idle phase used above that, per unlock.\n")
	}
	s.WriteString("\n### Cluster logs and errors\n")
	for _, in := range r.Ingest {
		writeLogs(&s, in.Name, in.Logs)
		for _, e := range in.Errors {
			fmt.Fprintf(&s, "\n- %s: error: %s", in.Name, e)
		}
	}
	for i, u := range r.Unlocks {
		if i == len(r.Unlocks)-1 { // the logs of the whole run, both phases
			writeLogs(&s, "cluster-unlocks", u.Logs)
		}
		for _, e := range u.Errors {
			fmt.Fprintf(&s, "\n- cluster-unlocks, %s: error: %s", u.Phase, e)
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&s, "\n- cluster: %s", e)
	}
	s.WriteString("\n")
	return s.String()
}

func writeLogs(s *strings.Builder, run string, logs map[string]logSummary) {
	for _, p := range slices.Sorted(maps.Keys(logs)) {
		l := logs[p]
		if l.Warnings+l.Errors+l.Dropped == 0 {
			continue
		}
		fmt.Fprintf(s, "\n- %s, %s: %d warnings, %d errors, %d drop notices: %s", run, p, l.Warnings, l.Errors, l.Dropped, strings.Join(l.Messages, "; "))
	}
}
