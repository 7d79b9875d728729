package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lockerhub/lockerhub/fleet/wire"
)

// An event stream ends soon after `lockerhub token revoke`, within registry.watch_interval;
// and a token holds no more streams than http.max_streams_per_token.
func TestStreamEndsWhenTokenRevoked(t *testing.T) {
	t.Parallel()
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

// Without InfluxDB the hub is degraded, not unready: the spool keeps the telemetry, and says
// so once a backlog builds.
func TestReadyWhileInfluxDown(t *testing.T) {
	t.Parallel()
	environ := env(t.TempDir(), "LOCKERHUB_INFLUX_URL=http://127.0.0.1:"+freePort(t), "LOCKERHUB_SPOOL_MAX_BYTES=1048576")
	hub := startHub(t, environ)
	type readiness struct {
		Status   string
		Checks   map[string]string
		Degraded []string
	}
	ready := func() (int, readiness, string) {
		code, body := hub.get(t, "/readyz")
		var got readiness
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("/readyz: %d %s", code, body)
		}
		return code, got, body
	}
	code, got, body := ready()
	if code != 200 || got.Status != "degraded" || fmt.Sprint(got.Degraded) != "[influxdb]" ||
		!strings.Contains(got.Checks["influxdb"], "influxdb unreachable") || got.Checks["database"] != "ok" || got.Checks["http"] != "ok" {
		t.Fatalf("/readyz with InfluxDB down: %d %s", code, body)
	}

	// A twentieth of the spool waiting: the backlog is reported, still ready.
	out, errOut, exit := run(t, environ, "device", "add", "--id", "bank-1", "--kind", "locker-bank", "--site", "elm", "--doors", "24", "--json")
	if exit != 0 {
		t.Fatalf("device add: %s", errOut)
	}
	var added struct{ Secret string }
	json.Unmarshal([]byte(out), &added)
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + hub.mqtt).
		SetClientID("bank-1").SetUsername("bank-1").SetPassword(added.Secret).SetProtocolVersion(4))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	doors := make([]wire.DoorState, 24)
	for i := range doors {
		doors[i] = wire.DoorState{Door: i + 1, Locked: true}
	}
	for seq := uint64(1); ; seq++ {
		payload, _ := wire.Marshal(wire.Telemetry{V: wire.Version, Seq: seq, TS: time.Now().UnixMilli(), Doors: doors})
		if tok := c.Publish("lockers/bank-1/telemetry", 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", seq, tok.Error())
		}
		if seq%50 != 0 {
			continue
		}
		if code, got, body = ready(); slices.Contains(got.Degraded, "spool") {
			break
		}
		if seq > 2000 {
			t.Fatalf("no spool backlog reported after %d snapshots: %d %s", seq, code, body)
		}
	}
	if code != 200 || !strings.Contains(got.Checks["spool"], "waiting") {
		t.Fatalf("/readyz with a spool backlog: %d %s", code, body)
	}
}
