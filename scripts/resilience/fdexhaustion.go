package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockerhub/lockerhub/broker"
	"github.com/lockerhub/lockerhub/internal/supervise"
	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

const (
	// fdProbes are units that connect and publish from 127.0.0.1 all through the case; one
	// more unit measures the recovery with fresh connections.
	fdProbes = 2
	// fdAgents are real agents connected before the attack, as most of a fleet is: they keep
	// publishing through it, so the hub goes on storing (and shipping) while exhausted.
	fdAgents = 5
	// fdSources are the attack's addresses, each holding as many silent MQTT connections as
	// the hub's per-source bound admits: together more than mqtt.max_connections.
	fdSources = 6
	// fdHTTPWorkers per source open idle HTTP keep-alive connections, each held after one
	// answered request, until the hub can accept no more.
	fdHTTPWorkers = 4
	// fileReserve is what the hub keeps below its descriptor limit for everything but MQTT
	// connections (broker.fileReserve, unexported): mqtt.max_connections is lowered to the
	// limit minus this.
	fileReserve = 1024
	// fdExhaustedSlack: the hub counts as out of descriptors at its limit minus this (a
	// descriptor freed and taken again between two looks).
	fdExhaustedSlack = 5
	// fdRecoverWithin is the pass bound on recovery after the attack stops: a few seconds
	// (the accept loops back off up to 1 s, readiness reports an accept error for 2 s).
	fdRecoverWithin = 10 * time.Second
	// fdReleasedSlack is how many descriptors above the count before the attack the hub may
	// hold once it recovered: reconnected probes, an InfluxDB connection, a spool segment.
	fdReleasedSlack = 32
	fdSampleEvery   = 500 * time.Millisecond
	// fdRecoveryWatch is how long recovery is measured for, past its bound so that a late
	// recovery is reported with its time: a supervised background loop may wait its longest
	// backoff before it runs again and fails readiness for as long again after.
	fdRecoveryWatch = 2*supervise.MaxBackoff + fdRecoverWithin
)

// fdStats is what the descriptor-exhaustion case measured.
type fdStats struct {
	Limit          int     `json:"nofile"`
	MaxConnections int     `json:"max_connections"` // as the hub lowered it (its warning's lowered_to)
	FDsBefore      int     `json:"fds_before"`
	PeakFDs        int     `json:"peak_fds"`
	Exhausted      bool    `json:"exhausted"`
	ExhaustedAfter float64 `json:"exhausted_after_s,omitempty"` // since the HTTP connections started
	PeakMQTT       float64 `json:"peak_mqtt_connections"`
	HTTPAnswered   int64   `json:"http_keepalive_held"` // idle HTTP connections whose request was answered, held
	HTTPFailed     int64   `json:"http_failed"`         // HTTP connections closed or reset before an answer
	// Refused and AcceptErrors are the hub's counts over the attack, by reason and listener.
	Refused      map[string]float64 `json:"refused_by_reason"`
	AcceptErrors map[string]float64 `json:"accept_errors_by_listener"`
	Samples      []fdSample         `json:"samples"` // while exhausted
	UnitBack     float64            `json:"unit_recovered_s"`
	ReadyBack    float64            `json:"readyz_recovered_s"`
	FDsAfter     int                `json:"fds_after"`
	HubLog       map[string]int     `json:"hub_log"` // warnings and errors by message
}

// fdSample is what the hub showed at one moment of the exhaustion, over a connection opened
// before it: the hub accepts no new one then.
type fdSample struct {
	T            float64 `json:"t_s"`
	FDs          int     `json:"fds"`
	Readyz       string  `json:"readyz"`
	Metrics      string  `json:"metrics"` // "ok", or why the scrape failed
	AcceptErrors float64 `json:"accept_errors"`
	Connections  float64 `json:"mqtt_connections"`
	// OpenFDs is the hub's own process_open_fds, absent when it could not count them.
	OpenFDs *float64 `json:"process_open_fds,omitempty"`
}

