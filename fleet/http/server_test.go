package http_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	lhhttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/internal/syncbuf"
)

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "lockerhub_test_things_total", Help: "t"})
	reg.MustRegister(c)
	c.Add(3)
	var dbErr atomic.Pointer[error] // set by the test, read by the handler goroutine
	var influxErr atomic.Pointer[error]
	s := lhhttp.NewServer(reg, map[string]lhhttp.Check{
		"broker": func(context.Context) error { return nil },
		"influxdb": func(context.Context) error {
			if e := influxErr.Load(); e != nil {
				return lhhttp.Degraded(*e)
			}
			return nil
		},
		"database": func(context.Context) error {
			if e := dbErr.Load(); e != nil {
				return *e
			}
			return nil
		},
	}, lhhttp.Options{})
	if err := s.Open("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	base := "http://" + s.Addr().String()

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "lockerhub_test_things_total 3") {
		t.Errorf("/metrics: %d %s", code, body)
	}
	type readiness struct {
		Status      string
		Checks      map[string]string
		Degraded    []string
		Unavailable []string
	}
	ready := func() (int, readiness) {
		t.Helper()
		code, body := get("/readyz")
		var got readiness
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("/readyz: %d %s: %v", code, body, err)
		}
		return code, got
	}
	code, got := ready()
	if code != 200 || got.Status != "ready" || got.Checks["http"] != "ok" || len(got.Checks) != 4 || len(got.Degraded)+len(got.Unavailable) != 0 {
		t.Errorf("/readyz while ready: %d %+v", code, got)
	}

	// A degraded dependency is reported, and the hub stays ready for traffic.
	ie := errors.New("influxdb unreachable, telemetry is spooled")
	influxErr.Store(&ie)
	code, got = ready()
	if code != 200 || got.Status != "degraded" || got.Checks["influxdb"] != ie.Error() || fmt.Sprint(got.Degraded) != "[influxdb]" || len(got.Unavailable) != 0 {
		t.Errorf("/readyz while influxdb is degraded: %d %+v", code, got)
	}

	// A failing one makes it unavailable, degraded or not.
	e := errors.New("database is locked")
	dbErr.Store(&e)
	code, got = ready()
	if code != 503 || got.Status != "unavailable" || got.Checks["database"] != "database is locked" || got.Checks["broker"] != "ok" ||
		fmt.Sprint(got.Unavailable) != "[database]" || fmt.Sprint(got.Degraded) != "[influxdb]" {
		t.Errorf("/readyz while the database fails: %d %+v", code, got)
	}
	if code, _ := get("/nope"); code != 404 {
		t.Errorf("/nope: %d", code)
	}
}

// The profiler is served only when enabled.
func TestPprof(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		s := lhhttp.NewServer(prometheus.NewRegistry(), nil, lhhttp.Options{})
		if enabled {
			s.EnablePprof()
		}
		if err := s.Open("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get("http://" + s.Addr().String() + "/debug/pprof/goroutine?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		s.Close(context.Background())
		if served := resp.StatusCode == 200 && strings.Contains(string(body), "goroutine profile"); served != enabled {
			t.Errorf("enabled %v: /debug/pprof/goroutine answered %d", enabled, resp.StatusCode)
		}
	}
}

// A server that stops serving other than by Close says so: its check fails and it logs why.
func TestStoppedServingIsReported(t *testing.T) {
	var logs syncbuf.Buffer
	s := lhhttp.NewServer(prometheus.NewRegistry(), nil, lhhttp.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lhhttp.ServeListener(s, ln)
	defer s.Close(context.Background())
	if err := s.Check(context.Background()); err != nil {
		t.Fatalf("serving: %v", err)
	}
	ln.Close() // accepting now fails for good, as no retry can mend
	deadline := time.Now().Add(5 * time.Second)
	for s.Check(context.Background()) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the check still passes after the server stopped serving")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Check(context.Background()); !strings.Contains(err.Error(), "http server stopped") {
		t.Errorf("check: %v", err)
	}
	if !strings.Contains(logs.String(), "http server stopped") {
		t.Errorf("not logged:\n%s", logs.String())
	}
}

// The server holds at most MaxConnections connections, idle ones included; those past it are
// closed at once and counted, and it serves again once connections are given back.
func TestMaxConnections(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := lhhttp.NewServer(reg, nil, lhhttp.Options{Registerer: reg, MaxConnections: 2})
	if err := s.Open("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	addr := s.Addr().String()

	// get sends one request on c and returns the answer's status, or the error.
	get := func(c net.Conn, path string) (int, error) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: hub\r\n\r\n", path); err != nil {
			return 0, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	held := []net.Conn{dial(), dial()} // kept alive, idle after their request
	for _, c := range held {
		if code, err := get(c, "/healthz"); code != 200 {
			t.Fatalf("connection within the limit: %d %v", code, err)
		}
	}
	if code, err := get(dial(), "/healthz"); err == nil {
		t.Fatalf("a third connection was served (%d) with max 2", code)
	}

	held[0].Close()
	var metrics string
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if metrics = string(b); resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not served again after a connection closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// At least the third connection; more if a request above came while the first was closing.
	if m := regexp.MustCompile(`lockerhub_http_connections_refused_total (\d+)`).FindStringSubmatch(metrics); m == nil || m[1] == "0" {
		t.Errorf("refusal not counted:\n%s", metrics)
	}
	if !strings.Contains(metrics, "lockerhub_http_connections 2\n") {
		t.Errorf("open connections not reported as 2 (one held, one asking):\n%s", metrics)
	}
}
