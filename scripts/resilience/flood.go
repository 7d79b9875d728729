package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lockerhub/lockerhub/broker"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

// The flood's pass threshold for the legitimate units' p99 (connect and publish), during
// against before: at most floodP99Factor times the baseline plus floodP99Slack. The issue asks
// for an unchanged p99, but on this 2-core machine the flood itself (thousands of sockets and
// logins) runs on the same cores as the hub, the probes and InfluxDB, and runs differ by ±15%
// anyway. What the case must catch is a hub whose refusals starve real logins (units queueing
// behind secret checks, or behind idle sockets): that shows up as 10x and more, or as failures. The slack keeps a
// baseline of a millisecond or two from turning scheduler noise into a failure; units
// themselves wait up to 30 s for a CONNACK.
const (
	floodP99Factor = 2
	floodP99Slack  = 20 * time.Millisecond
	// probePublishes is how many messages a probe sends per connection before it reconnects,
	// so that connects and publishes are both measured all along.
	probePublishes = 10
	// floodVictims are registered units that only the flood uses, with wrong passwords; the
	// probes' own ids are victims too.
	floodVictims = 10
	// floodConnectP99 is issue 15's bound on a unit's connect p99 while strangers send wrong
	// passwords for its id from another address.
	floodConnectP99 = 100 * time.Millisecond
)

// floodStats is what the flood case measured.
type floodStats struct {
	Before      latencyStats `json:"before"`
	During      latencyStats `json:"during"`
	IdleSources []string     `json:"idle_sources"`
	IdleOpened  int          `json:"idle_connections_opened"`
	// IdleDialErrors are the idle connections whose dial failed, by why. The hub resets a
	// refused connection at accept, which may come before the dial returns: a dial that
	// failed with a reset reached the hub and was refused.
	IdleDialErrors map[string]int `json:"idle_dial_errors,omitempty"`
	// IdleRefused is lockerhub_mqtt_connections_refused_total by reason, counted while the
	// idle connections were opened: reset at accept. IdleHeld is what the hub held of them
	// (lockerhub_mqtt_connections_pending once they were open, the probes' own included).
	IdleRefused     map[string]float64 `json:"idle_refused_by_reason"`
	IdleHeld        float64            `json:"idle_held"`
	IdleClosedByHub int                `json:"idle_connections_closed_by_hub"`
	WrongSource     string             `json:"wrong_password_source"`
	WrongLogins     int64              `json:"wrong_password_logins"`
	WrongRefused    int64              `json:"wrong_password_refused"`  // CONNACK 4 or 5
	WrongAccepted   int64              `json:"wrong_password_accepted"` // CONNACK 0: must never happen
	WrongOther      int64              `json:"wrong_password_other"`    // closed without a CONNACK, errors
	// AuthFailures is lockerhub_mqtt_auth_failures_total by reason at the end of the flood.
	AuthFailures map[string]float64 `json:"auth_failures_by_reason"`
	Threshold    string             `json:"threshold"`
	// CPU is the cores the hub and this suite used in each phase: on two cores a generator
	// that takes one of them slows the hub without any fault of the hub's.
	CPUBefore map[string]float64 `json:"cpu_before"`
	CPUDuring map[string]float64 `json:"cpu_during"`
}

// latencyStats are the legitimate units' latencies in one phase, in milliseconds.
type latencyStats struct {
	Connects      int     `json:"connects"`
	ConnectErrors int     `json:"connect_errors"`
	ConnectP50    float64 `json:"connect_p50_ms"`
	ConnectP99    float64 `json:"connect_p99_ms"`
	Publishes     int     `json:"publishes"`
	PublishErrors int     `json:"publish_errors"`
	PublishP50    float64 `json:"publish_p50_ms"`
	PublishP99    float64 `json:"publish_p99_ms"`
}

