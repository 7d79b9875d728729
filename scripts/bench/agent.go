package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

// agentPhase is one phase of the agent scenario: one edge-agent process at one telemetry
// interval, measured while connected.
type agentPhase struct {
	Phase             string  `json:"phase"`
	IntervalMs        float64 `json:"telemetry_interval_ms"`
	Seconds           float64 `json:"seconds"`
	RSSAvgMB          float64 `json:"rss_avg_mb"`  // VmRSS sampled every second
	RSSMaxMB          float64 `json:"rss_max_mb"`  // of those samples
	PeakRSSMB         float64 `json:"peak_rss_mb"` // VmHWM at the end: the high-water mark, start-up included
	CPUPercent        float64 `json:"cpu_percent"` // of one core
	MessagesPerSecond float64 `json:"messages_per_sec"`
}

// agentResult is the agent scenario. MB are 10^6 bytes, as in the target.
type agentResult struct {
	Phases []agentPhase `json:"phases"`
	Errors []string     `json:"errors,omitempty"`
}

// agent runs the real edge-agent binary (simulated 16-door locker bank, outbox with fsync, as
// shipped) against a fresh hub, first at -agent-idle-interval (the agent's default), then
// publishing every -agent-interval, and reads its memory and CPU from /proc while it runs.
func (b *bench) agent(ctx context.Context) (*agentResult, error) {
	fmt.Fprintf(b.log, "agent: one edge-agent, idle then publishing every %s, %s each\n", b.o.agentInterval, b.o.agentDuration)
	r := &agentResult{}
	ctx, cancel := context.WithTimeout(ctx, b.o.phaseTimeout+2*b.o.agentDuration)
	defer cancel()
	hub, err := b.startHub(ctx, "agent", 1)
	if err != nil {
		return r, err
	}
	defer hub.close()
	for _, p := range []struct {
		name     string
		interval time.Duration
	}{{"idle", b.o.agentIdleInterval}, {"publishing", b.o.agentInterval}} {
		phase, err := b.agentPhase(ctx, hub, p.name, p.interval)
		if err != nil {
			return r, fmt.Errorf("%s: %w", p.name, err)
		}
		r.Phases = append(r.Phases, phase)
		fmt.Fprintf(b.log, "  %s: RSS avg %.1f MB, max %.1f MB, peak %.1f MB; CPU %.1f%% of a core; %.1f msg/s\n",
			p.name, phase.RSSAvgMB, phase.RSSMaxMB, phase.PeakRSSMB, phase.CPUPercent, phase.MessagesPerSecond)
	}
	return r, nil
}

// agentPhase starts an agent with its own data directory, waits until the hub has it online,
// samples it for b.o.agentDuration and stops it.
func (b *bench) agentPhase(ctx context.Context, hub *freshHub, name string, interval time.Duration) (agentPhase, error) {
	p := agentPhase{Phase: name, IntervalMs: float64(interval.Milliseconds())}
	dir, err := b.dir(filepath.Join("agent", name))
	if err != nil {
		return p, err
	}
	u := hub.units[0]
	cmd := exec.CommandContext(ctx, b.o.agentBin)
	cmd.Env = append(os.Environ(), "EDGE_AGENT_DEVICE_ID="+u.ID, "EDGE_AGENT_SECRET="+u.Secret,
		"EDGE_AGENT_HUBS=tcp://"+hub.MQTT, "EDGE_AGENT_DATA_DIR="+filepath.Join(dir, "data"),
		fmt.Sprintf("EDGE_AGENT_SIM_DOORS=%d", testbed.DoorsPerUnit), "EDGE_AGENT_LOG_LEVEL=warn",
		"EDGE_AGENT_TELEMETRY_INTERVAL="+interval.String())
	logf, err := os.Create(filepath.Join(dir, "edge-agent.log"))
	if err != nil {
		return p, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return p, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	onlineCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if waitOnline(onlineCtx, hub.HTTP, 1).IsZero() {
		return p, fmt.Errorf("the agent did not come online within 30 s; see %s", logf.Name())
	}
	pid := cmd.Process.Pid
	ingested := func() float64 {
		m, _ := testbed.Metrics(hub.HTTP, "lockerhub_telemetry_messages_ingested_total")
		return m["lockerhub_telemetry_messages_ingested_total"]
	}
	before := ingested()
	cpu := testbed.NewCPUMeter(map[string]int{"edge-agent": pid})
	var sum, samples float64
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for end := time.Now().Add(b.o.agentDuration); time.Now().Before(end); {
		select {
		case err := <-exited:
			exited <- err // for the deferred stop
			return p, fmt.Errorf("the agent exited (%v); see %s", err, logf.Name())
		case <-ctx.Done():
			return p, ctx.Err()
		case <-tick.C:
		}
		rss, err := testbed.RSS(pid)
		if err != nil {
			return p, err
		}
		mb := float64(rss) / 1e6
		sum, samples = sum+mb, samples+1
		p.RSSMaxMB = max(p.RSSMaxMB, mb)
	}
	p.Seconds = b.o.agentDuration.Seconds()
	p.CPUPercent = testbed.Round(100*cpu.Usage()["edge-agent"], 1)
	p.PeakRSSMB = testbed.Round(float64(testbed.PeakRSS(pid))/1e6, 1)
	p.RSSAvgMB, p.RSSMaxMB = testbed.Round(sum/samples, 1), testbed.Round(p.RSSMaxMB, 1)
	p.MessagesPerSecond = testbed.Round((ingested()-before)/p.Seconds, 1)
	return p, nil
}
