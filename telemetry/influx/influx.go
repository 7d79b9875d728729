// Package influx writes telemetry to InfluxDB and reads its history back. Writes go through
// influxdb-client-go/v2 to /api/v2/write; queries are InfluxQL on the v1-compatible /query API
// (query.go). Both are served by InfluxDB 1.8+ (bucket "database/retention-policy", empty org,
// token "user:password" or empty), 2.x (with a database/retention-policy mapping of the bucket
// for /query) and 3.x (bucket = database), see docs/telemetry.md.
//
// It owns InfluxDB's formats: the schema (schema.go), the line protocol the telemetry pipeline
// spools (lines.go), and the InfluxQL queries of history and cold-chain reports, so that what is
// written and what is read are named in one place. What InfluxQL cannot compute (the time a door
// was open, from its changes and keyframes) is computed here from the raw points.
//
// Batching, retries and durability are the telemetry package's: this adapter makes exactly one
// blocking request per Write (gzip-compressed if Config.GZip) and says whether a failure may
// pass.
package influx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"

	"github.com/lockerhub/lockerhub/internal/backoff"
)

// Config is the InfluxDB connection; keys influx.* in configs/lockerhub.yaml.
type Config struct {
	URL       string        `mapstructure:"url"`
	Org       string        `mapstructure:"org"`
	Bucket    string        `mapstructure:"bucket"`
	Token     string        `mapstructure:"token"`
	BatchSize int           `mapstructure:"batch_size"`
	Writers   int           `mapstructure:"writers"`
	Timeout   time.Duration `mapstructure:"timeout"`
	// GZip compresses write requests. Compressing took about a quarter of the hub's CPU
	// while ingesting: worth it only where the network to InfluxDB is slower than that.
	GZip bool `mapstructure:"gzip"`
}

// Validate reports the first bad setting, naming its key.
func (c Config) Validate() error {
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("influx.url: invalid URL %q: want http(s)://host:port", c.URL)
	}
	if c.Bucket == "" {
		return errors.New("influx.bucket: must not be empty (InfluxDB 1.8: database/retention-policy)")
	}
	if c.BatchSize < 1 || c.BatchSize > 100_000 {
		return fmt.Errorf("influx.batch_size: %d out of range 1..100000", c.BatchSize)
	}
	if c.Writers < 1 || c.Writers > 16 {
		return fmt.Errorf("influx.writers: %d out of range 1..16", c.Writers)
	}
	if c.Timeout < time.Second {
		return fmt.Errorf("influx.timeout: %s is below the minimum 1s", c.Timeout)
	}
	return nil
}

// Client writes to and queries one bucket.
type Client struct {
	cfg    Config
	client influxdb2.Client
	write  api.WriteAPIBlocking

	http     *http.Client // for /query
	queryURL string
	db, rp   string // of the bucket
}

// New returns a client for cfg; it does not connect until used.
func New(cfg Config) *Client {
	opts := influxdb2.DefaultOptions().
		SetUseGZip(cfg.GZip).
		SetPrecision(time.Millisecond).
		SetHTTPRequestTimeout(uint(cfg.Timeout / time.Second))
	c := influxdb2.NewClientWithOptions(cfg.URL, cfg.Token, opts)
	db, rp := splitBucket(cfg.Bucket)
	return &Client{cfg: cfg, client: c, write: c.WriteAPIBlocking(cfg.Org, cfg.Bucket),
		http: &http.Client{Timeout: cfg.Timeout, Transport: http.DefaultTransport.(*http.Transport).Clone()}, queryURL: strings.TrimRight(cfg.URL, "/") + "/query", db: db, rp: rp}
}

// Close releases the client's connections.
func (c *Client) Close() {
	c.client.Close()
	c.http.CloseIdleConnections()
}

// WriteError classifies a failed write so the caller (the telemetry shipper) can decide:
// BadData means the store refused the points themselves (retrying cannot help; find the bad
// ones and set them aside); anything else is retried, later if Err wraps a *backoff.RetryAfter
// (the store asked for a pause).
type WriteError struct {
	Err     error
	BadData bool
}

func (e *WriteError) Error() string { return e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// Write sends lines (line protocol, millisecond timestamps) in one request. Failures come back
// as *WriteError: BadData for what InfluxDB refuses as malformed or conflicting
// (400, 413, 422); otherwise the write may succeed later (network, timeouts, 429, 5xx, and also
// 401/403/404, which an operator fixes without the data being at fault).
func (c *Client) Write(ctx context.Context, lines []string) error {
	err := c.write.WriteRecord(ctx, lines...)
	if err == nil {
		return nil
	}
	we := &WriteError{Err: err}
	var he *ihttp.Error
	if errors.As(err, &he) {
		switch he.StatusCode {
		case 400, 413, 422:
			we.BadData = true
		}
		if he.RetryAfter > 0 {
			we.Err = &backoff.RetryAfter{Err: err, After: time.Duration(he.RetryAfter) * time.Second}
		}
	}
	return we
}

// Ping reports whether InfluxDB answers, for readiness.
func (c *Client) Ping(ctx context.Context) error {
	ok, err := c.client.Ping(ctx)
	if err == nil && !ok {
		err = errors.New("influxdb did not answer its ping")
	}
	return err
}