// flood measures legitimate units before and during a flood of idle connections and wrong
// passwords. The probes connect from 127.0.0.1; the wrong passwords come from one other
// address and are aimed at the probes' own ids among others (issue 15: knowing a unit's id must
// not be enough to keep it offline), and the idle connections from -flood-sources further
// addresses, so that the hub's per-source bounds meet the attack and not the probes.
func (s *suite) flood(ctx context.Context, r *caseResult) error {
	h, units, db, _, err := s.setup(ctx, r.Name, s.o.floodProbes+floodVictims)
	if err != nil {
		return err
	}
	defer h.Stop()
	probes, victims := units[:s.o.floodProbes], units // the probes are victims too
	st := &floodStats{
		Threshold:   fmt.Sprintf("p99 during <= %dx p99 before + %s, and connect p99 during < %s", floodP99Factor, floodP99Slack, floodConnectP99),
		WrongSource: attackerSource(0),
		IdleSources: attackerSources(1, s.o.floodSources),
	}
	r.Flood = st

	rec := &latencyRecorder{}
	procs := map[string]int{"hub": h.pid(), "suite": os.Getpid()}
	cpu := testbed.NewCPUMeter(procs)
	probeCtx, stopProbes := context.WithCancel(ctx)
	var wg sync.WaitGroup
	ledgers := make([]unitLedger, len(probes))
	for i, u := range probes {
		wg.Go(func() { ledgers[i] = probe(probeCtx, h.MQTT, u, newDoorEvents(u.ID), rec) })
	}
	s.logf("%s: baseline for %s with %d probing units", r.Name, s.o.floodPhase, len(probes))
	err = sleepCtx(ctx, s.o.floodPhase)
	st.Before, st.CPUBefore = rec.take(), cpu.Usage()
	if err != nil {
		stopProbes()
		wg.Wait()
		return err
	}

	s.logf("%s: opening %d connections that never send CONNECT from %d addresses (%s..%s)", r.Name, s.o.floodConns,
		len(st.IdleSources), st.IdleSources[0], st.IdleSources[len(st.IdleSources)-1])
	refusedBefore, err := h.scrape()
	if err != nil {
		stopProbes()
		wg.Wait()
		return err
	}
	idle, failed := openIdle(ctx, h.MQTT, s.o.floodConns, st.IdleSources)
	st.IdleOpened, st.IdleDialErrors = len(idle), failed
	// The hub resets a refused connection as its accept loop reaches it, which may be after
	// the dial returned: the backlog holds thousands.
	if err := sleepCtx(ctx, time.Second); err == nil {
		if m, err := h.scrape(); err == nil {
			st.IdleRefused = subtract(m.ByLabel(metricRefused, "reason"), refusedBefore.ByLabel(metricRefused, "reason"))
			st.IdleHeld = m.Sum(metricPending)[metricPending]
		}
	}
	floodCtx, stopFlood := context.WithCancel(ctx)
	var floodWG sync.WaitGroup
	pace := pacer(floodCtx, s.o.floodRate)
	for w := range s.o.floodWorkers {
		floodWG.Go(func() { wrongLogins(floodCtx, h.MQTT, st.WrongSource, victims, w, pace, st) })
	}
	rec.take() // the connection storm above is not the steady flood being measured
	cpu = testbed.NewCPUMeter(procs)
	s.logf("%s: hub holds %.0f idle connections, refused %v; wrong-password flood from %s (%d/s, %d workers) for %s",
		r.Name, st.IdleHeld, st.IdleRefused, st.WrongSource, s.o.floodRate, s.o.floodWorkers, s.o.floodPhase)
	err = sleepCtx(ctx, s.o.floodPhase)
	st.During, st.CPUDuring = rec.take(), cpu.Usage()
	stopProbes()
	wg.Wait()
	stopFlood()
	floodWG.Wait()
	st.IdleClosedByHub = closedCount(idle) + st.IdleDialErrors[resetByPeer]
	for _, c := range idle {
		abandon(c)
	}
	if err != nil {
		return err
	}
	if m, err := h.scrape(); err == nil {
		st.AuthFailures = m.ByLabel(metricAuthFailures, "reason")
	}

	b, d := st.Before, st.During
	r.check("legitimate units kept connecting", d.Connects > 0 && d.ConnectErrors == 0,
		"during the flood: %d connects, %d failed (before: %d, %d failed)", d.Connects, d.ConnectErrors, b.Connects, b.ConnectErrors)
	r.check("legitimate units kept publishing", d.Publishes > 0 && d.PublishErrors == 0,
		"during the flood: %d publishes acknowledged, %d failed (before: %d, %d failed)", d.Publishes, d.PublishErrors, b.Publishes, b.PublishErrors)
	r.check("connect p99 held", withinFlood(d.ConnectP99, b.ConnectP99), "%.1f ms during vs %.1f ms before (p50 %.1f vs %.1f); %s",
		d.ConnectP99, b.ConnectP99, d.ConnectP50, b.ConnectP50, st.Threshold)
	r.check("publish p99 held", withinFlood(d.PublishP99, b.PublishP99), "%.1f ms during vs %.1f ms before (p50 %.1f vs %.1f); %s",
		d.PublishP99, b.PublishP99, d.PublishP50, b.PublishP50, st.Threshold)
	r.check("units connect while strangers send wrong passwords for their ids", d.ConnectErrors == 0 && d.Connects > 0 && d.ConnectP99 < ms(floodConnectP99),
		"%d connects from 127.0.0.1, %d failed, p99 %.1f ms (must be < %s) while %s sent wrong passwords for the probes' %d ids among others",
		d.Connects, d.ConnectErrors, d.ConnectP99, floodConnectP99, st.WrongSource, len(probes))
	bound := idleBound(len(st.IdleSources))
	refused := sum(st.IdleRefused)
	reached := st.IdleOpened + st.IdleDialErrors[resetByPeer]
	r.check("idle connections bounded per source", reached == s.o.floodConns && st.IdleHeld <= float64(bound+len(probes)) &&
		refused >= float64(reached-bound),
		"%d of %d reached the hub from %d addresses (dials that failed: %v): the hub held %.0f (bound %d: %d per source, %d overall) and reset %.0f at accept %v; by the end it had closed %d",
		reached, s.o.floodConns, len(st.IdleSources), st.IdleDialErrors, st.IdleHeld, bound, broker.DefaultMaxPendingPerSource, broker.DefaultMaxPending,
		refused, st.IdleRefused, st.IdleClosedByHub)
	r.note("cores used before the flood: %v; during: %v", st.CPUBefore, st.CPUDuring)
	r.check("wrong passwords refused", st.WrongLogins > 0 && st.WrongAccepted == 0,
		"%d wrong-password logins (known and unknown ids): %d refused with a CONNACK, %d accepted, %d closed or failed otherwise; the hub's refusals by reason: %v",
		st.WrongLogins, st.WrongRefused, st.WrongAccepted, st.WrongOther, st.AuthFailures)
	hubAliveCheck(r, h)
	return s.verify(ctx, r, h, ledgers, db, metricAuthFailures)
}

