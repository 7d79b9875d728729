package testbed

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Influx runs InfluxQL against one database of the development InfluxDB (1.8) over plain HTTP.
// internal/testinflux does the same for tests, but its helpers take a testing.TB and fail the
// test on error; a benchmark has to go on and report what it could measure.
type Influx struct {
	url string
	db  string
	hc  *http.Client
}

func NewInflux(url, db string) *Influx {
	return &Influx{url: strings.TrimRight(url, "/"), db: db, hc: &http.Client{Timeout: 60 * time.Second}}
}

// Series is one series of an InfluxQL result.
type Series struct {
	Tags   map[string]string `json:"tags"`
	Values [][]any           `json:"values"`
}

// Query runs q (with the database unless q creates or drops one) and returns the series of
// its first statement.
func (c *Influx) Query(q string) ([]Series, error) {
	form := url.Values{"q": {q}}
	if !strings.HasPrefix(q, "CREATE DATABASE") && !strings.HasPrefix(q, "DROP DATABASE") {
		form.Set("db", c.db)
	}
	resp, err := c.hc.PostForm(c.url+"/query", form)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var out struct {
		Results []struct {
			Series []Series `json:"series"`
			Error  string   `json:"error"`
		} `json:"results"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &out); err != nil || resp.StatusCode != http.StatusOK || out.Error != "" {
		return nil, fmt.Errorf("influxdb %q: HTTP %d: %s", q, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if len(out.Results) == 0 {
		return nil, nil
	}
	if e := out.Results[0].Error; e != "" {
		return nil, fmt.Errorf("influxdb %q: %s", q, e)
	}
	return out.Results[0].Series, nil
}

// Count returns COUNT(field) over measurement: the number of points, since every point of the
// measurements counted here has that field.
func (c *Influx) Count(measurement, field string) (int64, error) {
	res, err := c.Query(fmt.Sprintf(`SELECT COUNT(%q) FROM %q`, field, measurement))
	if err != nil || len(res) == 0 || len(res[0].Values) == 0 {
		return 0, err
	}
	n, _ := res[0].Values[0][1].(float64)
	return int64(n), nil
}

// MaxSeq returns, per device, the highest seq stored in measurement unit at or after sinceMs.
func (c *Influx) MaxSeq(devices []string, sinceMs int64) (map[string]uint64, error) {
	res, err := c.Query(fmt.Sprintf(`SELECT MAX("seq") FROM "unit" WHERE "device" =~ /^(%s)$/ AND time >= %dms GROUP BY "device"`,
		strings.Join(devices, "|"), sinceMs))
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, s := range res {
		if len(s.Values) > 0 {
			v, _ := s.Values[0][1].(float64)
			out[s.Tags["device"]] = uint64(v)
		}
	}
	return out, nil
}
