package http

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/commands"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// History query limits: enough for charts of days at minute resolution, small enough that one
// request cannot make InfluxDB return millions of points.
const (
	defaultHistorySpan = 6 * time.Hour
	maxHistorySpan     = 90 * 24 * time.Hour
	maxHistoryPoints   = 10_000
	defaultPoints      = 200
)

// Services are what the API serves.
type Services struct {
	Devices  fleet.DeviceService
	Presence fleet.PresenceService
	Live     fleet.LiveStateService
	History  fleet.HistoryService
	Tokens   fleet.TokenService
	Commands CommandSender
	Audit    fleet.AuditService
}

// CommandSender sends commands and reads them back (the commands service).
type CommandSender interface {
	Send(ctx context.Context, req commands.Request, wait bool) (*fleet.Command, error)
	Find(ctx context.Context, id string) (*fleet.Command, error)
	List(ctx context.Context, f fleet.CommandFilter) ([]*fleet.Command, error)
}

// api holds the handlers of /api/v1/.
type api struct {
	svc Services
	log *slog.Logger
}

// Handle registers the API under /api/v1/ on the server. Every endpoint needs a bearer token
// (see fleet.Role for what each role may do).
func (s *Server) Handle(svc Services, log *slog.Logger) {
	a := &api{svc: svc, log: log}
	s.mux.Handle("GET /api/v1/devices", a.auth(fleet.RoleViewer, a.handleDevices))
	s.mux.Handle("GET /api/v1/devices/{id}", a.auth(fleet.RoleViewer, a.handleDevice))
	s.mux.Handle("GET /api/v1/devices/{id}/telemetry", a.auth(fleet.RoleViewer, a.handleHistory))
	s.mux.Handle("POST /api/v1/devices/{id}/doors/{door}/unlock", a.auth(fleet.RoleOperator, a.handleDoorCommand(wire.CommandUnlock)))
	s.mux.Handle("POST /api/v1/devices/{id}/doors/{door}/lock", a.auth(fleet.RoleOperator, a.handleDoorCommand(wire.CommandLock)))
	s.mux.Handle("POST /api/v1/devices/{id}/setpoint", a.auth(fleet.RoleOperator, a.handleSetpoint))
	s.mux.Handle("GET /api/v1/commands/{id}", a.auth(fleet.RoleViewer, a.handleCommand))
	s.mux.Handle("GET /api/v1/commands", a.auth(fleet.RoleViewer, a.handleCommands))

	// Administration, mirroring the device and token commands of the CLI.
	s.mux.Handle("POST /api/v1/devices", a.auth(fleet.RoleAdmin, a.handleCreateDevice))
	s.mux.Handle("POST /api/v1/devices/{id}/rotate-secret", a.auth(fleet.RoleAdmin, a.handleRotateSecret))
	s.mux.Handle("POST /api/v1/devices/{id}/enable", a.auth(fleet.RoleAdmin, a.handleSetEnabled(true)))
	s.mux.Handle("POST /api/v1/devices/{id}/disable", a.auth(fleet.RoleAdmin, a.handleSetEnabled(false)))
	s.mux.Handle("DELETE /api/v1/devices/{id}", a.auth(fleet.RoleAdmin, a.handleDeleteDevice))
	s.mux.Handle("GET /api/v1/tokens", a.auth(fleet.RoleAdmin, a.handleTokens))
	s.mux.Handle("POST /api/v1/tokens", a.auth(fleet.RoleAdmin, a.handleCreateToken))
	s.mux.Handle("DELETE /api/v1/tokens/{id}", a.auth(fleet.RoleAdmin, a.handleRevokeToken))
	s.mux.Handle("GET /api/v1/audit", a.auth(fleet.RoleAdmin, a.handleAudit))
}

// record appends an event to the audit trail. A failure to record does not undo the action
// (it already happened) but must not go unnoticed: it is logged as an error.
func (a *api) record(r *http.Request, actor, action, device string, detail map[string]any) {
	if err := a.svc.Audit.Append(r.Context(), &fleet.AuditEntry{Actor: actor, Action: action, Device: device, Detail: detail}); err != nil {
		a.log.Error("audit trail: event not recorded", "action", action, "device", device, "error", err)
	}
}

// maxAuditEntries bounds one audit response; page with since.
const maxAuditEntries = 10_000

