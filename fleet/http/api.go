package http

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/loginaudit"
)

// Services are what the API serves.
type Services struct {
	Devices  fleet.DeviceService
	Presence fleet.PresenceService
	Live     fleet.LiveStateService
	History  fleet.HistoryService
	Tokens   fleet.TokenService
	Commands CommandSender
	// Parcels is parcel custody. Without it its endpoints are not served (404) and its views
	// (occupancy, the deliveries report) answer 503, which the dashboard takes for a hub that
	// keeps no parcels.
	Parcels fleet.ParcelService
	Audit   fleet.AuditService
	Alerts  AlertKeeper
	Stream  *Stream // live events for GET /api/v1/stream
	// TokenRecheck is how often an open event stream reads its token again, to end on its
	// revocation and follow a change of its role or sites: registry.watch_interval.
	// DefaultTokenRecheck when 0.
	TokenRecheck time.Duration

	ColdChain  fleet.ColdChainService
	Thresholds func(d *fleet.Device) float64 // cold-holding threshold of a fridge unit (alert rules)
	// StuckSensorAfter is how long an exactly repeated compartment reading must last for the
	// cold-chain report to count it as a stuck sensor's, untrusted (the sensor_stuck rule's
	// for); 0 trusts every reading.
	StuckSensorAfter time.Duration

	// DwellLimits are how long a parcel may stay in a compartment before the views call it
	// overdue (the parcel-overdue rule's thresholds); fleet.DefaultDwellLimits when zero.
	DwellLimits fleet.DwellLimits
}

// DefaultTokenRecheck is Services.TokenRecheck when it is not set: registry.watch_interval's
// default.
const DefaultTokenRecheck = 500 * time.Millisecond

// api holds the handlers of /api/v1/.
type api struct {
	svc    Services
	log    *slog.Logger
	logins *loginaudit.Recorder // failed logins, batched into the audit trail
	stop   <-chan struct{}      // the server is closing
}

// Handle registers the API under /api/v1/ on the server. Every endpoint needs a bearer token
// (see fleet.Role for what each role may do).
func (s *Server) Handle(svc Services, log *slog.Logger) {
	if svc.TokenRecheck <= 0 {
		svc.TokenRecheck = DefaultTokenRecheck
	}
	a := &api{svc: svc, log: log, logins: loginaudit.New(svc.Audit, "api", log), stop: s.stop}
	s.bg.Go(func() { a.logins.Run(s.bgCtx) })
	if svc.Stream != nil {
		p := &producer{a: a, s: svc.Stream}
		s.bg.Go(func() { p.run(s.bgCtx) })
	}
	// Any valid token, a carrier's too, may ask what it is.
	s.mux.Handle("GET /api/v1/whoami", a.authBy(func(*fleet.Token) error { return nil }, a.handleWhoami))
	s.mux.Handle("GET /api/v1/devices", a.auth(fleet.RoleViewer, a.handleDevices))
	s.mux.Handle("GET /api/v1/devices/{id}", a.auth(fleet.RoleViewer, a.handleDevice))
	s.mux.Handle("GET /api/v1/devices/{id}/telemetry", a.auth(fleet.RoleViewer, a.handleHistory))
	s.mux.Handle("POST /api/v1/devices/{id}/doors/{door}/unlock", a.auth(fleet.RoleOperator, a.handleDoorCommand(wire.CommandUnlock)))
	s.mux.Handle("POST /api/v1/devices/{id}/doors/{door}/lock", a.auth(fleet.RoleOperator, a.handleDoorCommand(wire.CommandLock)))
	s.mux.Handle("POST /api/v1/devices/{id}/setpoint", a.auth(fleet.RoleOperator, a.handleSetpoint))
	s.mux.Handle("GET /api/v1/commands/{id}", a.auth(fleet.RoleViewer, a.handleCommand))
	s.mux.Handle("GET /api/v1/commands", a.auth(fleet.RoleViewer, a.handleCommands))
	s.mux.Handle("GET /api/v1/alerts", a.auth(fleet.RoleViewer, a.handleAlerts))
	s.mux.Handle("GET /api/v1/alerts/{id}", a.auth(fleet.RoleViewer, a.handleAlert))
	s.mux.Handle("POST /api/v1/alerts/{id}/ack", a.auth(fleet.RoleTechnician, a.handleAlertAction(AlertKeeper.Ack)))
	s.mux.Handle("POST /api/v1/alerts/{id}/resolve", a.auth(fleet.RoleTechnician, a.handleAlertAction(AlertKeeper.Resolve)))
	s.mux.Handle("GET /api/v1/health", a.auth(fleet.RoleViewer, a.handleHealth))
	if svc.Parcels != nil {
		a.handleParcels(s.mux)
	}
	s.mux.Handle("GET /api/v1/stream", a.auth(streamRole, a.handleStream))

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
	s.mux.Handle("GET /api/v1/reports/cold-chain", a.auth(fleet.RoleViewer, a.handleColdChain))
	s.mux.Handle("GET /api/v1/reports/deliveries", a.auth(fleet.RoleViewer, a.handleDeliveries))
	s.mux.Handle("GET /api/v1/occupancy", a.auth(fleet.RoleViewer, a.handleOccupancy))
	s.mux.Handle("GET /api/v1/occupancy/parcels", a.auth(fleet.RoleViewer, a.handleOccupancyParcels))
	for _, ad := range s.addons {
		s.mux.Handle("GET /api/v1/"+ad.Name, a.auth(fleet.RoleViewer, func(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
			v, err := ad.Get(r, tok)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, v)
		}))
	}
}

