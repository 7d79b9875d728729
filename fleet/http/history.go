package http

import (
	"net/http"
	"strconv"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// History query limits: enough for charts of days at minute resolution, small enough that one
// request cannot make InfluxDB return millions of points.
const (
	defaultHistorySpan = 6 * time.Hour
	maxHistorySpan     = 90 * 24 * time.Hour
	maxHistoryPoints   = 10_000
	defaultPoints      = 200
)

// handleHistory answers a series of the device's telemetry history, from its registration on:
// an earlier unit's with the same id is never shown.
func (a *api) handleHistory(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	q, err := historyQuery(r)
	var d *fleet.Device
	if err == nil {
		d, err = a.device(r, tok, q.DeviceID)
	}
	var points []fleet.HistoryPoint
	if err == nil {
		q.Since = d.CreatedAt
		points, err = a.svc.History.History(r.Context(), q)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if points == nil {
		points = []fleet.HistoryPoint{}
	}
	body := map[string]any{"device": q.DeviceID, "field": q.Field,
		"from": q.From, "to": q.To, "every": q.Every.String(), "points": points}
	if q.Door > 0 {
		body["door"] = q.Door
	}
	writeJSON(w, http.StatusOK, body)
}

// historyQuery parses and checks the query parameters of a history request.
func historyQuery(r *http.Request) (fleet.HistoryQuery, error) {
	v := r.URL.Query()
	q := fleet.HistoryQuery{DeviceID: r.PathValue("id"), Field: v.Get("field"), To: time.Now().UTC()}
	f, ok := fleet.HistoryFields[q.Field]
	if !ok {
		return q, fleet.Errorf(fleet.EINVALID, "field: %q is not one of %v", q.Field, fleet.HistoryFieldNames())
	}
	if f.NeedsDoor || v.Has("door") {
		n, err := strconv.Atoi(v.Get("door"))
		if err != nil || n < 1 {
			return q, fleet.Errorf(fleet.EINVALID, "door: %q is not a door number; field %s needs door=N", v.Get("door"), q.Field)
		}
		q.Door = n
	}
	var err error
	if s := v.Get("to"); s != "" {
		if q.To, err = time.Parse(time.RFC3339, s); err != nil {
			return q, fleet.Errorf(fleet.EINVALID, "to: %q is not an RFC 3339 time (2026-11-25T08:00:00Z)", s)
		}
	}
	q.From = q.To.Add(-defaultHistorySpan)
	if s := v.Get("from"); s != "" {
		if q.From, err = time.Parse(time.RFC3339, s); err != nil {
			return q, fleet.Errorf(fleet.EINVALID, "from: %q is not an RFC 3339 time (2026-11-25T02:00:00Z)", s)
		}
	}
	span := q.To.Sub(q.From)
	if span <= 0 || span > maxHistorySpan {
		return q, fleet.Errorf(fleet.EINVALID, "from..to: the range must be positive and at most %s", maxHistorySpan)
	}
	q.Every = max(time.Second, (span / defaultPoints).Round(time.Second))
	if s := v.Get("every"); s != "" {
		if q.Every, err = time.ParseDuration(s); err != nil || q.Every < time.Second {
			return q, fleet.Errorf(fleet.EINVALID, "every: %q is not a duration of at least 1s (e.g. 5m)", s)
		}
	}
	if span/q.Every > maxHistoryPoints {
		return q, fleet.Errorf(fleet.EINVALID, "every: %s over %s gives more than %d points", q.Every, span, maxHistoryPoints)
	}
	return q, nil
}
