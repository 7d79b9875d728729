package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

// commandsResult is one run of the commands scenario: remote unlocks through the API while
// units publish telemetry in the background.
type commandsResult struct {
	Units          int     `json:"units"`        // connected in all
	Responders     int     `json:"responders"`   // units that unlocks went to
	IngestUnits    int     `json:"ingest_units"` // units publishing telemetry meanwhile
	Operators      int     `json:"operators"`    // API tokens the unlocks were spread over
	ConnectSeconds float64 `json:"connect_seconds"`
	DoorOpenMs     float64 `json:"door_open_ms"` // the simulated person's delay before the door opens

	UnlockRate float64        `json:"unlock_rate_per_sec"` // asked for
	Sent       int            `json:"unlocks_sent"`
	Opened     int            `json:"unlocks_opened"`
	Statuses   map[string]int `json:"answers"`     // HTTP status, or "outcome:X" for a 200 that was not "opened", or "error"
	RoundTrip  latency        `json:"round_trip"`  // POST until its answer, of the opened ones
	HubLatency latency        `json:"hub_latency"` // latency_ms in the answers: created until the unit's result
	// Slowest are the slowest calls, whatever their answer, with when they were sent: slow
	// calls sent close together point at a stall of the whole hub rather than at one unit.
	Slowest []slowUnlock `json:"slowest"`

	// Telemetry meanwhile, in all: half the ingest scenario's end-to-end rate. The answering units
	// send theirs at the agent's interval; the publishing units the rest, paced.
	IngestTargetMsgPerSec  float64 `json:"ingest_target_msg_per_sec"`
	UnitTelemetryMsgPerSec float64 `json:"answering_units_telemetry_msg_per_sec"` // sent
	IngestMsgPerSec        float64 `json:"ingest_msg_per_sec"`                    // the publishing units', acknowledged
	IngestAck              latency `json:"ingest_publish_to_puback"`              // the publishing units'

	CPUCores      map[string]float64 `json:"cpu_cores"` // while the unlocks ran
	HubPeakRSSMiB float64            `json:"hub_peak_rss_mib"`
	Errors        []string           `json:"errors,omitempty"`
}

// responder answers a simulated unit's commands the way edge-agent/agent/commands.go does:
// decode, drop what cannot be identified, answer an invalid or expired command at once and an
// unlock with "opened" once the door has opened, each result a QoS 1 publish on the unit's
// result channel with the unit's next seq; the command's QoS 1 PUBACK is its receipt, as for
// the agent. It keeps no record of commands seen: the agent needs one for redeliveries, which
// come after a reconnect, and these units do not reconnect.
//
// It is not the real agent run in-process (as `lockerhub simulate` does) because 10,000 agents
// would load the machine the hub is measured on: each polls its doors every 100 ms (100,000
// wakeups a second), runs a thermostat and writes an outbox and state files, none of which an
// unlock round trip exercises; and its door sensor, polled every 10 ms while it confirms an
// unlock, would add up to 10 ms that are the agent's, not the hub's. The responder answers
// within microseconds of the command plus doorOpen, so the round trip measured is the hub's.
type responder struct {
	unit     testbed.Unit
	doorOpen time.Duration
	seq      atomic.Uint64
}

// telemetry publishes a snapshot every interval, the first after offset, until stop is closed,
// as the agent does at its default interval: without it the hub's health rules would find
// every answering unit silent after a minute and a half and fire an alert for each, a storm
// of database writes no real fleet makes. It counts what it sent in sent.
func (r *responder) telemetry(c paho.Client, interval, offset time.Duration, stop <-chan struct{}, sent *atomic.Int64) {
	t := time.NewTimer(offset)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		t.Reset(interval)
		b, err := snapshot(r.seq.Add(1), time.Now().UnixMilli())
		if err != nil {
			return
		}
		c.Publish(wire.Topic(r.unit.ID, wire.ChannelTelemetry), 1, false, b)
		sent.Add(1)
	}
}

