package notify

import (
	"context"
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

// Headers of a webhook request besides Content-Type and User-Agent.
const (
	eventHeader     = "X-Lockerhub-Event"
	signatureHeader = "X-Lockerhub-Signature"
)

// webhookPayload is the body of a webhook request.
type webhookPayload struct {
	Version int                  `json:"version"` // 1; changes that break receivers get a new one
	Event   fleet.AlertEventKind `json:"event"`
	Alert   fleet.Alert          `json:"alert"`
	SentAt  string               `json:"sent_at"` // RFC 3339, the time in the signature
}

// webhook posts signed events to one URL.
type webhook struct {
	url    string
	secret []byte
}

func (w *webhook) delivery(ev fleet.AlertEvent) delivery {
	return delivery{
		request: func(ctx context.Context) (*http.Request, error) {
			return signedRequest(ctx, w.url, w.secret, string(ev.Kind), func(sentAt string) any {
				return webhookPayload{Version: 1, Event: ev.Kind, Alert: ev.Alert, SentAt: sentAt}
			})
		},
		about: eventAttrs(ev),
	}
}

// signedRequest returns a POST of the JSON of payload(sent_at), signed with secret as sent
// now, and with event in the event header. The payload carries the time in the signature as
// sent_at, RFC 3339, so that a receiver can show it.
func signedRequest(ctx context.Context, url string, secret []byte, event string, payload func(sentAt string) any) (*http.Request, error) {
	now := time.Now()
	body, err := json.Marshal(payload(now.UTC().Format(time.RFC3339)))
	if err != nil {
		return nil, err
	}
	req, err := newJSONRequest(ctx, url, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set(eventHeader, event)
	req.Header.Set(signatureHeader, sign(secret, now, body))
	return req, nil
}

// sign returns the signature header of body sent at t.
func sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

// mac is HMAC-SHA256(secret, "<ts>.<body>").
func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks the X-Lockerhub-Signature header of a webhook request whose body is body: the
// header must be exactly t=<unix seconds>,v1=<64 lowercase hex digits>, the MAC must be
// HMAC-SHA256(secret, "<t>.<body>"), and t must be within tolerance of now either way (a few
// minutes is typical: it bounds how long a captured request can be replayed, and must cover
// the clocks' skew). A retry after a timeout may deliver an event twice; receivers recognise
// the duplicate by its alert id and event.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if len(secret) == 0 {
		return errors.New("notify: no secret to verify the signature with")
	}
	ts, sent, sig, ok := parseSignature(header)
	if !ok {
		return errors.New("notify: malformed signature header: want t=<unix seconds>,v1=<hex HMAC-SHA256>")
	}
	if !hmac.Equal(sig, mac(secret, ts, body)) {
		return errors.New("notify: signature does not match the body")
	}
	if d := now.Sub(sent); d > tolerance || d < -tolerance {
		return fmt.Errorf("notify: signature timestamp %s is %s from now, beyond the tolerance of %s",
			sent.UTC().Format(time.RFC3339), d.Round(time.Second), tolerance)
	}
	return nil
}

// parseSignature splits a signature header into its timestamp, as sent and as a time, and
// its MAC.
func parseSignature(header string) (ts string, sent time.Time, sig []byte, ok bool) {
	t, v1, _ := strings.Cut(header, ",")
	ts, ok1 := strings.CutPrefix(t, "t=")
	hexSig, ok2 := strings.CutPrefix(v1, "v1=")
	if !ok1 || !ok2 || ts == "" || len(hexSig) != 2*sha256.Size || strings.Trim(ts, "0123456789") != "" ||
		strings.Trim(hexSig, "0123456789abcdef") != "" {
		return "", time.Time{}, nil, false
	}
	secs, err := strconv.ParseInt(ts, 10, 64) // only digits: fails only when out of range
	if err != nil {
		return "", time.Time{}, nil, false
	}
	sig, err = hex.DecodeString(hexSig)
	return ts, time.Unix(secs, 0), sig, err == nil
}