// idleBound is how many connections that never send CONNECT the hub holds at most from n
// addresses, at its default admission bounds.
func idleBound(n int) int {
	return min(n*broker.DefaultMaxPendingPerSource, broker.DefaultMaxPending)
}

// withinFlood applies the flood's threshold to a p99 during (ms) against the one before.
func withinFlood(during, before float64) bool {
	return during <= floodP99Factor*before+ms(floodP99Slack)
}

// latencyRecorder collects the probes' latencies of the current phase.
type latencyRecorder struct {
	mu                         sync.Mutex
	connects, publishes        []time.Duration
	connectErrors, publishErrs int
}

func (l *latencyRecorder) connect(d time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.connectErrors++
		return
	}
	l.connects = append(l.connects, d)
}

func (l *latencyRecorder) publish(d time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.publishErrs++
		return
	}
	l.publishes = append(l.publishes, d)
}

// take summarises the phase so far and starts a new one.
func (l *latencyRecorder) take() latencyStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := latencyStats{
		Connects: len(l.connects), ConnectErrors: l.connectErrors,
		ConnectP50: ms(percentile(l.connects, 50)), ConnectP99: ms(percentile(l.connects, 99)),
		Publishes: len(l.publishes), PublishErrors: l.publishErrs,
		PublishP50: ms(percentile(l.publishes, 50)), PublishP99: ms(percentile(l.publishes, 99)),
	}
	l.connects, l.publishes, l.connectErrors, l.publishErrs = nil, nil, 0, 0
	return st
}

// probe is one legitimate unit: it connects, publishes probePublishes of its door events ev at
// QoS 1, one at a time, disconnects and starts again until ctx ends; after a failure it waits
// 100 ms. It returns its ledger.
func probe(ctx context.Context, addr string, u testbed.Unit, ev *doorEvents, rec *latencyRecorder) unitLedger {
	for ctx.Err() == nil {
		if err := probeSession(addr, u, ev, rec, probePublishes); err != nil {
			sleepCtx(ctx, 100*time.Millisecond)
		}
	}
	return ev.ledger()
}

// probeSession connects as u, publishes n of its door events one at a time and disconnects. It
// records the latencies in rec and returns the first error.
func probeSession(addr string, u testbed.Unit, ev *doorEvents, rec *latencyRecorder, n int) error {
	start := time.Now()
	c, err := rawConnect(addr, u.ID, u.Secret)
	rec.connect(time.Since(start), err)
	if err != nil {
		return err
	}
	defer c.Close()
	for range n {
		start := time.Now()
		err := ev.publish(c)
		rec.publish(time.Since(start), err)
		if err != nil {
			return err
		}
	}
	_, err = c.Write([]byte{0xE0, 0}) // DISCONNECT
	return err
}

// doorEvents numbers the door events one unit publishes over raw connections and records those
// not acknowledged: the unit's ledger for verify, as an agent's outbox is. It is safe for
// concurrent use: the identity case publishes as one unit over several connections at once.
type doorEvents struct {
	id string

	mu      sync.Mutex
	lastSeq uint64
	lastTS  int64
	unacked map[uint64]bool // sent and not acknowledged, those in flight included
}

func newDoorEvents(id string) *doorEvents { return &doorEvents{id: id, unacked: map[uint64]bool{}} }

