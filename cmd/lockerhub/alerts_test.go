package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/agent"
	"github.com/lockerhub/lockerhub/edge-agent/hardware"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/notify"
	"github.com/lockerhub/lockerhub/internal/testhub"
)

// fastClock runs a simulator's physics faster than real time, so that a fridge whose
// compressor failed warms past the food-safety limit in seconds instead of a quarter hour.
type fastClock struct {
	start time.Time
	speed float64
}

func (c fastClock) Now() time.Time {
	return c.start.Add(time.Duration(float64(time.Since(c.start)) * c.speed))
}

// simulatedUnit runs an edge agent with a simulated unit in the test process, against the hub.
type simulatedUnit struct {
	hw     *hardware.Simulator
	cancel context.CancelFunc
	done   chan struct{}
}

// runUnit starts the unit; tune, if given, changes the agent's configuration first.
func runUnit(t *testing.T, hub, id, secret, dir string, hw *hardware.Simulator, tune ...func(*agent.Config)) *simulatedUnit {
	t.Helper()
	cfg := agent.DefaultConfig()
	cfg.Hubs, cfg.DeviceID, cfg.Secret, cfg.DataDir = []string{"tcp://" + hub}, id, secret, dir
	cfg.TelemetryInterval = 200 * time.Millisecond
	cfg.ReconnectMax = time.Second
	for _, f := range tune {
		f(&cfg)
	}
	a, err := agent.New(cfg, hw, agent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	u := &simulatedUnit{hw: hw, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(u.done)
		a.Run(ctx)
	}()
	t.Cleanup(u.stop)
	testhub.WaitFor(t, 20*time.Second, id+" online", a.Online)
	return u
}

func (u *simulatedUnit) stop() {
	u.cancel()
	<-u.done
}

// fastAlertRules are default rules with durations short enough for a test: a forced door at
// once, a unit offline after a second. It ends with the rules list, so a test can add rules.
const fastAlertRules = `
tick: 100ms
authorize_window: 5s
heartbeat_timeout: 5s
telemetry_interval: 200ms
rules:
  - {name: device-offline, kind: offline, severity: major, for: 1s}
  - {name: forced-entry, kind: forced_entry, severity: critical}
`

// testAlertRules adds a cold-chain rule and notifications: %[1]s is the webhook receiver, %[2]s
// the Alertmanager.
const testAlertRules = `
notify:
  external_url: http://hub.test
  webhooks:
    - {name: on-call, url: "%[1]s", secret: ` + testWebhookSecret + `, severities: [critical]}
  alertmanager:
    - {name: ops, url: "%[2]s", resend_interval: 500ms}` + fastAlertRules + `  - {name: cold-holding, kind: temp_above, severity: major, class: chilled, threshold: 5, clear_threshold: 4.5, for: 1s}
`

const testWebhookSecret = "e2e-secret-0123456789"

// captured is what a test receiver got: each request's path, signature header and body.
type captured struct {
	mu       sync.Mutex
	requests []capturedRequest
}

type capturedRequest struct {
	path, signature string
	body            []byte
}

func (c *captured) serve(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.requests = append(c.requests, capturedRequest{r.URL.Path, r.Header.Get("X-Lockerhub-Signature"), body})
		c.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (c *captured) all() []capturedRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]capturedRequest(nil), c.requests...)
}

