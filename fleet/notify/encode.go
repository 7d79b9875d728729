package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// SignatureHeader carries a webhook's signature: "t=<unix seconds>,v1=<hex HMAC-SHA256>", where
// the MAC is over "<t>.<body>" with the webhook's secret. The timestamp is inside the MAC so
// that a captured request cannot be replayed later: receivers check it with Verify.
const SignatureHeader = "X-Lockerhub-Signature"

// WebhookBody is the JSON a webhook receives.
type WebhookBody struct {
	Version int                  `json:"version"` // 1
	Event   fleet.AlertEventKind `json:"event"`
	Alert   fleet.Alert          `json:"alert"`
	SentAt  time.Time            `json:"sent_at"`
}

func webhookRequest(secret []byte, ev fleet.AlertEvent, now time.Time) ([]byte, http.Header, error) {
	body, err := json.Marshal(WebhookBody{Version: 1, Event: ev.Kind, Alert: ev.Alert, SentAt: now.UTC()})
	if err != nil {
		return nil, nil, err
	}
	h := http.Header{}
	h.Set("X-Lockerhub-Event", string(ev.Kind))
	h.Set(SignatureHeader, sign(secret, now.Unix(), body))
	return body, h, nil
}

func sign(secret []byte, ts int64, body []byte) string {
	return fmt.Sprintf("t=%d,v1=%s", ts, hex.EncodeToString(mac(secret, ts, body)))
}

func mac(secret []byte, ts int64, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10) + "."))
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a webhook request's signature header against its body: the MAC must match
// (compared in constant time) and the timestamp must be within tolerance of now.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts int64
	var sig []byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		var err error
		switch k {
		case "t":
			ts, err = strconv.ParseInt(v, 10, 64)
		case "v1":
			sig, err = hex.DecodeString(v)
		}
		if err != nil {
			return fmt.Errorf("signature header: bad %s", k)
		}
	}
	if ts == 0 || sig == nil {
		return errors.New("signature header: want t=<unix seconds>,v1=<hex>")
	}
	if !hmac.Equal(sig, mac(secret, ts, body)) {
		return errors.New("signature does not match the body")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("signature timestamp %s is outside the tolerance of %s", time.Unix(ts, 0).UTC().Format(time.RFC3339), tolerance)
	}
	return nil
}

// postableAlert is an alert as Alertmanager's v2 API takes it (POST /api/v2/alerts).
type postableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       *time.Time        `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

func alertmanagerRequest(events []fleet.AlertEvent, externalURL string) ([]byte, http.Header, error) {
	out := make([]postableAlert, len(events))
	for i, ev := range events {
		a := ev.Alert
		p := postableAlert{
			Labels: map[string]string{"alertname": a.Rule, "severity": string(a.Severity), "device": a.DeviceID,
				"site": a.Site, "scope": string(a.Scope), "alert_id": strconv.FormatInt(a.ID, 10)},
			Annotations: map[string]string{"summary": a.Summary},
			StartsAt:    a.FiredAt,
		}
		if a.Door != 0 {
			p.Labels["door"] = strconv.Itoa(a.Door)
		}
		if a.State == fleet.AlertAcknowledged {
			p.Annotations["acknowledged_by"] = a.AckedBy
			p.Annotations["ack_note"] = a.AckNote
		}
		if a.State == fleet.AlertResolved {
			p.EndsAt = &a.ResolvedAt
		}
		if externalURL != "" {
			p.GeneratorURL = strings.TrimRight(externalURL, "/") + "/api/v1/alerts/" + strconv.FormatInt(a.ID, 10)
		}
		out[i] = p
	}
	body, err := json.Marshal(out)
	return body, http.Header{}, err
}
