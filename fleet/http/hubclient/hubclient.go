// Package hubclient is a client of the hub's HTTP API (fleet/http) with an API token, under
// the same roles as any other API client. It decodes answers into the server's own types, so
// that the two cannot drift apart, and reads the API's event stream (sse.go).
package hubclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	fleethttp "github.com/lockerhub/lockerhub/fleet/http"
)

// maxAnswer bounds how much of an answer is read: the largest are cold-chain reports.
const maxAnswer = 64 << 20

// Client calls one hub's API.
type Client struct {
	URL   string       // the hub's HTTP address, such as http://127.0.0.1:8080
	Token string       // an API token
	HTTP  *http.Client // nil: http.DefaultClient
}

// Error is an error answer of the API, with its status.
type Error struct {
	Status int
	Err    *fleet.Error
}

func (e *Error) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Err.Message, e.Status) }

// Unwrap gives the hub's domain error to fleet.ErrorCode and errors.As.
func (e *Error) Unwrap() error { return e.Err }

// Do sends a request with body (JSON-encoded unless nil) and returns the answer's status and
// body. Error answers (4xx, 5xx) come back as *Error, or as a plain error when they are not the
// API's JSON.
func (c *Client) Do(ctx context.Context, method, path string, body any, header http.Header) (int, []byte, error) {
	resp, err := c.Send(ctx, method, path, body, header)
	if err != nil {
		if resp != nil {
			return resp.StatusCode, nil, err
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return 0, nil, fmt.Errorf("hub: %w", err)
	}
	return resp.StatusCode, raw, nil
}

// Send sends a request like Do but leaves reading the answer to the caller, who must close its
// body: an event stream never ends. Error answers (4xx, 5xx) are read and closed here and come
// back as *Error, or as a plain error when they are not the API's JSON (a hub without the
// endpoint); the response is returned with them for its status.
func (c *Client) Send(ctx context.Context, method, path string, body any, header http.Header) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.URL, "/")+path, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	if resp.StatusCode < 400 {
		return resp, nil
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return resp, fmt.Errorf("hub: %w", err)
	}
	var e struct{ Error *fleet.Error }
	if json.Unmarshal(raw, &e) != nil || e.Error == nil {
		return resp, fmt.Errorf("hub answered %s: %.200s", resp.Status, raw)
	}
	return resp, &Error{Status: resp.StatusCode, Err: e.Error}
}

// GetJSON decodes the answer to a GET of path into v.
func (c *Client) GetJSON(ctx context.Context, path string, v any) error {
	_, raw, err := c.Do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return err
	}
	return decode(raw, v)
}

func decode(raw []byte, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("hub: unexpected answer: %w", err)
	}
	return nil
}

// Health returns the units of each site in the token's scope by health (GET /api/v1/health),
// and the answer as the hub sent it.
func (c *Client) Health(ctx context.Context) (*fleethttp.HealthSummary, []byte, error) {
	var h fleethttp.HealthSummary
	_, raw, err := c.Do(ctx, http.MethodGet, "/api/v1/health", nil, nil)
	if err == nil {
		err = decode(raw, &h)
	}
	return &h, raw, err
}

// Device returns what the hub knows about device id now (GET /api/v1/devices/{id}), and the
// answer as the hub sent it.
func (c *Client) Device(ctx context.Context, id string) (*fleethttp.DeviceView, []byte, error) {
	var d fleethttp.DeviceView
	_, raw, err := c.Do(ctx, http.MethodGet, "/api/v1/devices/"+url.PathEscape(id), nil, nil)
	if err == nil {
		err = decode(raw, &d)
	}
	return &d, raw, err
}

// Alerts returns the alerts that q selects (GET /api/v1/alerts: state, severity, site, device,
// limit), newest first.
func (c *Client) Alerts(ctx context.Context, q url.Values) ([]fleet.Alert, error) {
	var res struct {
		Alerts []fleet.Alert `json:"alerts"`
	}
	err := c.GetJSON(ctx, "/api/v1/alerts?"+q.Encode(), &res)
	return res.Alerts, err
}

// AlertAction acknowledges (action "ack") or resolves ("resolve") alert id with note, and
// returns the alert as it is now, and as the hub sent it.
func (c *Client) AlertAction(ctx context.Context, id int64, action, note string) (fleet.Alert, []byte, error) {
	var a fleet.Alert
	_, raw, err := c.Do(ctx, http.MethodPost, fmt.Sprintf("/api/v1/alerts/%d/%s", id, action), map[string]string{"note": note}, nil)
	if err == nil {
		err = decode(raw, &a)
	}
	return a, raw, err
}

// DoorRequest asks a device to unlock or lock a door.
type DoorRequest struct {
	Verb           string // "unlock" or "lock"
	Device         string
	Door           int
	Reason         string        // why, for the chain of custody
	NoWait         bool          // answer once the command is sent, not with the device's result
	Timeout        time.Duration // how long the device has to act; 0: the hub's default
	IdempotencyKey string        // a retried request with the same key returns the first command
}

