package http

import (
	"context"
	"net/http"
	"strconv"

	"github.com/lockerhub/lockerhub/fleet"
)

// AlertKeeper keeps the alerts and knows each unit's health (the alert engine).
// Ack and Resolve act for the actor in their context.
type AlertKeeper interface {
	Alert(ctx context.Context, id int64) (*fleet.Alert, error)
	Alerts(ctx context.Context, f fleet.AlertFilter) ([]*fleet.Alert, error)
	Ack(ctx context.Context, id int64, note string) (*fleet.Alert, error)
	Resolve(ctx context.Context, id int64, note string) (*fleet.Alert, error)
	Health(d *fleet.Device) (fleet.Health, bool)
	Summary(inScope func(site string) bool) []fleet.SiteHealth
}

// handleAlerts lists alerts in the token's scope: ?state=firing|acknowledged|resolved|open|all
// &rule= &severity= &site= &device= &limit= &before=ID (newest first; before pages back). Alerts of
// ended registrations are left out.
func (a *api) handleAlerts(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	q := r.URL.Query()
	f := fleet.AlertFilter{Rule: q.Get("rule"), Severity: fleet.Severity(q.Get("severity")), Site: q.Get("site"), DeviceID: q.Get("device"), Sites: tok.Sites,
		Current: true}
	switch s := q.Get("state"); s {
	case "open":
		f.Open = true
	case "all": // as without a state; the CLI's --state all says it
	default:
		f.State = fleet.AlertState(s)
	}
	limit, err := positiveParam(q.Get("limit"), "limit")
	if err != nil {
		writeError(w, err)
		return
	}
	f.Limit = int(min(limit, 1001)) // more than 1000 is refused by the filter
	if f.BeforeID, err = positiveParam(q.Get("before"), "before"); err != nil {
		writeError(w, err)
		return
	}
	if err := f.Validate(); err != nil {
		writeError(w, err)
		return
	}
	alerts, err := a.svc.Alerts.Alerts(r.Context(), f)
	if err != nil {
		writeError(w, err)
		return
	}
	if alerts == nil {
		alerts = []*fleet.Alert{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": alerts})
}

// positiveParam parses an optional positive query parameter; 0 when it is absent.
func positiveParam(v, name string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, fleet.Errorf(fleet.EINVALID, "%s: %q is not a positive number", name, v)
	}
	return n, nil
}

// alert returns the alert named in the path if the token's scope covers its site and its
// device, and the device still holds the registration the alert is about; otherwise it is
// reported missing, like a device.
func (a *api) alert(r *http.Request, tok *fleet.Token) (*fleet.Alert, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return nil, fleet.Errorf(fleet.ENOTFOUND, "alert %q not found", r.PathValue("id"))
	}
	al, err := a.svc.Alerts.Alert(r.Context(), id)
	if err != nil {
		return nil, err
	}
	d, err := a.device(r, tok, al.DeviceID)
	switch {
	case fleet.ErrorCode(err) == fleet.ENOTFOUND, err == nil && (d.Registration != al.Registration || !tok.InScope(al.Site)):
		return nil, fleet.Errorf(fleet.ENOTFOUND, "alert %d not found", id)
	case err != nil:
		return nil, err
	}
	return al, nil
}

func (a *api) handleAlert(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	al, err := a.alert(r, tok)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, al)
}

// handleAlertAction acknowledges or resolves an alert: body {"note": "..."} (optional). The
// engine records who did it in the audit trail.
func (a *api) handleAlertAction(act func(k AlertKeeper, ctx context.Context, id int64, note string) (*fleet.Alert, error)) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
		var body struct {
			Note string `json:"note"`
		}
		if r.ContentLength != 0 {
			if err := decodeBody(w, r, &body); err != nil {
				writeError(w, err)
				return
			}
		}
		al, err := a.alert(r, tok)
		if err != nil {
			writeError(w, err)
			return
		}
		if al, err = act(a.svc.Alerts, r.Context(), al.ID, body.Note); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, al)
	}
}

// HealthSummary is the units of each site in the token's scope by health, and their total
// (GET /api/v1/health, and the event stream's health events).
type HealthSummary struct {
	Sites []fleet.SiteHealth `json:"sites"`
	Total fleet.SiteHealth   `json:"total"`
}

func (a *api) healthSummary(tok *fleet.Token) HealthSummary {
	return summaryOf(a.svc.Alerts.Summary(tok.InScope), tok)
}

// summaryOf sums up the sites in tok's scope of sites.
func summaryOf(sites []fleet.SiteHealth, tok *fleet.Token) HealthSummary {
	h := HealthSummary{Sites: []fleet.SiteHealth{}, Total: fleet.SiteHealth{Site: "*"}}
	for _, s := range sites {
		if tok.InScope(s.Site) {
			h.Sites = append(h.Sites, s)
			h.Total.Merge(s)
		}
	}
	return h
}

// handleHealth summarises the units of each site in the token's scope by health.
func (a *api) handleHealth(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	writeJSON(w, http.StatusOK, a.healthSummary(tok))
}
