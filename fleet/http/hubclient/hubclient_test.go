package hubclient_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/http/hubclient"
)

// The answers a real hub does not give: cmd/lockerhub's tests run the client against one.
func TestErrorAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			t.Errorf("authorization %q", r.Header.Get("Authorization"))
		}
		switch r.URL.Path {
		case "/api/v1/devices/x":
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":{"code":"not_found","message":"device \"x\" not found"}}`))
		case "/api/v1/devices/b/doors/1/unlock":
			w.Write([]byte(`{"latency_ms":3}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := &hubclient.Client{URL: srv.URL + "/", Token: "tok"}
	ctx := context.Background()

	_, _, err := c.Device(ctx, "x")
	var apiErr *hubclient.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 404 || apiErr.Err.Code != fleet.ENOTFOUND || err.Error() != `device "x" not found (HTTP 404)` {
		t.Errorf("API error: %v", err)
	}
	if status, _, err := c.Do(ctx, http.MethodGet, "/api/v1/stream", nil, nil); status != 404 || errors.As(err, &apiErr) ||
		err == nil || !strings.Contains(err.Error(), "hub answered 404 Not Found") {
		t.Errorf("not the API's answer: %d %v", status, err)
	}
	if _, err := c.Door(ctx, hubclient.DoorRequest{Verb: "unlock", Device: "b", Door: 1}); err == nil || !strings.Contains(err.Error(), "without a command") {
		t.Errorf("an answer without a command: %v", err)
	}
}
