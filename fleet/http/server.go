// Package http serves the hub's HTTP endpoints: liveness (/healthz), readiness (/readyz),
// Prometheus metrics (/metrics), the API under /api/v1/ and the dashboard at /.
//
// The server is reachable by anyone on the network, so what one client can take is bounded:
// request headers (MaxHeaderBytes), bodies (each handler that reads one caps it), the time a
// client may take to send its headers and keep an idle connection, and the connections held
// at once (Options.MaxConnections, beyond which a connection is closed as soon as it is
// accepted). Accept errors such as running out of file descriptors are retried by
// net/http.Server with a backoff; should serving stop for any other reason, Check fails and
// the error is logged.
package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/http/web"
	"github.com/lockerhub/lockerhub/internal/logs"
	"github.com/lockerhub/lockerhub/internal/ratelog"
)

// Check reports whether one dependency of the hub can serve; nil means ready. An error for
// which errors.Is(err, ErrDegraded) holds (see Degraded) means the hub serves, with less.
type Check func(ctx context.Context) error

// ErrDegraded marks the error of a check whose dependency is down while the hub still does its
// job without it: InfluxDB, say, while the spool keeps the telemetry. /readyz reports it and
// stays 200, so that a load balancer keeps sending traffic.
var ErrDegraded = errors.New("degraded")

// Degraded returns err marked as degraded: its message is unchanged and errors.Is(_,
// ErrDegraded) holds, as does errors.Is(_, err). Degraded(nil) is nil.
func Degraded(err error) error {
	if err == nil {
		return nil
	}
	return degraded{err}
}

type degraded struct{ error }

func (d degraded) Unwrap() []error { return []error{d.error, ErrDegraded} }

// Limits of the server. Headers hold a bearer token and a few short fields; a client that
// takes longer than readHeaderTimeout to send them, or keeps a connection idle longer than
// idleTimeout, gives its connection back (browsers reconnect without a fuss).
const (
	DefaultMaxConnections = 4096
	maxHeaderBytes        = 16 << 10
	readHeaderTimeout     = 10 * time.Second
	idleTimeout           = 30 * time.Second
	checkTimeout          = 5 * time.Second
)

// Options tunes the server; zero fields take their defaults.
type Options struct {
	Logger     *slog.Logger          // nil discards
	Registerer prometheus.Registerer // receives the server's metrics; nil registers none
	// MaxConnections bounds the connections held at once, idle ones included (default
	// DefaultMaxConnections). Past it, a new connection is closed as soon as it is accepted
	// and counted in lockerhub_http_connections_refused_total.
	MaxConnections int
	// Addons are parts a program adds to the dashboard and the API, such as the panel of
	// `lockerhub demo`; the hub itself has none.
	Addons []Addon
}

// Addon is a part a program adds to the hub: files added to the dashboard (see web.Addon) and
// one read-only endpoint, GET /api/v1/{Name}, open to any token (viewer and above).
type Addon struct {
	web.Addon
	// Get answers the endpoint with a value to encode as JSON. It is given the request's token
	// so that it can leave out what lies outside the token's sites.
	Get func(r *http.Request, tok *fleet.Token) (any, error)
}

// Server is the hub's HTTP server.
type Server struct {
	ln       net.Listener
	addons   []Addon
	srv      *http.Server
	mux      *http.ServeMux
	checks   map[string]Check
	log      *slog.Logger
	stop     chan struct{} // closed by Close: long-lived responses (event streams) end
	maxConns int64
	open     atomic.Int64 // connections held
	refused  prometheus.Counter
	refusals *ratelog.Limiter
	stopped  atomic.Pointer[error] // why Serve returned, if not because of Close

	bgCtx     context.Context // background work (the failed-login batches) until Close
	bgCancel  context.CancelFunc
	bg        sync.WaitGroup
	closeOnce sync.Once
}

// NewServer returns a server exposing metrics from gatherer and readiness from checks (by name),
// to which it adds its own, "http".
func NewServer(gatherer prometheus.Gatherer, checks map[string]Check, opts Options) *Server {
	opts.Logger = logs.OrDiscard(opts.Logger)
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = DefaultMaxConnections
	}
	mux := http.NewServeMux()
	s := &Server{checks: map[string]Check{}, mux: mux, addons: opts.Addons, log: opts.Logger, stop: make(chan struct{}),
		maxConns: int64(opts.MaxConnections), refusals: ratelog.New(opts.Logger, 10*time.Second),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lockerhub_http_connections_refused_total",
			Help: "HTTP connections closed as soon as accepted because http.max_connections were open.",
		})}
	for name, c := range checks {
		s.checks[name] = c
	}
	s.checks["http"] = s.Check
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(s.refused, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "lockerhub_http_connections",
			Help: "HTTP connections open, idle ones included; at most http.max_connections.",
		}, func() float64 { return float64(s.open.Load()) }))
	}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	dashboard := make([]web.Addon, len(opts.Addons))
	for i, ad := range opts.Addons {
		dashboard[i] = ad.Addon
	}
	mux.Handle("GET /", web.Handler(dashboard...)) // the technician dashboard; it signs in to the API with a token
	s.srv = &http.Server{
		Handler:           noSniff(mux),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// net/http reports accept errors it retries (EMFILE) and bad TLS handshakes here.
		ErrorLog: slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	return s
}

