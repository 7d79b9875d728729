package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

// Expiries of the unlocks sent around the kill, alternately. The short one expires while the
// hub is dead (-down is longer), so a command the hub had queued for a unit must be refused if
// it is delivered after the restart; the long one outlives the downtime, so it may be
// delivered twice, and must be executed once.
var unlockExpiries = []time.Duration{2 * time.Second, 8 * time.Second}

// hubKill kills the hub with SIGKILL while the units publish and unlocks are being sent,
// restarts it on the same data directory and ports, and checks that the agents came back by
// themselves, that nothing acknowledged was lost, and that no unlock ran twice or late.
func (s *suite) hubKill(ctx context.Context, r *caseResult) error {
	h, units, db, dir, err := s.setup(ctx, r.Name, s.o.units)
	if err != nil {
		return err
	}
	defer h.Stop()
	token, err := h.operatorToken(ctx)
	if err != nil {
		return err
	}
	f, err := s.runFleet(ctx, r, h, units, dir)
	if err != nil {
		return err
	}
	cmds := &commander{hub: "http://" + h.HTTP, token: token, units: units, hc: &http.Client{Timeout: 5 * time.Second}}
	cmdCtx, stopCommands := context.WithCancel(ctx)
	var cmdWG sync.WaitGroup
	cmdWG.Go(func() { cmds.run(cmdCtx, s.o.cmdEvery) })
	stop := func() ([]unitLedger, error) {
		stopCommands()
		cmdWG.Wait()
		return f.stop()
	}
	if err := sleepCtx(ctx, s.o.lead); err != nil {
		stop()
		return err
	}
	s.logf("%s: SIGKILL to the hub (pid %d); restarting it in %s", r.Name, h.pid(), s.o.down)
	h.kill()
	if err := sleepCtx(ctx, s.o.down); err != nil {
		stop()
		return err
	}
	if err := h.restart(ctx); err != nil {
		stop()
		return fmt.Errorf("restart the hub: %w", err)
	}
	took, err := f.waitOnline(ctx, 3*time.Minute)
	r.check("agents reconnected by themselves", err == nil, "%d of %d units online %s after the restart%s",
		f.online(), len(units), took.Round(100*time.Millisecond), errSuffix(err))
	s.logf("%s: hub restarted; %d units online after %s; load for another %s", r.Name, f.online(), took.Round(100*time.Millisecond), s.o.lead)
	if err := sleepCtx(ctx, s.o.lead); err != nil {
		stop()
		return err
	}
	stopCommands()
	cmdWG.Wait()
	// Let the last unlocks run their course (a simulated person opens within 3 s) and any
	// redelivery arrive before the agents stop.
	if err := sleepCtx(ctx, unlockExpiries[len(unlockExpiries)-1]+2*time.Second); err != nil {
		f.stop()
		return err
	}
	hubAliveCheck(r, h)
	ledgers, err := f.stop()
	if err != nil {
		return err
	}
	stats, err := cmds.judge(ctx, ledgers)
	if err != nil {
		return err
	}
	r.Commands = stats
	r.check("no command executed twice", stats.ExecutedTwice == 0, "%d unlocks actuated more than once (%d actuations for %d commands the API accepted)",
		stats.ExecutedTwice, stats.Actuations, stats.Accepted)
	r.check("no expired command executed", stats.ExecutedLate == 0, "%d unlocks actuated after their expiry", stats.ExecutedLate)
	r.check("hub records agree with the hardware", stats.RecordMismatch == 0,
		"%d commands recorded as opened without an actuation; statuses %v", stats.RecordMismatch, stats.Statuses)
	r.note("%d unlock requests: %d accepted by the API, %d refused or unanswered (the hub was dead for %s), %d actuated by the hardware",
		stats.Requested, stats.Accepted, stats.Requested-stats.Accepted, s.o.down, stats.Actuations)
	if n := stats.Statuses["expired/opened"]; n > 0 {
		r.note("%d commands are recorded as expired with the outcome opened: the agent actuated them in time, but the door (a simulated person, 1–3 s after the unlock) opened after the expiry, so the confirmation came late", n)
	}
	if err := s.verify(ctx, r, h, ledgers, db); err != nil {
		return err
	}
	if m := r.HubMetrics; m != nil {
		r.note("after the restart the hub counted %.0f duplicate messages (resent by agents whose PUBACK the kill lost) and %.0f sequence gaps",
			m["lockerhub_telemetry_duplicates_total"], m["lockerhub_telemetry_sequence_gaps_total"])
	}
	return nil
}

// commander sends unlocks through the HTTP API, each to a door no other unlock of the run
// targets, so that every actuation of the simulated hardware belongs to exactly one request.
type commander struct {
	hub, token string
	units      []testbed.Unit
	hc         *http.Client

	mu       sync.Mutex
	requests []unlockRequest
}

