package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

const (
	// identityPublishEvery is how often each connection of the identity case publishes: often
	// enough that a connection the hub should have closed shows it at once.
	identityPublishEvery = 50 * time.Millisecond
	// identitySettle bounds the wait for every connection's first publish to be acknowledged
	// or refused.
	identitySettle = 5 * time.Second
	// revokedWithin is the bound on closing every connection of a revoked device after the
	// CLI returned: the registry watch's interval (registry.watch_interval, 500 ms by default)
	// plus slack for this shared machine.
	revokedWithin = 2 * time.Second
	// identitySite is where the unit is registered again after its removal.
	identitySite = "identity-other-site"
)

// identityRound is one round of the identity case: concurrent connects with the unit's valid
// credentials, then a revocation through the CLI.
type identityRound struct {
	Revocation string `json:"revocation"`
	Connects   int    `json:"concurrent_connects"`
	Accepted   int    `json:"accepted"` // CONNACK 0
	// ConnectMS is how long until every connect was answered: the hub serializes the
	// connects of one id.
	ConnectMS float64 `json:"connects_ms"`
	Acked     int     `json:"connections_acked"` // connections that had a publish acknowledged
	Closed    int     `json:"connections_closed_unacked"`
	Online    float64 `json:"devices_connected"`
	// After the revocation: how long the CLI ran, and how long after it returned every
	// connection was closed (negative: before it returned, the watch having seen the commit).
	CLIMS              float64 `json:"cli_ms,omitempty"`
	AllClosedMS        float64 `json:"all_closed_after_cli_ms,omitempty"`
	AckedAfterCLI      int     `json:"acked_after_cli_returned"` // by design, until the watch sees the change
	AckedAfterRevoked  int     `json:"acked_after_first_close"`  // must be 0
	OnlineAfter        float64 `json:"devices_connected_after"`
	OldCredentialError string  `json:"old_credential,omitempty"`
}

// revocation is one way to take a device's credential away through the CLI. It returns the
// secret the device has afterwards, for the next round.
type revocation struct {
	name   string
	revoke func(ctx context.Context, h *hub, id, secret string) (string, error)
	// restore, if set, makes the device connectable again for the next round (untimed).
	restore func(ctx context.Context, h *hub, id string) error
	// ends says the revocation ends the registration: the pipeline acknowledges and drops
	// (as unknown_device) what the live connection sends between the removal and its close,
	// so those events are not required in InfluxDB.
	ends bool
}

var revocations = []revocation{
	{name: "rotate-secret", revoke: func(ctx context.Context, h *hub, id, _ string) (string, error) {
		return cliSecret(h.cli(ctx, "device", "rotate-secret", "--id", id, "--json"))
	}},
	{name: "disable", revoke: func(ctx context.Context, h *hub, id, secret string) (string, error) {
		_, err := h.cli(ctx, "device", "disable", "--id", id)
		return secret, err
	}, restore: func(ctx context.Context, h *hub, id string) error {
		_, err := h.cli(ctx, "device", "enable", "--id", id)
		return err
	}},
	{name: "remove, then add at another site", ends: true, revoke: func(ctx context.Context, h *hub, id, _ string) (string, error) {
		if _, err := h.cli(ctx, "device", "remove", "--id", id); err != nil {
			return "", err
		}
		return cliSecret(h.cli(ctx, "device", "add", "--id", id, "--kind", "locker-bank", "--site", identitySite,
			"--doors", fmt.Sprint(testbed.DoorsPerUnit), "--json"))
	}},
}

// cliSecret reads the secret that `lockerhub device ... --json` printed.
func cliSecret(out []byte, err error) (string, error) {
	if err != nil {
		return "", err
	}
	var v struct{ Secret string }
	if err := json.Unmarshal(out, &v); err != nil || v.Secret == "" {
		return "", fmt.Errorf("the CLI printed %q, not a secret", out)
	}
	return v.Secret, nil
}

