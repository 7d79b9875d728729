package http_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	lhhttp "github.com/lockerhub/lockerhub/fleet/http"
)

// coldChainHistory stands in for InfluxDB: the report of each compartment from its readings
// here, keyed "device/door", computed as the real service does.
type coldChainHistory struct {
	readings map[string][]fleet.HistoryPoint
	err      error // when set, the store "does not answer"
}

func (h *coldChainHistory) ColdChain(_ context.Context, q fleet.ColdChainQuery) ([]fleet.ColdChainDay, error) {
	if h.err != nil {
		return nil, h.err
	}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	var out []fleet.ColdChainDay
	for _, c := range q.Compartments {
		key := c.DeviceID + "/" + strconv.Itoa(c.Door)
		out = append(out, fleet.ColdChainDays(c, h.readings[key], q.From, q.To, 5*time.Minute)...)
	}
	return out, nil
}

// The cold-chain report: parameters, scope, JSON and CSV, and InfluxDB not answering.
func TestColdChainReport(t *testing.T) {
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	reg := openRegistry(t)
	for _, d := range []*fleet.Device{
		{ID: "oak-f1", Kind: fleet.KindFridge, Site: "oak", Doors: 2},
		{ID: "oak-z1", Kind: fleet.KindFridge, Site: "oak", Doors: 1, Labels: map[string]string{"class": "freezer"}},
		{ID: "oak-b1", Kind: fleet.KindLockerBank, Site: "oak", Doors: 8}, // no compartments to report
		{ID: "pine-f1", Kind: fleet.KindFridge, Site: "pine", Doors: 1},
	} {
		if _, err := reg.devices.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	at := func(s string) time.Time {
		t, _ := time.Parse(time.RFC3339, s)
		return t
	}
	history := &coldChainHistory{readings: map[string][]fleet.HistoryPoint{
		// 2.5 minutes above 5 °C, then 5 minutes at 4 °C.
		"oak-f1/1": {{T: at("2026-03-01T10:00:00Z"), V: 6.5}, {T: at("2026-03-01T10:02:30Z"), V: 4}},
		// -11 °C is above the freezer's -12 °C for 5 minutes.
		"oak-z1/1":  {{T: at("2026-03-02T06:00:00Z"), V: -11}},
		"pine-f1/1": {{T: at("2026-03-01T08:00:00Z"), V: 3}},
	}}
	addr := reg.serve(t, lhhttp.Services{ColdChain: history,
		Thresholds: func(d *fleet.Device) float64 {
			if fleet.ClassOf(d) == fleet.ClassFreezer {
				return -12
			}
			return 5
		}})
	viewer, oakViewer := reg.token(t, "v", fleet.RoleViewer), reg.token(t, "o", fleet.RoleViewer, "oak")

	get := func(tok, query, accept string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/reports/cold-chain?"+query, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	type report struct {
		From, To time.Time
		Days     []fleet.ColdChainDay
	}
	getJSON := func(tok, query string) report {
		t.Helper()
		resp, body := get(tok, query, "")
		var r report
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &r) != nil {
			t.Fatalf("?%s: %d %.300s", query, resp.StatusCode, body)
		}
		return r
	}
	rows := func(r report) string {
		var out []string
		for _, d := range r.Days {
			out = append(out, d.Date+" "+d.DeviceID+"/"+strconv.Itoa(d.Door)+" "+d.Class)
		}
		return strings.Join(out, ", ")
	}

	for _, tc := range []struct{ query, want string }{
		{"from=2026-02-30", `from: \"2026-02-30\" is not a date`},
		{"from=yesterday", `from: \"yesterday\" is not a date`},
		{"from=2026-03-01&to=03/05/2026", `to: \"03/05/2026\" is not a date`},
		{"from=2026-03-02&to=2026-03-01", "must be before"}, // to is the midnight after 03-01: from == to
		{"from=2026-03-05T00:00:00Z&to=2026-03-01T00:00:00Z", "must be before"},
		{"from=2026-01-01&to=2026-04-04", "at most 93 days"}, // to is 2026-04-05T00:00Z: 94 days
		{"from=2026-03-01&to=2026-03-01&format=xml", `format: \"xml\"`},
	} {
		if resp, body := get(viewer, tc.query, ""); resp.StatusCode != 400 || !strings.Contains(body, tc.want) {
			t.Errorf("?%s: %d %.300s; want 400 saying %s", tc.query, resp.StatusCode, body, tc.want)
		}
	}
	if resp, _ := get("", "", ""); resp.StatusCode != 401 {
		t.Errorf("without a token: %d, want 401", resp.StatusCode)
	}
	if r := getJSON(viewer, "from=2026-01-01&to=2026-04-03"); len(r.Days) != 93*4 {
		t.Errorf("93 days of 4 compartments: %d rows", len(r.Days))
	}

	// Dates: from its midnight, to the midnight after it. Scope: fridges only, of the token's
	// sites, narrowed by site=.
	for _, tc := range []struct{ tok, query, want string }{
		{viewer, "from=2026-03-01&to=2026-03-01",
			"2026-03-01 oak-f1/1 chilled, 2026-03-01 oak-f1/2 chilled, 2026-03-01 oak-z1/1 freezer, 2026-03-01 pine-f1/1 chilled"},
		{viewer, "site=pine&from=2026-03-01T12:00:00Z&to=2026-03-02", "2026-03-01 pine-f1/1 chilled, 2026-03-02 pine-f1/1 chilled"},
		{oakViewer, "from=2026-03-01&to=2026-03-01", "2026-03-01 oak-f1/1 chilled, 2026-03-01 oak-f1/2 chilled, 2026-03-01 oak-z1/1 freezer"},
		{oakViewer, "site=pine&from=2026-03-01&to=2026-03-01", ""},
	} {
		if got := rows(getJSON(tc.tok, tc.query)); got != tc.want {
			t.Errorf("?%s: %s, want %s", tc.query, got, tc.want)
		}
	}
	r := getJSON(viewer, "site=oak&from=2026-03-01&to=2026-03-02")
	if !r.From.Equal(at("2026-03-01T00:00:00Z")) || !r.To.Equal(at("2026-03-03T00:00:00Z")) || len(r.Days) != 6 {
		t.Fatalf("from=2026-03-01&to=2026-03-02: %+v", r)
	}
	if d := r.Days[0]; d.MinutesAbove != 2.5 || *d.PeakC != 6.5 || d.ThresholdC != 5 || d.Samples != 2 {
		t.Errorf("oak-f1/1 on 03-01: %+v", d)
	}
	if d := r.Days[5]; d.DeviceID != "oak-z1" || d.MinutesAbove != 5 || d.ThresholdC != -12 {
		t.Errorf("oak-z1/1 on 03-02: %+v", d)
	}

	// Defaults: the 7 full UTC days before today. A to in the future is cut to now, after from
	// took its default from it: to=<in 3 days> reports from 3 days ago until now.
	before := time.Now().UTC()
	r = getJSON(viewer, "site=pine")
	today := time.Date(before.Year(), before.Month(), before.Day(), 0, 0, 0, 0, time.UTC)
	if !r.To.Equal(today) || !r.From.Equal(today.AddDate(0, 0, -7)) || len(r.Days) != 7 {
		t.Errorf("default range: %s to %s with %d rows, want %s to %s", r.From, r.To, len(r.Days), today.AddDate(0, 0, -7), today)
	}
	r = getJSON(viewer, "site=pine&to="+today.AddDate(0, 0, 3).Format(time.DateOnly))
	if !r.From.Equal(today.AddDate(0, 0, -3)) || r.To.Before(before) || r.To.After(time.Now()) || len(r.Days) != 4 {
		t.Errorf("to in 3 days: %s to %s with %d rows, want from 3 days ago to now", r.From, r.To, len(r.Days))
	}

	// CSV, asked for either way.
	const wantCSV = `date,site,device,door,class,threshold_c,minutes_above,peak_c,minutes_no_data,samples,minutes_untrusted
2026-03-01,oak,oak-f1,1,chilled,5,2.5,6.5,1432.5,2,0.0
2026-03-01,oak,oak-f1,2,chilled,5,0.0,,1440.0,0,0.0
2026-03-01,oak,oak-z1,1,freezer,-12,0.0,,1440.0,0,0.0
`
	for _, tc := range []struct{ query, accept string }{
		{"site=oak&from=2026-03-01&to=2026-03-01", "text/csv"},
		{"site=oak&from=2026-03-01&to=2026-03-01", "application/json;q=0.5, text/csv"},
		{"site=oak&from=2026-03-01&to=2026-03-01&format=csv", ""},
	} {
		resp, body := get(oakViewer, tc.query, tc.accept)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" || body != wantCSV {
			t.Errorf("?%s Accept %q: %d %s\n%s", tc.query, tc.accept, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	if resp, body := get(oakViewer, "site=oak&from=2026-03-01&to=2026-03-01&format=json", "text/csv"); !strings.HasPrefix(body, `{"days":`) {
		t.Errorf("format=json wins over Accept: %d %s", resp.StatusCode, body)
	}

	// InfluxDB not answering: 503, also for CSV.
	history.err = fleet.Errorf(fleet.EUNAVAILABLE, "cold-chain report: InfluxDB did not answer: connection refused")
	q := url.Values{"from": {"2026-03-01"}, "to": {"2026-03-01"}}.Encode()
	if resp, body := get(viewer, q, "text/csv"); resp.StatusCode != 503 || !strings.Contains(body, `"code":"unavailable"`) ||
		!strings.Contains(body, "InfluxDB did not answer") {
		t.Errorf("InfluxDB down: %d %s", resp.StatusCode, body)
	}
}
