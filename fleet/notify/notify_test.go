package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/notify"
)

const secret = "0123456789abcdef-test-secret"

// receiver is a test HTTP receiver that answers with the statuses given, in turn (200 when
// they run out), and keeps every request it got.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	got      []request
	arrived  chan struct{}
}

type request struct {
	path   string
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{statuses: statuses, arrived: make(chan struct{}, 100)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, request{req.URL.Path, req.Header.Clone(), body})
		code := http.StatusOK
		if len(r.statuses) > 0 {
			code, r.statuses = r.statuses[0], r.statuses[1:]
		}
		r.mu.Unlock()
		if code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "0")
		}
		w.WriteHeader(code)
		r.arrived <- struct{}{}
	}))
	t.Cleanup(r.Close)
	return r
}

// wait waits for n more requests.
func (r *receiver) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-r.arrived:
		case <-time.After(10 * time.Second):
			t.Fatalf("receiver: request did not arrive")
		}
	}
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

func start(t *testing.T, cfg notify.Config, open func(context.Context) ([]*fleet.Alert, error)) (*notify.Notifier, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	n, err := notify.New(cfg, notify.Options{Registerer: reg, OpenAlerts: open, ExternalURL: "https://hub.example", Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return n, reg
}

func count(t *testing.T, reg *prometheus.Registry, sender, result string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "lockerhub_alert_notifications_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["sender"] == sender && labels["result"] == result {
				return int(m.GetCounter().GetValue())
			}
		}
	}
	return 0
}

// settle waits until the one event sent to the sender "hook" was delivered or given up on:
// the receiver sees a request before its sender counts the answer.
func settle(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for count(t, reg, "hook", "sent")+count(t, reg, "hook", "dead") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the event was neither sent nor given up on")
		}
		time.Sleep(time.Millisecond)
	}
}

var fired = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

func alert(sev fleet.Severity) fleet.Alert {
	return fleet.Alert{ID: 7, Rule: "forced-entry", Severity: sev, Scope: fleet.ScopeDoor, DeviceID: "bank-1", Site: "oak", Door: 3,
		State: fleet.AlertFiring, Summary: "door 3 forced", FiredAt: fired}
}

func webhook(url string, sev ...fleet.Severity) notify.WebhookConfig {
	w := notify.WebhookConfig{Secret: secret}
	w.Name, w.URL, w.Severities, w.MaxAttempts = "hook", url, sev, 4
	return w
}

func TestWebhookSignedPayload(t *testing.T) {
	r := newReceiver(t)
	n, reg := start(t, notify.Config{Webhooks: []notify.WebhookConfig{webhook(r.URL)}}, nil)
	n.Notify(fleet.AlertEvent{Kind: fleet.AlertEventFired, Alert: alert(fleet.SeverityCritical)})
	r.wait(t, 1)
	req := r.requests()[0]
	sig := req.header.Get(notify.SignatureHeader)
	if err := notify.Verify([]byte(secret), sig, req.body, time.Now(), time.Minute); err != nil {
		t.Fatalf("Verify: %v (header %q)", err, sig)
	}
	var body notify.WebhookBody
	if err := json.Unmarshal(req.body, &body); err != nil || body.Version != 1 || body.Event != fleet.AlertEventFired ||
		body.Alert.ID != 7 || body.Alert.Door != 3 || req.header.Get("X-Lockerhub-Event") != "fired" {
		t.Fatalf("body %s, %v", req.body, err)
	}
	for _, tc := range []struct {
		name, secret, header string
		body                 []byte
		now                  time.Time
	}{
		{"tampered body", secret, sig, []byte(strings.Replace(string(req.body), "door 3", "door 4", 1)), time.Now()},
		{"wrong secret", secret + "x", sig, req.body, time.Now()},
		{"replayed later", secret, sig, req.body, time.Now().Add(10 * time.Minute)},
		{"no signature", secret, "", req.body, time.Now()},
		{"malformed", secret, "t=abc,v1=zz", req.body, time.Now()},
	} {
		if err := notify.Verify([]byte(tc.secret), tc.header, tc.body, tc.now, time.Minute); err == nil {
			t.Errorf("%s: Verify accepted it", tc.name)
		}
	}
	settle(t, reg)
	if got := count(t, reg, "hook", "sent"); got != 1 {
		t.Errorf("sent = %d, want 1", got)
	}
}