// handle is the unit's paho message handler. It must not block (paho's delivery goroutine), so
// the door's delay is a timer.
func (r *responder) handle(c paho.Client, m paho.Message) {
	cmd, err := wire.DecodeCommand(m.Payload())
	if err != nil && (wire.ReasonOf(err) != wire.ReasonInvalid || cmd.ID == "") {
		return // the agent drops what it cannot answer
	}
	res := wire.Result{V: wire.Version, ID: cmd.ID}
	delay := time.Duration(0)
	switch {
	case err != nil:
		res.Outcome, res.Detail = wire.OutcomeInvalid, err.Error()
	case cmd.Expired(time.Now()):
		res.Outcome, res.Detail = wire.OutcomeExpired, "expired before it arrived"
	case cmd.Type != wire.CommandUnlock:
		res.Outcome, res.Detail = wire.OutcomeInvalid, fmt.Sprintf("the bench's units only unlock, not %q", cmd.Type)
	case cmd.Door > testbed.DoorsPerUnit:
		res.Outcome, res.Detail = wire.OutcomeInvalid, fmt.Sprintf("door %d: this unit has %d", cmd.Door, testbed.DoorsPerUnit)
	default:
		res.Outcome, res.Detail = wire.OutcomeOpened, fmt.Sprintf("door %d opened after %s", cmd.Door, r.doorOpen)
		delay = r.doorOpen
	}
	time.AfterFunc(delay, func() { r.publish(c, res) })
}

func (r *responder) publish(c paho.Client, res wire.Result) {
	res.Seq, res.TS = r.seq.Add(1), time.Now().UnixMilli()
	if b, err := wire.Marshal(res); err == nil {
		c.Publish(wire.Topic(r.unit.ID, wire.ChannelResult), 1, false, b)
	}
}

