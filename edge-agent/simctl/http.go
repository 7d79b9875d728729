package simctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/hardware"
)

// The JSON of the control API; docs/simulator.md describes it. Client decodes the same types.
type (
	// UnitStatus is one unit in a listing.
	UnitStatus struct {
		ID       string   `json:"id"`
		Kind     string   `json:"kind"`
		Site     string   `json:"site,omitempty"`
		Doors    int      `json:"doors"`
		Online   bool     `json:"online"`
		Network  bool     `json:"network"`             // false while taken down on demand or by a random fault
		Faults   []string `json:"faults"`              // see Faults
		AmbientC *float64 `json:"ambient_c,omitempty"` // a steady outside temperature, if one is set
		// Unlocks counts the latch releases of each door (Unlocks[0] is door 1) since the unit
		// started: what the lock did, whatever any message says.
		Unlocks []int    `json:"unlocks"`
		Opens   []uint64 `json:"opens"` // times each door has opened since the unit started, as its sensor counts them
		Codes   uint64   `json:"codes"` // version of the pickup code set the unit's agent holds
	}
	// List is the answer to GET /v1/units.
	List struct {
		Units           []UnitStatus `json:"units"`
		People          bool         `json:"people"`           // simulated people are coming
		PeopleAvailable bool         `json:"people_available"` // this simulator has any
	}
	// FaultRequest is the body of POST /v1/faults.
	FaultRequest struct {
		Unit  string         `json:"unit"`
		Fault hardware.Fault `json:"fault"`
		Door  int            `json:"door,omitempty"`
		On    bool           `json:"on"`
	}
	// AmbientRequest is the body of POST /v1/ambient; a null C returns to the daily cycle.
	AmbientRequest struct {
		Site string   `json:"site,omitempty"` // empty: every unit
		C    *float64 `json:"c"`
	}
	// AmbientAnswer lists the units whose ambient changed.
	AmbientAnswer struct {
		Units []string `json:"units"`
	}
	// NetworkRequest is the body of POST /v1/network.
	NetworkRequest struct {
		Unit string `json:"unit"`
		Up   bool   `json:"up"`
	}
	// KeypadRequest is the body of POST /v1/units/{id}/keypad: a code typed at the unit's
	// keypad, as typed (the unit's agent checks it).
	KeypadRequest struct {
		Code string `json:"code"`
	}
	// PeopleRequest is the body of POST /v1/people.
	PeopleRequest struct {
		On bool `json:"on"`
	}
	// errorAnswer is every error's body.
	errorAnswer struct {
		Error string `json:"error"`
	}
)

// Handler serves a Fleet's control API.
type Handler struct {
	fleet *Fleet
	mux   *http.ServeMux
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns the control API of f.
func NewHandler(f *Fleet) *Handler {
	h := &Handler{fleet: f, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /v1/units", h.list)
	h.mux.HandleFunc("POST /v1/faults", post(func(r FaultRequest) (any, error) {
		if err := f.SetFault(r.Unit, r.Fault, r.Door, r.On); err != nil {
			return nil, err
		}
		return h.status(f.byID[r.Unit]), nil
	}))
	h.mux.HandleFunc("POST /v1/ambient", post(func(r AmbientRequest) (any, error) {
		ids, err := f.SetAmbient(r.Site, r.C)
		return AmbientAnswer{Units: ids}, err
	}))
	h.mux.HandleFunc("POST /v1/network", post(func(r NetworkRequest) (any, error) {
		if err := f.SetNetwork(r.Unit, r.Up); err != nil {
			return nil, err
		}
		return h.status(f.byID[r.Unit]), nil
	}))
	h.mux.HandleFunc("POST /v1/units/{id}/keypad", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		post(func(k KeypadRequest) (any, error) {
			if err := f.EnterCode(id, k.Code); err != nil {
				return nil, err
			}
			return h.status(f.byID[id]), nil
		})(w, r)
	})
	h.mux.HandleFunc("POST /v1/people", post(func(r PeopleRequest) (any, error) {
		return r, f.SetPeople(r.On)
	}))
	return h
}

// ServeHTTP serves the control API.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) list(w http.ResponseWriter, _ *http.Request) {
	l := List{Units: make([]UnitStatus, len(h.fleet.units))}
	for i, u := range h.fleet.units {
		l.Units[i] = h.status(u)
	}
	l.People, l.PeopleAvailable = h.fleet.PeopleState()
	writeJSON(w, http.StatusOK, l)
}

func (h *Handler) status(u *Unit) UnitStatus {
	faults := Faults(u)
	if faults == nil {
		faults = []string{}
	}
	unlocks, opens := make([]int, u.HW.Doors()), make([]uint64, u.HW.Doors())
	for i := range unlocks {
		unlocks[i] = u.HW.Unlocks(i + 1)
	}
	if st, err := u.HW.Read(); err == nil {
		for i, d := range st.Doors {
			opens[i] = d.Opens
		}
	}
	return UnitStatus{ID: u.ID, Kind: string(u.HW.Kind()), Site: u.Site, Doors: u.HW.Doors(), Online: u.Agent.Online(),
		Network: u.Agent.NetworkUp(), Faults: faults, AmbientC: u.HW.Ambient(), Unlocks: unlocks, Opens: opens, Codes: u.Agent.CodesVersion()}
}

// post decodes a request of type R, runs do and writes its answer or its error.
func post[R any](do func(R) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req R
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
		dec.DisallowUnknownFields() // a misspelt field must not silently mean its zero value
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, errorAnswer{"bad request body: " + err.Error()})
			return
		}
		res, err := do(req)
		if err != nil {
			writeJSON(w, statusOf(err), errorAnswer{err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, res)
	}
}

// statusOf maps the errors of Fleet to HTTP statuses, in one place.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrUnknownUnit), errors.Is(err, ErrUnknownSite):
		return http.StatusNotFound
	case errors.Is(err, hardware.ErrUnsupported), errors.Is(err, ErrNoPeople):
		return http.StatusConflict
	case errors.Is(err, hardware.ErrKeypadBusy):
		return http.StatusTooManyRequests
	}
	return http.StatusBadRequest // a bad door, an unknown fault, an implausible temperature
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// DefaultAddr is where `lockerhub simulate` and `lockerhub demo` serve the control API unless
// told otherwise, and where `lockerhub sim` looks for it.
const DefaultAddr = "127.0.0.1:8091"

// ErrNotLoopback is returned for a control address other hosts could reach: the API has no
// authentication, and anyone who reaches it can open every simulated door.
var ErrNotLoopback = errors.New("control address must be on loopback (127.0.0.1, ::1 or localhost)")

// Listen listens on addr, which must be a loopback host:port (port 0 picks a free one). It
// returns ErrNotLoopback, wrapped, for any other host.
func Listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("control address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("control address %q: %w", addr, ErrNotLoopback)
	}
	return net.Listen("tcp", addr)
}

// Serve serves h on l until ctx is done. The server's own errors are logged: the simulation
// goes on without its control surface rather than stopping the fleet.
func Serve(ctx context.Context, l net.Listener, h http.Handler, log *slog.Logger) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		log.Error("control surface stopped", "addr", l.Addr().String(), "error", err)
	}
}
