package main_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/internal/testinflux"
)

// backdate sets when devices were registered, in the SQLite database of dataDir, which no
// command can: for tests that write readings into InfluxDB from days before they run.
func backdate(t *testing.T, dataDir string, at time.Time, ids ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dataDir, sqldb.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, id := range ids {
		res, err := db.Exec(`UPDATE devices SET created_at = ? WHERE id = ?`, at.UnixMilli(), id)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			t.Fatalf("backdate %s: %d rows (%v), want 1", id, n, err)
		}
	}
}

// `lockerhub report cold-chain` against the real hub, with known compartment temperatures in
// its InfluxDB and the thresholds of the default alert rules (5 °C chilled, -12 °C freezer).
func TestColdChainReportCLI(t *testing.T) {
	t.Parallel()
	inf := testinflux.Require(t)
	dataDir := t.TempDir()
	environ := env(dataDir, "LOCKERHUB_INFLUX_URL="+inf.URL, "LOCKERHUB_INFLUX_BUCKET="+inf.Bucket)
	for _, args := range [][]string{
		{"--id", "fr-1", "--kind", "fridge", "--site", "oak", "--doors", "2"},
		{"--id", "fz-1", "--kind", "fridge", "--site", "oak", "--doors", "1", "--label", "class=freezer"},
		{"--id", "fr-9", "--kind", "fridge", "--site", "pine", "--doors", "1"},
	} {
		if _, errOut, code := run(t, environ, append([]string{"device", "add"}, args...)...); code != 0 {
			t.Fatalf("device add %v: %s", args, errOut)
		}
	}
	// The units were registered a week ago: a report counts only the readings of their
	// registration.
	now := time.Now().UTC()
	backdate(t, dataDir, now.AddDate(0, 0, -7), "fr-1", "fz-1", "fr-9")

	// Two days that are over: three and two days ago.
	day1 := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -3)
	day2 := day1.AddDate(0, 0, 1)
	var lines []string
	point := func(device, site string, door int, t time.Time, celsius float64) {
		lines = append(lines, fmt.Sprintf("temperature,device=%s,door=%d,kind=fridge,sensor=compartment,site=%s celsius=%v %d",
			device, door, site, celsius, t.UnixNano()))
	}
	// fr-1 door 1: every minute 08:00-08:59 on day 1, above at 08:10-08:14 (5 minutes); the last
	// reading holds until 09:04, so 64 minutes have data. From 08:15 it reads exactly 4 °C for 44
	// minutes, longer than sensor-stuck waits (20 minutes): a stuck sensor, whose 49 minutes
	// are untrusted. On day 2 one reading at 23:58, above, held until midnight.
	for m := range 60 {
		v := 4.0
		if m >= 10 && m < 15 {
			v = 6
		}
		point("fr-1", "oak", 1, day1.Add(8*time.Hour+time.Duration(m)*time.Minute), v)
	}
	point("fr-1", "oak", 1, day2.Add(23*time.Hour+58*time.Minute), 7.5)
	// fz-1: -10.5 °C for 5 minutes between two readings at -18 on day 1; 15 minutes with data.
	for i, v := range []float64{-18, -10.5, -18} {
		point("fz-1", "oak", 1, day1.Add(12*time.Hour+time.Duration(i)*5*time.Minute), v)
	}
	point("fr-9", "pine", 1, day1.Add(12*time.Hour), 20) // another site
	inf.Write(t, lines...)

	hub := startHub(t, environ)
	viewer := createToken(t, environ, "--name", "property manager", "--role", "viewer").Token
	d1, d2 := day1.Format(time.DateOnly), day2.Format(time.DateOnly)
	want := "date,site,device,door,class,threshold_c,minutes_above,peak_c,minutes_no_data,samples,minutes_untrusted\n" +
		d1 + ",oak,fr-1,1,chilled,5,5.0,6,1376.0,60,49.0\n" +
		d2 + ",oak,fr-1,1,chilled,5,2.0,7.5,1438.0,1,0.0\n" +
		d1 + ",oak,fr-1,2,chilled,5,0.0,,1440.0,0,0.0\n" +
		d2 + ",oak,fr-1,2,chilled,5,0.0,,1440.0,0,0.0\n" +
		d1 + ",oak,fz-1,1,freezer,-12,5.0,-10.5,1425.0,3,0.0\n" +
		d2 + ",oak,fz-1,1,freezer,-12,0.0,,1440.0,0,0.0\n"
	report := []string{"report", "cold-chain", "--hub", "http://" + hub.http, "--site", "oak", "--from", d1, "--to", d2}

	file := filepath.Join(t.TempDir(), "cold-chain.csv")
	out, errOut, code := run(t, environ, append(report, "--token", viewer, "--out", file)...)
	if code != 0 || !strings.Contains(out, "6 rows written to "+file) {
		t.Fatalf("report --out: exit %d\n%s%s", code, out, errOut)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != want {
		t.Fatalf("%s: %v\n%s\nwant\n%s", file, err, b, want)
	}
	// To stdout, with the token from the environment.
	if out, errOut, code := run(t, append(environ, "LOCKERHUB_TOKEN="+viewer), report...); code != 0 || out != want {
		t.Fatalf("report to stdout: exit %d\n%s%s\nwant\n%s", code, out, errOut, want)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"to before from", []string{"--token", viewer, "--from", d2, "--to", d1}, "must be before to (" + d2 + "T00:00:00Z) (HTTP 400)"},
		{"bad date", []string{"--token", viewer, "--from", "last week"}, `from: "last week" is not a date`},
		{"no token", []string{"--token", ""}, "no API token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := run(t, environ, append(report[:4:4], tc.args...)...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want a failure saying %q", code, errOut, tc.want)
			}
		})
	}
}
