package notify

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

func TestWebhookSignedPayload(t *testing.T) {
	srv, reqs := newReceiver(t, nil)
	n := start(t, Config{Webhooks: []WebhookConfig{webhookTo(srv, "ops")}}, Options{})

	value := 6.2
	ev := fleet.AlertEvent{Kind: fleet.AlertEventAcknowledged, Alert: testAlert(7, fleet.SeverityMajor)}
	ev.Alert.State, ev.Alert.Value = fleet.AlertAcknowledged, &value
	ev.Alert.AckedAt, ev.Alert.AckedBy, ev.Alert.AckNote = firedAt.Add(time.Minute), "jo", "on my way"
	n.Notify(ev)

	r := next(t, reqs)
	if r.method != http.MethodPost || r.path != "/hook" {
		t.Errorf("got %s %s, want POST /hook", r.method, r.path)
	}
	for k, want := range map[string]string{"Content-Type": "application/json", "User-Agent": "lockerhub", "X-Lockerhub-Event": "acknowledged"} {
		if got := r.header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	sig := r.header.Get("X-Lockerhub-Signature")
	if err := Verify([]byte(testSecret), sig, r.body, time.Now(), time.Minute); err != nil {
		t.Fatalf("Verify(%q) = %v", sig, err)
	}

	var p webhookPayload
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Version != 1 || p.Event != fleet.AlertEventAcknowledged {
		t.Errorf("version %d, event %q; want 1, acknowledged", p.Version, p.Event)
	}
	if !reflect.DeepEqual(p.Alert, ev.Alert) {
		t.Errorf("alert = %+v\nwant    %+v", p.Alert, ev.Alert)
	}
	var raw struct {
		Alert map[string]any `json:"alert"` // the alert's JSON as receivers see it
	}
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Alert["device"] != "oak-01" || raw.Alert["acked_by"] != "jo" {
		t.Errorf("alert JSON = %v, want fleet.Alert's field names", raw.Alert)
	}
	sent, err := time.Parse(time.RFC3339, p.SentAt)
	if err != nil {
		t.Fatalf("sent_at %q: %v", p.SentAt, err)
	}
	if want := "t=" + strconv.FormatInt(sent.Unix(), 10) + ","; !strings.HasPrefix(sig, want) {
		t.Errorf("signature %q does not carry sent_at %s", sig, p.SentAt)
	}
}

func TestVerify(t *testing.T) {
	secret := []byte(testSecret)
	body := []byte(`{"version":1,"event":"fired"}`)
	at := time.Unix(1_700_000_000, 0)
	good := sign(secret, at, body)
	mac := strings.TrimPrefix(good, "t=1700000000,v1=")

	for _, tc := range []struct {
		name    string
		secret  []byte
		header  string
		body    []byte
		now     time.Time
		wantErr string // "" for accepted
	}{
		{name: "valid", header: good},
		{name: "valid within tolerance", header: good, now: at.Add(5 * time.Minute)},
		{name: "clock behind within tolerance", header: good, now: at.Add(-5 * time.Minute)},
		{name: "tampered body", header: good, body: []byte(`{"version":1,"event":"resolved"}`), wantErr: "does not match"},
		{name: "wrong secret", header: good, secret: []byte("another-secret-of-16+"), wantErr: "does not match"},
		{name: "timestamp changed", header: "t=1700000600,v1=" + mac, now: at.Add(10 * time.Minute), wantErr: "does not match"},
		{name: "stale", header: good, now: at.Add(5*time.Minute + time.Second), wantErr: "beyond the tolerance"},
		{name: "from the future", header: good, now: at.Add(-6 * time.Minute), wantErr: "beyond the tolerance"},
		{name: "empty header", header: "", wantErr: "malformed"},
		{name: "no mac", header: "t=1700000000", wantErr: "malformed"},
		{name: "fields swapped", header: "v1=" + mac + ",t=1700000000", wantErr: "malformed"},
		{name: "extra field", header: good + ",v0=00", wantErr: "malformed"},
		{name: "signed timestamp", header: "t=+1700000000,v1=" + mac, wantErr: "malformed"},
		{name: "timestamp out of range", header: "t=99999999999999999999,v1=" + mac, wantErr: "malformed"},
		{name: "uppercase hex", header: "t=1700000000,v1=" + strings.ToUpper(mac), wantErr: "malformed"},
		{name: "short mac", header: good[:len(good)-2], wantErr: "malformed"},
		{name: "no secret", header: good, secret: []byte{}, wantErr: "no secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, b, now := secret, body, at
			if tc.secret != nil {
				s = tc.secret
			}
			if tc.body != nil {
				b = tc.body
			}
			if !tc.now.IsZero() {
				now = tc.now
			}
			err := Verify(s, tc.header, b, now, 5*time.Minute)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Verify() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Verify() = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
