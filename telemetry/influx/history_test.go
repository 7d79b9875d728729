package influx_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/internal/testinflux"
	"github.com/lockerhub/lockerhub/telemetry/influx"
)

// atSec parses "15:04:05" as a time on 2026-03-01, UTC.
func atSec(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", "2026-03-01 "+s)
	if err != nil {
		panic(err)
	}
	return t
}

// doorLine is a door state point as the hub writes it: in every snapshot (the old shape) or at a
// change and in keyframes (the new one).
func doorLine(device string, door int, t time.Time, open bool) string {
	return fmt.Sprintf("door,device=%s,door=%d,kind=locker-bank,site=oak open=%t,locked=%t %d", device, door, open, !open, t.UnixNano())
}

// doorEventLine is a door event as the hub writes it.
func doorEventLine(device string, door int, t time.Time, open bool, cause string, seq int) string {
	return fmt.Sprintf("door_event,device=%s,cause=%s,door=%d,kind=locker-bank,site=oak open=%t,locked=%t,seq=%di %d",
		device, cause, door, open, !open, seq, t.UnixNano())
}

// format writes points as "15:04:05=v" with the window's end.
func format(points []fleet.HistoryPoint) string {
	var b []string
	for _, p := range points {
		b = append(b, p.T.Format("15:04:05")+"="+fmt.Sprint(p.V))
	}
	return strings.Join(b, " ")
}

// door_open is the fraction of each window the door was open, the same whether the hub wrote a
// door point in every 10 s snapshot (the old shape) or only at changes and in keyframes every 5
// minutes, with the door events (the new one). Door 1 of the bank opens at 10:00:30 and closes
// at 10:01:00, then opens at 10:02:15 and stays open until 10:03:45; it was open before the
// range too, from 09:58:00 until 09:59:00.
func TestHistoryDoorOpenOnBothShapes(t *testing.T) {
	s := testinflux.Require(t)
	type change struct {
		t    time.Time
		open bool
	}
	changes := []change{{atSec("09:58:00"), true}, {atSec("09:59:00"), false}, {atSec("10:00:30"), true},
		{atSec("10:01:00"), false}, {atSec("10:02:15"), true}, {atSec("10:03:45"), false}}
	openAt := func(tm time.Time) bool {
		open := false
		for _, c := range changes {
			if !c.t.After(tm) {
				open = c.open
			}
		}
		return open
	}
	var lines []string
	for i, c := range changes { // both shapes have the events
		for _, device := range []string{"old-1", "new-1"} {
			lines = append(lines, doorEventLine(device, 1, c.t, c.open, "local", i+1))
		}
	}
	lastKeyframe := time.Time{}
	written := map[bool]bool{}
	for tm := atSec("09:50:00"); tm.Before(atSec("10:10:00")); tm = tm.Add(10 * time.Second) {
		open := openAt(tm)
		lines = append(lines, doorLine("old-1", 1, tm, open), doorLine("old-1", 2, tm, false))
		// The new shape: a keyframe every 5 minutes, a point when a door differs from the last written.
		if keyframe := tm.Sub(lastKeyframe) >= 5*time.Minute; keyframe || written[true] != open {
			lines = append(lines, doorLine("new-1", 1, tm, open))
			if keyframe {
				lines = append(lines, doorLine("new-1", 2, tm, false))
				lastKeyframe = tm
			}
			written[true] = open
		}
	}
	// The unit was registered again at 10:01:10 (below): the hub wrote a keyframe.
	lines = append(lines, doorLine("new-1", 1, atSec("10:01:10"), false), doorLine("new-1", 2, atSec("10:01:10"), false))
	s.Write(t, lines...)
	c := influx.New(influx.Config{URL: s.URL, Bucket: s.Bucket, BatchSize: 1000, Timeout: 10 * time.Second})
	defer c.Close()

	for _, tc := range []struct {
		name     string
		door     int
		from, to time.Time
		every    time.Duration
		want     string
	}{
		{"minutes", 1, atSec("10:00:00"), atSec("10:05:00"), time.Minute,
			"10:01:00=0.5 10:02:00=0 10:03:00=0.75 10:04:00=0.75 10:05:00=0"},
		{"one window", 1, atSec("10:00:00"), atSec("10:05:00"), 5 * time.Minute,
			"10:05:00=0.4"}, // 30 s + 90 s of 300 s
		{"open at the start of the range, from the point before it", 1, atSec("09:58:30"), atSec("09:59:30"), time.Minute,
			"09:59:00=1 09:59:30=0"},
		{"windows aligned to the epoch, the range clipped", 1, atSec("10:00:45"), atSec("10:02:30"), time.Minute,
			"10:01:00=1 10:02:00=0 10:02:30=0.5"},
		{"the other door, closed throughout", 2, atSec("10:00:00"), atSec("10:02:00"), time.Minute,
			"10:01:00=0 10:02:00=0"},
	} {
		for _, device := range []string{"old-1", "new-1"} {
			points, err := c.History(context.Background(), fleet.HistoryQuery{DeviceID: device, Field: "door_open", Door: tc.door,
				From: tc.from, To: tc.to, Every: tc.every})
			if err != nil {
				t.Fatalf("%s, %s: %v", tc.name, device, err)
			}
			if got := format(points); got != tc.want {
				t.Errorf("%s, %s: %s, want %s", tc.name, device, got, tc.want)
			}
		}
	}

	// Registered again at 10:01:10: what was before is an earlier unit's, and the state is known
	// from the registration's first snapshot on, a keyframe in the new shape.
	for _, device := range []string{"old-1", "new-1"} {
		want := "10:02:00=0 10:03:00=0.75"
		points, err := c.History(context.Background(), fleet.HistoryQuery{DeviceID: device, Field: "door_open", Door: 1,
			From: atSec("10:00:00"), To: atSec("10:03:00"), Every: time.Minute, Since: atSec("10:01:10")})
		if err != nil {
			t.Fatal(err)
		}
		if got := format(points); got != want {
			t.Errorf("since, %s: %s, want %s", device, got, want)
		}
	}
}