// commands connects units to a fresh hub (all but ingestUnits of them answering commands and
// sending telemetry like an agent, the others publishing the rest of ingestRate), then sends unlocks through the API at the
// operators' rate to random units and doors, and times each call until its answer: the default
// POST waits for the unit's result (docs/api.md), which is the round trip an operator sees.
func (b *bench) commands(ctx context.Context, units int, ingestRate float64) (*commandsResult, error) {
	name := fmt.Sprintf("commands-%d", units)
	ingestUnits := min(b.o.units, units/2)
	r := &commandsResult{Units: units, Responders: units - ingestUnits, IngestUnits: ingestUnits, Operators: b.o.operators,
		DoorOpenMs: float64(b.o.doorOpen.Milliseconds()), UnlockRate: b.o.unlockRate, IngestTargetMsgPerSec: testbed.Round(ingestRate, 0)}
	publisherRate := ingestRate - float64(r.Responders)/b.o.unitInterval.Seconds()
	if publisherRate < 1 {
		return r, fmt.Errorf("%d units sending telemetry every %s exceed the background rate of %.0f msg/s alone", r.Responders, b.o.unitInterval, ingestRate)
	}
	fmt.Fprintf(b.log, "%s: %d unlocks at %.0f/s to %d units (telemetry every %s) while %d units publish %.0f msg/s\n",
		name, b.o.unlocks, b.o.unlockRate, r.Responders, b.o.unitInterval, ingestUnits, publisherRate)
	ctx, cancel := context.WithTimeout(ctx, b.o.phaseTimeout+time.Duration(float64(b.o.unlocks)/b.o.unlockRate*float64(time.Second)))
	defer cancel()
	hub, err := b.startHub(ctx, name, units)
	if err != nil {
		return r, err
	}
	defer hub.close()
	tokens := make([]string, b.o.operators)
	for i := range tokens {
		if tokens[i], err = testbed.CreateToken(ctx, b.o.hubBin, hub.Env, fmt.Sprintf("bench-operator-%d", i+1), "operator"); err != nil {
			return r, err
		}
	}

	publishers, answering := hub.units[:ingestUnits], hub.units[ingestUnits:]
	responders := make(map[string]*responder, len(answering)) // filled before the concurrent connects read it
	for _, u := range answering {
		responders[u.ID] = &responder{unit: u, doorOpen: b.o.doorOpen}
	}
	t0 := time.Now()
	c := connectUnits(ctx, answering, b.o.connects, func(u testbed.Unit) (*paho.ClientOptions, error) {
		return unitOptions("tcp://"+hub.MQTT, u, 30*time.Second, responders[u.ID].handle)
	}, b.log)
	defer c.disconnect()
	if err := c.firstErr(answering); err != nil {
		return r, err
	}
	r.ConnectSeconds = testbed.Round(time.Since(t0).Seconds(), 3)
	fmt.Fprintf(b.log, "  %d answering units connected in %s\n", len(answering), time.Since(t0).Round(time.Millisecond))

	// The background ingest: the answering units' snapshots, spread over their interval, and
	// the publishing units paced to make up the rest, for as long as the unlocks plus a margin.
	stop := make(chan struct{})
	var unitTelemetry atomic.Int64
	for i, u := range answering {
		offset := b.o.unitInterval * time.Duration(i) / time.Duration(len(answering))
		go responders[u.ID].telemetry(c.clients[i], b.o.unitInterval, offset, stop, &unitTelemetry)
	}
	telemetryStart := time.Now()
	duration := time.Duration(float64(b.o.unlocks)/b.o.unlockRate*float64(time.Second)) + 10*time.Second
	interval := time.Duration(float64(ingestUnits) / publisherRate * float64(time.Second))
	l := &load{broker: "tcp://" + hub.MQTT, units: publishers, messages: int(duration/interval) + 1, window: b.o.window,
		connects: b.o.connects, progress: io.Discard, tsStart: time.Now().UnixMilli(), interval: interval, stop: stop}
	var sent []unlockAnswer
	var cpu *testbed.CPUMeter
	res, err := l.runAfterConnect(ctx, func() {
		pids := map[string]int{"lockerhub": hub.Cmd.Process.Pid, "bench": os.Getpid()}
		if pid, err := readPID(b.o.influxPID); err == nil {
			pids["influxd"] = pid
		}
		cpu = testbed.NewCPUMeter(pids)
		go func() {
			defer close(stop)
			time.Sleep(time.Second) // the ingest has reached its pace
			sent = b.sendUnlocks(ctx, []string{hub.HTTP}, b.o.unlocks, tokens, answering, rand.New(rand.NewPCG(1, 2)))
			r.CPUCores = cpu.Usage()
		}()
	})
	if err != nil {
		return r, err
	}
	r.UnitTelemetryMsgPerSec = testbed.Round(float64(unitTelemetry.Load())/time.Since(telemetryStart).Seconds(), 0)
	r.IngestMsgPerSec = testbed.Round(res.Rate(), 0)
	r.IngestAck = summarize(res.AckLatencies)
	r.Errors = append(r.Errors, res.Errors...)
	r.HubPeakRSSMiB = testbed.Round(float64(testbed.PeakRSS(hub.Cmd.Process.Pid))/(1<<20), 1)
	r.tally(sent)
	fmt.Fprintf(b.log, "  %d/%d opened; round trip p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms; telemetry alongside %.0f + %.0f msg/s\n",
		r.Opened, r.Sent, r.RoundTrip.P50Ms, r.RoundTrip.P99Ms, r.RoundTrip.P999Ms, r.UnitTelemetryMsgPerSec, r.IngestMsgPerSec)
	return r, nil
}

// slowUnlock is one slow unlock call.
type slowUnlock struct {
	SentAtSeconds float64 `json:"sent_at_seconds"` // after the first unlock
	Ms            float64 `json:"ms"`
	Status        int     `json:"status"`
}

// maxSlowest is how many of the slowest calls a result lists.
const maxSlowest = 10

// unlockAnswer is what one unlock call got.
type unlockAnswer struct {
	sentAt    time.Duration // after the first unlock
	took      time.Duration // POST until the whole answer was read
	status    int           // 0 if the call failed
	outcome   wire.Outcome
	latencyMs float64 // as the hub reported it
	hub       int     // the index of the hub it went through
}