// fdExhaustion starts the hub with a descriptor limit of -fd-limit (prlimit), exhausts its
// descriptors with silent MQTT and idle HTTP connections from several addresses, watches what
// it does for -fd-hold, then releases everything and measures how long until a unit connects
// and publishes again, and until /readyz answers 200, with no restart; what the units sent
// after must reach InfluxDB.
func (s *suite) fdExhaustion(ctx context.Context, r *caseResult) error {
	limit := s.o.fdLimit
	h, units, db, dir, err := s.setup(ctx, r.Name, fdProbes+1+fdAgents, "prlimit", fmt.Sprintf("--nofile=%d:%d", limit, limit), "--")
	if err != nil {
		return err
	}
	defer h.Stop()
	st := &fdStats{Limit: limit, MaxConnections: loweredMaxConnections(h.logPath())}
	r.FD = st
	soft, hard, err := nofile(h.pid())
	r.check("hub runs with the descriptor limit", err == nil && soft == limit && hard == limit && st.MaxConnections == limit-fileReserve,
		"nofile %d:%d (want %d:%d)%s; the hub lowered mqtt.max_connections to %d (want %d = the limit - %d for its other files)",
		soft, hard, limit, limit, errSuffix(err), st.MaxConnections, limit-fileReserve, fileReserve)
	pid := h.pid()

	f, err := s.runFleet(ctx, r, h, units[fdProbes+1:], dir)
	if err != nil {
		return err
	}
	rec := &latencyRecorder{}
	probeCtx, stopProbes := context.WithCancel(ctx)
	defer stopProbes()
	var wg sync.WaitGroup
	ledgers := make([]unitLedger, fdProbes+1)
	for i, u := range units[:fdProbes] {
		wg.Go(func() { ledgers[i] = probe(probeCtx, h.MQTT, u, newDoorEvents(u.ID), rec) })
	}
	stopped := false
	var agentsOnline int
	stopAll := func() []unitLedger {
		if stopped {
			return ledgers
		}
		stopped = true
		stopProbes()
		wg.Wait()
		agentsOnline = f.online()
		agentLedgers, err := f.stop()
		if err != nil {
			s.logf("%s: reading the agents' outboxes: %v", r.Name, err)
		}
		ledgers = append(ledgers, agentLedgers...)
		return ledgers
	}
	defer stopAll()
	if err := sleepCtx(ctx, s.o.lead); err != nil {
		stopAll()
		return err
	}
	st.FDsBefore, _ = openFDs(pid)
	mon, err := newMonitor(h.HTTP)
	if err != nil {
		stopAll()
		return fmt.Errorf("open the monitoring connection: %w", err)
	}
	defer mon.close()
	before, err := mon.scrape()
	if err != nil {
		stopAll()
		return err
	}
	rec.take()

	sources := attackerSources(0, fdSources)
	s.logf("%s: %d silent MQTT connections from %d addresses (the hub admits %d)", r.Name, fdSources*broker.DefaultMaxPendingPerSource, fdSources, st.MaxConnections)
	x := newExhaustion(ctx, 2*limit)
	for _, src := range sources {
		for range broker.DefaultMaxPendingPerSource {
			x.run(func() { x.silentMQTT(src, h.MQTT) })
		}
	}
	var peakMQTT float64
	poll(ctx, 10*time.Second, 100*time.Millisecond, func() bool {
		m, err := mon.scrape()
		peakMQTT = max(peakMQTT, m.Sum(metricConnections)[metricConnections])
		return err == nil && peakMQTT >= float64(st.MaxConnections)
	})
	s.logf("%s: idle HTTP keep-alive connections from the same addresses until the hub is out of descriptors (limit %d)", r.Name, limit)
	httpStart := time.Now()
	for _, src := range sources {
		for range fdHTTPWorkers {
			x.run(func() { x.idleHTTP(src, h.HTTP) })
		}
	}
	err = poll(ctx, time.Minute, 100*time.Millisecond, func() bool {
		n, _ := openFDs(pid)
		st.PeakFDs = max(st.PeakFDs, n)
		return n >= limit-fdExhaustedSlack || x.httpOpened.Load() >= x.httpCap
	})
	if n, _ := openFDs(pid); n >= limit-fdExhaustedSlack {
		st.Exhausted, st.ExhaustedAfter = true, round1(time.Since(httpStart).Seconds())
	}
	s.logf("%s: hub holds %d descriptors of %d (exhausted: %v); watching it for %s", r.Name, st.PeakFDs, limit, st.Exhausted, s.o.fdHold)
	holdStart := time.Now()
	for time.Since(holdStart) < s.o.fdHold && ctx.Err() == nil {
		smp := mon.sample(pid, time.Since(holdStart))
		st.Samples = append(st.Samples, smp)
		st.PeakFDs = max(st.PeakFDs, smp.FDs)
		peakMQTT = max(peakMQTT, smp.Connections)
		sleepCtx(ctx, fdSampleEvery)
	}
	during := rec.take()
	alive := h.alive() && h.pid() == pid

	s.logf("%s: releasing every connection of the attack", r.Name)
	released := time.Now()
	x.stop()
	st.HTTPAnswered, st.HTTPFailed = x.httpHeld.Load(), x.httpFailed.Load()
	late := units[fdProbes]
	lateEv := newDoorEvents(late.ID)
	var back sync.WaitGroup
	unitErr, readyErr := error(nil), error(nil)
	back.Go(func() {
		unitErr = poll(ctx, fdRecoveryWatch, 100*time.Millisecond, func() bool { return sendOne(h.MQTT, late, lateEv) == nil })
		st.UnitBack = round1(time.Since(released).Seconds())
	})
	back.Go(func() {
		readyErr = poll(ctx, fdRecoveryWatch, 100*time.Millisecond, func() bool { return freshReady(h.HTTP) })
		st.ReadyBack = round1(time.Since(released).Seconds())
	})
	back.Wait()
	if ctx.Err() != nil {
		stopAll()
		return ctx.Err()
	}
	s.logf("%s: a unit connected and published %.1f s after the release, /readyz answered 200 after %.1f s; load for another %s", r.Name, st.UnitBack, st.ReadyBack, s.o.lead)
	// The recovering unit goes on as a probe: what it sends from now on must reach InfluxDB.
	lateCtx, stopLate := context.WithCancel(probeCtx)
	wg.Go(func() { ledgers[fdProbes] = probe(lateCtx, h.MQTT, late, lateEv, rec) })
	err = sleepCtx(ctx, s.o.lead)
	stopLate()
	after := rec.take()
	ledgers = stopAll()
	if err != nil {
		return err
	}
	normal := poll(ctx, 15*time.Second, 200*time.Millisecond, func() bool {
		m, err := h.scrape()
		return err == nil && m.Sum(metricPending)[metricPending] == 0 && m.Sum(metricConnections)[metricConnections] == 0
	}) == nil
	st.FDsAfter, _ = openFDs(pid)
	end, err := h.scrape()
	if err == nil {
		st.Refused = subtract(end.ByLabel(metricRefused, "reason"), before.ByLabel(metricRefused, "reason"))
		st.AcceptErrors = subtract(end.ByLabel(metricAcceptErrors, "listener"), before.ByLabel(metricAcceptErrors, "listener"))
	}
	st.PeakMQTT = peakMQTT
	st.HubLog = logTally(h.logPath())

	r.check("admission held mqtt.max_connections", st.PeakMQTT <= float64(st.MaxConnections) && st.Refused["max_connections"] > 0,
		"peak %.0f MQTT connections held (bound %d); reset at accept: %v", st.PeakMQTT, st.MaxConnections, st.Refused)
	r.check("descriptors exhausted", st.Exhausted,
		"the hub held %d descriptors at most (limit %d), %.1f s after the HTTP connections started; %d idle HTTP keep-alive connections answered and held, %d failed",
		st.PeakFDs, limit, st.ExhaustedAfter, st.HTTPAnswered, st.HTTPFailed)
	r.check("hub stayed up, no restart", alive && h.alive() && h.pid() == pid && h.starts == 1,
		"process %d alive through the exhaustion: %v, at the end: %v", pid, alive, h.alive())
	r.check("a unit connects and publishes again", unitErr == nil && st.UnitBack < fdRecoverWithin.Seconds(),
		"%.1f s after the release (bound %s), with a new connection and an acknowledged QoS 1 publish%s", st.UnitBack, fdRecoverWithin, errSuffix(unitErr))
	r.check("/readyz answers 200 again", readyErr == nil && st.ReadyBack < fdRecoverWithin.Seconds(),
		"%.1f s after the release (bound %s), on a new connection%s", st.ReadyBack, fdRecoverWithin, errSuffix(readyErr))
	r.check("descriptors and admission back to normal", normal && st.FDsAfter <= st.FDsBefore+fdReleasedSlack,
		"%d descriptors open at the end (%d before the attack, slack %d); no MQTT connection left counted as held or pending: %v",
		st.FDsAfter, st.FDsBefore, fdReleasedSlack, normal)
	r.note("while exhausted, over a connection opened before: %s", summarize(st.Samples))
	r.note("the hub's counts over the attack: accept errors by listener %v; connections reset at accept by reason %v", st.AcceptErrors, st.Refused)
	r.note("probing units (127.0.0.1) while attacked: %d connects, %d failed, %d publishes acknowledged, %d failed; after the release: %d connects, %d failed, %d publishes acknowledged, %d failed",
		during.Connects, during.ConnectErrors, during.Publishes, during.PublishErrors, after.Connects, after.ConnectErrors, after.Publishes, after.PublishErrors)
	r.note("hub log, warnings and errors by message: %v", st.HubLog)
	r.note("%d of %d agents connected before the attack were online at the end", agentsOnline, fdAgents)
	hubAliveCheck(r, h)
	if err := s.verify(ctx, r, h, ledgers, db); err != nil {
		return err
	}
	lateD, err := verifyDelivery(db, ledgers[fdProbes:])
	if err != nil {
		return err
	}
	r.check("telemetry sent after the recovery reached InfluxDB", lateD.Acked > 0 && lateD.Lost == 0,
		"the unit that measured the recovery: %d events acknowledged from then on, %d in InfluxDB, %d lost", lateD.Acked, lateD.Arrived, lateD.Lost)
	return nil
}

