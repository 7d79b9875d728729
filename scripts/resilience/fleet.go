package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/agent"
	"github.com/lockerhub/lockerhub/edge-agent/hardware"
	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

// fleet runs the real edge agent, one per unit, in this process on simulated hardware, as
// `lockerhub simulate` does, so that the cases see the agent's own reconnects, outbox resends
// and command handling rather than a load generator's idea of them.
type fleet struct {
	units   []*simUnit
	results *resultCounter
	logFile *os.File
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// simUnit is one unit of the fleet.
type simUnit struct {
	id    string
	dir   string // the agent's data directory: outbox and command state
	hw    *recordingHW
	agent *agent.Agent
}

// startFleet starts one agent per unit against the hub at mqtt (host:port), each with its own
// directory under dir and a snapshot every interval. The agents' logs go to dir/agents.log.
func startFleet(ctx context.Context, units []testbed.Unit, mqtt, dir string, interval time.Duration) (*fleet, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "agents.log"))
	if err != nil {
		return nil, err
	}
	f := &fleet{results: &resultCounter{n: map[string]int{}}, logFile: logFile}
	log := slog.New(&agentLogHandler{next: slog.NewTextHandler(logFile, nil), results: f.results})
	for i, u := range units {
		sim, err := hardware.NewSimulator(hardware.SimConfig{Kind: hardware.KindLockerBank, Doors: testbed.DoorsPerUnit, Seed: int64(i + 1)})
		if err != nil {
			logFile.Close()
			return nil, err
		}
		cfg := agent.DefaultConfig()
		cfg.Hubs, cfg.DeviceID, cfg.Secret = []string{"tcp://" + mqtt}, u.ID, u.Secret
		cfg.DataDir = filepath.Join(dir, u.ID)
		cfg.TelemetryInterval = interval
		// As in `lockerhub simulate`: one shared disk would otherwise measure fsyncs, not the
		// hub. A kill of the hub (not of this process) loses nothing from the page cache.
		cfg.Outbox.Fsync = false
		hw := &recordingHW{Device: sim}
		a, err := agent.New(cfg, hw, agent.Options{Logger: log, Version: "resilience"})
		if err != nil {
			logFile.Close()
			return nil, fmt.Errorf("unit %s: %w", u.ID, err)
		}
		f.units = append(f.units, &simUnit{id: u.ID, dir: cfg.DataDir, hw: hw, agent: a})
	}
	ctx, f.cancel = context.WithCancel(ctx)
	for _, u := range f.units {
		f.wg.Go(func() {
			if err := u.agent.Run(ctx); err != nil {
				log.Error("agent stopped", "device", u.id, "error", err)
			}
		})
	}
	return f, nil
}

// online counts the agents connected to the hub.
func (f *fleet) online() int {
	n := 0
	for _, u := range f.units {
		if u.agent.Online() {
			n++
		}
	}
	return n
}

// waitOnline waits until every agent is connected and returns how long that took.
func (f *fleet) waitOnline(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	err := poll(ctx, timeout, 100*time.Millisecond, func() bool { return f.online() == len(f.units) })
	if err != nil {
		return time.Since(start), fmt.Errorf("%d of %d units online after %s: %w", f.online(), len(f.units), timeout, err)
	}
	return time.Since(start), nil
}

// unitLedger is what one agent did, read after it stopped.
type unitLedger struct {
	ID      string
	LastSeq uint64      // every message with a seq it emitted: 1..LastSeq
	Pending []uint64    // seqs it had not seen acknowledged when it stopped
	Results int         // command results it sent: they use a seq but are not stored in InfluxDB
	Unlocks []actuation // what its hardware was told to do
}

// stop stops every agent and reads their outboxes back: what was sent, and what was still
// waiting for the hub's acknowledgement.
func (f *fleet) stop() ([]unitLedger, error) {
	f.cancel()
	f.wg.Wait()
	defer f.logFile.Close()
	var errs []error
	ledgers := make([]unitLedger, len(f.units))
	for i, u := range f.units {
		l := unitLedger{ID: u.id, Results: f.results.get(u.id), Unlocks: u.hw.actuations()}
		ob, err := agent.OpenOutbox(filepath.Join(u.dir, "outbox"), agent.OutboxOptions{MaxBytes: agent.DefaultConfig().Outbox.MaxBytes})
		if err != nil {
			errs = append(errs, fmt.Errorf("reopen outbox of %s: %w", u.id, err))
			ledgers[i] = l
			continue
		}
		l.LastSeq = ob.LastSeq()
		for _, e := range ob.Pending(ob.Len()) {
			l.Pending = append(l.Pending, e.Seq)
		}
		errs = append(errs, ob.Close())
		ledgers[i] = l
	}
	return ledgers, errors.Join(errs...)
}

// actuation is one unlock the hardware performed.
type actuation struct {
	Door int
	At   time.Time
}

// recordingHW is the simulated hardware with a record of every unlock: the ground truth for
// "never twice, never late", whatever the agent and the hub say about it.
type recordingHW struct {
	hardware.Device
	mu      sync.Mutex
	unlocks []actuation
}

func (h *recordingHW) Unlock(n int, pulse time.Duration) error {
	h.mu.Lock()
	h.unlocks = append(h.unlocks, actuation{Door: n, At: time.Now()})
	h.mu.Unlock()
	return h.Device.Unlock(n, pulse)
}

func (h *recordingHW) actuations() []actuation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]actuation(nil), h.unlocks...)
}

// Messages the agent logs each time it sends a command result (edge-agent/agent/commands.go:
// finish, and the answer to a redelivered command). Counting them is how the suite knows how
// many seqs went to results, which InfluxDB does not store; if the agent's wording changes,
// the results show up as lost messages and the case fails rather than passing silently.
const (
	logCommandDone      = "command done"
	logDuplicateCommand = "duplicate command answered with its earlier result"
)

// resultCounter counts command results per unit.
type resultCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *resultCounter) add(id string) {
	c.mu.Lock()
	c.n[id]++
	c.mu.Unlock()
}

func (c *resultCounter) get(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[id]
}

// agentLogHandler writes the agents' logs and counts their command results.
type agentLogHandler struct {
	next    slog.Handler
	results *resultCounter
	device  string // from the agent's logger.With("device", id)
}

func (h *agentLogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *agentLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == logCommandDone || r.Message == logDuplicateCommand {
		h.results.add(h.device)
	}
	return h.next.Handle(ctx, r)
}

func (h *agentLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	for _, a := range attrs {
		if a.Key == "device" {
			c.device = a.Value.String()
		}
	}
	return &c
}

func (h *agentLogHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}

// poll calls done every interval until it returns true (nil), timeout passes or ctx ends.
func poll(ctx context.Context, timeout, interval time.Duration, done func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("timed out after %s", timeout)
		case <-tick.C:
		}
	}
	return nil
}
