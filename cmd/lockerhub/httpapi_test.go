package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// An event stream ends soon after `lockerhub token revoke`, within registry.watch_interval;
// and a token holds no more streams than http.max_streams_per_token.
func TestStreamEndsWhenTokenRevoked(t *testing.T) {
	environ := env(t.TempDir(), "LOCKERHUB_INFLUX_URL=http://127.0.0.1:"+freePort(t),
		"LOCKERHUB_REGISTRY_WATCH_INTERVAL=200ms", "LOCKERHUB_HTTP_MAX_STREAMS_PER_TOKEN=1")
	tok := createToken(t, environ, "--name", "control room", "--role", "viewer")
	hub := startHub(t, environ)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+hub.http+"/api/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v %v", resp, err)
	}
	ended := make(chan struct{})
	go func() {
		io.Copy(io.Discard, resp.Body)
		close(ended)
	}()
	if code, body := hub.getAs(t, tok.Token, "/api/v1/stream"); code != 429 || !strings.Contains(body, "rate_limited") {
		t.Fatalf("a second stream of the token with http.max_streams_per_token=1: %d %s", code, body)
	}

	if _, errOut, code := run(t, environ, "token", "revoke", "--id", tok.ID); code != 0 {
		t.Fatalf("token revoke: exit %d: %s", code, errOut)
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second): // the interval, give or take a loaded machine; a keepalive is 15 s
		t.Fatal("the stream of a revoked token is still open")
	}
}

// Without InfluxDB the hub is degraded, not unready: the spool keeps the telemetry.
func TestReadyWhileInfluxDown(t *testing.T) {
	hub := startHub(t, env(t.TempDir(), "LOCKERHUB_INFLUX_URL=http://127.0.0.1:"+freePort(t)))
	code, body := hub.get(t, "/readyz")
	var got struct {
		Status   string
		Checks   map[string]string
		Degraded []string
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	if code != 200 || got.Status != "degraded" || fmt.Sprint(got.Degraded) != "[influxdb]" ||
		!strings.Contains(got.Checks["influxdb"], "influxdb unreachable") || got.Checks["database"] != "ok" || got.Checks["http"] != "ok" {
		t.Fatalf("/readyz with InfluxDB down: %d %s", code, body)
	}
}
