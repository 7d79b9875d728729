package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

// report is results.json.
type report struct {
	Machine     machineInfo        `json:"machine"`
	Started     time.Time          `json:"started"`
	Finished    time.Time          `json:"finished"`
	Scenarios   []*scenarioResult  `json:"scenarios"`
	Commands    []*commandsResult  `json:"commands,omitempty"`
	Connections *connectionsResult `json:"connections,omitempty"`
	Agent       *agentResult       `json:"agent,omitempty"`
	Targets     []target           `json:"targets"`
}

type machineInfo struct {
	CPU       string  `json:"cpu"`
	Cores     int     `json:"cores"`
	RAMGiB    float64 `json:"ram_gib"`
	Kernel    string  `json:"kernel"`
	Go        string  `json:"go"`
	Mosquitto string  `json:"mosquitto"`
}

// latency is a distribution in milliseconds.
type latency struct {
	Samples int     `json:"samples"`
	P50Ms   float64 `json:"p50_ms"`
	P99Ms   float64 `json:"p99_ms"`
	P999Ms  float64 `json:"p99_9_ms"`
	MaxMs   float64 `json:"max_ms"`
}

// scenarioResult is one scenario's measurements. Rates are messages (or points) per second;
// "accept" is from the first publish to the last PUBACK, "end to end" from the first publish
// until InfluxDB holds every acknowledged message.
type scenarioResult struct {
	Name             string `json:"name"`
	Broker           string `json:"broker"`
	Database         string `json:"database,omitempty"`
	Units            int    `json:"units"`
	MessagesPerUnit  int    `json:"messages_per_unit"`
	Window           int    `json:"window"`
	PointsPerMessage int    `json:"points_per_message"`

	ConnectSeconds          float64 `json:"connect_seconds"`
	Sent                    int64   `json:"sent"`
	Acked                   int64   `json:"acked"`
	AcceptSeconds           float64 `json:"accept_seconds"`
	AcceptMsgPerSec         float64 `json:"accept_msg_per_sec"`
	AcceptPointsPerSec      float64 `json:"accept_points_per_sec"`
	Ack                     latency `json:"publish_to_puback"`
	DrainAfterAcceptSeconds float64 `json:"drain_after_accept_seconds,omitempty"`
	EndToEndSeconds         float64 `json:"end_to_end_seconds,omitempty"`
	StoredMsgPerSec         float64 `json:"stored_msg_per_sec,omitempty"`
	StoredPointsPerSec      float64 `json:"stored_points_per_sec,omitempty"`
	Queryable               latency `json:"publish_to_queryable"`
	StoredMessages          int64   `json:"stored_messages"`
	StoredDoorPoints        int64   `json:"stored_door_points"`
	Lost                    int64   `json:"lost"`
	// StoredAtLastAck is the fraction of the acknowledged messages InfluxDB held at the last
	// PUBACK: near 0 when the hub ships only once acceptance is over.
	StoredAtLastAck float64 `json:"stored_at_last_puback"`
	// HubCPUMicrosPerMsg is the hub's CPU time from the first publish to the end of the drain,
	// per message stored in InfluxDB.
	HubCPUMicrosPerMsg float64 `json:"hub_cpu_us_per_stored_msg,omitempty"`
	// HubCPUMicrosPerMsgAccepting is the hub's CPU time from the first publish to the last
	// PUBACK per message acknowledged: the part of the cost that a drain made long by a slow
	// InfluxDB (while the bench polls the hub's metrics) does not inflate.
	HubCPUMicrosPerMsgAccepting float64 `json:"hub_cpu_us_per_acked_msg_accepting,omitempty"`

	CPUCores      map[string]float64 `json:"cpu_cores"` // average cores used while publishing and draining, per process
	HubPeakRSSMiB float64            `json:"hub_peak_rss_mib,omitempty"`
	HubMetrics    map[string]float64 `json:"hub_metrics,omitempty"` // see hubMetricNames
	Errors        []string           `json:"errors,omitempty"`
}

