package testinflux

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/internal/testtb"
)

func databases(t *testing.T, s *Server) map[string]bool {
	t.Helper()
	res, err := s.influxQL("", "SHOW DATABASES")
	if err != nil {
		t.Fatal(err)
	}
	dbs := map[string]bool{}
	for _, sr := range res.Series {
		for _, row := range sr.Values {
			dbs[row[0].(string)] = true
		}
	}
	return dbs
}

func TestRequireGivesEachTestItsOwnDatabase(t *testing.T) {
	s := Require(t)
	if !strings.HasPrefix(s.DB, "t_") || len(s.DB) != len("t_")+12 {
		t.Errorf("DB = %q, want t_<12 hex digits>", s.DB)
	}
	if s.Bucket != s.DB+"/autogen" {
		t.Errorf("Bucket = %q, want %q", s.Bucket, s.DB+"/autogen")
	}
	if strings.HasSuffix(s.URL, "/") || !strings.HasPrefix(s.URL, "http://") {
		t.Errorf("URL = %q", s.URL)
	}
	if !databases(t, s)[s.DB] {
		t.Fatalf("database %s was not created", s.DB)
	}

	var inner *Server
	t.Run("inner", func(t *testing.T) {
		inner = Require(t)
		if inner.DB == s.DB {
			t.Fatalf("two tests share database %s", s.DB)
		}
		inner.Write(t, "m v=1")
		if n := inner.Count(t, "m"); n != 1 {
			t.Errorf("inner Count = %d, want 1", n)
		}
	})
	if inner == nil {
		t.Fatal("inner test did not run")
	}
	if databases(t, s)[inner.DB] {
		t.Errorf("database %s of the finished subtest was not dropped", inner.DB)
	}
	// The inner test's point is not in this test's database.
	if n := s.Count(t, "m"); n != 0 {
		t.Errorf("Count = %d in the outer database, want 0", n)
	}
}

func TestCountCountsPoints(t *testing.T) {
	s := Require(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Second).UnixNano()
	s.Write(t,
		fmt.Sprintf("telemetry,locker=L1 temp=21.5,doors=12i %d", base),
		fmt.Sprintf("telemetry,locker=L1 temp=22.5,doors=12i %d", base+int64(time.Second)),
		fmt.Sprintf("telemetry,locker=L2 temp=30 %d", base),             // same time, other series: another point
		fmt.Sprintf("telemetry,locker=L3 doors=1i %d", base),            // other fields only
		fmt.Sprintf("telemetry,locker=L1 temp=21.5,doors=12i %d", base), // duplicate: same point
		fmt.Sprintf("other v=1 %d", base),
	)
	s.Write(t, fmt.Sprintf("telemetry,locker=L1 temp=99 %d", base)) // overwrites a field of the same point

	if n := s.Count(t, "telemetry"); n != 4 {
		t.Errorf("Count(telemetry) = %d, want 4", n)
	}
	if n := s.Count(t, "other"); n != 1 {
		t.Errorf("Count(other) = %d, want 1", n)
	}
	if n := s.Count(t, "missing"); n != 0 {
		t.Errorf("Count(missing) = %d, want 0", n)
	}
	if n := s.Count(t, `we"ird\name`); n != 0 {
		t.Errorf("Count of a quoted name = %d, want 0", n)
	}

	// Why Count does not use COUNT(*): it counts per field.
	rows := s.Query(t, `SELECT COUNT(*) FROM "telemetry"`)
	if len(rows) != 1 {
		t.Fatalf("COUNT(*) rows = %v", rows)
	}
	// columns: time, count_doors, count_temp
	if rows[0][1] != float64(3) || rows[0][2] != float64(3) {
		t.Errorf("COUNT(*) = %v, want per-field counts 3 and 3 (while there are 4 points)", rows[0])
	}
}