// publish sends the unit's next door event over c at QoS 1 and waits for its PUBACK.
func (e *doorEvents) publish(c net.Conn) error {
	e.mu.Lock()
	e.lastSeq++
	seq := e.lastSeq
	e.unacked[seq] = true
	// Door events of one door share a series: equal timestamps would overwrite.
	e.lastTS = max(time.Now().UnixMilli(), e.lastTS+1)
	payload, _ := wire.Marshal(wire.Event{V: wire.Version, Seq: seq, TS: e.lastTS, Kind: wire.EventDoor, Door: 1, Locked: true})
	e.mu.Unlock()
	err := publishQoS1(c, wire.Topic(e.id, wire.ChannelEvents), payload)
	if err == nil {
		e.mu.Lock()
		delete(e.unacked, seq)
		e.mu.Unlock()
	}
	return err
}

// ledger is what the unit sent so far and which of it was not acknowledged (yet).
func (e *doorEvents) ledger() unitLedger {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := unitLedger{ID: e.id, LastSeq: e.lastSeq}
	for seq := range e.unacked {
		l.Pending = append(l.Pending, seq)
	}
	slices.Sort(l.Pending)
	return l
}

// publishQoS1 publishes payload and waits for its PUBACK.
func publishQoS1(c net.Conn, topic string, payload []byte) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(publishPacket(topic, 1, payload)); err != nil {
		return err
	}
	var ack [4]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		return err
	}
	if ack != [4]byte{0x40, 2, 0, 1} {
		return fmt.Errorf("not the PUBACK of packet 1: % x", ack)
	}
	return nil
}

// openIdle opens n TCP connections to addr that send nothing, from sources in turn, 64 at a
// time. It returns those opened and the dials that failed, by kind (see dialErrorKind).
func openIdle(ctx context.Context, addr string, n int, sources []string) ([]net.Conn, map[string]int) {
	var mu sync.Mutex
	conns := make([]net.Conn, 0, n)
	failed := map[string]int{}
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := dialFrom(sources[i%len(sources)], addr, 10*time.Second)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed[dialErrorKind(err)]++
				return
			}
			conns = append(conns, c)
		})
	}
	wg.Wait()
	return conns, failed
}

// resetByPeer is dialErrorKind of a connection the peer reset.
var resetByPeer = dialErrorKind(syscall.ECONNRESET)

// dialErrorKind names why a dial failed without its addresses: the system call's error, or
// "timeout".
func dialErrorKind(err error) string {
	var errno syscall.Errno
	var ne net.Error
	switch {
	case errors.As(err, &errno):
		return errno.Error()
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return err.Error()
}

// closedCount counts the connections the peer has closed, without waiting on the open ones.
func closedCount(conns []net.Conn) int {
	n := 0
	for _, c := range conns {
		if closed, _ := waitClosed(c, time.Millisecond); closed {
			n++
		}
	}
	return n
}

// pacer yields perSecond tokens a second until ctx ends; nil (no pacing) for 0.
func pacer(ctx context.Context, perSecond int) <-chan struct{} {
	if perSecond <= 0 {
		return nil
	}
	ch := make(chan struct{})
	go func() {
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			select {
			case ch <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// wrongLogins logs in from src with wrong passwords until ctx ends, one per token of pace (as
// fast as it can if pace is nil): as a registered unit (the victims) on even attempts, as an id
// nobody registered on odd ones.
func wrongLogins(ctx context.Context, addr, src string, victims []testbed.Unit, worker int, pace <-chan struct{}, st *floodStats) {
	for i := 0; ctx.Err() == nil; i++ {
		if pace != nil {
			select {
			case <-pace:
			case <-ctx.Done():
				return
			}
		}
		id := fmt.Sprintf("nobody-%d-%d", worker, i)
		if i%2 == 0 {
			id = victims[(worker+i)%len(victims)].ID
		}
		atomic.AddInt64(&st.WrongLogins, 1)
		c, err := dialFrom(src, addr, 5*time.Second)
		if err != nil {
			atomic.AddInt64(&st.WrongOther, 1)
			sleepCtx(ctx, 10*time.Millisecond)
			continue
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Write(connectPacket("MQTT", id, id, "wrong-password"))
		var code byte
		if err == nil {
			code, err = readConnack(c)
		}
		switch {
		case err != nil:
			atomic.AddInt64(&st.WrongOther, 1)
		case code == connackAccepted:
			atomic.AddInt64(&st.WrongAccepted, 1)
		case code == connackBadCredential || code == connackNotAuthorized:
			atomic.AddInt64(&st.WrongRefused, 1)
		default:
			atomic.AddInt64(&st.WrongOther, 1)
		}
		abandon(c)
	}
}

// subtract is a - b per key, keeping the keys that changed.
func subtract(a, b map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range a {
		if d := v - b[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// sum is the total of m's values.
func sum(m map[string]float64) float64 {
	t := 0.0
	for _, v := range m {
		t += v
	}
	return t
}
