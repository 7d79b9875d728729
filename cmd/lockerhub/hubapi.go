package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/lockerhub/lockerhub/fleet"
)

// hubAPI is how the CLI's operator commands talk to a running hub: its HTTP API with a token,
// under the same roles as any other API client.
type hubAPI struct {
	url, token string
}

// The environment variables the hub's address and token default to, so that one shell can be
// pointed at a hub once (lockerhub demo writes both into its env.sh).
const (
	envHub   = "LOCKERHUB_HUB"
	envToken = "LOCKERHUB_TOKEN"
)

// defaultHubURL is where `lockerhub serve` answers with the default http.addr.
const defaultHubURL = "http://127.0.0.1:8080"

// flags registers --hub and --token on fs.
func (h *hubAPI) flags(fs *pflag.FlagSet, role fleet.Role) {
	fs.StringVar(&h.url, "hub", "", "the hub's HTTP address (default $"+envHub+", else "+defaultHubURL+")")
	fs.StringVar(&h.token, "token", "", fmt.Sprintf("API token with the %s role or above (default $%s)", role, envToken))
}

// apiError is an error answer of the hub, with its status.
type apiError struct {
	status int
	err    *fleet.Error
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.err.Message, e.status) }

// Unwrap gives the hub's domain error to fleet.ErrorCode and to the CLI's exit code.
func (e *apiError) Unwrap() error { return e.err }

// do sends a request with body (JSON-encoded unless nil) and returns the answer's status and
// body. Error answers (4xx, 5xx) come back as *apiError.
func (h *hubAPI) do(ctx context.Context, method, path string, body any, header http.Header) (int, []byte, error) {
	resp, err := h.send(ctx, method, path, body, header)
	if err != nil {
		if resp != nil {
			return resp.StatusCode, nil, err
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("hub: %w", err)
	}
	return resp.StatusCode, raw, nil
}

// send sends a request like do but leaves reading the answer to the caller, who must close its
// body: `tail` follows an event stream that never ends. Error answers (4xx, 5xx) are read and
// closed here and come back as *apiError, or as a plain error when they are not the API's JSON
// (a hub without the endpoint); the response is returned with them for its status.
func (h *hubAPI) send(ctx context.Context, method, path string, body any, header http.Header) (*http.Response, error) {
	h.url = cmp.Or(h.url, os.Getenv(envHub), defaultHubURL)
	h.token = cmp.Or(h.token, os.Getenv(envToken))
	if h.token == "" {
		return nil, errors.New("no API token: pass --token or set " + envToken)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(h.url, "/")+path, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	if resp.StatusCode < 400 {
		return resp, nil
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp, fmt.Errorf("hub: %w", err)
	}
	var e struct{ Error *fleet.Error }
	if json.Unmarshal(raw, &e) != nil || e.Error == nil {
		return resp, fmt.Errorf("hub answered %s: %.200s", resp.Status, raw)
	}
	return resp, &apiError{status: resp.StatusCode, err: e.Error}
}

// getJSON decodes the answer to a GET into v.
func (h *hubAPI) getJSON(ctx context.Context, path string, v any) error {
	_, raw, err := h.do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("hub: unexpected answer: %w", err)
	}
	return nil
}