// DoorAnswer is the hub's answer to a DoorRequest.
type DoorAnswer struct {
	Status    int // 200 with the device's result, 202 when the request did not wait for it
	Command   *fleet.Command
	LatencyMS int64  // how long the device took, with the result
	Raw       []byte // the answer as the hub sent it
}

// Door sends r (POST /api/v1/devices/{id}/doors/{door}/{verb}). An answer without a command
// is an error.
func (c *Client) Door(ctx context.Context, r DoorRequest) (*DoorAnswer, error) {
	q := url.Values{"wait": {strconv.FormatBool(!r.NoWait)}}
	if r.Timeout > 0 {
		q.Set("timeout", r.Timeout.String())
	}
	path := fmt.Sprintf("/api/v1/devices/%s/doors/%d/%s?%s", url.PathEscape(r.Device), r.Door, r.Verb, q.Encode())
	header := http.Header{}
	if r.IdempotencyKey != "" {
		header.Set("Idempotency-Key", r.IdempotencyKey)
	}
	status, raw, err := c.Do(ctx, http.MethodPost, path, map[string]string{"reason": r.Reason}, header)
	if err != nil {
		return nil, err
	}
	var res struct {
		Command   *fleet.Command `json:"command"`
		LatencyMS int64          `json:"latency_ms"`
	}
	if err := json.Unmarshal(raw, &res); err != nil || res.Command == nil {
		return nil, fmt.Errorf("hub answered %d without a command: %.200s", status, raw)
	}
	return &DoorAnswer{Status: status, Command: res.Command, LatencyMS: res.LatencyMS, Raw: raw}, nil
}

// Occupancy returns the compartments of the units q selects (GET /api/v1/occupancy: site,
// device, units) in the token's scope: per unit, per site and in all, and with device its
// doors.
func (c *Client) Occupancy(ctx context.Context, q url.Values) (*fleethttp.OccupancyAnswer, error) {
	var o fleethttp.OccupancyAnswer
	return &o, c.GetJSON(ctx, "/api/v1/occupancy?"+q.Encode(), &o)
}

// Deliveries returns the deliveries report q asks for (GET /api/v1/reports/deliveries: site,
// from, to), and the answer as the hub sent it.
func (c *Client) Deliveries(ctx context.Context, q url.Values) (*fleethttp.DeliveryReportAnswer, []byte, error) {
	var r fleethttp.DeliveryReportAnswer
	_, raw, err := c.Do(ctx, http.MethodGet, "/api/v1/reports/deliveries?"+q.Encode(), nil, nil)
	if err == nil {
		err = decode(raw, &r)
	}
	return &r, raw, err
}

// Deliver records a delivery (POST /api/v1/deliveries) and returns the parcel with its pickup
// code, which the hub shows this once, and the answer as the hub sent it.
func (c *Client) Deliver(ctx context.Context, d fleet.Delivery) (*fleethttp.DeliveryResponse, []byte, error) {
	var res fleethttp.DeliveryResponse
	_, raw, err := c.Do(ctx, http.MethodPost, "/api/v1/deliveries", d, nil)
	if err == nil {
		err = decode(raw, &res)
	}
	return &res, raw, err
}

// Parcels returns the parcels that q selects (GET /api/v1/parcels: device, site, status,
// occupies, limit), newest first, and the answer as the hub sent it.
func (c *Client) Parcels(ctx context.Context, q url.Values) ([]*fleet.Parcel, []byte, error) {
	var res fleethttp.ParcelList
	_, raw, err := c.Do(ctx, http.MethodGet, "/api/v1/parcels?"+q.Encode(), nil, nil)
	if err == nil {
		err = decode(raw, &res)
	}
	return res.Parcels, raw, err
}

// Parcel returns one parcel (GET /api/v1/parcels/{id}) and the answer as the hub sent it.
func (c *Client) Parcel(ctx context.Context, id string) (*fleethttp.ParcelResponse, []byte, error) {
	return c.parcelCall(ctx, http.MethodGet, "/api/v1/parcels/"+url.PathEscape(id), nil)
}

// ParcelAction drops a reserved parcel off (action "dropoff"), cancels it ("cancel") or
// retrieves it ("retrieve", which waits for the door's unlock), with reason, and returns the
// parcel as it is now (and a retrieve's unlock), and the answer as the hub sent it.
func (c *Client) ParcelAction(ctx context.Context, id, action, reason string) (*fleethttp.ParcelResponse, []byte, error) {
	var body any
	if action != "dropoff" {
		body = fleethttp.ReasonRequest{Reason: reason}
	}
	return c.parcelCall(ctx, http.MethodPost, "/api/v1/parcels/"+url.PathEscape(id)+"/"+url.PathEscape(action), body)
}

func (c *Client) parcelCall(ctx context.Context, method, path string, body any) (*fleethttp.ParcelResponse, []byte, error) {
	var res fleethttp.ParcelResponse
	_, raw, err := c.Do(ctx, method, path, body, nil)
	if err == nil {
		err = decode(raw, &res)
	}
	return &res, raw, err
}
