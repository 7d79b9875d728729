package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/internal/ratelog"
)

// Accept backoff after an error, as net/http.Server does: a listener out of file descriptors
// (EMFILE) or kernel buffers must keep serving once they are back, not stop for good as mochi's
// own accept loops do on any error.
const (
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second
)

// fileReserve is how many file descriptors admission leaves to the rest of the hub (the HTTP
// server and its clients, the spool, the database, InfluxDB connections) below the process's
// limit.
const fileReserve = 1024

// Reasons a connection is refused at accept; they label lockerhub_mqtt_connections_refused_total.
const (
	refusedMaxConnections = "max_connections"
	refusedMaxPending     = "max_pending"
	refusedSourcePending  = "max_pending_per_source"
)

// admission bounds the connections the broker holds: all of them (MaxConnections), and those
// that have not yet authenticated (MaxPending), overall and per source address. A connection
// past a bound is closed at once, before any TLS or WebSocket handshake and before mochi spends
// two goroutines and its buffers on it, so that a flood of silent or unauthenticated
// connections costs little and cannot use up the file descriptors the units need.
type admission struct {
	maxConns, maxPending, maxPerSource int
	refused                            *prometheus.CounterVec

	mu        sync.Mutex
	conns     int
	pending   int
	perSource map[netip.Prefix]int // pending connections per source
}

func newAdmission(cfg Config, refused *prometheus.CounterVec) *admission {
	return &admission{
		maxConns: cfg.MaxConnections, maxPending: cfg.MaxPending, maxPerSource: cfg.MaxPendingPerSource,
		refused: refused, perSource: make(map[netip.Prefix]int),
	}
}

// sourceOf is the unit of a per-source bound: the host for IPv4, the /64 for IPv6, since one
// IPv6 host commonly holds a whole /64 and could otherwise use a fresh address per connection.
func sourceOf(addr net.Addr) netip.Prefix {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Prefix{}
	}
	ip := ap.Addr().Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// admit counts a new connection from src, or returns why it is refused.
func (a *admission) admit(src netip.Prefix) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.conns >= a.maxConns:
		return refusedMaxConnections
	case a.pending >= a.maxPending:
		return refusedMaxPending
	case a.perSource[src] >= a.maxPerSource:
		return refusedSourcePending
	}
	a.conns++
	a.pending++
	a.perSource[src]++
	return ""
}

// authenticated moves a connection from pending to established.
func (a *admission) authenticated(src netip.Prefix) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending--
	if a.perSource[src]--; a.perSource[src] <= 0 {
		delete(a.perSource, src)
	}
}

// counts returns the connections held and those of them pending.
func (a *admission) counts() (conns, pending float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return float64(a.conns), float64(a.pending)
}

func (a *admission) closed() {
	a.mu.Lock()
	a.conns--
	a.mu.Unlock()
}

// guardedListener is the raw TCP side of one of the broker's listeners (below TLS and
// WebSocket): it survives accept errors, applies admission, and gives every connection until
// the connect timeout to finish its handshake and send CONNECT (see Options.ConnectTimeout).
type guardedListener struct {
	net.Listener
	name    string
	adm     *admission
	timeout time.Duration
	log     *slog.Logger
	warn    *ratelog.Limiter
	errs    prometheus.Counter

	closing   atomic.Bool
	closed    chan struct{}
	closeOnce sync.Once
	lastErr   atomic.Pointer[acceptError] // the last accept error, for readiness
	died      atomic.Pointer[acceptError] // set when the listener stopped without Close
}

type acceptError struct {
	at  time.Time
	err error
}

func newGuardedListener(name string, ln net.Listener, adm *admission, timeout time.Duration, log *slog.Logger, errs prometheus.Counter) *guardedListener {
	return &guardedListener{Listener: ln, name: name, adm: adm, timeout: timeout, log: log, warn: ratelog.New(log, 10*time.Second),
		errs: errs, closed: make(chan struct{})}
}

// Accept returns the next admitted connection. It returns an error only once the listener is
// closed: other errors are logged, counted and retried after a backoff.
func (l *guardedListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if l.closing.Load() {
				return nil, err
			}
			if errors.Is(err, net.ErrClosed) {
				// Closed under us (not by Close): nothing will ever be accepted again.
				l.died.Store(&acceptError{time.Now(), err})
				l.log.Error("mqtt listener stopped", "listener", l.name, "error", err)
				return nil, err
			}
			delay = min(max(2*delay, minAcceptDelay), maxAcceptDelay)
			l.lastErr.Store(&acceptError{time.Now(), err})
			l.errs.Inc()
			l.warn.Warn("accept-"+l.name, "mqtt accept failed; retrying", "listener", l.name, "error", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-l.closed:
				return nil, net.ErrClosed
			}
			continue
		}
		delay = 0
		src := sourceOf(c.RemoteAddr())
		if reason := l.adm.admit(src); reason != "" {
			l.adm.refused.WithLabelValues(reason).Inc()
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // a reset: no FIN handshake, no TIME_WAIT kept for a refused peer
			}
			c.Close()
			continue
		}
		c.SetDeadline(time.Now().Add(l.timeout))
		return &admittedConn{Conn: c, adm: l.adm, src: src, pending: true}, nil
	}
}

func (l *guardedListener) Close() error {
	l.closing.Store(true)
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// check reports whether the listener serves: an error when it stopped, or while accepting
// fails (an accept error in the last two backoff periods).
func (l *guardedListener) check() error {
	if d := l.died.Load(); d != nil {
		return fmt.Errorf("stopped at %s: %w", d.at.UTC().Format(time.RFC3339), d.err)
	}
	if e := l.lastErr.Load(); e != nil && time.Since(e.at) < 2*maxAcceptDelay {
		return fmt.Errorf("accept failing: %w", e.err)
	}
	return nil
}

// admittedConn is an admitted connection: pending until its device authenticates, counted until
// it is closed.
type admittedConn struct {
	net.Conn
	adm     *admission
	src     netip.Prefix
	mu      sync.Mutex
	pending bool // not yet authenticated
	done    bool // closed
}

// authenticated marks the connection as no longer pending. Calls after the first do nothing.
func (c *admittedConn) authenticated() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending && !c.done {
		c.pending = false
		c.adm.authenticated(c.src)
	}
}

func (c *admittedConn) Close() error {
	c.mu.Lock()
	if !c.done {
		if c.pending {
			c.adm.authenticated(c.src) // no longer pending either
		}
		c.done = true
		c.adm.closed()
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// admittedOf finds the admitted TCP connection under a client's connection (plain, TLS or
// WebSocket); nil for the inline client.
func admittedOf(c net.Conn) *admittedConn {
	for c != nil {
		switch v := c.(type) {
		case *admittedConn:
			return v
		case *tls.Conn:
			c = v.NetConn()
		case *wsConn:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}