// exhaustion is the attack: silent MQTT connections and idle HTTP keep-alive connections, each
// worker opening a new connection when the hub closes its own, until stop.
type exhaustion struct {
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	httpCap int64 // HTTP connections opened at most, should the hub never run out

	mu    sync.Mutex
	conns map[net.Conn]bool // open, held or waiting for the hub

	httpOpened, httpHeld, httpFailed atomic.Int64
}

func newExhaustion(ctx context.Context, httpCap int) *exhaustion {
	x := &exhaustion{httpCap: int64(httpCap), conns: map[net.Conn]bool{}}
	x.ctx, x.cancel = context.WithCancel(ctx)
	return x
}

func (x *exhaustion) run(f func()) { x.wg.Go(f) }

// track records c as open, or abandons it and reports false once the attack stopped.
func (x *exhaustion) track(c net.Conn) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.ctx.Err() != nil {
		abandon(c)
		return false
	}
	x.conns[c] = true
	return true
}

func (x *exhaustion) untrack(c net.Conn) {
	x.mu.Lock()
	delete(x.conns, c)
	x.mu.Unlock()
	abandon(c)
}

// stop ends the attack: every connection is reset at once.
func (x *exhaustion) stop() {
	x.mu.Lock()
	x.cancel()
	for c := range x.conns {
		abandon(c)
	}
	x.mu.Unlock()
	x.wg.Wait()
}