// noSniff keeps browsers from taking a response for another type than it says it is, such as
// a JSON error echoing a client's input run as a script.
func noSniff(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

// Open listens on addr (host:port; port 0 picks one) and serves in the background.
func (s *Server) Open(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.serve(ln)
	return nil
}

// serve serves ln in the background until Close. If serving stops otherwise, the reason is
// logged and Check returns it.
func (s *Server) serve(ln net.Listener) {
	s.ln = ln
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		err := s.srv.Serve(&limitListener{Listener: ln, s: s})
		if errors.Is(err, http.ErrServerClosed) {
			return
		}
		// Logged before Check sees it, so that whoever finds the check failing finds the log
		// line too.
		s.log.Error("http server stopped: the API, the dashboard and the metrics are unreachable", "addr", ln.Addr().String(), "error", err)
		s.stopped.Store(&err)
	}()
}

// Check returns an error once the server has stopped serving other than through Close.
func (s *Server) Check(context.Context) error {
	if err := s.stopped.Load(); err != nil {
		return fmt.Errorf("http server stopped: %w", *err)
	}
	return nil
}

// limitListener closes the connections accepted past the server's MaxConnections at once, as
// Mosquitto's max_connections does: a refusal costs an accept and a close, where a connection
// served costs a goroutine and buffers until it times out. Accept returns the listener's errors
// as they are, since net/http.Server retries only those whose Temporary() is true (EMFILE,
// ENFILE, ECONNABORTED) and would stop serving on a wrapped one.
type limitListener struct {
	net.Listener
	s *Server
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.s.open.Add(1) <= l.s.maxConns {
			return &countedConn{Conn: c, open: &l.s.open}, nil
		}
		l.s.open.Add(-1)
		l.s.refused.Inc()
		l.s.refusals.Warn("max_connections", "http connection refused: http.max_connections are open", "remote", c.RemoteAddr().String(), "max", l.s.maxConns)
		c.Close()
	}
}

// countedConn gives its place back when it is closed, by net/http or by whoever hijacked it.
type countedConn struct {
	net.Conn
	open *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}

// EnablePprof serves Go's profiler under /debug/pprof/, for finding where a loaded hub spends
// its time. It shows the hub's internals to anyone who can reach the port, so it is off unless
// configured (http.pprof), and meant for a trusted network.
func (s *Server) EnablePprof() {
	s.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	s.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	s.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

// ServeBrokerAuth serves h (broker/external) under /broker/: the authentication and ACL
// endpoints an external EMQX or VerneMQ calls for every device that connects, publishes or
// subscribes. h checks the brokers' shared secret, and bounds the bodies it reads, itself.
func (s *Server) ServeBrokerAuth(h http.Handler) {
	s.mux.Handle("POST /broker/", h)
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops accepting requests, ends event streams, waits for the requests in flight until
// ctx is done, and then writes what background work holds (failed logins to the audit trail).
// Calls after the first do nothing.
func (s *Server) Close(ctx context.Context) (err error) {
	s.closeOnce.Do(func() {
		close(s.stop)
		if err = s.srv.Shutdown(ctx); errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.bgCancel()
		s.bg.Wait()
	})
	return err
}

// Readiness as /readyz reports it.
const (
	statusReady       = "ready"
	statusDegraded    = "degraded"
	statusUnavailable = "unavailable"
)

// readiness is the body of /readyz: the overall status, each check's "ok" or error message,
// and the names of the checks that are degraded and that fail.
type readiness struct {
	Status      string            `json:"status"`
	Checks      map[string]string `json:"checks"`
	Degraded    []string          `json:"degraded"`
	Unavailable []string          `json:"unavailable"`
}

// handleReady runs every check at once, each within checkTimeout, and answers 200 when none
// fails ("ready", or "degraded" when some report a degraded dependency) and 503 otherwise
// ("unavailable"), with each check's state, so that a load balancer and a person reading the
// body both learn what is wrong.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	names := make([]string, 0, len(s.checks))
	for name := range s.checks {
		names = append(names, name)
	}
	sort.Strings(names)
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
			defer cancel()
			errs[i] = s.checks[name](ctx)
		})
	}
	wg.Wait()
	body := readiness{Status: statusReady, Checks: make(map[string]string, len(names)), Degraded: []string{}, Unavailable: []string{}}
	for i, name := range names {
		switch err := errs[i]; {
		case err == nil:
			body.Checks[name] = "ok"
		case errors.Is(err, ErrDegraded):
			body.Checks[name] = err.Error()
			body.Degraded = append(body.Degraded, name)
		default:
			body.Checks[name] = err.Error()
			body.Unavailable = append(body.Unavailable, name)
		}
	}
	code := http.StatusOK
	switch {
	case len(body.Unavailable) > 0:
		body.Status, code = statusUnavailable, http.StatusServiceUnavailable
	case len(body.Degraded) > 0:
		body.Status = statusDegraded
	}
	writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
