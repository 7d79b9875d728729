package http

import (
	"encoding/csv"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// coldChainDefaultDays is the range of a cold-chain report without from: the week before to.
const coldChainDefaultDays = 7

// coldChainCSVHeader is the first line of the CSV form of a cold-chain report.
var coldChainCSVHeader = []string{"date", "site", "device", "door", "class", "threshold_c", "minutes_above", "peak_c", "minutes_no_data", "samples", "minutes_untrusted"}

// handleColdChain answers GET /api/v1/reports/cold-chain?site=&from=&to=&format=: for every
// compartment (door) of the fridge units in the token's scope, at site if given, one row per UTC
// day of the range with the minutes above its food-safety threshold, the peak temperature and
// the minutes without data (fleet.ColdChainDays). Disabled units are included: their history
// still has to be accounted for.
//
// from and to are RFC 3339 times or dates (YYYY-MM-DD, UTC): from a date means its midnight, to
// a date the midnight after it, so from=2026-11-01&to=2026-11-07 covers seven whole days. to
// defaults to the start of the current UTC day, from to 7 days before to: the last 7 full days.
// Then a to in the future is cut to now, since time that has not happened yet is not missing
// data. At most fleet.MaxColdChainDays days.
//
// The answer is JSON {"from", "to", "days": [...]}, or CSV (coldChainCSVHeader) with
// format=csv or Accept: text/csv.
func (a *api) handleColdChain(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	if a.svc.ColdChain == nil || a.svc.Thresholds == nil {
		writeError(w, fleet.Errorf(fleet.EUNAVAILABLE, "cold-chain reports are not configured on this hub"))
		return
	}
	v := r.URL.Query()
	asCSV, err := wantsCSV(r)
	var q fleet.ColdChainQuery
	if err == nil {
		q.From, q.To, err = coldChainRange(v.Get("from"), v.Get("to"), time.Now())
	}
	if err == nil {
		err = q.Validate()
	}
	var devices []*fleet.Device
	if err == nil {
		devices, err = a.svc.Devices.FindDevices(r.Context(), fleet.DeviceFilter{Site: v.Get("site"), Kind: fleet.KindFridge})
	}
	if err != nil {
		writeError(w, err)
		return
	}
	for _, d := range devices {
		if !tok.InScope(d.Site) {
			continue
		}
		class, threshold := fleet.ClassOf(d), a.svc.Thresholds(d)
		for door := 1; door <= d.Doors; door++ {
			q.Compartments = append(q.Compartments, fleet.Compartment{DeviceID: d.ID, Site: d.Site, Door: door, Class: class, ThresholdC: threshold,
				Since: d.CreatedAt, StuckAfter: a.svc.StuckSensorAfter})
		}
	}
	days, err := a.svc.ColdChain.ColdChain(r.Context(), q)
	if err != nil {
		writeError(w, err)
		return
	}
	if !asCSV {
		if days == nil {
			days = []fleet.ColdChainDay{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"from": q.From, "to": q.To, "days": days})
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="cold-chain_%s_%s.csv"`,
		q.From.Format(time.DateOnly), q.To.Format(time.DateOnly)))
	cw := csv.NewWriter(w)
	cw.Write(coldChainCSVHeader)
	for _, d := range days {
		peak := ""
		if d.PeakC != nil {
			peak = strconv.FormatFloat(*d.PeakC, 'f', -1, 64)
		}
		cw.Write([]string{d.Date, d.Site, d.DeviceID, strconv.Itoa(d.Door), d.Class, strconv.FormatFloat(d.ThresholdC, 'f', -1, 64),
			strconv.FormatFloat(d.MinutesAbove, 'f', 1, 64), peak, strconv.FormatFloat(d.MinutesNoData, 'f', 1, 64), strconv.Itoa(d.Samples),
			strconv.FormatFloat(d.MinutesUntrusted, 'f', 1, 64)})
	}
	cw.Flush() // an error here is the client going away: nothing left to tell it
}

// wantsCSV reports whether the request asks for CSV: format=csv, or no format and text/csv
// among the media types of its Accept header.
func wantsCSV(r *http.Request) (bool, error) {
	switch f := r.URL.Query().Get("format"); f {
	case "csv":
		return true, nil
	case "json":
		return false, nil
	case "":
	default:
		return false, fleet.Errorf(fleet.EINVALID, "format: %q is not csv or json", f)
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(part); err == nil && mt == "text/csv" {
			return true, nil
		}
	}
	return false, nil
}

// coldChainRange parses the from and to parameters of a cold-chain report, with their defaults,
// as of now.
func coldChainRange(fromParam, toParam string, now time.Time) (from, to time.Time, err error) {
	now = now.UTC()
	to = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	if toParam != "" {
		if to, err = reportTime("to", toParam, true); err != nil {
			return from, to, err
		}
	}
	from = to.AddDate(0, 0, -coldChainDefaultDays)
	if fromParam != "" {
		from, err = reportTime("from", fromParam, false)
	}
	if to.After(now) {
		to = now
	}
	return from, to, err
}

// reportTime parses the parameter name: an RFC 3339 time, or a date meaning its UTC midnight
// (the midnight after it when endOfDay).
func reportTime(name, s string, endOfDay bool) (time.Time, error) {
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		if endOfDay {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fleet.Errorf(fleet.EINVALID, "%s: %q is not a date (2026-11-25) or an RFC 3339 time (2026-11-25T08:00:00Z)", name, s)
	}
	return t.UTC(), nil
}