// silentMQTT keeps one connection from src to the MQTT listener open without a CONNECT: the
// hub resets it at accept past an admission bound, or closes it after its connect timeout;
// then it opens another.
func (x *exhaustion) silentMQTT(src, addr string) {
	for x.ctx.Err() == nil {
		c, err := dialFrom(src, addr, 5*time.Second)
		if err != nil || !x.track(c) {
			sleepCtx(x.ctx, 100*time.Millisecond)
			continue
		}
		opened := time.Now()
		waitClosed(c, time.Minute)
		x.untrack(c)
		if time.Since(opened) < time.Second {
			sleepCtx(x.ctx, 200*time.Millisecond) // reset at accept: do not spin
		}
	}
}

// idleHTTP opens connections from src to the HTTP server, one after the other, each holding one
// answered keep-alive request and held idle until stop.
func (x *exhaustion) idleHTTP(src, addr string) {
	for x.ctx.Err() == nil && x.httpOpened.Add(1) <= x.httpCap {
		c, err := dialFrom(src, addr, 5*time.Second)
		if err != nil || !x.track(c) {
			sleepCtx(x.ctx, 100*time.Millisecond)
			continue
		}
		if err := keepAliveRequest(c); err != nil {
			if x.ctx.Err() == nil { // not cut short by stop: the hub closed or refused it
				x.httpFailed.Add(1)
			}
			x.untrack(c)
			sleepCtx(x.ctx, 100*time.Millisecond)
			continue
		}
		x.httpHeld.Add(1)
	}
}

// keepAliveRequest sends GET /healthz on c and reads the answer, leaving the connection open.
// It waits as long as the hub takes to accept c: until stop closes it.
func keepAliveRequest(c net.Conn) error {
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: lockerhub\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || resp.Close {
		return fmt.Errorf("HTTP %d, close %v", resp.StatusCode, resp.Close)
	}
	return nil
}

// monitor watches the hub's readiness and metrics over one HTTP connection opened before the
// exhaustion, which the hub keeps serving when it can accept no new one.
type monitor struct {
	addr string
	tr   *http.Transport
	hc   *http.Client
}

func newMonitor(addr string) (*monitor, error) {
	tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, IdleConnTimeout: 0}
	m := &monitor{addr: addr, tr: tr, hc: &http.Client{Transport: tr, Timeout: 3 * time.Second}}
	_, err := m.scrape()
	return m, err
}

func (m *monitor) close() { m.tr.CloseIdleConnections() }

func (m *monitor) scrape() (testbed.Exposition, error) { return testbed.Scrape(m.hc, m.addr) }