// identity checks issue 15's one live connection per device: a round of -identity-conns
// connects with the unit's valid credentials at the same instant leaves exactly one connection
// whose publishes are acknowledged; then after each revocation through the real CLI every
// connection is closed within revokedWithin, none has a publish acknowledged after that, and
// the old credential is refused. A first round without revocation checks the concurrent
// connects alone.
func (s *suite) identity(ctx context.Context, r *caseResult) error {
	h, units, db, _, err := s.setup(ctx, r.Name, 1)
	if err != nil {
		return err
	}
	defer h.Stop()
	u := units[0]
	ev := newDoorEvents(u.ID)

	s.logf("%s: %d concurrent connects as %s", r.Name, s.o.identityConns, u.ID)
	round, conns, err := s.connectRound(ctx, r, h, u.ID, u.Secret, ev, "none")
	stopAll(conns)
	if err != nil {
		return err
	}
	r.Identity = append(r.Identity, round)

	secret := u.Secret
	var stored unitLedger // what must be in InfluxDB: all the unit sent while registered
	for _, rv := range revocations {
		s.logf("%s: %d concurrent connects, then %s", r.Name, s.o.identityConns, rv.name)
		round, conns, err := s.connectRound(ctx, r, h, u.ID, secret, ev, rv.name)
		if err != nil {
			stopAll(conns)
			return err
		}
		if rv.ends {
			stored = ev.ledger()
		}
		cliStart := time.Now()
		newSecret, err := rv.revoke(ctx, h, u.ID, secret)
		cliEnd := time.Now()
		if err != nil {
			stopAll(conns)
			return fmt.Errorf("%s: %w", rv.name, err)
		}
		s.judgeRevocation(ctx, r, h, round, conns, cliStart, cliEnd)
		stopAll(conns)

		// The credential the unit had must no longer get in; after a removal, the new
		// registration's must.
		c, oldErr := rawConnect(h.MQTT, u.ID, secret)
		if c != nil {
			c.Close()
		}
		var refused connackRefused
		round.OldCredentialError = errString(oldErr)
		detail := fmt.Sprintf("the secret used before: %s", errString(oldErr))
		pass := errors.As(oldErr, &refused)
		if newSecret != secret {
			newErr := sendOne(h.MQTT, testbed.Unit{ID: u.ID, Secret: newSecret}, ev)
			pass = pass && newErr == nil
			detail += fmt.Sprintf("; the new secret: connect and publish %s", okOr(newErr))
		}
		r.check(rv.name+": old credential refused", pass, "%s", detail)
		if rv.restore != nil {
			if err := rv.restore(ctx, h, u.ID); err != nil {
				return err
			}
		}
		secret = newSecret
		r.Identity = append(r.Identity, round)
	}
	if stored.ID == "" {
		stored = ev.ledger()
	}
	r.note("delivery is verified for the %d events sent before the removal; %d more were sent after it", stored.LastSeq, ev.ledger().LastSeq-stored.LastSeq)
	hubAliveCheck(r, h)
	return s.verify(ctx, r, h, []unitLedger{stored}, db, metricAuthFailures)
}

// connectRound connects -identity-conns times as id at the same instant, starts a publisher on
// every accepted connection and checks that exactly one of them is live and the hub counts the
// device online once. It returns the round so far and the connections, still publishing.
func (s *suite) connectRound(ctx context.Context, r *caseResult, h *hub, id, secret string, ev *doorEvents, revocation string) (*identityRound, []*heldConn, error) {
	round := &identityRound{Revocation: revocation, Connects: s.o.identityConns}
	start := time.Now()
	accepted := connectAtOnce(h.MQTT, id, secret, s.o.identityConns)
	round.ConnectMS = ms(time.Since(start))
	round.Accepted = len(accepted)
	conns := make([]*heldConn, len(accepted))
	for i, c := range accepted {
		conns[i] = newHeldConn(c)
		go conns[i].run(id, ev)
	}
	// Every connection publishes at once: the live one has its publish acknowledged, a
	// stale one was closed by the take-over or is closed at this packet.
	deadline := time.Now().Add(identitySettle)
	for !settled(conns) && time.Now().Before(deadline) {
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return round, conns, err
		}
	}
	for _, hc := range conns {
		switch acks, closed, _ := hc.state(); {
		case acks > 0:
			round.Acked++
		case !closed.IsZero():
			round.Closed++
		}
	}
	if m, err := h.scrape(); err == nil {
		round.Online = m.Sum(metricDevicesOnline)[metricDevicesOnline]
	}
	name := "concurrent connects"
	if revocation != "none" {
		name = revocation + ": concurrent connects"
	}
	r.check(name+": one live connection", round.Acked == 1 && round.Closed == round.Accepted-1 && round.Online == 1,
		"%d connects at once answered within %.0f ms, %d accepted: %d had a publish acknowledged, %d were closed without one; %s %.0f",
		round.Connects, round.ConnectMS, round.Accepted, round.Acked, round.Closed, metricDevicesOnline, round.Online)
	return round, conns, nil
}

