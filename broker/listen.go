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

	"github.com/lockerhub/lockerhub/internal/backoff"
	"github.com/lockerhub/lockerhub/internal/ratelog"
)

// acceptBackoff is the wait after an accept error, as net/http.Server's: a listener out of file
// descriptors (EMFILE) or kernel buffers must keep serving once they are back, not stop for
// good as mochi's own accept loops do on any error. No jitter: the listener is alone in waiting.
var acceptBackoff = backoff.Policy{Min: 5 * time.Millisecond, Max: time.Second}

// fileReserve is how many file descriptors admission leaves to the rest of the hub (the HTTP
// server and its clients, the spool, the database, InfluxDB connections) below the process's
// limit.
const fileReserve = 1024

// Reasons a connection is refused at accept, or closed to make room for another; they label
// lockerhub_mqtt_connections_refused_total.
const (
	refusedMaxConnections = "max_connections"
	refusedMaxPending     = "max_pending"
	refusedSourcePending  = "max_pending_per_source"
	evictedPending        = "pending_evicted"
	refusedShuttingDown   = "shutting_down"
)

// admission bounds the connections the broker holds: all of them (MaxConnections), and those
// that have not yet authenticated (MaxPending), overall and per source address. A connection
// past a bound is closed at once, before any TLS or WebSocket handshake and before mochi spends
// two goroutines and its buffers on it, so that a flood of silent or unauthenticated
// connections costs little and cannot use up the file descriptors the units need.
//
// When the pending connections fill MaxPending, a connection from a source holding fewer of
// them than the busiest source still gets in: the busiest source's oldest pending connection
// is closed for it. A flood from a few addresses, each within its own bound, thus cannot keep
// units from other addresses out; only as many flooding addresses as the bound allows per
// address can (see docs/security.md).
type admission struct {
	maxConns, maxPending, maxPerSource int
	refused                            *prometheus.CounterVec

	mu      sync.Mutex
	conns   int
	pending map[netip.Prefix][]*admittedConn // pending connections per source, oldest first
	npend   int
	closed  bool // the broker is shutting down
}