// sample reads the hub's readiness and metrics, and its descriptors from /proc, at t.
func (m *monitor) sample(pid int, t time.Duration) fdSample {
	smp := fdSample{T: round1(t.Seconds()), Metrics: "ok"}
	smp.FDs, _ = openFDs(pid)
	smp.Readyz = m.readyz()
	if e, err := m.scrape(); err != nil {
		smp.Metrics = err.Error()
	} else {
		v := e.Sum(metricAcceptErrors, metricConnections, metricOpenFDs)
		smp.AcceptErrors, smp.Connections = v[metricAcceptErrors], v[metricConnections]
		if n, ok := v[metricOpenFDs]; ok {
			smp.OpenFDs = &n
		}
	}
	return smp
}

// readyz is the hub's readiness: "200", or the status with the checks that failed, or why
// it could not be read.
func (m *monitor) readyz() string {
	resp, err := m.hc.Get("http://" + m.addr + "/readyz")
	if err != nil {
		return "unreachable: " + err.Error()
	}
	defer resp.Body.Close()
	var body struct{ Checks map[string]string }
	json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
	var failing []string
	for name, state := range body.Checks {
		if state != "ok" {
			failing = append(failing, name+": "+state)
		}
	}
	slices.Sort(failing)
	if len(failing) == 0 {
		return strconv.Itoa(resp.StatusCode)
	}
	return fmt.Sprintf("%d %s", resp.StatusCode, strings.Join(failing, "; "))
}

// summarize counts the distinct states of the samples: readiness, and metrics with or
// without the hub's count of its own descriptors.
func summarize(samples []fdSample) string {
	if len(samples) == 0 {
		return "no samples"
	}
	count := map[string]int{}
	var order []string
	for _, smp := range samples {
		metrics := "/metrics " + smp.Metrics
		if smp.Metrics == "ok" && smp.OpenFDs == nil {
			metrics += " without " + metricOpenFDs
		}
		for _, k := range []string{"/readyz " + smp.Readyz, metrics} {
			if count[k] == 0 {
				order = append(order, k)
			}
			count[k]++
		}
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = fmt.Sprintf("%d× %s", count[k], k)
	}
	return fmt.Sprintf("%d samples over %.0f s: %s", len(samples), samples[len(samples)-1].T, strings.Join(parts, "; "))
}

// freshReady reports whether /readyz answers 200 on a new connection: the hub accepts again.
func freshReady(addr string) bool {
	c := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// openFDs counts the descriptors process pid holds.
func openFDs(pid int) (int, error) {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(entries), err
}

// nofile reads process pid's descriptor limit, soft and hard, from /proc/PID/limits.
func nofile(pid int) (soft, hard int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) >= 2 {
				soft, _ = strconv.Atoi(f[0])
				hard, _ = strconv.Atoi(f[1])
				return soft, hard, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("/proc/%d/limits: no Max open files", pid)
}

// logRecord is the part of the hub's JSON log lines the case reads.
type logRecord struct {
	Level     string `json:"level"`
	Msg       string `json:"msg"`
	Loop      string `json:"loop"`
	Listener  string `json:"listener"`
	LoweredTo *int   `json:"lowered_to"`
}

// readLog calls fn with every JSON record of the hub's log, and text with every other line
// (what the hub's dependencies write with Go's standard logger).
func readLog(path string, fn func(logRecord), text func(line string)) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var rec logRecord
		switch {
		case json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg != "":
			fn(rec)
		case text != nil:
			text(sc.Text())
		}
	}
}

// loweredMaxConnections is the mqtt.max_connections the hub logged it lowered to for its
// descriptor limit (its warning's lowered_to), or 0 if it logged none.
func loweredMaxConnections(path string) int {
	n := 0
	readLog(path, func(rec logRecord) {
		if rec.LoweredTo != nil {
			n = *rec.LoweredTo
		}
	}, nil)
	return n
}

// logTally counts the hub's warnings and errors by message (and loop or listener), and its
// lines that are not JSON by their text up to a ';' (net/http's "http: Accept error: ...;
// retrying in 5ms"), without their standard-logger timestamp.
func logTally(path string) map[string]int {
	out := map[string]int{}
	readLog(path, func(rec logRecord) {
		if rec.Level != "WARN" && rec.Level != "ERROR" {
			return
		}
		key := rec.Level + " " + rec.Msg
		if who := rec.Loop + rec.Listener; who != "" {
			key += " (" + who + ")"
		}
		out[key]++
	}, func(line string) {
		if _, err := time.Parse("2006/01/02 15:04:05 ", line[:min(len(line), 20)]); err == nil {
			line = line[20:]
		}
		line, _, _ = strings.Cut(line, ";")
		out["TEXT "+line]++
	})
	return out
}
