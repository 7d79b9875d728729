// Package http serves the hub's HTTP endpoints: liveness (/healthz), readiness (/readyz),
// Prometheus metrics (/metrics), the API under /api/v1/ and the dashboard at /.
package http

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lockerhub/lockerhub/fleet/http/web"
)

// Check reports whether one dependency of the hub can serve; nil means ready.
type Check func(ctx context.Context) error

// Server is the hub's HTTP server.
type Server struct {
	ln     net.Listener
	srv    *http.Server
	mux    *http.ServeMux
	checks map[string]Check
	stop   chan struct{} // closed by Close: long-lived responses (event streams) end
}

// NewServer returns a server exposing metrics from gatherer and readiness from checks (by name).
func NewServer(gatherer prometheus.Gatherer, checks map[string]Check) *Server {
	mux := http.NewServeMux()
	s := &Server{checks: checks, mux: mux, stop: make(chan struct{})}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.Handle("GET /", web.Handler()) // the technician dashboard; it signs in to the API with a token
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	return s
}

// Open listens on addr (host:port; port 0 picks one) and serves in the background.
func (s *Server) Open(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.ln = ln
	go s.srv.Serve(ln)
	return nil
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

// ServeBrokerAuth serves h (fleet/brokerauth) under /broker/: the authentication and ACL
// endpoints an external EMQX or VerneMQ calls for every device that connects, publishes or
// subscribes. h checks the brokers' shared secret itself.
func (s *Server) ServeBrokerAuth(h http.Handler) {
	s.mux.Handle("POST /broker/", h)
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops accepting requests, ends event streams and waits for the requests in flight
// until ctx is done. It must be called once.
func (s *Server) Close(ctx context.Context) error {
	close(s.stop)
	if err := s.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// handleReady answers 200 when every check passes and 503 otherwise, with each check's state,
// so that a load balancer and a person reading the body both learn what is wrong.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	names := make([]string, 0, len(s.checks))
	for name := range s.checks {
		names = append(names, name)
	}
	sort.Strings(names)
	status, code := "ready", http.StatusOK
	results := make(map[string]string, len(names))
	for _, name := range names {
		results[name] = "ok"
		if err := s.checks[name](ctx); err != nil {
			results[name] = err.Error()
			status, code = "unavailable", http.StatusServiceUnavailable
		}
	}
	writeJSON(w, code, map[string]any{"status": status, "checks": results})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
