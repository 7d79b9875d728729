package http

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/commands"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// CommandSender sends commands and reads them back (the commands service).
type CommandSender interface {
	Send(ctx context.Context, req commands.Request, wait bool) (*fleet.Command, error)
	Find(ctx context.Context, id string) (*fleet.Command, error)
	List(ctx context.Context, f fleet.CommandFilter) ([]*fleet.Command, error)
}

// handleDoorCommand sends an unlock or lock: body {"reason": "..."}.
func (a *api) handleDoorCommand(typ wire.CommandType) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
		var body struct {
			Reason string `json:"reason"`
		}
		door, err := strconv.Atoi(r.PathValue("door"))
		if err != nil {
			writeError(w, fleet.Errorf(fleet.ENOTFOUND, "door %q not found", r.PathValue("door")))
			return
		}
		if err := decodeBody(w, r, &body); err != nil {
			writeError(w, err)
			return
		}
		a.sendCommand(w, r, tok, commands.Request{Type: typ, Door: door, Reason: body.Reason})
	}
}

// handleSetpoint sends a setpoint: body {"target": "heater"|"compressor", "setpoint_c": 4.5,
// "reason": "..."}.
func (a *api) handleSetpoint(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	var body struct {
		Target    string   `json:"target"`
		SetpointC *float64 `json:"setpoint_c"`
		Reason    string   `json:"reason"`
	}
	if err := decodeBody(w, r, &body); err != nil {
		writeError(w, err)
		return
	}
	a.sendCommand(w, r, tok, commands.Request{Type: wire.CommandSetpoint, Target: body.Target, SetpointC: body.SetpointC, Reason: body.Reason})
}

// sendCommand completes req from the request (device, Idempotency-Key header, query wait
// (default true) and timeout (default 10s)) and sends it. It answers 200 with the device's
// result and the latency, 202 without waiting, 409 for an offline device, 429 over a rate
// limit, 504 when the command expired.
func (a *api) sendCommand(w http.ResponseWriter, r *http.Request, tok *fleet.Token, req commands.Request) {
	req.DeviceID = r.PathValue("id")
	req.IdempotencyKey, req.Timeout = r.Header.Get("Idempotency-Key"), commands.DefaultTimeout
	wait := true
	var err error
	if v := r.URL.Query().Get("wait"); v != "" {
		if wait, err = strconv.ParseBool(v); err != nil {
			writeError(w, fleet.Errorf(fleet.EINVALID, "wait: %q is not true or false", v))
			return
		}
	}
	if v := r.URL.Query().Get("timeout"); v != "" {
		if req.Timeout, err = time.ParseDuration(v); err != nil {
			writeError(w, fleet.Errorf(fleet.EINVALID, "timeout: %q is not a duration (e.g. 10s)", v))
			return
		}
	}
	if _, err := a.device(r, tok, req.DeviceID); err != nil {
		writeError(w, err)
		return
	}
	c, err := a.svc.Commands.Send(r.Context(), req, wait)
	if err != nil {
		writeError(w, err)
		return
	}
	if !c.Done() {
		writeJSON(w, http.StatusAccepted, map[string]any{"command": c})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"command": c, "latency_ms": c.Latency().Milliseconds()})
}

// handleCommands lists commands (filters device, status, limit), newest first, leaving out
// those of devices outside the token's scope and those of ended registrations.
func (a *api) handleCommands(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	q := r.URL.Query()
	f := fleet.CommandFilter{DeviceID: q.Get("device"), Status: fleet.CommandStatus(q.Get("status")), Current: true}
	if v := q.Get("limit"); v != "" {
		var err error
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 {
			writeError(w, fleet.Errorf(fleet.EINVALID, "limit: %q is not a number from 1 to 1000", v))
			return
		}
	}
	cmds, err := a.svc.Commands.List(r.Context(), f)
	if err != nil {
		writeError(w, err)
		return
	}
	visible := []*fleet.Command{}
	inScope := map[string]bool{}
	for _, c := range cmds {
		ok, seen := inScope[c.DeviceID]
		if !seen {
			_, derr := a.device(r, tok, c.DeviceID)
			ok = derr == nil
			inScope[c.DeviceID] = ok
		}
		if ok {
			visible = append(visible, c)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"commands": visible})
}

// handleCommand answers one command, if its device is in the token's scope and still holds
// the registration the command was sent to: a command of an earlier unit with the same id is
// answered as not found.
func (a *api) handleCommand(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	c, err := a.svc.Commands.Find(r.Context(), r.PathValue("id"))
	if err == nil {
		if d, derr := a.device(r, tok, c.DeviceID); derr != nil || d.Registration != c.Registration {
			err = fleet.Errorf(fleet.ENOTFOUND, "command %q not found", r.PathValue("id"))
		}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"command": c, "latency_ms": c.Latency().Milliseconds()})
}