// handleAudit returns audit entries (filters since, device), oldest first. Only admins without
// a site scope may read it: the trail spans every site.
func (a *api) handleAudit(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	if len(tok.Sites) > 0 {
		writeError(w, fleet.Errorf(fleet.EFORBIDDEN, "the audit trail spans every site; a site-scoped token may not read it"))
		return
	}
	f := fleet.AuditFilter{Device: r.URL.Query().Get("device")}
	if v := r.URL.Query().Get("since"); v != "" {
		var err error
		if f.Since, err = time.Parse(time.RFC3339, v); err != nil {
			writeError(w, fleet.Errorf(fleet.EINVALID, "since: %q is not an RFC 3339 time", v))
			return
		}
	}
	entries := []*fleet.AuditEntry{}
	errFull := errors.New("full")
	err := a.svc.Audit.Entries(r.Context(), f, func(e *fleet.AuditEntry) error {
		if len(entries) == maxAuditEntries {
			return errFull
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil && !errors.Is(err, errFull) {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries, "truncated": errors.Is(err, errFull)})
}

// handleCreateDevice registers a device at a site within the token's scope and answers 201 with
// its secret, shown this once.
func (a *api) handleCreateDevice(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	var d fleet.Device
	if err := decodeBody(w, r, &d); err != nil {
		writeError(w, err)
		return
	}
	if !tok.InScope(d.Site) {
		writeError(w, fleet.Errorf(fleet.EFORBIDDEN, "site %q is outside this token's scope", d.Site))
		return
	}
	secret, err := a.svc.Devices.CreateDevice(r.Context(), &d)
	if err != nil {
		writeError(w, err)
		return
	}
	a.record(r, "token:"+tok.ID, "device.create", d.ID, map[string]any{"kind": string(d.Kind), "site": d.Site, "doors": d.Doors})
	writeJSON(w, http.StatusCreated, map[string]any{"id": d.ID, "secret": secret, "device": &d})
}

func (a *api) handleRotateSecret(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	d, err := a.device(r, tok, r.PathValue("id"))
	var secret string
	if err == nil {
		secret, err = a.svc.Devices.RotateSecret(r.Context(), d.ID)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	a.record(r, "token:"+tok.ID, "device.rotate_secret", d.ID, nil)
	writeJSON(w, http.StatusOK, map[string]any{"id": d.ID, "secret": secret})
}

func (a *api) handleSetEnabled(enabled bool) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
		d, err := a.device(r, tok, r.PathValue("id"))
		if err == nil {
			d, err = a.svc.Devices.SetEnabled(r.Context(), d.ID, enabled)
		}
		if err != nil {
			writeError(w, err)
			return
		}
		a.record(r, "token:"+tok.ID, map[bool]string{true: "device.enable", false: "device.disable"}[enabled], d.ID, nil)
		writeJSON(w, http.StatusOK, a.view(d))
	}
}

func (a *api) handleDeleteDevice(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	d, err := a.device(r, tok, r.PathValue("id"))
	if err == nil {
		err = a.svc.Devices.DeleteDevice(r.Context(), d.ID)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	a.record(r, "token:"+tok.ID, "device.remove", d.ID, nil)
	w.WriteHeader(http.StatusNoContent)
}

// handleTokens lists the tokens whose scope lies within the caller's.
func (a *api) handleTokens(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	tokens, err := a.svc.Tokens.FindTokens(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	visible := []*fleet.Token{}
	for _, t := range tokens {
		if within(tok, t) {
			visible = append(visible, t)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": visible})
}

// within reports whether token t's scope lies inside admin's, so that a property manager's
// admin cannot see or revoke the tokens of other properties.
func within(admin, t *fleet.Token) bool {
	if len(admin.Sites) == 0 {
		return true
	}
	if len(t.Sites) == 0 {
		return false
	}
	for _, site := range t.Sites {
		if !admin.InScope(site) {
			return false
		}
	}
	return true
}

// handleCreateToken creates a token, never with a wider scope than the creator's own.
func (a *api) handleCreateToken(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	var t fleet.Token
	if err := decodeBody(w, r, &t); err != nil {
		writeError(w, err)
		return
	}
	if len(tok.Sites) > 0 && len(t.Sites) == 0 {
		t.Sites = tok.Sites
	}
	if !within(tok, &t) {
		writeError(w, fleet.Errorf(fleet.EFORBIDDEN, "sites %v reach outside this token's scope", t.Sites))
		return
	}
	secret, err := a.svc.Tokens.CreateToken(r.Context(), &t)
	if err != nil {
		writeError(w, err)
		return
	}
	a.record(r, "token:"+tok.ID, "token.create", "", map[string]any{"token": t.ID, "name": t.Name, "role": string(t.Role), "sites": t.Sites})
	writeJSON(w, http.StatusCreated, map[string]any{"id": t.ID, "token": secret, "role": t.Role, "sites": t.Sites})
}

func (a *api) handleRevokeToken(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	id := r.PathValue("id")
	tokens, err := a.svc.Tokens.FindTokens(r.Context())
	if err == nil {
		err = fleet.Errorf(fleet.ENOTFOUND, "token %q not found", id)
		for _, t := range tokens {
			if t.ID == id && within(tok, t) {
				if err = a.svc.Tokens.RevokeToken(r.Context(), id); err == nil {
					a.record(r, "token:"+tok.ID, "token.revoke", "", map[string]any{"token": id})
				}
			}
		}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// maxBody bounds request bodies; commands carry a reason and little else.
const maxBody = 16 << 10

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

// sendCommand completes req from the request (device, actor, Idempotency-Key header, query wait
// (default true) and timeout (default 10s)) and sends it. It answers 200 with the device's
// result and the latency, 202 without waiting, 409 for an offline device, 429 over a rate
// limit, 504 when the command expired.
func (a *api) sendCommand(w http.ResponseWriter, r *http.Request, tok *fleet.Token, req commands.Request) {
	req.DeviceID, req.Actor = r.PathValue("id"), "token:"+tok.ID
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

// decodeBody reads a small JSON body into v, refusing unknown fields.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fleet.Errorf(fleet.EINVALID, "body: %v", err)
	}
	return nil
}

// handleCommands lists commands (filters device, status, limit), newest first, leaving out
// those of devices outside the token's scope.
func (a *api) handleCommands(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	q := r.URL.Query()
	f := fleet.CommandFilter{DeviceID: q.Get("device"), Status: fleet.CommandStatus(q.Get("status"))}
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

func (a *api) handleCommand(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	c, err := a.svc.Commands.Find(r.Context(), r.PathValue("id"))
	if err == nil {
		if _, derr := a.device(r, tok, c.DeviceID); derr != nil {
			err = fleet.Errorf(fleet.ENOTFOUND, "command %q not found", r.PathValue("id"))
		}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"command": c, "latency_ms": c.Latency().Milliseconds()})
}

// deviceView is a device as the API shows it: registry entry, presence and live state.
type deviceView struct {
	*fleet.Device
	Presence fleet.Presence   `json:"presence"`
	Live     *fleet.LiveState `json:"live,omitempty"`
}

func (a *api) view(d *fleet.Device) deviceView {
	v := deviceView{Device: d, Presence: fleet.Presence{DeviceID: d.ID}}
	if p, ok := a.svc.Presence.Presence(d.ID); ok {
		v.Presence = p
	}
	if l, ok := a.svc.Live.LiveState(d.ID); ok {
		v.Live = &l
	}
	return v
}

// handleDevices lists the devices in the token's scope, filtered by site, kind and online.
func (a *api) handleDevices(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	q := r.URL.Query()
	f := fleet.DeviceFilter{Site: q.Get("site"), Kind: fleet.Kind(q.Get("kind"))}
	if f.Kind != "" {
		if err := f.Kind.Validate(); err != nil {
			writeError(w, err)
			return
		}
	}
	var online *bool
	if s := q.Get("online"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			writeError(w, fleet.Errorf(fleet.EINVALID, "online: %q is not true or false", s))
			return
		}
		online = &b
	}
	devices, err := a.svc.Devices.FindDevices(r.Context(), f)
	if err != nil {
		writeError(w, err)
		return
	}
	views := []deviceView{}
	for _, d := range devices {
		if !tok.InScope(d.Site) {
			continue
		}
		v := a.view(d)
		if online == nil || v.Presence.Online == *online {
			views = append(views, v)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": views})
}

func (a *api) handleDevice(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	d, err := a.device(r, tok, r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.view(d))
}

// authedHandler is a handler that runs for an authenticated token.
type authedHandler func(w http.ResponseWriter, r *http.Request, tok *fleet.Token)

// auth authenticates the request's bearer token and checks that its role allows need:
// 401 without a valid token, 403 for a role that is too low.
func (a *api) auth(need fleet.Role, h authedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || secret == "" {
			writeError(w, fleet.Errorf(fleet.EUNAUTHORIZED, "send an API token: Authorization: Bearer TOKEN"))
			return
		}
		tok, err := a.svc.Tokens.Authenticate(r.Context(), secret)
		if err != nil {
			if fleet.ErrorCode(err) == fleet.EUNAUTHORIZED {
				a.record(r, "api", "login.failed", "", map[string]any{"remote": r.RemoteAddr, "path": r.URL.Path})
			}
			writeError(w, err)
			return
		}
		if !tok.Role.Allows(need) {
			writeError(w, fleet.Errorf(fleet.EFORBIDDEN, "a %s token may not do this: it needs %s", tok.Role, need))
			return
		}
		h(w, r, tok)
	})
}

// device returns device id if the token's scope covers its site. Outside the scope the device
// is reported missing, so that a scoped token cannot even learn which ids exist elsewhere.
func (a *api) device(r *http.Request, tok *fleet.Token, id string) (*fleet.Device, error) {
	d, err := a.svc.Devices.FindDeviceByID(r.Context(), id)
	if err == nil && !tok.InScope(d.Site) {
		return nil, fleet.Errorf(fleet.ENOTFOUND, "device %q not found", id)
	}
	return d, err
}

func (a *api) handleHistory(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	q, err := historyQuery(r)
	if err == nil {
		_, err = a.device(r, tok, q.DeviceID)
	}
	var points []fleet.HistoryPoint
	if err == nil {
		points, err = a.svc.History.History(r.Context(), q)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if points == nil {
		points = []fleet.HistoryPoint{}
	}
	body := map[string]any{"device": q.DeviceID, "field": q.Field,
		"from": q.From, "to": q.To, "every": q.Every.String(), "points": points}
	if q.Door > 0 {
		body["door"] = q.Door
	}
	writeJSON(w, http.StatusOK, body)
}

// historyQuery parses and checks the query parameters of a history request.
func historyQuery(r *http.Request) (fleet.HistoryQuery, error) {
	v := r.URL.Query()
	q := fleet.HistoryQuery{DeviceID: r.PathValue("id"), Field: v.Get("field"), To: time.Now().UTC()}
	f, ok := fleet.HistoryFields[q.Field]
	if !ok {
		return q, fleet.Errorf(fleet.EINVALID, "field: %q is not one of %v", q.Field, fleet.HistoryFieldNames())
	}
	if f.NeedsDoor || v.Has("door") {
		n, err := strconv.Atoi(v.Get("door"))
		if err != nil || n < 1 {
			return q, fleet.Errorf(fleet.EINVALID, "door: %q is not a door number; field %s needs door=N", v.Get("door"), q.Field)
		}
		q.Door = n
	}
	var err error
	if s := v.Get("to"); s != "" {
		if q.To, err = time.Parse(time.RFC3339, s); err != nil {
			return q, fleet.Errorf(fleet.EINVALID, "to: %q is not an RFC 3339 time (2026-11-25T08:00:00Z)", s)
		}
	}
	q.From = q.To.Add(-defaultHistorySpan)
	if s := v.Get("from"); s != "" {
		if q.From, err = time.Parse(time.RFC3339, s); err != nil {
			return q, fleet.Errorf(fleet.EINVALID, "from: %q is not an RFC 3339 time (2026-11-25T02:00:00Z)", s)
		}
	}
	span := q.To.Sub(q.From)
	if span <= 0 || span > maxHistorySpan {
		return q, fleet.Errorf(fleet.EINVALID, "from..to: the range must be positive and at most %s", maxHistorySpan)
	}
	q.Every = max(time.Second, (span / defaultPoints).Round(time.Second))
	if s := v.Get("every"); s != "" {
		if q.Every, err = time.ParseDuration(s); err != nil || q.Every < time.Second {
			return q, fleet.Errorf(fleet.EINVALID, "every: %q is not a duration of at least 1s (e.g. 5m)", s)
		}
	}
	if span/q.Every > maxHistoryPoints {
		return q, fleet.Errorf(fleet.EINVALID, "every: %s over %s gives more than %d points", q.Every, span, maxHistoryPoints)
	}
	return q, nil
}

// errorStatus maps domain error codes to HTTP statuses, in one place.
var errorStatus = map[string]int{
	fleet.EINVALID:      http.StatusBadRequest,
	fleet.EUNAUTHORIZED: http.StatusUnauthorized,
	fleet.EFORBIDDEN:    http.StatusForbidden,
	fleet.ENOTFOUND:     http.StatusNotFound,
	fleet.ECONFLICT:     http.StatusConflict,
	fleet.ERATELIMITED:  http.StatusTooManyRequests,
	fleet.ETIMEOUT:      http.StatusGatewayTimeout,
	fleet.EUNAVAILABLE:  http.StatusServiceUnavailable,
	fleet.EINTERNAL:     http.StatusInternalServerError,
}

// writeError answers with the error's status and a JSON body with a stable code and a message.
// Internal errors are not described to the caller.
func writeError(w http.ResponseWriter, err error) {
	code := fleet.ErrorCode(err)
	msg := err.Error()
	if code == fleet.EUNAUTHORIZED {
		w.Header().Set("WWW-Authenticate", `Bearer realm="lockerhub"`)
	}
	var e *fleet.Error
	if !errors.As(err, &e) {
		code, msg = fleet.EINTERNAL, "internal error"
	}
	writeJSON(w, errorStatus[code], map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
