package external

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/credential"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/logs"
	"github.com/lockerhub/lockerhub/internal/ratelog"
)

// CredentialFinder looks up a device's credential: its stored secret hash and whether it is
// enabled. fleet.DeviceService (fleet/sqldb) implements it, as for the embedded broker.
type CredentialFinder interface {
	// DeviceCredential returns the device's credential, or an error with code
	// fleet.ENOTFOUND for an unknown device.
	DeviceCredential(ctx context.Context, id string) (fleet.Credential, error)
}

// MinAuthSecretLen is the shortest shared secret AuthOptions.Validate accepts.
const MinAuthSecretLen = 16

// ErrWeakAuthSecret is returned by AuthOptions.Validate for a shared secret shorter than
// MinAuthSecretLen.
var ErrWeakAuthSecret = errors.New("brokerauth: the shared secret must be at least 16 characters")

// AuthOptions configures the handler of NewAuthHandler.
type AuthOptions struct {
	// Secret is the shared secret the broker sends. Empty refuses every request (401).
	Secret string
	// Logger receives denials and store errors; nil discards them.
	Logger *slog.Logger
	// Registerer receives the handler's metrics; nil registers none. NewAuthHandler panics if
	// they are already registered there.
	Registerer prometheus.Registerer
}

// Validate returns ErrWeakAuthSecret if the shared secret is shorter than MinAuthSecretLen.
func (o AuthOptions) Validate() error {
	if len(o.Secret) < MinAuthSecretLen {
		return ErrWeakAuthSecret
	}
	return nil
}

// Limits of one request: bodies are small JSON documents (a VerneMQ publish carries the
// payload, at most 16 KiB, in base64), and a check that outlasts the brokers' own request
// timeouts (5 s by default for both) helps no one.
const (
	maxBodyBytes = 64 << 10
	checkTimeout = 5 * time.Second
)

// Results, as the metrics label them; the response words differ per broker.
const (
	allow  = "allow"
	deny   = "deny"
	ignore = "ignore"
)

type authHandler struct {
	devices CredentialFinder
	secret  [sha256.Size]byte
	noAuth  bool
	log     *slog.Logger
	failLog *ratelog.Limiter // denials, one per reason per 10 s: a flood must not flood the log
	slots   chan struct{}    // bounds concurrent argon2id checks, as the embedded broker does
	mux     *http.ServeMux

	decisions *prometheus.CounterVec
	refused   *prometheus.CounterVec
}

// NewAuthHandler returns the handler of the HTTP endpoints with which EMQX 5 and VerneMQ ask the hub whether
// a device may connect, publish or subscribe, when hubs run behind one of those brokers instead
// of the embedded one (docs/brokers.md), which looks devices up in devices. It answers with the same rules as the embedded
// broker: the device's secret checked against the registry (credential.Verify), client ID
// equal to the device ID, the device enabled, and the device ACL of package wire.
//
// Users that are not devices (the hubs' own users, whose names cannot be device IDs) get
// "ignore" (EMQX) or "next" (VerneMQ), so that the broker's own chain authenticates and
// authorizes them, for instance from its built-in database. A name that could be a device ID
// but is not registered, or is disabled, is denied.
//
// The endpoints answer which device secrets are right, so they require a shared secret from
// the broker: HTTP basic authentication with the secret as the password (VerneMQ sends it from
// the endpoint URL's user information, http://lockerhub:SECRET@hub/...; EMQX from a configured
// Authorization header), or "Authorization: Bearer SECRET" (EMQX). Anything else gets 401.
//
// Paths, relative to where the handler is mounted (the hub mounts it at /broker/):
//
//	POST emqx/authn                 EMQX 5 HTTP authentication
//	POST emqx/authz                 EMQX 5 HTTP authorization
//	POST vernemq/auth_on_register   VerneMQ webhooks, and the same with _m5 for MQTT 5 clients
//	POST vernemq/auth_on_subscribe
//	POST vernemq/auth_on_publish
func NewAuthHandler(devices CredentialFinder, opts AuthOptions) http.Handler {
	h := &authHandler{
		devices: devices,
		secret:  sha256.Sum256([]byte(opts.Secret)),
		noAuth:  opts.Secret == "",
		log:     opts.Logger,
		slots:   make(chan struct{}, runtime.GOMAXPROCS(0)),
		mux:     http.NewServeMux(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockerhub_brokerauth_decisions_total",
			Help: "Answers to an external broker's auth requests, by endpoint and result (allow, deny, ignore: not a device).",
		}, []string{"endpoint", "result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockerhub_brokerauth_refused_requests_total",
			Help: "Auth requests refused before any decision, by reason (secret: wrong or missing shared secret; bad_request).",
		}, []string{"reason"}),
	}
	h.log = logs.OrDiscard(h.log)
	h.failLog = ratelog.New(h.log, 10*time.Second)
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(h.decisions, h.refused)
	}
	h.mux.HandleFunc("POST /{prefix...}", h.route)
	return h
}