func TestSeverityRouting(t *testing.T) {
	critical, all := newReceiver(t), newReceiver(t)
	n, _ := start(t, notify.Config{Webhooks: []notify.WebhookConfig{webhook(critical.URL, fleet.SeverityCritical), webhook(all.URL)}}, nil)
	n.Notify(fleet.AlertEvent{Kind: fleet.AlertEventFired, Alert: alert(fleet.SeverityWarning)})
	n.Notify(fleet.AlertEvent{Kind: fleet.AlertEventFired, Alert: alert(fleet.SeverityCritical)})
	all.wait(t, 2)
	critical.wait(t, 1)
	var body notify.WebhookBody
	if got := critical.requests(); len(got) != 1 || json.Unmarshal(got[0].body, &body) != nil || body.Alert.Severity != fleet.SeverityCritical {
		t.Fatalf("the critical-only webhook got %d requests: %s", len(got), body.Alert.Severity)
	}
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name                string
		statuses            []int
		requests            int
		sent, retried, dead int
	}{
		{"recovers", []int{503, 500, 200}, 3, 1, 2, 0},
		{"rate limited", []int{429, 200}, 2, 1, 1, 0},
		{"refused for good", []int{400}, 1, 0, 0, 1},
		{"down throughout", []int{500, 500, 500, 500}, 4, 0, 3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReceiver(t, tc.statuses...)
			n, reg := start(t, notify.Config{Webhooks: []notify.WebhookConfig{webhook(r.URL)}}, nil)
			n.Notify(fleet.AlertEvent{Kind: fleet.AlertEventResolved, Alert: alert(fleet.SeverityMajor)})
			r.wait(t, tc.requests)
			settle(t, reg)
			got := [3]int{count(t, reg, "hook", "sent"), count(t, reg, "hook", "retried"), count(t, reg, "hook", "dead")}
			if want := [3]int{tc.sent, tc.retried, tc.dead}; got != want || len(r.requests()) != tc.requests {
				t.Fatalf("sent, retried, dead = %v, want %v; %d requests", got, want, len(r.requests()))
			}
		})
	}
}

func TestAlertmanager(t *testing.T) {
	r := newReceiver(t)
	resolved := alert(fleet.SeverityMajor)
	resolved.State, resolved.ResolvedAt = fleet.AlertResolved, fired.Add(time.Hour)
	acked := alert(fleet.SeverityCritical)
	acked.ID, acked.State, acked.AckedBy, acked.AckNote = 8, fleet.AlertAcknowledged, "token:abc", "on my way"
	open := func(context.Context) ([]*fleet.Alert, error) { return []*fleet.Alert{&acked}, nil }
	am := notify.AlertmanagerConfig{ResendInterval: 50 * time.Millisecond}
	am.Name, am.URL = "am", r.URL
	n, _ := start(t, notify.Config{Alertmanager: []notify.AlertmanagerConfig{am}}, open)
	n.Notify(fleet.AlertEvent{Kind: fleet.AlertEventResolved, Alert: resolved})
	r.wait(t, 3) // the event, then re-sends of the open alerts

	var posted []map[string]any
	for i, req := range r.requests()[:3] {
		var alerts []map[string]any
		if req.path != "/api/v2/alerts" || json.Unmarshal(req.body, &alerts) != nil || len(alerts) != 1 {
			t.Fatalf("request %d: %s %s", i, req.path, req.body)
		}
		posted = append(posted, alerts[0])
	}
	labels := posted[0]["labels"].(map[string]any)
	if labels["alertname"] != "forced-entry" || labels["severity"] != "major" || labels["device"] != "bank-1" ||
		labels["site"] != "oak" || labels["door"] != "3" || labels["alert_id"] != "7" ||
		posted[0]["startsAt"] != "2026-11-25T08:00:00Z" || posted[0]["endsAt"] != "2026-11-25T09:00:00Z" ||
		posted[0]["generatorURL"] != "https://hub.example/api/v1/alerts/7" {
		t.Fatalf("resolved alert posted as %v", posted[0])
	}
	for _, p := range posted[1:] {
		ann := p["annotations"].(map[string]any)
		if _, ends := p["endsAt"]; ends || ann["acknowledged_by"] != "token:abc" || ann["summary"] != "door 3 forced" {
			t.Fatalf("open alert re-sent as %v", p)
		}
	}
}

// A receiver that hangs fills its queue; Notify still returns at once and counts the rest.
func TestNotifyNeverBlocks(t *testing.T) {
	block := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	t.Cleanup(func() { close(block); hang.Close() })
	n, reg := start(t, notify.Config{Webhooks: []notify.WebhookConfig{webhook(hang.URL)}}, nil)
	start := time.Now()
	for range 1100 {
		n.Notify(fleet.AlertEvent{Kind: fleet.AlertEventFired, Alert: alert(fleet.SeverityCritical)})
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Notify blocked: %s for 1100 events", d)
	}
	if dead := count(t, reg, "hook", "dead"); dead < 1100-1024-1 {
		t.Fatalf("dead = %d, want the events beyond the queue", dead)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  notify.Config
		want string
	}{
		{"missing url", notify.Config{Webhooks: []notify.WebhookConfig{webhook("")}}, "webhooks[0].url"},
		{"bad scheme", notify.Config{Webhooks: []notify.WebhookConfig{webhook("ftp://x")}}, "webhooks[0].url"},
		{"unknown severity", notify.Config{Webhooks: []notify.WebhookConfig{webhook("http://x", "urgent")}}, "severities"},
		{"negative resend", func() notify.Config {
			a := notify.AlertmanagerConfig{ResendInterval: -time.Second}
			a.URL = "http://am:9093"
			return notify.Config{Alertmanager: []notify.AlertmanagerConfig{a}}
		}(), "alertmanager[0].resend_interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
	short := webhook("https://hooks.example/x")
	short.Secret = "short"
	if err := (notify.Config{Webhooks: []notify.WebhookConfig{short}}).Validate(); err == nil || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("short secret: %v", err)
	}
	if err := (notify.Config{Webhooks: []notify.WebhookConfig{webhook("https://hooks.example/x", fleet.SeverityCritical)}}).Validate(); err != nil {
		t.Fatalf("valid: %v", err)
	}
}
