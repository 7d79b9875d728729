package http_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	lhhttp "github.com/lockerhub/lockerhub/fleet/http"
)

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "lockerhub_test_things_total", Help: "t"})
	reg.MustRegister(c)
	c.Add(3)
	var dbErr atomic.Pointer[error] // set by the test, read by the handler goroutine
	s := lhhttp.NewServer(reg, map[string]lhhttp.Check{
		"broker": func(context.Context) error { return nil },
		"database": func(context.Context) error {
			if e := dbErr.Load(); e != nil {
				return *e
			}
			return nil
		},
	})
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
	code, body := get("/readyz")
	if code != 200 || !strings.Contains(body, `"status":"ready"`) {
		t.Errorf("/readyz while ready: %d %s", code, body)
	}

	e := errors.New("database is locked")
	dbErr.Store(&e)
	code, body = get("/readyz")
	var got struct {
		Status string
		Checks map[string]string
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if code != 503 || got.Status != "unavailable" || got.Checks["database"] != "database is locked" || got.Checks["broker"] != "ok" {
		t.Errorf("/readyz while the database fails: %d %+v", code, got)
	}
	if code, _ := get("/nope"); code != 404 {
		t.Errorf("/nope: %d", code)
	}
}

// The profiler is served only when enabled.
func TestPprof(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		s := lhhttp.NewServer(prometheus.NewRegistry(), nil)
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