func newAdmission(cfg Config, refused *prometheus.CounterVec) *admission {
	return &admission{
		maxConns: cfg.MaxConnections, maxPending: cfg.MaxPending, maxPerSource: cfg.MaxPendingPerSource,
		refused: refused, pending: make(map[netip.Prefix][]*admittedConn),
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

// admit counts c as held and pending, or returns why it is refused. It may close another
// pending connection to make room (see admission).
func (a *admission) admit(c *admittedConn) string {
	a.mu.Lock()
	var victim *admittedConn
	switch {
	case a.closed:
		a.mu.Unlock()
		return refusedShuttingDown
	case a.conns >= a.maxConns:
		a.mu.Unlock()
		return refusedMaxConnections
	case len(a.pending[c.src]) >= a.maxPerSource:
		a.mu.Unlock()
		return refusedSourcePending
	case a.npend >= a.maxPending:
		if victim = a.evictable(c.src); victim == nil {
			a.mu.Unlock()
			return refusedMaxPending
		}
		// The victim no longer counts as pending from here, so that a concurrent admit
		// cannot pick it too; its Close counts it as closed.
		a.unpend(victim)
	}
	a.conns++
	a.npend++
	a.pending[c.src] = append(a.pending[c.src], c)
	a.mu.Unlock()
	if victim != nil {
		a.refused.WithLabelValues(evictedPending).Inc()
		victim.reset()
	}
	return ""
}

// evictable returns the oldest pending connection of the source holding the most, if src
// would still hold fewer than that source once admitted; nil otherwise. It scans every source
// (at most maxPending of them) only when the pending connections are at their bound.
func (a *admission) evictable(src netip.Prefix) *admittedConn {
	var busiest []*admittedConn
	for _, q := range a.pending {
		if len(q) > len(busiest) {
			busiest = q
		}
	}
	if len(a.pending[src])+1 >= len(busiest) {
		return nil
	}
	return busiest[0]
}

// unpend removes c from the pending connections; a.mu is held.
func (a *admission) unpend(c *admittedConn) {
	q := a.pending[c.src]
	for i, p := range q {
		if p == c {
			q = append(q[:i], q[i+1:]...)
			a.npend--
			break
		}
	}
	if len(q) == 0 {
		delete(a.pending, c.src)
	} else {
		a.pending[c.src] = q
	}
}

// close refuses every connection from now on and resets those still pending. mochi's listeners
// disconnect their logged-in clients as the broker closes, but not a connection accepted in
// the meantime or not yet logged in: left open, a unit that reconnected just as its hub shut
// down would wait out its whole connect timeout before trying the hub that replaces it.
func (a *admission) close() {
	a.mu.Lock()
	a.closed = true
	var pending []*admittedConn
	for _, q := range a.pending {
		pending = append(pending, q...)
	}
	a.mu.Unlock()
	for _, c := range pending {
		c.reset()
	}
}

// counts returns the connections held and those of them pending.
func (a *admission) counts() (conns, pending float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return float64(a.conns), float64(a.npend)
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
	failures := 0
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
			failures++
			delay := acceptBackoff.Delay(failures)
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
		failures = 0
		ac := &admittedConn{Conn: c, adm: l.adm, src: sourceOf(c.RemoteAddr()), pending: true}
		if reason := l.adm.admit(ac); reason != "" {
			l.adm.refused.WithLabelValues(reason).Inc()
			abortOnClose(c)
			c.Close()
			continue
		}
		c.SetDeadline(time.Now().Add(l.timeout))
		return ac, nil
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
	if e := l.lastErr.Load(); e != nil && time.Since(e.at) < 2*acceptBackoff.Max {
		return fmt.Errorf("accept failing: %w", e.err)
	}
	return nil
}

// admittedConn is an admitted connection: pending until its device authenticates, counted until
// it is closed. It can be corked (see cork) so that packets written one at a time leave in one
// write.
type admittedConn struct {
	net.Conn
	adm     *admission
	src     netip.Prefix
	mu      sync.Mutex
	pending bool // not yet authenticated
	done    bool // closed

	// wmu orders every write: bytes held by a cork must leave before any written after it,
	// or a TLS or WebSocket stream above would be sent out of order.
	wmu    sync.Mutex
	corked bool
	held   *[]byte // what the cork holds, from corkBuffers
}

// corkBuffers are the buffers of corked connections, shared: a connection holds one only
// between cork and uncork, so an idle unit keeps none.
var corkBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxPooledCork bounds the buffers kept for reuse: one that held a large outgoing message is
// left to the collector.
const maxPooledCork = 64 << 10

// cork holds the connection's writes until uncork. The acker corks a connection while it
// writes the acknowledgements of the messages one spool commit made durable, so that they
// leave in one write (one syscall) instead of one each.
func (c *admittedConn) cork() {
	c.wmu.Lock()
	c.corked = true
	c.wmu.Unlock()
}

// uncork sends what the cork held in one write and lets later writes through. It reports
// whether there was anything to send, and the write's error.
func (c *admittedConn) uncork() (bool, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.corked = false
	if c.held == nil {
		return false, nil
	}
	b := c.held
	c.held = nil
	_, err := c.Conn.Write(*b)
	if cap(*b) <= maxPooledCork {
		*b = (*b)[:0]
		corkBuffers.Put(b)
	}
	return true, err
}

// Write sends p, or holds it while the connection is corked.
func (c *admittedConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.corked {
		return c.Conn.Write(p)
	}
	if c.held == nil {
		c.held = corkBuffers.Get().(*[]byte)
	}
	*c.held = append(*c.held, p...)
	return len(p), nil
}

// authenticated marks the connection as no longer pending. Calls after the first do nothing.
func (c *admittedConn) authenticated() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending && !c.done {
		c.pending = false
		c.adm.mu.Lock()
		c.adm.unpend(c)
		c.adm.mu.Unlock()
	}
}

func (c *admittedConn) Close() error {
	c.mu.Lock()
	if !c.done {
		c.adm.mu.Lock()
		if c.pending {
			c.adm.unpend(c) // does nothing if admission evicted it
		}
		c.adm.conns--
		c.adm.mu.Unlock()
		c.done = true
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// reset closes the connection with a TCP reset, as admission does when it evicts it.
func (c *admittedConn) reset() {
	abortOnClose(c.Conn)
	c.Close()
}

// abortOnClose makes closing c, if it is TCP, send a reset: no FIN handshake, and no TIME_WAIT
// kept for a peer the broker refuses.
func abortOnClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
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
