// Package testinflux gives integration tests the development InfluxDB (influxd 1.8.10, started
// by scripts/influxdb.sh start) with a fresh database per test, and a few InfluxQL helpers to
// look at what was stored. It talks plain HTTP (net/http, encoding/json), not the client
// library under test.
//
// Clients under test use it as influxdb-client-go/v2 expects for a 1.8 server:
//
//	s := testinflux.Require(t)
//	client := influxdb2.NewClientWithOptions(s.URL, "", influxdb2.DefaultOptions())
//	w := client.WriteAPIBlocking("", s.Bucket) // org "" (ignored by 1.8), bucket "<db>/autogen"
//
// Only loopback addresses are used: LOCKERHUB_INFLUX_URL must name 127.0.0.0/8, ::1 or
// localhost.
package testinflux

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// DefaultURL is where scripts/influxdb.sh start serves InfluxDB.
const DefaultURL = "http://127.0.0.1:8086"

// EnvURL names the environment variable that overrides DefaultURL.
const EnvURL = "LOCKERHUB_INFLUX_URL"

// Server is the running InfluxDB and the database created for one test.
type Server struct {
	URL    string // e.g. http://127.0.0.1:8086, no trailing slash
	DB     string // t_<random hex>, created by Require and dropped when the test ends
	Bucket string // DB + "/autogen": the bucket for influxdb-client-go/v2 (org "")
}

// httpClient never uses a proxy: the server is on loopback.
var httpClient = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second},
}

// Require returns the development InfluxDB at $LOCKERHUB_INFLUX_URL (default
// http://127.0.0.1:8086) with a fresh database for this test, dropped in t.Cleanup. If nothing
// answers /ping there, the test is skipped, or failed when the environment variable CI is set,
// with a message to run scripts/influxdb.sh start.
func Require(t testing.TB) *Server {
	t.Helper()
	base := strings.TrimRight(os.Getenv(EnvURL), "/")
	if base == "" {
		base = DefaultURL
	}
	if err := checkLoopback(base); err != nil {
		t.Fatalf("testinflux: %s=%q: %v", EnvURL, base, err)
	}
	if err := ping(base); err != nil {
		msg := fmt.Sprintf("testinflux: no InfluxDB answers at %s/ping (%v): run scripts/influxdb.sh start", base, err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testinflux: %v", err)
	}
	s := &Server{URL: base, DB: "t_" + hex.EncodeToString(b[:])}
	s.Bucket = s.DB + "/autogen"
	if _, err := s.influxQL("", "CREATE DATABASE "+quoteIdent(s.DB)); err != nil {
		t.Fatalf("testinflux: creating database %s: %v", s.DB, err)
	}
	t.Cleanup(func() {
		if _, err := s.influxQL("", "DROP DATABASE "+quoteIdent(s.DB)); err != nil {
			t.Errorf("testinflux: dropping database %s: %v", s.DB, err)
		}
	})
	return s
}

// Write stores line protocol lines in the test's database through the 1.x /write endpoint
// (timestamps, where given, in nanoseconds), failing the test unless InfluxDB answers 204.
func (s *Server) Write(t testing.TB, lines ...string) {
	t.Helper()
	u := s.URL + "/write?" + url.Values{"db": {s.DB}, "precision": {"ns"}}.Encode()
	resp, err := httpClient.Post(u, "text/plain; charset=utf-8", strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatalf("testinflux: write: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("testinflux: write: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
}

// Count returns the number of points in measurement: distinct (series, timestamp) pairs, which
// is what InfluxDB keeps once per write of the same point. It sums the rows of
// `SELECT * FROM "m" GROUP BY *` over all series. (`SELECT COUNT(*) FROM "m"` is not used: in
// 1.8 it answers one count per field, count_<field>, which equals the number of points only
// when every point has every field.) A measurement that does not exist counts 0.
func (s *Server) Count(t testing.TB, measurement string) int {
	t.Helper()
	res, err := s.influxQL(s.DB, "SELECT * FROM "+quoteIdent(measurement)+" GROUP BY *")
	if err != nil {
		t.Fatalf("testinflux: counting %q: %v", measurement, err)
	}
	n := 0
	for _, series := range res.Series {
		n += len(series.Values)
	}
	return n
}

// Query runs one InfluxQL statement against the test's database and returns the rows (values)
// of the first series of its result, nil if there is none. Times are RFC 3339 strings and
// numbers are float64 (encoding/json's default: InfluxDB 1.8 prints the float 30.0 as 30, so a
// float64 for every number keeps a column's type the same whatever the values). The test fails
// if the statement fails.
func (s *Server) Query(t testing.TB, influxQL string) [][]any {
	t.Helper()
	res, err := s.influxQL(s.DB, influxQL)
	if err != nil {
		t.Fatalf("testinflux: query %q: %v", influxQL, err)
	}
	if len(res.Series) == 0 {
		return nil
	}
	return res.Series[0].Values
}

type series struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
	Partial bool              `json:"partial"`
}

type result struct {
	StatementID int      `json:"statement_id"`
	Series      []series `json:"series"`
	Error       string   `json:"error"`
	Partial     bool     `json:"partial"`
}

// influxQL POSTs q to /query (with db, if not "") and returns the first statement's result.
func (s *Server) influxQL(db, q string) (*result, error) {
	form := url.Values{"q": {q}}
	if db != "" {
		form.Set("db", db)
	}
	resp, err := httpClient.PostForm(s.URL+"/query", form)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var out struct {
		Results []result `json:"results"`
		Error   string   `json:"error"`
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&out); err != nil {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if out.Error != "" {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, out.Error)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if len(out.Results) == 0 {
		return &result{}, nil
	}
	r := &out.Results[0]
	if r.Error != "" {
		return nil, fmt.Errorf("%s", r.Error)
	}
	if r.Partial {
		return nil, fmt.Errorf("result truncated by the server (partial); narrow the query")
	}
	for _, sr := range r.Series {
		if sr.Partial {
			return nil, fmt.Errorf("series %q truncated by the server (partial); narrow the query", sr.Name)
		}
	}
	return r, nil
}

func ping(base string) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: httpClient.Transport}
	resp, err := c.Get(base + "/ping")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("HTTP %d, want 204", resp.StatusCode)
	}
	return nil
}

func checkLoopback(base string) error {
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("want an http:// URL")
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("tests may only talk to loopback (127.0.0.1), not %q", host)
}

// quoteIdent quotes an InfluxQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