// Numbers are averaged per window, booleans counted as the fraction of true, with windows
// stamped with their end and empty windows left out.
func TestHistoryMeans(t *testing.T) {
	s := testinflux.Require(t)
	var lines []string
	for i, tm := 0, atSec("10:00:00"); tm.Before(atSec("10:03:00")); i, tm = i+1, tm.Add(15*time.Second) {
		if tm.Minute() == 1 {
			continue // no data from 10:01 to 10:02
		}
		lines = append(lines,
			fmt.Sprintf("temperature,device=fr-1,kind=fridge,sensor=ambient,site=oak celsius=%d %d", 20+i, tm.UnixNano()),
			fmt.Sprintf("thermal,actuator=heater,device=fr-1,kind=fridge,site=oak on=%t,setpoint_c=4,duty=%g %d", i%4 == 0, float64(i%4)/4, tm.UnixNano()))
	}
	s.Write(t, lines...)
	// The bucket with its retention policy, and the database alone (its default policy), as a
	// 3.x database or a 2.x default mapping is named.
	c := influx.New(influx.Config{URL: s.URL, Bucket: s.Bucket, BatchSize: 1000, Timeout: 10 * time.Second})
	defer c.Close()
	db := influx.New(influx.Config{URL: s.URL, Bucket: s.DB, BatchSize: 1000, Timeout: 10 * time.Second})
	defer db.Close()
	for _, tc := range []struct {
		field    string
		from, to time.Time
		want     string
	}{
		{"ambient_c", atSec("10:00:00"), atSec("10:03:00"), "10:01:00=21.5 10:03:00=29.5"},
		{"ambient_c", atSec("10:00:20"), atSec("10:02:40"), "10:01:00=22.5 10:02:40=29"},
		{"heater_on", atSec("10:00:00"), atSec("10:03:00"), "10:01:00=0.25 10:03:00=0.25"},
		{"heater_on", atSec("10:00:20"), atSec("10:03:00"), "10:01:00=0 10:03:00=0.25"},
		{"heater_duty", atSec("10:00:00"), atSec("10:03:00"), "10:01:00=0.375 10:03:00=0.375"},
	} {
		points, err := c.History(context.Background(), fleet.HistoryQuery{DeviceID: "fr-1", Field: tc.field, From: tc.from, To: tc.to,
			Every: time.Minute})
		if err != nil {
			t.Fatalf("%s: %v", tc.field, err)
		}
		if got := format(points); got != tc.want {
			t.Errorf("%s from %s: %s, want %s", tc.field, tc.from.Format("15:04:05"), got, tc.want)
		}
		if tc.field == "ambient_c" {
			points, err = db.History(context.Background(), fleet.HistoryQuery{DeviceID: "fr-1", Field: tc.field, From: tc.from, To: tc.to,
				Every: time.Minute})
			if got := format(points); err != nil || got != tc.want {
				t.Errorf("%s from %s, bucket %s: %s (%v), want %s", tc.field, tc.from.Format("15:04:05"), s.DB, got, err, tc.want)
			}
		}
	}
}