// The health rules against the real hub and simulated units with their fault knobs, and the
// notifications they send.
func TestAlertsEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var hooked, managed captured
	rules := filepath.Join(dir, "alerts.yaml")
	if err := os.WriteFile(rules, []byte(fmt.Sprintf(testAlertRules, hooked.serve(t).URL, managed.serve(t).URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	environ := env(filepath.Join(dir, "hub"), "LOCKERHUB_INFLUX_URL=http://127.0.0.1:"+freePort(t), "LOCKERHUB_ALERTS_FILE="+rules)
	secrets := map[string]string{}
	for _, d := range [][]string{{"bank-1", "locker-bank", "4"}, {"fridge-1", "fridge", "2"}} {
		out, errOut, code := run(t, environ, "device", "add", "--id", d[0], "--kind", d[1], "--site", "oak", "--doors", d[2], "--json")
		var added struct{ Secret string }
		if code != 0 || json.Unmarshal([]byte(out), &added) != nil {
			t.Fatalf("device add %s: %s", d[0], errOut)
		}
		secrets[d[0]] = added.Secret
	}
	hub := startHub(t, environ)
	hubURL := "http://" + hub.http
	operator := createToken(t, environ, "--name", "ops", "--role", "operator").Token
	tech := createToken(t, environ, "--name", "tech", "--role", "technician").Token

	alertsOf := func(device string) []fleet.Alert {
		t.Helper()
		code, body := hub.getAs(t, tech, "/api/v1/alerts?state=open&device="+device)
		var res struct{ Alerts []fleet.Alert }
		if code != 200 || json.Unmarshal([]byte(body), &res) != nil {
			t.Fatalf("GET alerts: %d %s", code, body)
		}
		return res.Alerts
	}
	waitAlert := func(device, rule string) fleet.Alert {
		t.Helper()
		var found fleet.Alert
		testhub.WaitFor(t, 30*time.Second, rule+" alert on "+device, func() bool {
			for _, a := range alertsOf(device) {
				if a.Rule == rule {
					found = a
					return true
				}
			}
			return false
		})
		return found
	}

	bankHW, err := hardware.NewSimulator(hardware.SimConfig{Kind: hardware.KindLockerBank, Doors: 4, Seed: 1,
		OpenDelay: 200 * time.Millisecond, HoldOpen: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runUnit(t, hub.mqtt, "bank-1", secrets["bank-1"], filepath.Join(dir, "bank-1"), bankHW)
	fridgeHW, err := hardware.NewSimulator(hardware.SimConfig{Kind: hardware.KindFridge, Doors: 2, Seed: 2,
		Clock: fastClock{start: time.Now(), speed: 600}})
	if err != nil {
		t.Fatal(err)
	}
	fridge := runUnit(t, hub.mqtt, "fridge-1", secrets["fridge-1"], filepath.Join(dir, "fridge-1"), fridgeHW)
	parent := t // units outlive the subtest that starts them

	t.Run("a remote unlock is not a forced door", func(t *testing.T) {
		out, errOut, code := run(t, environ, "unlock", "--hub", hubURL, "--token", operator, "--device", "bank-1", "--door", "1", "--reason", "courier")
		if code != 0 || !strings.Contains(out, "opened") {
			t.Fatalf("unlock: %s%s", out, errOut)
		}
		time.Sleep(time.Second) // ten evaluations
		if a := alertsOf("bank-1"); len(a) != 0 {
			t.Fatalf("alerts after a remote unlock: %+v", a)
		}
	})

	t.Run("a forced door is a critical alert at once", func(t *testing.T) {
		if err := bankHW.SetFault(hardware.FaultForced, 1, true); err != nil {
			t.Fatal(err)
		}
		a := waitAlert("bank-1", "forced-entry")
		if a.Door != 1 || a.Severity != fleet.SeverityCritical || a.Site != "oak" {
			t.Fatalf("forced-entry alert: %+v", a)
		}
		out, errOut, code := run(t, environ, "alerts", "ack", fmt.Sprint(a.ID), "--hub", hubURL, "--token", tech, "--note", "on my way")
		if code != 0 || !strings.Contains(out, "acknowledged") {
			t.Fatalf("alerts ack: %s%s", out, errOut)
		}
		out, _, _ = run(t, environ, "alerts", "--hub", hubURL, "--token", tech, "--device", "bank-1")
		if !strings.Contains(out, "forced-entry") || !strings.Contains(out, "acknowledged") || !strings.Contains(out, "tech (token:") {
			t.Fatalf("alerts list:\n%s", out)
		}
		out, _, _ = run(t, environ, "audit", "export", "--device", "bank-1")
		if !strings.Contains(out, `"actor_name":"tech","action":"alert.ack"`) || !strings.Contains(out, `"note":"on my way"`) {
			t.Fatalf("audit trail lacks the acknowledgement:\n%s", out)
		}
	})

	t.Run("a failed compressor breaks the cold chain", func(t *testing.T) {
		if err := fridgeHW.SetFault(hardware.FaultCompressor, 0, true); err != nil {
			t.Fatal(err)
		}
		a := waitAlert("fridge-1", "cold-holding")
		if a.Scope != fleet.ScopeCompartment || a.Door < 1 || a.Value == nil || *a.Value <= 5 {
			t.Fatalf("cold-holding alert: %+v", a)
		}
	})

	t.Run("a unit that dies is offline, and resolved when it is back", func(t *testing.T) {
		fridge.stop()
		a := waitAlert("fridge-1", "device-offline")
		runUnit(parent, hub.mqtt, "fridge-1", secrets["fridge-1"], filepath.Join(dir, "fridge-1"), fridgeHW)
		testhub.WaitFor(t, 30*time.Second, "offline alert resolved", func() bool {
			code, body := hub.getAs(t, tech, fmt.Sprint("/api/v1/alerts/", a.ID))
			return code == 200 && strings.Contains(body, `"state":"resolved"`) && strings.Contains(body, `"resolved_by":"hub"`)
		})
	})

	t.Run("the API lists the history with state=all, as the CLI's --state all", func(t *testing.T) {
		code, body := hub.getAs(t, tech, "/api/v1/alerts?state=all&device=fridge-1")
		if code != 200 || !strings.Contains(body, `"rule":"device-offline"`) || !strings.Contains(body, `"state":"resolved"`) {
			t.Fatalf("GET alerts?state=all: %d %s", code, body)
		}
		out, errOut, code := run(t, environ, "alerts", "--hub", hubURL, "--token", tech, "--device", "fridge-1", "--state", "all")
		if code != 0 || !strings.Contains(out, "device-offline") || !strings.Contains(out, "resolved") {
			t.Fatalf("alerts --state all: %s%s", out, errOut)
		}
	})

	t.Run("the webhook gets a signed notification", func(t *testing.T) {
		type webhookBody struct {
			Event fleet.AlertEventKind
			Alert fleet.Alert
		}
		var got webhookBody
		testhub.WaitFor(t, 10*time.Second, "forced-entry webhook", func() bool {
			for _, r := range hooked.all() {
				if err := notify.Verify([]byte(testWebhookSecret), r.signature, r.body, time.Now(), time.Minute); err != nil {
					t.Fatalf("webhook signature: %v", err)
				}
				if json.Unmarshal(r.body, &got) == nil && got.Alert.Rule == "forced-entry" && got.Event == fleet.AlertEventFired {
					return true
				}
			}
			return false
		})
		for _, r := range hooked.all() {
			var b webhookBody
			if json.Unmarshal(r.body, &b) != nil || b.Alert.Severity != fleet.SeverityCritical {
				t.Fatalf("the critical-only webhook got %s", r.body)
			}
		}
	})

	t.Run("Alertmanager gets the v2 shape", func(t *testing.T) {
		testhub.WaitFor(t, 10*time.Second, "cold-holding at Alertmanager", func() bool {
			for _, r := range managed.all() {
				var alerts []struct {
					Labels       map[string]string
					StartsAt     time.Time
					GeneratorURL string
				}
				if r.path != "/api/v2/alerts" || json.Unmarshal(r.body, &alerts) != nil {
					t.Fatalf("Alertmanager got %s %s", r.path, r.body)
				}
				for _, a := range alerts {
					if a.Labels["alertname"] == "cold-holding" && a.Labels["device"] == "fridge-1" && a.Labels["site"] == "oak" &&
						a.Labels["severity"] == "major" && !a.StartsAt.IsZero() && strings.HasPrefix(a.GeneratorURL, "http://hub.test/") {
						return true
					}
				}
			}
			return false
		})
	})

	// Metrics and the health summary see the same.
	_, metrics := hub.get(t, "/metrics")
	for _, want := range []string{`lockerhub_alerts_firing{rule="forced-entry",severity="critical"} 1`,
		`lockerhub_alerts_firing{rule="device-offline",severity="major"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	code, body := hub.getAs(t, tech, "/api/v1/health")
	var health struct{ Sites []fleet.SiteHealth }
	if code != 200 || json.Unmarshal([]byte(body), &health) != nil || len(health.Sites) != 1 ||
		health.Sites[0].Units != 2 || health.Sites[0].Critical != 2 {
		t.Errorf("health: %d %s", code, body)
	}
}