func (h *authHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(r) {
		h.refused.WithLabelValues("secret").Inc()
		w.Header().Set("WWW-Authenticate", `Basic realm="lockerhub broker auth"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// authorized reports whether r carries the shared secret, as a basic-auth password or a bearer
// token. Both sides are hashed first, so that the comparison takes the same time whatever the
// length of what was sent.
func (h *authHandler) authorized(r *http.Request) bool {
	if h.noAuth {
		return false
	}
	var got string
	if _, pass, ok := r.BasicAuth(); ok {
		got = pass
	} else if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		got = token
	} else {
		return false
	}
	sum := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(sum[:], h.secret[:]) == 1
}

// route dispatches on the last two path elements, so that the handler works wherever it is
// mounted.
func (h *authHandler) route(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	i := strings.LastIndex(path, "/")
	j := strings.LastIndex(path[:max(i, 0)], "/")
	if i < 0 || j < 0 {
		http.NotFound(w, r)
		return
	}
	broker, endpoint := path[j+1:i], path[i+1:]
	switch {
	case broker == "emqx" && (endpoint == "authn" || endpoint == "authz"):
		h.emqx(w, r, endpoint)
	case broker == "vernemq" && vernemqHooks[strings.TrimSuffix(endpoint, "_m5")]:
		// VerneMQ names the hook in a header too; a mismatch means a misconfigured endpoint.
		if hook := r.Header.Get("vernemq-hook"); hook != "" && hook != endpoint {
			h.badRequest(w, "vernemq-hook header "+hook+" on the endpoint of "+endpoint)
			return
		}
		h.vernemq(w, r, endpoint)
	default:
		http.NotFound(w, r)
	}
}

var vernemqHooks = map[string]bool{"auth_on_register": true, "auth_on_subscribe": true, "auth_on_publish": true}

// decode reads r's JSON body into v, or answers 400, or 413 for a body over maxBodyBytes (the
// connection is then closed rather than read to its end), and returns false.
func (h *authHandler) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes)).Decode(v)
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		h.refused.WithLabelValues("bad_request").Inc()
		http.Error(w, fmt.Sprintf("body larger than %d bytes", maxBodyBytes), http.StatusRequestEntityTooLarge)
		return false
	} else if err != nil {
		h.badRequest(w, "bad JSON body: "+err.Error())
		return false
	}
	return true
}

func (h *authHandler) badRequest(w http.ResponseWriter, msg string) {
	h.refused.WithLabelValues("bad_request").Inc()
	http.Error(w, msg, http.StatusBadRequest)
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store") // VerneMQ would cache an answer with max-age
	json.NewEncoder(w).Encode(v)
}

// brokerClient is what a broker tells about the client behind a request.
type brokerClient struct {
	username, clientID, password string
}

// isDevice reports whether username names a device rather than a user of the broker's own
// (a hub): whether it could be a device ID at all.
func isDevice(username string) bool { return wire.ValidDeviceID(username) }

// authenticate decides a connect: the device exists, is enabled, connects with its ID as client
// ID and presents its current secret.
func (h *authHandler) authenticate(ctx context.Context, endpoint string, d brokerClient) string {
	if d.clientID != d.username {
		return h.denied(endpoint, d, "client_id_mismatch", nil)
	}
	cred, reason, err := h.lookup(ctx, d.username)
	if reason != "" {
		return h.denied(endpoint, d, reason, err)
	}
	if credential.IsSlow(cred.SecretHash) {
		select {
		case h.slots <- struct{}{}:
			defer func() { <-h.slots }()
		case <-ctx.Done():
			return h.denied(endpoint, d, "timeout", ctx.Err())
		}
	}
	ok, err := credential.Verify(cred.SecretHash, d.password)
	switch {
	case err != nil:
		return h.denied(endpoint, d, "store_error", err)
	case !ok:
		return h.denied(endpoint, d, "bad_secret", nil)
	}
	return h.allowed(endpoint)
}

// authorize decides a publish (write) or a subscribe: the device still exists and is enabled
// (a broker does not disconnect a device that was disabled while connected, so this is where
// it loses access), and the device ACL allows the topic or filter.
func (h *authHandler) authorize(ctx context.Context, endpoint string, d brokerClient, write bool, topics ...string) string {
	if d.clientID != d.username {
		return h.denied(endpoint, d, "client_id_mismatch", nil)
	}
	if _, reason, err := h.lookup(ctx, d.username); reason != "" {
		return h.denied(endpoint, d, reason, err)
	}
	for _, t := range topics {
		if write && !wire.DeviceMayPublish(d.username, t) || !write && !wire.DeviceMaySubscribe(d.username, t) {
			return h.denied(endpoint, d, "acl", nil, "topic", t)
		}
	}
	if len(topics) == 0 {
		return h.denied(endpoint, d, "no_topic", nil)
	}
	return h.allowed(endpoint)
}

// lookup returns an enabled device's credential, or the reason it cannot be used.
func (h *authHandler) lookup(ctx context.Context, id string) (fleet.Credential, string, error) {
	cred, err := h.devices.DeviceCredential(ctx, id)
	switch {
	case fleet.ErrorCode(err) == fleet.ENOTFOUND:
		return cred, "unknown_device", nil
	case err != nil:
		return cred, "store_error", err // denied: the answer must not depend on the store being up
	case !cred.Enabled:
		return cred, "disabled", nil
	}
	return cred, "", nil
}

func (h *authHandler) allowed(endpoint string) string {
	h.decisions.WithLabelValues(endpoint, allow).Inc()
	return allow
}

func (h *authHandler) ignored(endpoint string) string {
	h.decisions.WithLabelValues(endpoint, ignore).Inc()
	return ignore
}

func (h *authHandler) denied(endpoint string, d brokerClient, reason string, err error, attrs ...any) string {
	h.decisions.WithLabelValues(endpoint, deny).Inc()
	attrs = append(attrs, "endpoint", endpoint, "device", d.username, "client", d.clientID, "reason", reason)
	if err != nil {
		h.log.Error("broker auth failed", append(attrs, "error", err)...)
	} else {
		h.failLog.Warn(reason, "broker auth denied", attrs...)
	}
	return deny
}

// emqx serves EMQX 5's HTTP authentication and authorization
// (https://docs.emqx.com/en/emqx/latest/access-control/authn/http.html and
// .../authz/http.html). EMQX sends the JSON body its configuration templates (docs/brokers.md
// gives the one these endpoints read: clientid, username, password for authn; clientid,
// username, action, topic for authz) and expects 200 with {"result": "allow" | "deny" |
// "ignore"}; any other status counts as "ignore", which is why decisions, denials included,
// are always a 200.
func (h *authHandler) emqx(w http.ResponseWriter, r *http.Request, endpoint string) {
	var req struct {
		ClientID string `json:"clientid"`
		Username string `json:"username"`
		Password string `json:"password"`
		Action   string `json:"action"`
		Topic    string `json:"topic"`
	}
	if !h.decode(w, r, &req) {
		return
	}
	endpoint = "emqx_" + endpoint
	d := brokerClient{username: req.Username, clientID: req.ClientID, password: req.Password}
	ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
	defer cancel()
	var result string
	switch {
	case !isDevice(req.Username):
		result = h.ignored(endpoint)
	case endpoint == "emqx_authn":
		result = h.authenticate(ctx, endpoint, d)
	case req.Action == "publish" || req.Action == "subscribe":
		result = h.authorize(ctx, endpoint, d, req.Action == "publish", req.Topic)
	default:
		result = h.denied(endpoint, d, "unknown_action", nil, "action", req.Action)
	}
	if endpoint == "emqx_authn" && result == allow {
		// A device is never a superuser: EMQX must still ask authz for every topic.
		reply(w, map[string]any{"result": result, "is_superuser": false})
		return
	}
	reply(w, map[string]string{"result": result})
}

// vernemq serves VerneMQ's webhooks auth_on_register, auth_on_subscribe and auth_on_publish and
// their _m5 variants (https://docs.vernemq.com/plugin-development/webhookplugins). VerneMQ
// POSTs the hook's arguments as JSON (the hook's name also in the vernemq-hook header) and
// expects 200 with {"result": "ok"}, {"result": "next"} (let the next plugin decide: users
// that are not devices) or {"result": {"error": "not_allowed"}}.
func (h *authHandler) vernemq(w http.ResponseWriter, r *http.Request, hook string) {
	var req struct {
		Username   *string `json:"username"` // null when the client sent none
		Password   *string `json:"password"`
		ClientID   string  `json:"client_id"`
		Mountpoint string  `json:"mountpoint"`
		Topic      string  `json:"topic"`
		Retain     bool    `json:"retain"`
		Topics     []struct {
			Topic string `json:"topic"`
		} `json:"topics"`
	}
	if !h.decode(w, r, &req) {
		return
	}
	if req.Username == nil || !isDevice(*req.Username) {
		h.ignored("vernemq_" + hook)
		reply(w, map[string]string{"result": "next"})
		return
	}
	endpoint := "vernemq_" + hook
	d := brokerClient{username: *req.Username, clientID: req.ClientID}
	if req.Password != nil {
		d.password = *req.Password
	}
	ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
	defer cancel()
	var result string
	switch base := strings.TrimSuffix(hook, "_m5"); {
	case req.Mountpoint != "":
		// The device ACL is written for topics as devices and hubs see them; a mountpoint
		// would put a device in a tree of its own, out of the hubs' sight.
		result = h.denied(endpoint, d, "mountpoint", nil, "mountpoint", req.Mountpoint)
	case base == "auth_on_register":
		result = h.authenticate(ctx, endpoint, d)
	case base == "auth_on_publish":
		result = h.authorize(ctx, endpoint, d, true, req.Topic)
	default:
		topics := make([]string, len(req.Topics))
		for i, t := range req.Topics {
			topics[i] = t.Topic
		}
		result = h.authorize(ctx, endpoint, d, false, topics...)
	}
	switch {
	case result != allow:
		reply(w, map[string]any{"result": map[string]string{"error": "not_allowed"}})
	case strings.HasPrefix(hook, "auth_on_publish") && req.Retain && !strings.HasSuffix(req.Topic, "/"+string(wire.ChannelStatus)):
		// As the embedded broker does, only presence stays retained; VerneMQ lets a webhook
		// rewrite the flag, so telemetry, events and results are never retained here either.
		reply(w, map[string]any{"result": "ok", "modifiers": map[string]any{"retain": false}})
	default:
		reply(w, map[string]string{"result": "ok"})
	}
}