func (r *scenarioResult) fromLoad(res *loadResult) {
	r.ConnectSeconds = testbed.Round(res.Connect.Seconds(), 3)
	r.Sent, r.Acked = res.Sent, res.Acked
	r.AcceptSeconds = testbed.Round(res.End.Sub(res.Start).Seconds(), 3)
	r.AcceptMsgPerSec = testbed.Round(res.Rate(), 0)
	r.AcceptPointsPerSec = testbed.Round(res.Rate()*pointsPerMessage, 0)
	r.Ack = summarize(res.AckLatencies)
	r.Errors = append(r.Errors, res.Errors...)
}

// summarize takes sorted durations.
func summarize(d []time.Duration) latency {
	if len(d) == 0 {
		return latency{}
	}
	ms := func(q float64) float64 {
		i := min(int(q*float64(len(d))), len(d)-1)
		return testbed.Round(d[i].Seconds()*1000, 2)
	}
	return latency{Samples: len(d), P50Ms: ms(0.50), P99Ms: ms(0.99), P999Ms: ms(0.999), MaxMs: ms(1)}
}

// target is one of issue 8's targets and whether this run met it.
type target struct {
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

// ingestTarget is issue 8's sustained ingest rate, with zero loss, on a 2-core machine.
const ingestTarget = 40000

// ceilingTarget is the share of Mosquitto's acceptance rate the hub must reach.
const ceilingTarget = 0.7

// Issue 8's targets for commands, connections and the agent.
const (
	unlockP99TargetMs   = 20    // unlock round trip p99 ...
	unlockTargetUnits   = 10000 // ... with this many units connected, under load
	onlineTargetSeconds = 20    // connections: all online within ...
	onlineTargetUnits   = 10000 // ... for this many units connecting at once
	perUnitTargetKiB    = 24    // hub memory per connected unit
	// Issue 19's: a fleet five times as large on one hub.
	fleetTargetSeconds = 60    // all online within ...
	fleetTargetUnits   = 50000 // ... for this many units connecting at once
	agentTargetMB      = 20    // one agent's RSS, 10^6 bytes
)

// targets compares the run's results with issue 8's targets. A target with a size (10,000
// units) is not met by a smaller run, whatever its numbers.
func (rep *report) targets() []target {
	by := map[string]*scenarioResult{}
	for _, r := range rep.Scenarios {
		by[r.Name] = r
	}
	var out []target
	if r := by["ingest"]; r != nil {
		out = append(out, target{
			Target:   fmt.Sprintf("ingest ≥ %d msg/s sustained (first publish until all stored in InfluxDB), zero loss", ingestTarget),
			Measured: fmt.Sprintf("%.0f msg/s end to end (%.0f msg/s accepted), %d lost", r.StoredMsgPerSec, r.AcceptMsgPerSec, r.Lost),
			Met:      r.StoredMsgPerSec >= ingestTarget && r.Lost == 0 && len(r.Errors) == 0,
		})
	}
	if r := by["burst"]; r != nil {
		out = append(out, target{
			Target:   "burst: every message ends up in InfluxDB",
			Measured: fmt.Sprintf("%d of %d stored", r.StoredMessages, r.Sent),
			Met:      r.Lost == 0 && r.Sent == int64(r.Units*r.MessagesPerUnit) && len(r.Errors) == 0,
		})
	}
	for _, name := range []string{"ingest", "burst"} {
		hub, m := by[name], by["ceiling-"+name]
		if hub == nil || m == nil || m.AcceptMsgPerSec == 0 {
			continue
		}
		ratio := hub.AcceptMsgPerSec / m.AcceptMsgPerSec
		out = append(out, target{
			Target:   fmt.Sprintf("%s: hub acceptance ≥ %.1f × Mosquitto's with the same load", name, ceilingTarget),
			Measured: fmt.Sprintf("%.2f (%.0f vs %.0f msg/s)", ratio, hub.AcceptMsgPerSec, m.AcceptMsgPerSec),
			Met:      ratio >= ceilingTarget,
		})
	}
	if len(rep.Commands) > 0 {
		r := rep.Commands[0]
		for _, c := range rep.Commands[1:] {
			if c.Units > r.Units {
				r = c
			}
		}
		out = append(out, target{
			Target: fmt.Sprintf("unlock round trip (API call to result) p99 ≤ %d ms with %d units connected under load", unlockP99TargetMs, unlockTargetUnits),
			Measured: fmt.Sprintf("p99 %.1f ms (p50 %.1f, p99.9 %.1f) with %d units connected and %.0f msg/s of telemetry; %d of %d opened",
				r.RoundTrip.P99Ms, r.RoundTrip.P50Ms, r.RoundTrip.P999Ms, r.Units, r.UnitTelemetryMsgPerSec+r.IngestMsgPerSec, r.Opened, r.Sent),
			Met: r.Units >= unlockTargetUnits && r.Sent > 0 && r.Opened == r.Sent && r.RoundTrip.P99Ms <= unlockP99TargetMs,
		})
	}
	if r := rep.Connections; r != nil {
		out = append(out, target{
			Target: fmt.Sprintf("%d units connecting at once all online in < %d s", onlineTargetUnits, onlineTargetSeconds),
			Measured: fmt.Sprintf("%d of %d online after %.1f s (last CONNACK %.1f s); connect p99 %.0f ms",
				r.Connected, r.Units, r.AllOnlineSeconds, r.AllConnackSeconds, r.Connect.P99Ms),
			Met: r.Units >= onlineTargetUnits && r.Connected == r.Units && r.AllOnlineSeconds > 0 && r.AllOnlineSeconds < onlineTargetSeconds,
		})
		out = append(out, target{
			Target: fmt.Sprintf("%d units connecting at once all online in < %d s", fleetTargetUnits, fleetTargetSeconds),
			Measured: fmt.Sprintf("%d of %d online after %.1f s; file descriptor limits: hub %d, load generator %d",
				r.Connected, r.Units, r.AllOnlineSeconds, r.HubFileLimit, r.BenchFileLimit),
			Met: r.Units >= fleetTargetUnits && r.Connected == r.Units && r.AllOnlineSeconds > 0 && r.AllOnlineSeconds < fleetTargetSeconds,
		})
		out = append(out, target{
			Target:   fmt.Sprintf("≤ %d KiB of hub memory per connected unit", perUnitTargetKiB),
			Measured: fmt.Sprintf("%.1f KiB resident per unit (Go heap %.1f, stacks %.1f), %d units", r.PerUnit.RSS, r.PerUnit.Heap, r.PerUnit.Stacks, r.Connected),
			Met:      r.Connected > 0 && r.After.RSS > 0 && r.PerUnit.RSS <= perUnitTargetKiB,
		})
	}
	if r := rep.Agent; r != nil && len(r.Phases) > 0 {
		var peak float64
		var each []string
		for _, p := range r.Phases {
			peak = max(peak, p.PeakRSSMB)
			each = append(each, fmt.Sprintf("%s %.1f", p.Phase, p.PeakRSSMB))
		}
		out = append(out, target{
			Target:   fmt.Sprintf("one edge-agent < %d MB RSS", agentTargetMB),
			Measured: fmt.Sprintf("peak %.1f MB (%s)", peak, strings.Join(each, ", ")),
			Met:      len(r.Errors) == 0 && peak < agentTargetMB,
		})
	}
	return out
}

// machine describes where the numbers were measured.
func machine(mosquitto string) machineInfo {
	m := machineInfo{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %f kB", &kb); err == nil {
			m.RAMGiB = testbed.Round(kb/(1<<20), 1)
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	// mosquitto -h prints its version on the first line and exits with status 3.
	out, _ := exec.Command(mosquitto, "-h").Output()
	m.Mosquitto, _, _ = strings.Cut(string(out), "\n")
	return m
}

// write saves results.json and results.md.
func (b *bench) write() error {
	j, err := json.MarshalIndent(b.report, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.o.out, "results.json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(b.o.out, "results.md"), []byte(b.report.markdown()), 0o644)
}

func (r *report) markdown() string {
	var s strings.Builder
	m := r.Machine
	fmt.Fprintf(&s, "# lockerhub benchmark, %s\n\n", r.Started.Format(time.RFC3339))
	fmt.Fprintf(&s, "Machine: %s, %d cores, %.1f GiB RAM, Linux %s, %s, %s. Load generator, hub, InfluxDB and Mosquitto on the same machine, over 127.0.0.1.\n\n",
		m.CPU, m.Cores, m.RAMGiB, m.Kernel, m.Go, m.Mosquitto)
	s.WriteString("## Targets (issue 8)\n\n| target | measured | met |\n|---|---|---|\n")
	for _, t := range r.Targets {
		met := "**no**"
		if t.Met {
			met = "yes"
		}
		fmt.Fprintf(&s, "| %s | %s | %s |\n", t.Target, t.Measured, met)
	}
	if len(r.Scenarios) > 0 {
		s.WriteString("\n## Ingest\n\n")
		s.WriteString("| scenario | broker | units × messages (window) | accepted msg/s | accepted points/s | PUBACK p50 / p99 ms | end-to-end msg/s | points/s stored | drain after last PUBACK s | queryable p50 / p99 ms (samples) | stored / sent | stored at last PUBACK | hub CPU µs per stored msg (until last PUBACK, per acked msg) | CPU cores |\n")
		s.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, sc := range r.Scenarios {
			e2e, pts, drain, q, stored, atAck, perMsg := "–", "–", "–", "–", "–", "–", "–"
			if sc.Broker == "lockerhub" {
				atAck = fmt.Sprintf("%.0f%%", 100*sc.StoredAtLastAck)
				perMsg = fmt.Sprintf("%.1f (%.1f)", sc.HubCPUMicrosPerMsg, sc.HubCPUMicrosPerMsgAccepting)
				e2e, pts = fmt.Sprintf("%.0f", sc.StoredMsgPerSec), fmt.Sprintf("%.0f", sc.StoredPointsPerSec)
				drain = fmt.Sprintf("%.2f", sc.DrainAfterAcceptSeconds)
				q = fmt.Sprintf("%.0f / %.0f (%d)", sc.Queryable.P50Ms, sc.Queryable.P99Ms, sc.Queryable.Samples)
				stored = fmt.Sprintf("%d / %d", sc.StoredMessages, sc.Sent)
			}
			fmt.Fprintf(&s, "| %s | %s | %d × %d (%d) | %.0f | %.0f | %.1f / %.1f | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				sc.Name, sc.Broker, sc.Units, sc.MessagesPerUnit, sc.Window, sc.AcceptMsgPerSec, sc.AcceptPointsPerSec,
				sc.Ack.P50Ms, sc.Ack.P99Ms, e2e, pts, drain, q, stored, atAck, perMsg, cores(sc.CPUCores))
		}
		s.WriteString("\nAccepted: first publish to last PUBACK (the hub acknowledges once a message is fsynced in its spool). " +
			"End to end: first publish until InfluxDB holds every acknowledged message (counted with COUNT(seq) on `unit`). " +
			"Queryable: publish until a query shows the message, for every message of a few sample units, polled. " +
			fmt.Sprintf("Each message is a 16-door locker-bank snapshot: %d points. ", pointsPerMessage) +
			"Stored at last PUBACK: the share of acknowledged messages InfluxDB held when the last one was acknowledged. " +
			"Hub CPU per stored msg: the hub's CPU time (/proc) from the first publish to the end of the drain, per message in InfluxDB. " +
			"CPU cores: average use per process from the first publish to the end of the drain.\n\n")
		s.WriteString("In the ceiling rows, `bench` near the number of cores means the load generator (paho, one write per message), not Mosquitto, was the limit: the ratio to Mosquitto is then an upper bound.\n\n")
		for _, sc := range r.Scenarios {
			if m := sc.HubMetrics; m != nil {
				n, sum := m["lockerhub_telemetry_write_duration_seconds_count"], m["lockerhub_telemetry_write_duration_seconds_sum"]
				if n > 0 {
					fmt.Fprintf(&s, "- %s: the hub wrote %.0f points in %.0f InfluxDB requests, %.1f ms each on average, %.1f s in all (end to end took %.1f s); retries %.0f, duplicates %.0f, sequence gaps %.0f, invalid %.0f, backpressure refusals %.0f; hub peak RSS %.0f MiB.\n",
						sc.Name, m["lockerhub_telemetry_points_written_total"], n, 1000*sum/n, sum, sc.EndToEndSeconds,
						m["lockerhub_telemetry_write_retries_total"], m["lockerhub_telemetry_duplicates_total"],
						m["lockerhub_telemetry_sequence_gaps_total"], m["lockerhub_telemetry_invalid_total"],
						m["lockerhub_telemetry_backpressure_refusals_total"], sc.HubPeakRSSMiB)
				}
			}
		}
	}
	r.commandsMarkdown(&s)
	r.connectionsMarkdown(&s)
	r.agentMarkdown(&s)
	s.WriteString("\n## Errors\n")
	for _, sc := range r.Scenarios {
		for _, e := range sc.Errors {
			fmt.Fprintf(&s, "\n- %s: %s", sc.Name, e)
		}
	}
	for _, c := range r.Commands {
		for _, e := range c.Errors {
			fmt.Fprintf(&s, "\n- commands, %d units: %s", c.Units, e)
		}
	}
	if c := r.Connections; c != nil {
		for _, e := range c.Errors {
			fmt.Fprintf(&s, "\n- connections: %s", e)
		}
	}
	if a := r.Agent; a != nil {
		for _, e := range a.Errors {
			fmt.Fprintf(&s, "\n- agent: %s", e)
		}
	}
	s.WriteString("\n")
	return s.String()
}

func (r *report) commandsMarkdown(s *strings.Builder) {
	if len(r.Commands) == 0 {
		return
	}
	s.WriteString("\n## Remote unlocks\n\n")
	s.WriteString("| units connected (answering + publishing) | unlocks (rate, operators) | opened | round trip p50 / p99 / p99.9 / max ms | hub's latency_ms p50 / p99 | telemetry alongside msg/s: target; answering units' + publishing units' (PUBACK p99 ms) | CPU cores | hub peak RSS MiB |\n")
	s.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, c := range r.Commands {
		fmt.Fprintf(s, "| %d (%d + %d) | %d (%.0f/s, %d) | %d | %.1f / %.1f / %.1f / %.1f | %.0f / %.0f | %.0f; %.0f + %.0f (%.0f) | %s | %.0f |\n",
			c.Units, c.Responders, c.IngestUnits, c.Sent, c.UnlockRate, c.Operators, c.Opened,
			c.RoundTrip.P50Ms, c.RoundTrip.P99Ms, c.RoundTrip.P999Ms, c.RoundTrip.MaxMs, c.HubLatency.P50Ms, c.HubLatency.P99Ms,
			c.IngestTargetMsgPerSec, c.UnitTelemetryMsgPerSec, c.IngestMsgPerSec, c.IngestAck.P99Ms, cores(c.CPUCores), c.HubPeakRSSMiB)
	}
	for _, c := range r.Commands {
		var slow []string
		for _, u := range c.Slowest {
			slow = append(slow, fmt.Sprintf("%.0f ms (HTTP %d) sent at %.1f s", u.Ms, u.Status, u.SentAtSeconds))
		}
		fmt.Fprintf(s, "\n- %d units, slowest calls: %s", c.Units, strings.Join(slow, "; "))
	}
	s.WriteString("\n")
	fmt.Fprintf(s, "\nRound trip: the API call `POST /api/v1/devices/{id}/doors/{door}/unlock`, which waits for the unit's result, from sending it until its answer is read, for the unlocks that opened. "+
		"Units answer like the edge agent, the door opening %s after the unlock (a real one waits for a person). "+
		"The hub's latency_ms is from the command's creation to the unit's result, as the answer reports it (whole milliseconds).\n", r.Commands[0].doorOpen())
}

func (c *commandsResult) doorOpen() time.Duration {
	return time.Duration(c.DoorOpenMs * float64(time.Millisecond))
}

func (r *report) connectionsMarkdown(s *strings.Builder) {
	c := r.Connections
	if c == nil {
		return
	}
	s.WriteString("\n## Connections\n\n")
	s.WriteString("| units connecting at once | connected | last CONNACK s | all online (hub) s | CONNECT → CONNACK p50 / p99 / max ms | hub RSS before → after MiB | per unit KiB: RSS / Go heap / stacks | hub CPU s (cores) | hub idle CPU % of a core | hub peak RSS MiB |\n")
	s.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(s, "| %d | %d | %.1f | %.1f | %.0f / %.0f / %.0f | %.0f → %.0f | %.1f / %.1f / %.1f | %.1f (%s) | %.1f | %.0f |\n",
		c.Units, c.Connected, c.AllConnackSeconds, c.AllOnlineSeconds, c.Connect.P50Ms, c.Connect.P99Ms, c.Connect.MaxMs,
		c.Before.RSS, c.After.RSS, c.PerUnit.RSS, c.PerUnit.Heap, c.PerUnit.Stacks,
		c.HubCPUSeconds, cores(c.CPUCores), 100*c.HubIdleCores, c.HubPeakRSSMiB)
	fmt.Fprintf(s, "\nUnits connect like the edge agent (persistent session, will, subscription to their commands), all at once from %s, "+
		"at most %d connects in flight per address. File descriptor limits: hub %d, load generator %d. "+
		"Memory is measured after a forced GC with no unit connected and again with every unit connected and idle; the per-unit figures are the difference divided by the units connected. "+
		"Idle CPU is the hub's over %.0f s with every unit connected and idle.\n",
		strings.Join(c.Sources, ", "), c.Window, c.HubFileLimit, c.BenchFileLimit, c.IdleSeconds)
}

func (r *report) agentMarkdown(s *strings.Builder) {
	a := r.Agent
	if a == nil || len(a.Phases) == 0 {
		return
	}
	s.WriteString("\n## Edge agent\n\n| phase | telemetry interval | measured s | RSS avg / max MB | peak RSS (VmHWM) MB | CPU % of a core | messages/s |\n|---|---|---|---|---|---|---|\n")
	for _, p := range a.Phases {
		fmt.Fprintf(s, "| %s | %s | %.0f | %.1f / %.1f | %.1f | %.1f | %.1f |\n", p.Phase,
			time.Duration(p.IntervalMs*float64(time.Millisecond)), p.Seconds, p.RSSAvgMB, p.RSSMaxMB, p.PeakRSSMB, p.CPUPercent, p.MessagesPerSecond)
	}
	s.WriteString("\nOne `bin/edge-agent` (simulated 16-door locker bank, outbox with fsync) connected to a fresh hub; VmRSS sampled every second, VmHWM and CPU time from /proc at the end. MB = 10^6 bytes.\n")
}

// cores formats per-process CPU use, in a fixed order.
func cores(m map[string]float64) string {
	var out []string
	for _, p := range []string{"lockerhub", "influxd", "mosquitto", "bench"} {
		if v, ok := m[p]; ok {
			out = append(out, fmt.Sprintf("%s %.2f", p, v))
		}
	}
	return strings.Join(out, ", ")
}
