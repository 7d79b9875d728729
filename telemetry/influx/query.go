package influx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The history and cold-chain queries are InfluxQL sent to the v1-compatible /query endpoint,
// which InfluxDB 1.8, 2.x (through a database/retention-policy mapping) and 3.x all serve;
// Flux, which InfluxDB 3 does not serve, is not used. The client library has no InfluxQL API,
// so this is plain net/http and encoding/json.

// resultSeries is one series of a statement's result: with epoch=ms, each row of values is the time
// in milliseconds (a JSON number) followed by the selected columns.
type resultSeries struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
	Partial bool              `json:"partial"`
}

// result is one statement's result, or with chunked=true one chunk of it.
type result struct {
	StatementID int            `json:"statement_id"`
	Series      []resultSeries `json:"series"`
	Error       string         `json:"error"`
	Partial     bool           `json:"partial"`
}

// query runs stmts (InfluxQL statements joined by semicolons) and calls each with every result
// as it is decoded: with chunked, InfluxDB streams a statement's rows as a sequence of results of
// at most 10,000 rows or one series each (a series split over chunks is marked partial), and only
// one chunk is in memory at a time. Any failure, InfluxDB's own or the transport's, is an error
// for the caller to map to fleet.EUNAVAILABLE; each's error comes back as it is.
func (c *Client) query(ctx context.Context, stmts string, chunked bool, each func(result) error) error {
	form := url.Values{"db": {c.db}, "q": {stmts}, "epoch": {"ms"}}
	if c.rp != "" {
		form.Set("rp", c.rp)
	}
	if chunked {
		form.Set("chunked", "true")
	}
	// GET, which every version documents for /query (3.x no other); callers keep statements to
	// a few KiB (coldChainBatch).
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.queryURL+"?"+form.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	c.authorize(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"` // InfluxDB 2.x and 3.x
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error+e.Message != "" {
			msg = e.Error + e.Message
		}
		return fmt.Errorf("HTTP %d from /query: %s", resp.StatusCode, msg)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var answer struct {
			Results []result `json:"results"`
			Error   string   `json:"error"`
		}
		if err := dec.Decode(&answer); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading the answer of /query: %w", err)
		}
		if answer.Error != "" {
			return errors.New(answer.Error)
		}
		for _, r := range answer.Results {
			if r.Error != "" {
				return errors.New(r.Error)
			}
			if err := each(r); err != nil {
				return err
			}
		}
	}
}

// authorize sets the credentials of the token: "user:password" is InfluxDB 1.x's form and goes
// as Basic authentication (which 2.x also takes for its v1 authorizations); any other token is an
// API token (2.x, 3.x) in the Token scheme. An empty token sends none (1.8 without auth).
func (c *Client) authorize(req *http.Request) {
	switch user, password, ok := strings.Cut(c.cfg.Token, ":"); {
	case c.cfg.Token == "":
	case ok:
		req.SetBasicAuth(user, password)
	default:
		req.Header.Set("Authorization", "Token "+c.cfg.Token)
	}
}

// splitBucket returns the database and retention policy of a bucket "db/rp"; a bucket without a
// slash is a database (3.x) or the database of a 2.x default mapping, with its default policy.
func splitBucket(bucket string) (db, rp string) {
	db, rp, _ = strings.Cut(bucket, "/")
	return db, rp
}

// identEscaper and stringEscaper escape what ends an InfluxQL quoted identifier or string
// literal: its quote and the backslash that would escape it.
var (
	identEscaper  = strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	stringEscaper = strings.NewReplacer(`\`, `\\`, `'`, `\'`)
)

// ident quotes an InfluxQL identifier (measurement, tag or field key).
func ident(s string) string { return `"` + identEscaper.Replace(s) + `"` }

// literal quotes an InfluxQL string literal (a tag value).
func literal(s string) string { return `'` + stringEscaper.Replace(s) + `'` }

// tagIs is the InfluxQL condition that tag key equals value.
func tagIs(key, value string) string { return ident(key) + " = " + literal(value) }

// timeLiteral writes t as an InfluxQL time in nanoseconds since the epoch.
func timeLiteral(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }

// rowTime reads a row's time column, milliseconds since the epoch with epoch=ms.
func rowTime(v any) (time.Time, bool) {
	ms, ok := v.(float64)
	return time.UnixMilli(int64(ms)).UTC(), ok
}

// numberRow reads a row [time, number].
func numberRow(row []any) (time.Time, float64, error) {
	if len(row) == 2 {
		t, ok := rowTime(row[0])
		v, isNum := row[1].(float64)
		if ok && isNum {
			return t, v, nil
		}
	}
	return time.Time{}, 0, fmt.Errorf("unexpected row %v from /query, want [time, number]", row)
}