// sendUnlocks sends n unlocks at b.o.unlockRate, each to a random door of the next unit of a
// shuffled order (so that no unit gets a second unlock before every other unit had one,
// keeping far below the hub's per-device limit) with the next operator's token, call k through
// hub k mod len(hubs) (HTTP addresses). Calls start on schedule whether or not earlier ones have
// answered, as operators do; a slow answer does not hide the ones queued behind it.
func (b *bench) sendUnlocks(ctx context.Context, hubs []string, n int, tokens []string, units []testbed.Unit, rng *rand.Rand) []unlockAnswer {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	order := rng.Perm(len(units))
	answers := make([]unlockAnswer, n)
	every := time.Duration(float64(time.Second) / b.o.unlockRate)
	start := time.Now()
	var wg sync.WaitGroup
	for k := range answers {
		select {
		case <-ctx.Done():
			wg.Wait()
			return answers[:k]
		case <-time.After(time.Until(start.Add(time.Duration(k) * every))):
		}
		if k > 0 && k%500 == 0 {
			fmt.Fprintf(b.log, "  %d/%d unlocks sent\n", k, len(answers))
		}
		u := units[order[k%len(order)]]
		door := 1 + rng.IntN(testbed.DoorsPerUnit)
		token, hub := tokens[k%len(tokens)], k%len(hubs)
		wg.Go(func() {
			answers[k] = unlock(ctx, hc, hubs[hub], token, u.ID, door)
			answers[k].sentAt, answers[k].hub = time.Duration(k)*every, hub
		})
	}
	wg.Wait()
	return answers
}

// unlock makes one unlock call as `lockerhub unlock` does and waits for its answer.
func unlock(ctx context.Context, hc *http.Client, httpAddr, token, device string, door int) unlockAnswer {
	url := fmt.Sprintf("http://%s/api/v1/devices/%s/doors/%d/unlock", httpAddr, device, door)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(`{"reason":"bench: resident locked out"}`)))
	if err != nil {
		return unlockAnswer{}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	t0 := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return unlockAnswer{took: time.Since(t0)}
	}
	defer resp.Body.Close()
	var body struct {
		Command   struct{ Outcome wire.Outcome }
		LatencyMs float64 `json:"latency_ms"`
	}
	err = json.NewDecoder(resp.Body).Decode(&body)
	a := unlockAnswer{took: time.Since(t0), status: resp.StatusCode, outcome: body.Command.Outcome, latencyMs: body.LatencyMs}
	if err != nil && resp.StatusCode == http.StatusOK {
		a.outcome = "unreadable answer"
	}
	return a
}

// tally summarizes the answers: how many opened, what the others got, and the latencies of
// the opened ones (a refusal's latency is not an unlock's).
func (r *commandsResult) tally(answers []unlockAnswer) {
	r.Sent, r.Statuses = len(answers), map[string]int{}
	var took, hub []time.Duration
	for _, a := range answers {
		switch {
		case a.status == http.StatusOK && a.outcome == wire.OutcomeOpened:
			r.Opened++
			took = append(took, a.took)
			hub = append(hub, time.Duration(a.latencyMs*float64(time.Millisecond)))
			continue
		case a.status == 0:
			r.Statuses["error"]++
		case a.status == http.StatusOK:
			r.Statuses["outcome:"+string(a.outcome)]++
		default:
			r.Statuses[fmt.Sprint(a.status)]++
		}
	}
	slices.Sort(took)
	slices.Sort(hub)
	r.RoundTrip, r.HubLatency = summarize(took), summarize(hub)
	slowest := slices.SortedFunc(slices.Values(answers), func(a, b unlockAnswer) int { return cmp.Compare(b.took, a.took) })
	for _, a := range slowest[:min(maxSlowest, len(slowest))] {
		r.Slowest = append(r.Slowest, slowUnlock{SentAtSeconds: testbed.Round(a.sentAt.Seconds(), 3), Ms: testbed.Round(a.took.Seconds()*1000, 1), Status: a.status})
	}
	if n := r.Sent - r.Opened; n > 0 {
		r.Errors = append(r.Errors, fmt.Sprintf("%d of %d unlocks did not open: %v", n, r.Sent, r.Statuses))
	}
}
