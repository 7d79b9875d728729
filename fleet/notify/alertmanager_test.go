package notify

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// gotAlert is a postable alert as Alertmanager decodes it; nil times were absent.
type gotAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     *time.Time        `json:"startsAt"`
	EndsAt       *time.Time        `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
}

func decodeAlerts(t *testing.T, r request) []gotAlert {
	t.Helper()
	if r.method != http.MethodPost || r.path != "/am/api/v2/alerts" || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %s %s (%s), want POST /am/api/v2/alerts (application/json)", r.method, r.path, r.header.Get("Content-Type"))
	}
	var alerts []gotAlert
	if err := json.Unmarshal(r.body, &alerts); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	return alerts
}

func TestAlertmanager(t *testing.T) {
	srv, reqs := newReceiver(t, nil)
	var mu sync.Mutex
	var open []*fleet.Alert
	setOpen := func(alerts ...*fleet.Alert) {
		mu.Lock()
		defer mu.Unlock()
		open = alerts
	}
	n := start(t, Config{Alertmanager: []AlertmanagerConfig{{Name: "am", URL: srv.URL + "/am/",
		Severities: []fleet.Severity{fleet.SeverityCritical, fleet.SeverityMajor}, ResendInterval: 50 * time.Millisecond}}},
		Options{ExternalURL: "https://hub.example.com/", OpenAlerts: func(context.Context) ([]*fleet.Alert, error) {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(open), nil
		}})

	// Fired: firing until re-sent no more, so no endsAt.
	a := testAlert(7, fleet.SeverityCritical)
	n.Notify(fleet.AlertEvent{Kind: fleet.AlertEventFired, Alert: a})
	got := decodeAlerts(t, next(t, reqs))
	if len(got) != 1 {
		t.Fatalf("%d alerts posted, want 1", len(got))
	}
	wantLabels := map[string]string{"alertname": "cold-holding", "severity": "critical", "device": "oak-01", "site": "oak",
		"scope": "compartment", "door": "3", "alert_id": "7"}
	if !maps.Equal(got[0].Labels, wantLabels) {
		t.Errorf("labels = %v, want %v", got[0].Labels, wantLabels)
	}
	if want := map[string]string{"summary": a.Summary}; !maps.Equal(got[0].Annotations, want) {
		t.Errorf("annotations = %v, want %v", got[0].Annotations, want)
	}
	if got[0].StartsAt == nil || !got[0].StartsAt.Equal(firedAt) || got[0].EndsAt != nil {
		t.Errorf("startsAt %v, endsAt %v; want %v and none", got[0].StartsAt, got[0].EndsAt, firedAt)
	}
	if want := "https://hub.example.com/api/v1/alerts/7"; got[0].GeneratorURL != want {
		t.Errorf("generatorURL %q, want %q", got[0].GeneratorURL, want)
	}

	// Acknowledged: still firing, with who and why.
	a.State, a.AckedAt, a.AckedBy, a.AckNote = fleet.AlertAcknowledged, firedAt.Add(time.Minute), "jo", "on my way"
	n.Notify(fleet.AlertEvent{Kind: fleet.AlertEventAcknowledged, Alert: a})
	got = decodeAlerts(t, next(t, reqs))
	if want := map[string]string{"summary": a.Summary, "acknowledged_by": "jo", "ack_note": "on my way"}; len(got) != 1 || !maps.Equal(got[0].Annotations, want) {
		t.Fatalf("acknowledged: %+v, want annotations %v", got, want)
	}
	if got[0].EndsAt != nil {
		t.Errorf("acknowledged alert ends at %v, want no endsAt", got[0].EndsAt)
	}

	// Re-sends: the open alerts of the sender's severities, in one request, again and again.
	warning, closed := testAlert(8, fleet.SeverityWarning), testAlert(9, fleet.SeverityMajor)
	closed.State = fleet.AlertResolved
	setOpen(&a, &warning, &closed)
	for range 2 {
		got = decodeAlerts(t, next(t, reqs))
		if len(got) != 1 || got[0].Labels["alert_id"] != "7" || got[0].Annotations["acknowledged_by"] != "jo" || got[0].EndsAt != nil {
			t.Fatalf("re-send = %+v, want only the acknowledged alert 7, still firing", got)
		}
	}

	// Resolved: endsAt is when. A re-send listed before the resolution may come first.
	setOpen()
	a.State, a.ResolvedAt, a.ResolvedBy = fleet.AlertResolved, firedAt.Add(time.Hour), fleet.ActorHub
	n.Notify(fleet.AlertEvent{Kind: fleet.AlertEventResolved, Alert: a})
	got = decodeAlerts(t, next(t, reqs))
	for len(got) == 1 && got[0].EndsAt == nil {
		got = decodeAlerts(t, next(t, reqs))
	}
	if len(got) != 1 || got[0].Labels["alert_id"] != "7" || got[0].EndsAt == nil || !got[0].EndsAt.Equal(a.ResolvedAt) {
		t.Fatalf("resolved: %+v, want alert 7 ending at %v", got, a.ResolvedAt)
	}
}

func TestPostableDeviceAlert(t *testing.T) {
	a := fleet.Alert{ID: 12, Rule: "device-offline", Severity: fleet.SeverityMajor, Scope: fleet.ScopeDevice, DeviceID: "elm-02",
		State: fleet.AlertResolved, FiredAt: firedAt, ResolvedAt: firedAt.Add(time.Hour)}
	p := (&alertmanager{}).postable(&a, true)
	want := map[string]string{"alertname": "device-offline", "severity": "major", "device": "elm-02", "scope": "device", "alert_id": "12"}
	if !maps.Equal(p.Labels, want) {
		t.Errorf("labels = %v, want %v: no door or site when there is none", p.Labels, want)
	}
	body, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"labels":{"alert_id":"12","alertname":"device-offline","device":"elm-02","scope":"device","severity":"major"},` +
		`"startsAt":"2025-03-14T09:26:53.589Z","endsAt":"2025-03-14T10:26:53.589Z"}`; string(body) != want {
		t.Errorf("JSON = %s\nwant   %s", body, want)
	}
}