func TestQueryReturnsRowsOfTheFirstSeries(t *testing.T) {
	s := Require(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s.Write(t,
		fmt.Sprintf("telemetry,locker=L1 temp=21.5,doors=12i,state=\"open\" %d", t0.UnixNano()),
		fmt.Sprintf("telemetry,locker=L1 temp=30,doors=13i,state=\"closed\" %d", t0.Add(time.Minute).UnixNano()),
		fmt.Sprintf("telemetry,locker=L2 temp=5,doors=1i,state=\"open\" %d", t0.UnixNano()),
	)

	rows := s.Query(t, `SELECT "temp", "doors", "state" FROM "telemetry" WHERE "locker" = 'L1'`)
	want := [][]any{
		{"2026-01-02T03:04:05Z", 21.5, float64(12), "open"},
		{"2026-01-02T03:05:05Z", float64(30), float64(13), "closed"},
	}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("rows = %v, want %v", rows, want)
	}
	for i := range want {
		for j := range want[i] {
			if rows[i][j] != want[i][j] {
				t.Errorf("rows[%d][%d] = %#v, want %#v", i, j, rows[i][j], want[i][j])
			}
		}
	}

	// GROUP BY gives one series per tag value: only the first comes back.
	rows = s.Query(t, `SELECT MAX("temp") FROM "telemetry" GROUP BY "locker"`)
	if len(rows) != 1 || rows[0][1] != float64(30) {
		t.Errorf("first series of GROUP BY = %v, want the L1 max 30", rows)
	}
	if rows := s.Query(t, `SELECT * FROM "missing"`); rows != nil {
		t.Errorf("rows of a missing measurement = %v, want nil", rows)
	}
}

func TestQueryFailsOnABadStatement(t *testing.T) {
	s := Require(t)
	ft := testtb.Run(t, func(tb testing.TB) { s.Query(tb, "SELEKT nonsense") })
	if !ft.DidFail || !strings.Contains(ft.Message, "error parsing query") {
		t.Errorf("bad statement: failed=%v msg=%q", ft.DidFail, ft.Message)
	}
}

func TestWriteFailsOnBadLineProtocol(t *testing.T) {
	s := Require(t)
	ft := testtb.Run(t, func(tb testing.TB) { s.Write(tb, "m f=") })
	if !ft.DidFail || !strings.Contains(ft.Message, "HTTP 400") || !strings.Contains(ft.Message, "unable to parse") {
		t.Errorf("bad line: failed=%v msg=%q", ft.DidFail, ft.Message)
	}
}

func TestRequireWithoutServerSkipsOrFailsInCI(t *testing.T) {
	t.Setenv(EnvURL, "http://127.0.0.1:1") // nothing listens on port 1

	t.Setenv("CI", "")
	ft := testtb.Run(t, func(tb testing.TB) { Require(tb) })
	if !ft.DidSkip || ft.DidFail || !strings.Contains(ft.Message, "scripts/influxdb.sh start") {
		t.Errorf("without CI: skipped=%v failed=%v msg=%q, want a skip naming scripts/influxdb.sh start", ft.DidSkip, ft.DidFail, ft.Message)
	}

	t.Setenv("CI", "true")
	ft = testtb.Run(t, func(tb testing.TB) { Require(tb) })
	if !ft.DidFail || ft.DidSkip || !strings.Contains(ft.Message, "scripts/influxdb.sh start") {
		t.Errorf("with CI: skipped=%v failed=%v msg=%q, want a failure naming scripts/influxdb.sh start", ft.DidSkip, ft.DidFail, ft.Message)
	}
}

func TestRequireRefusesNonLoopback(t *testing.T) {
	t.Setenv(EnvURL, "http://192.0.2.1:8086")
	t.Setenv("CI", "")
	ft := testtb.Run(t, func(tb testing.TB) { Require(tb) })
	if !ft.DidFail || !strings.Contains(ft.Message, "loopback") {
		t.Errorf("non-loopback URL: failed=%v msg=%q", ft.DidFail, ft.Message)
	}
}
