package simctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client talks to a control API (see Handler). The zero HTTP uses http.DefaultClient.
type Client struct {
	Addr string // host:port of the control surface, such as DefaultAddr
	HTTP *http.Client
}

// Error is an error answer of the control API.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// List returns the units, their faults and whether people are coming.
func (c *Client) List(ctx context.Context) (List, error) {
	var l List
	return l, c.do(ctx, http.MethodGet, "/v1/units", nil, &l)
}

// SetFault turns a fault on or off; see Fleet.SetFault.
func (c *Client) SetFault(ctx context.Context, r FaultRequest) (UnitStatus, error) {
	var u UnitStatus
	return u, c.do(ctx, http.MethodPost, "/v1/faults", r, &u)
}

// SetAmbient sets (or with a nil C clears) the outside temperature of a site's units.
func (c *Client) SetAmbient(ctx context.Context, r AmbientRequest) (AmbientAnswer, error) {
	var a AmbientAnswer
	return a, c.do(ctx, http.MethodPost, "/v1/ambient", r, &a)
}

// SetNetwork takes a unit's network down or up.
func (c *Client) SetNetwork(ctx context.Context, r NetworkRequest) (UnitStatus, error) {
	var u UnitStatus
	return u, c.do(ctx, http.MethodPost, "/v1/network", r, &u)
}

// EnterCode types code at unit's keypad, as a resident would; see Fleet.EnterCode.
func (c *Client) EnterCode(ctx context.Context, unit, code string) (UnitStatus, error) {
	var u UnitStatus
	return u, c.do(ctx, http.MethodPost, "/v1/units/"+url.PathEscape(unit)+"/keypad", KeypadRequest{Code: code}, &u)
}

// SetPeople turns the simulated people on or off.
func (c *Client) SetPeople(ctx context.Context, on bool) error {
	return c.do(ctx, http.MethodPost, "/v1/people", PeopleRequest{On: on}, nil)
}

// do sends body as JSON and decodes the answer into out. An error answer comes back as *Error;
// a surface that does not answer as an error saying how to start one.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.Addr+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("no simulator control surface answers at %s (is `lockerhub simulate` or `lockerhub demo` running with --control %s?): %w", c.Addr, c.Addr, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e errorAnswer
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			return fmt.Errorf("%s answered %s, not as a simulator control surface: %.200s", c.Addr, resp.Status, strings.TrimSpace(string(raw)))
		}
		return &Error{Status: resp.StatusCode, Message: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return errors.Join(fmt.Errorf("%s: unexpected answer", c.Addr), err)
	}
	return nil
}
