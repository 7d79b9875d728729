package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

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
	// floodVictims are registered units that only the flood uses, with wrong passwords.
	floodVictims = 10
)

// floodStats is what the flood case measured.
type floodStats struct {
	Before          latencyStats `json:"before"`
	During          latencyStats `json:"during"`
	IdleOpened      int          `json:"idle_connections_opened"`
	IdleClosedByHub int          `json:"idle_connections_closed_by_hub"`
	WrongLogins     int64        `json:"wrong_password_logins"`
	WrongRefused    int64        `json:"wrong_password_refused"`  // CONNACK 4 or 5
	WrongAccepted   int64        `json:"wrong_password_accepted"` // CONNACK 0: must never happen
	WrongOther      int64        `json:"wrong_password_other"`    // closed without a CONNACK, errors
	Threshold       string       `json:"threshold"`
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
// passwords.
func (s *suite) flood(ctx context.Context, r *caseResult) error {
	h, units, db, _, err := s.setup(ctx, r.Name, s.o.floodProbes+floodVictims)
	if err != nil {
		return err
	}
	defer h.Stop()
	probes, victims := units[:s.o.floodProbes], units[s.o.floodProbes:]
	st := &floodStats{Threshold: fmt.Sprintf("p99 during <= %dx p99 before + %s", floodP99Factor, floodP99Slack)}
	r.Flood = st

	rec := &latencyRecorder{}
	procs := map[string]int{"hub": h.pid(), "suite": os.Getpid()}
	cpu := testbed.NewCPUMeter(procs)
	probeCtx, stopProbes := context.WithCancel(ctx)
	var wg sync.WaitGroup
	ledgers := make([]unitLedger, len(probes))
	for i, u := range probes {
		wg.Go(func() { ledgers[i] = probe(probeCtx, h.MQTT, u, rec) })
	}
	s.logf("%s: baseline for %s with %d probing units", r.Name, s.o.floodPhase, len(probes))
	err = sleepCtx(ctx, s.o.floodPhase)
	st.Before, st.CPUBefore = rec.take(), cpu.Usage()
	if err != nil {
		stopProbes()
		wg.Wait()
		return err
	}

	s.logf("%s: opening %d connections that never send CONNECT", r.Name, s.o.floodConns)
	idle := openIdle(ctx, h.MQTT, s.o.floodConns)
	st.IdleOpened = len(idle)
	floodCtx, stopFlood := context.WithCancel(ctx)
	var floodWG sync.WaitGroup
	pace := pacer(floodCtx, s.o.floodRate)
	for w := range s.o.floodWorkers {
		floodWG.Go(func() { wrongLogins(floodCtx, h.MQTT, victims, w, pace, st) })
	}
	rec.take() // the connection storm above is not the steady flood being measured
	cpu = testbed.NewCPUMeter(procs)
	s.logf("%s: %d idle connections open; wrong-password flood (%d/s, %d workers) for %s", r.Name, len(idle), s.o.floodRate, s.o.floodWorkers, s.o.floodPhase)
	err = sleepCtx(ctx, s.o.floodPhase)
	st.During, st.CPUDuring = rec.take(), cpu.Usage()
	stopProbes()
	wg.Wait()
	stopFlood()
	floodWG.Wait()
	st.IdleClosedByHub = closedCount(idle)
	for _, c := range idle {
		c.Close()
	}
	if err != nil {
		return err
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
	r.check("idle connections opened", st.IdleOpened == s.o.floodConns, "%d of %d (the hub closed %d of them by the end)",
		st.IdleOpened, s.o.floodConns, st.IdleClosedByHub)
	r.note("cores used before the flood: %v; during: %v", st.CPUBefore, st.CPUDuring)
	r.check("wrong passwords refused", st.WrongLogins > 0 && st.WrongAccepted == 0,
		"%d wrong-password logins (known and unknown ids): %d refused with a CONNACK, %d accepted, %d closed or failed otherwise",
		st.WrongLogins, st.WrongRefused, st.WrongAccepted, st.WrongOther)
	hubAliveCheck(r, h)
	return s.verify(ctx, r, h, ledgers, db, metricAuthFailures)
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

// probe is one legitimate unit: it connects, publishes probePublishes door events at QoS 1,
// one at a time, disconnects and starts again until ctx ends. It returns its ledger.
func probe(ctx context.Context, addr string, u testbed.Unit, rec *latencyRecorder) unitLedger {
	l := unitLedger{ID: u.ID}
	var lastTS int64
	for ctx.Err() == nil {
		start := time.Now()
		c, err := rawConnect(addr, u.ID, u.Secret)
		rec.connect(time.Since(start), err)
		if err != nil {
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		for range probePublishes {
			l.LastSeq++
			// Door events of one door share a series: equal timestamps would overwrite.
			lastTS = max(time.Now().UnixMilli(), lastTS+1)
			payload, _ := wire.Marshal(wire.Event{V: wire.Version, Seq: l.LastSeq, TS: lastTS, Kind: wire.EventDoor, Door: 1, Locked: true})
			start := time.Now()
			err := publishQoS1(c, wire.Topic(u.ID, wire.ChannelEvents), payload)
			rec.publish(time.Since(start), err)
			if err != nil {
				l.Pending = append(l.Pending, l.LastSeq)
				break
			}
		}
		c.Write([]byte{0xE0, 0}) // DISCONNECT
		c.Close()
	}
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

// openIdle opens n TCP connections to addr that send nothing, 64 at a time.
func openIdle(ctx context.Context, addr string, n int) []net.Conn {
	var mu sync.Mutex
	conns := make([]net.Conn, 0, n)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for range n {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		})
	}
	wg.Wait()
	return conns
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

// wrongLogins logs in with wrong passwords until ctx ends, one per token of pace (as fast as
// it can if pace is nil): as a registered unit (the victims) on even attempts, as an id nobody
// registered on odd ones.
func wrongLogins(ctx context.Context, addr string, victims []testbed.Unit, worker int, pace <-chan struct{}, st *floodStats) {
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
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
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
		c.Close()
	}
}