// Device ids reach InfluxQL quoted: an id made to break out of its string literal reads nothing
// of the others, and an id with quotes and backslashes reads its own points.
func TestHistoryQuotesDeviceIDs(t *testing.T) {
	s := testinflux.Require(t)
	tm := atSec("10:00:10")
	s.Write(t,
		fmt.Sprintf(`temperature,device=fr-1,kind=fridge,sensor=ambient,site=oak celsius=1 %d`, tm.UnixNano()),
		fmt.Sprintf(`temperature,device=fr-2,kind=fridge,sensor=ambient,site=oak celsius=2 %d`, tm.UnixNano()),
		fmt.Sprintf(`temperature,device=q'u"o\te,kind=fridge,sensor=ambient,site=oak celsius=3 %d`, tm.UnixNano()))
	c := influx.New(influx.Config{URL: s.URL, Bucket: s.Bucket, BatchSize: 1000, Timeout: 10 * time.Second})
	defer c.Close()
	for _, tc := range []struct{ device, want string }{
		{`fr-1`, "10:01:00=1"},
		{`fr-1' OR "device" = 'fr-2`, ""},
		{`x' OR '1' = '1`, ""},
		{`fr-1\' OR "device" =~ /.*/ OR 'a`, ""},
		{`fr-1'; DROP DATABASE "` + s.DB + `"; SELECT * FROM "temperature" WHERE 'a' = 'a`, ""},
		{`q'u"o\te`, "10:01:00=3"},
	} {
		points, err := c.History(context.Background(), fleet.HistoryQuery{DeviceID: tc.device, Field: "ambient_c",
			From: atSec("10:00:00"), To: atSec("10:01:00"), Every: time.Minute})
		if err != nil {
			t.Fatalf("%s: %v", tc.device, err)
		}
		if got := format(points); got != tc.want {
			t.Errorf("device %s: %q, want %q", tc.device, got, tc.want)
		}
	}
	if n := s.Count(t, "temperature"); n != 3 {
		t.Errorf("%d temperature points after the queries, want 3", n)
	}
}

// How the client authenticates on /query and what becomes of InfluxDB's refusals. A fake server,
// since the development InfluxDB runs without authentication and cannot be made to fail a query
// on demand.
func TestQueryAuthenticationAndErrors(t *testing.T) {
	var got *http.Request
	status, body := http.StatusOK, `{"results":[{"statement_id":0}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		got = r
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	q := fleet.HistoryQuery{DeviceID: "fr-1", Field: "ambient_c", From: atSec("10:00:00"), To: atSec("10:01:00"), Every: time.Minute}
	for _, tc := range []struct {
		name, token, bucket string
		wantAuth, db, rp    string
	}{
		{"1.x user and password", "ops:s3cr:et", "lockerhub/autogen", "Basic " + "b3BzOnMzY3I6ZXQ=", "lockerhub", "autogen"},
		{"2.x or 3.x API token", "apiv3_AbC-123==", "lockerhub", "Token apiv3_AbC-123==", "lockerhub", ""},
		{"no authentication", "", "lockerhub/autogen", "", "lockerhub", "autogen"},
	} {
		c := influx.New(influx.Config{URL: srv.URL + "/", Bucket: tc.bucket, Token: tc.token, BatchSize: 1000, Timeout: 5 * time.Second})
		if _, err := c.History(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		c.Close()
		if got.URL.Path != "/query" || got.Method != http.MethodGet || got.Header.Get("Authorization") != tc.wantAuth ||
			got.Form.Get("db") != tc.db || got.Form.Get("rp") != tc.rp || got.Form.Get("epoch") != "ms" ||
			!strings.HasPrefix(got.Form.Get("q"), `SELECT mean("celsius") FROM "temperature" WHERE "device" = 'fr-1'`) {
			t.Errorf("%s: %s %s, Authorization %q, form %v", tc.name, got.Method, got.URL.Path, got.Header.Get("Authorization"), got.Form)
		}
	}

	c := influx.New(influx.Config{URL: srv.URL, Bucket: "lockerhub/autogen", BatchSize: 1000, Timeout: 5 * time.Second})
	defer c.Close()
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"unauthorized", http.StatusUnauthorized, `{"error":"authorization failed"}`, "HTTP 401 from /query: authorization failed"},
		{"2.x without a mapping", http.StatusNotFound, `{"code":"not found","message":"no dbrp mapping for database \"lockerhub\""}`, "no dbrp mapping"},
		{"statement failed", http.StatusOK, `{"results":[{"statement_id":0,"error":"database not found: lockerhub"}]}`, "database not found: lockerhub"},
		{"not JSON", http.StatusOK, `<html>proxy error</html>`, "reading the answer of /query"},
		{"a row cut short", http.StatusOK, `{"results":[{"statement_id":0,"series":[{"name":"temperature","tags":{"device":"fr-1","door":"1"},` +
			`"columns":["time","x"],"values":[[1772323200000]]}]}]}`, "unexpected row [1.7723232e+12] from /query"},
	} {
		status, body = tc.status, tc.body
		_, err := c.History(context.Background(), q)
		if fleet.ErrorCode(err) != fleet.EUNAVAILABLE || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want code %s with %q", tc.name, err, fleet.EUNAVAILABLE, tc.want)
		}
		_, err = c.ColdChain(context.Background(), fleet.ColdChainQuery{From: at("03-01 00:00"), To: at("03-02 00:00"),
			Compartments: []fleet.Compartment{{DeviceID: "fr-1", Door: 1, Class: fleet.ClassChilled, ThresholdC: 5}}})
		if fleet.ErrorCode(err) != fleet.EUNAVAILABLE || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("cold chain, %s: %v, want code %s with %q", tc.name, err, fleet.EUNAVAILABLE, tc.want)
		}
	}
}