// unlockRequest is one unlock asked of the API.
type unlockRequest struct {
	Device  string
	Door    int
	Sent    time.Time
	Expires time.Time // the hub's expires_at, or the latest the hub could have set
	ID      string    // empty if the API did not accept it (hub dead, refused)
	Error   string
}

// run sends one unlock every interval until ctx ends or every door has had one.
func (c *commander) run(ctx context.Context, every time.Duration) {
	var doors []unlockRequest
	for _, u := range c.units {
		for d := 1; d <= testbed.DoorsPerUnit; d++ {
			doors = append(doors, unlockRequest{Device: u.ID, Door: d})
		}
	}
	rand.Shuffle(len(doors), func(i, j int) { doors[i], doors[j] = doors[j], doors[i] })
	tick := time.NewTicker(every)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for i, req := range doors {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		wg.Go(func() {
			expiry := unlockExpiries[i%len(unlockExpiries)]
			req.Sent = time.Now()
			req.ID, req.Error = c.unlock(req, expiry)
			req.Expires = time.Now().Add(expiry) // replaced by the hub's own expires_at if it answered
			c.mu.Lock()
			c.requests = append(c.requests, req)
			c.mu.Unlock()
		})
	}
}

// unlock asks the API for one unlock without waiting for the result.
func (c *commander) unlock(req unlockRequest, expiry time.Duration) (id, errText string) {
	url := fmt.Sprintf("%s/api/v1/devices/%s/doors/%d/unlock?wait=false&timeout=%s", c.hub, req.Device, req.Door, expiry)
	hr, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"reason":"resilience suite: hub-kill"}`))
	hr.Header.Set("Authorization", "Bearer "+c.token)
	hr.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(hr)
	if err != nil {
		return "", err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct {
		Command struct{ ID string } `json:"command"`
	}
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(body, &out) != nil || out.Command.ID == "" {
		return "", fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	return out.Command.ID, ""
}

// commandStats is what became of the unlocks.
type commandStats struct {
	Requested      int            `json:"requested"`
	Accepted       int            `json:"accepted"`
	Actuations     int            `json:"actuations"`
	ExecutedTwice  int            `json:"executed_twice"`
	ExecutedLate   int            `json:"executed_after_expiry"`
	RecordMismatch int            `json:"recorded_opened_without_actuation"`
	Statuses       map[string]int `json:"hub_statuses"` // status/outcome of the accepted ones, from the hub's records
	Errors         []string       `json:"errors,omitempty"`
}

// expiryTolerance is how much later than its expiry an actuation may be recorded without
// counting as late: the agent checks the expiry just before it actuates and the recording
// hardware takes the time just after, and expires_at travels in whole milliseconds.
const expiryTolerance = 10 * time.Millisecond

// maxErrorsListed bounds the API errors kept in a report.
const maxErrorsListed = 5

// judge holds every request against what the hardware did and what the hub recorded.
func (c *commander) judge(ctx context.Context, ledgers []unitLedger) (*commandStats, error) {
	type door struct {
		device string
		n      int
	}
	acts := map[door][]actuation{}
	for _, l := range ledgers {
		for _, a := range l.Unlocks {
			acts[door{l.ID, a.Door}] = append(acts[door{l.ID, a.Door}], a)
		}
	}
	st := &commandStats{Statuses: map[string]int{}}
	c.mu.Lock()
	defer c.mu.Unlock()
	st.Requested = len(c.requests)
	for _, req := range c.requests {
		done := acts[door{req.Device, req.Door}]
		st.Actuations += len(done)
		if len(done) > 1 {
			st.ExecutedTwice++
		}
		if req.ID == "" {
			if len(st.Errors) < maxErrorsListed {
				st.Errors = append(st.Errors, req.Error)
			}
		} else {
			rec, err := c.record(ctx, req.ID)
			if err != nil {
				return st, err
			}
			st.Accepted++
			st.Statuses[rec.Status+"/"+rec.Outcome]++
			if rec.Outcome == "opened" && len(done) == 0 {
				st.RecordMismatch++
			}
			req.Expires = rec.ExpiresAt
		}
		for _, a := range done {
			if a.At.After(req.Expires.Add(expiryTolerance)) {
				st.ExecutedLate++
			}
		}
	}
	return st, nil
}

// commandRecord is the part of the hub's command record the judgement needs.
type commandRecord struct {
	Status    string    `json:"status"`
	Outcome   string    `json:"outcome"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (c *commander) record(ctx context.Context, id string) (commandRecord, error) {
	var out struct {
		Command commandRecord `json:"command"`
	}
	hr, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.hub+"/api/v1/commands/"+id, nil)
	hr.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(hr)
	if err != nil {
		return out.Command, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return out.Command, fmt.Errorf("GET /api/v1/commands/%s: HTTP %d", id, resp.StatusCode)
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	if err == nil && out.Command.ExpiresAt.IsZero() {
		err = fmt.Errorf("GET /api/v1/commands/%s: no expires_at in the answer", id)
	}
	return out.Command, err
}
