package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// postableAlert is an alert as Alertmanager's v2 API takes it (POST /api/v2/alerts, a JSON
// array of postableAlert in its OpenAPI specification).
type postableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"` // absent: firing until resolve_timeout
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// alertmanager posts alerts to one Alertmanager.
type alertmanager struct {
	url      string // .../api/v2/alerts
	external string // the hub's base URL without a trailing slash, or ""
	open     func(ctx context.Context) ([]*fleet.Alert, error)
}

func (am *alertmanager) delivery(ev fleet.AlertEvent) delivery {
	return am.post([]postableAlert{am.postable(&ev.Alert, ev.Kind == fleet.AlertEventResolved)}, eventAttrs(ev))
}

// resend returns the delivery that posts again the open alerts s wants; false when there are
// none, or when they cannot be listed (the next re-send tries again).
func (am *alertmanager) resend(ctx context.Context, s *sender) (delivery, bool) {
	listCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	alerts, err := am.open(listCtx)
	if err != nil {
		if ctx.Err() == nil { // not merely stopping
			s.log.Error("open alerts not re-sent: cannot list them", "sender", s.name, "error", err)
		}
		return delivery{}, false
	}
	var batch []postableAlert
	for _, a := range alerts {
		if a.State.Open() && s.wants(a.Severity) {
			batch = append(batch, am.postable(a, false))
		}
	}
	if len(batch) == 0 {
		return delivery{}, false
	}
	return am.post(batch, []any{"resend", true, "alerts", len(batch)}), true
}

func (am *alertmanager) post(batch []postableAlert, about []any) delivery {
	body, err := json.Marshal(batch)
	return delivery{
		request: func(ctx context.Context) (*http.Request, error) {
			if err != nil {
				return nil, err
			}
			return newJSONRequest(ctx, am.url, body)
		},
		about: about,
	}
}

// postable converts a; resolved ends it, otherwise Alertmanager keeps it firing until it is
// no longer re-sent.
func (am *alertmanager) postable(a *fleet.Alert, resolved bool) postableAlert {
	p := postableAlert{
		Labels: map[string]string{
			"alertname": a.Rule,
			"severity":  string(a.Severity),
			"device":    a.DeviceID,
			"scope":     string(a.Scope),
			"alert_id":  strconv.FormatInt(a.ID, 10),
		},
		Annotations: map[string]string{},
		StartsAt:    a.FiredAt,
	}
	// Alertmanager's matchers take an empty label for a missing one; leaving it out is clearer.
	if a.Site != "" {
		p.Labels["site"] = a.Site
	}
	if a.Door != 0 {
		p.Labels["door"] = strconv.Itoa(a.Door)
	}
	if a.Summary != "" {
		p.Annotations["summary"] = a.Summary
	}
	if a.AckedBy != "" {
		p.Annotations["acknowledged_by"] = a.AckedBy
		if a.AckNote != "" {
			p.Annotations["ack_note"] = a.AckNote
		}
	}
	if resolved {
		p.EndsAt = a.ResolvedAt
	}
	if am.external != "" {
		p.GeneratorURL = am.external + "/api/v1/alerts/" + strconv.FormatInt(a.ID, 10)
	}
	return p
}