// handleWhoami answers with the token the request authenticated with (never its secret): its
// role and sites, so that a client such as the dashboard offers only what the token may do.
func (a *api) handleWhoami(w http.ResponseWriter, _ *http.Request, tok *fleet.Token) {
	writeJSON(w, http.StatusOK, tok)
}

// maxBody bounds request bodies; commands carry a reason and little else.
const maxBody = 16 << 10

// decodeBody reads a small JSON body into v: ETOOLARGE past maxBody (the connection is then
// closed), EINVALID for anything but one JSON value with only known fields. Data after the
// value is refused rather than ignored, since a client that sent it meant something by it.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, err = dec.Token(); err == io.EOF {
			return nil
		} else if err == nil {
			err = errors.New("unexpected data after the JSON value")
		}
	}
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return fleet.Errorf(fleet.ETOOLARGE, "body: larger than %d bytes", maxBody)
	}
	return fleet.Errorf(fleet.EINVALID, "body: %v", err)
}

// writeSecret answers like writeJSON with a body that shows a secret once (a device's or a
// token's), which no cache, the browser's own included, may keep.
func writeSecret(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, code, v)
}

// authedHandler is a handler that runs for an authenticated token.
type authedHandler func(w http.ResponseWriter, r *http.Request, tok *fleet.Token)

// auth authenticates the request's bearer token and checks that its role allows need: 401
// without a valid token, 403 for a role that is too low (and for a carrier, which no role of
// the ladder admits). The token's actor goes into the request's context, where the services
// find whom they act for.
func (a *api) auth(need fleet.Role, h authedHandler) http.Handler {
	return a.authBy(func(tok *fleet.Token) error { return allows(tok, need) }, h)
}

// authBy is auth with the check of the token's role given: it returns the EFORBIDDEN error of
// a token that may not go on.
func (a *api) authBy(check func(tok *fleet.Token) error, h authedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || secret == "" {
			writeError(w, fleet.Errorf(fleet.EUNAUTHORIZED, "send an API token: Authorization: Bearer TOKEN"))
			return
		}
		tok, err := a.svc.Tokens.Authenticate(r.Context(), secret)
		if err != nil {
			if fleet.ErrorCode(err) == fleet.EUNAUTHORIZED {
				a.logins.Failed(loginaudit.Failure{Reason: "invalid_token", Remote: r.RemoteAddr, Path: r.URL.Path, Time: time.Now()})
			}
			writeError(w, err)
			return
		}
		if err := check(tok); err != nil {
			writeError(w, err)
			return
		}
		h(w, r.WithContext(fleet.NewContextWithActor(r.Context(), tok.Actor())), tok)
	})
}

// allows returns an EFORBIDDEN error unless tok's role allows need.
func allows(tok *fleet.Token, need fleet.Role) error {
	if !tok.Role.Allows(need) {
		return fleet.Errorf(fleet.EFORBIDDEN, "a %s token may not do this: it needs %s", tok.Role, need)
	}
	return nil
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

// errorStatus maps domain error codes to HTTP statuses, in one place.
var errorStatus = map[string]int{
	fleet.EINVALID:      http.StatusBadRequest,
	fleet.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	fleet.EKEYREUSED:    http.StatusUnprocessableEntity,
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