// judgeRevocation waits until every connection is closed after a revocation whose CLI ran from
// cliStart to cliEnd, and checks how long that took and that no publish was acknowledged once
// the hub had closed the first of them.
func (s *suite) judgeRevocation(ctx context.Context, r *caseResult, h *hub, round *identityRound, conns []*heldConn, cliStart, cliEnd time.Time) {
	round.CLIMS = ms(cliEnd.Sub(cliStart))
	deadline := time.After(time.Until(cliEnd.Add(revokedWithin + 3*time.Second))) // past the bound, to measure a late close
	for _, hc := range conns {
		select {
		case <-hc.done:
		case <-deadline:
		case <-ctx.Done():
		}
	}
	var lastClose, firstClose time.Time
	open := 0
	for _, hc := range conns {
		_, closed, _ := hc.state()
		switch {
		case closed.IsZero():
			open++
		case closed.After(cliStart) && (firstClose.IsZero() || closed.Before(firstClose)):
			firstClose = closed
		}
		if closed.After(lastClose) {
			lastClose = closed
		}
	}
	for _, hc := range conns {
		round.AckedAfterCLI += hc.acksAfter(cliEnd)
		if !firstClose.IsZero() {
			round.AckedAfterRevoked += hc.acksAfter(firstClose)
		}
	}
	round.AllClosedMS = ms(lastClose.Sub(cliEnd))
	poll(ctx, time.Second, 50*time.Millisecond, func() bool {
		m, err := h.scrape()
		round.OnlineAfter = m.Sum(metricDevicesOnline)[metricDevicesOnline]
		return err == nil && round.OnlineAfter == 0
	})
	r.check(round.Revocation+": every connection closed", open == 0 && lastClose.Sub(cliEnd) < revokedWithin && round.AckedAfterRevoked == 0 && round.OnlineAfter == 0,
		"the CLI ran %.0f ms; %d of %d connections still open; the last closed %.0f ms after the CLI returned (bound %s); publishes acknowledged after it returned: %d (until the watch saw the change), after the hub's first close: %d; %s %.0f",
		round.CLIMS, open, len(conns), round.AllClosedMS, revokedWithin, round.AckedAfterCLI, round.AckedAfterRevoked, metricDevicesOnline, round.OnlineAfter)
}

// connectAtOnce logs n connections in as id at the same instant (rawConnect in goroutines
// released together) and returns those the hub accepted.
func connectAtOnce(addr, id, secret string, n int) []net.Conn {
	var mu sync.Mutex
	var accepted []net.Conn
	var wg sync.WaitGroup
	release := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-release
			c, err := rawConnect(addr, id, secret)
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
		})
	}
	close(release)
	wg.Wait()
	return accepted
}

// sendOne connects as u, publishes one of its door events and disconnects.
func sendOne(addr string, u testbed.Unit, ev *doorEvents) error {
	return probeSession(addr, u, ev, &latencyRecorder{}, 1)
}

// heldConn is one of a round's connections: it publishes the unit's door events one at a time
// until the hub closes it, and records when each was acknowledged and when it was closed.
type heldConn struct {
	c    net.Conn
	done chan struct{}

	mu     sync.Mutex
	acks   []time.Time
	closed time.Time // when the hub closed it; zero while open
	err    error     // what ended it otherwise
}

func newHeldConn(c net.Conn) *heldConn { return &heldConn{c: c, done: make(chan struct{})} }

// run publishes as id until the hub closes the connection or stop closes it from this side.
func (hc *heldConn) run(id string, ev *doorEvents) {
	defer close(hc.done)
	for {
		err := ev.publish(hc.c)
		now := time.Now()
		hc.mu.Lock()
		switch {
		case err == nil:
			hc.acks = append(hc.acks, now)
		case closedByPeer(err):
			hc.closed = now
		default:
			hc.err = err
		}
		hc.mu.Unlock()
		if err != nil {
			return
		}
		// Waiting for the next publish, a close by the hub is seen the moment it happens.
		if closed, _ := waitClosed(hc.c, identityPublishEvery); closed {
			hc.mu.Lock()
			hc.closed = time.Now()
			hc.mu.Unlock()
			return
		}
	}
}

// state is the connection's acknowledged publishes so far, when the hub closed it (zero while
// open), and what else ended it.
func (hc *heldConn) state() (acks int, closed time.Time, err error) {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	return len(hc.acks), hc.closed, hc.err
}

// acksAfter counts the publishes acknowledged after t.
func (hc *heldConn) acksAfter(t time.Time) int {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	n := 0
	for _, a := range hc.acks {
		if a.After(t) {
			n++
		}
	}
	return n
}

// settled reports whether every connection has had a publish acknowledged or has ended.
func settled(conns []*heldConn) bool {
	for _, hc := range conns {
		if acks, closed, err := hc.state(); acks == 0 && closed.IsZero() && err == nil {
			return false
		}
	}
	return true
}

// stopAll closes the connections from this side and waits for their publishers.
func stopAll(conns []*heldConn) {
	for _, hc := range conns {
		hc.c.Close()
	}
	for _, hc := range conns {
		<-hc.done
	}
}

// errString is err's text, or "accepted" for none: what a login got.
func errString(err error) string {
	if err == nil {
		return "accepted"
	}
	return err.Error()
}

// okOr is "ok", or err's text.
func okOr(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}
