package influx_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/internal/backoff"
	"github.com/lockerhub/lockerhub/telemetry/influx"
)

// How a refused write is classified for the shipper. A fake server, since a real InfluxDB
// cannot be made to answer 429 or 503 on demand.
func TestWriteErrors(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		retryAfter string
		badData    bool
		after      time.Duration // 0: no *backoff.RetryAfter
	}{
		{"malformed", http.StatusBadRequest, "", true, 0},
		{"too large", http.StatusRequestEntityTooLarge, "", true, 0},
		{"throttled", http.StatusTooManyRequests, "7", false, 7 * time.Second},
		{"unavailable with retry-after", http.StatusServiceUnavailable, "3", false, 3 * time.Second},
		{"unavailable", http.StatusServiceUnavailable, "", false, 0},
		{"unauthorized", http.StatusUnauthorized, "", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				w.Write([]byte(`{"code":"refused","message":"refused"}`))
			}))
			defer srv.Close()
			c := influx.New(influx.Config{URL: srv.URL, Bucket: "lockerhub/autogen", Timeout: 5 * time.Second})
			defer c.Close()
			err := c.Write(context.Background(), []string{"door,device=a open=true 1764000000000"})
			we, ok := errors.AsType[*influx.WriteError](err)
			if !ok {
				t.Fatalf("Write = %v, want a *influx.WriteError", err)
			}
			if we.BadData != tc.badData {
				t.Errorf("BadData = %v, want %v (%v)", we.BadData, tc.badData, err)
			}
			var after time.Duration
			if ra, ok := errors.AsType[*backoff.RetryAfter](err); ok {
				after = ra.After
			}
			if after != tc.after {
				t.Errorf("Retry-After = %s, want %s (%v)", after, tc.after, err)
			}
		})
	}
}
