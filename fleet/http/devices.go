package http

import (
	"net/http"
	"strconv"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// DeviceView is a device as the API shows it (GET /api/v1/devices/{id}, the list's entries and
// the event stream's device events): registry entry, presence, health and live state.
type DeviceView struct {
	fleet.Device
	Presence fleet.Presence   `json:"presence"`
	Health   fleet.Health     `json:"health,omitempty"` // absent for a disabled device
	Live     *fleet.LiveState `json:"live,omitempty"`   // absent before its first message since the hub started
}

func (a *api) view(d *fleet.Device) DeviceView {
	v := DeviceView{Device: *d, Presence: fleet.Presence{DeviceID: d.ID}}
	if p, ok := a.svc.Presence.Presence(d.ID); ok && !allBefore(d.CreatedAt, p.ConnectedSince, p.DisconnectedAt, p.LastSeen) {
		v.Presence = p // else all of it happened before d was registered: an earlier unit's with the same id
	}
	if l, ok := a.svc.Live.LiveState(d); ok {
		v.Live = &l
	}
	if a.svc.Alerts != nil {
		v.Health, _ = a.svc.Alerts.Health(d)
	}
	return v
}

// allBefore reports whether every one of times is before t.
func allBefore(t time.Time, times ...time.Time) bool {
	for _, u := range times {
		if !u.Before(t) {
			return false
		}
	}
	return true
}

// handleDevices lists the devices in the token's scope, filtered by site, kind, online and
// health.
func (a *api) handleDevices(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	q := r.URL.Query()
	f := fleet.DeviceFilter{Site: q.Get("site"), Kind: fleet.Kind(q.Get("kind"))}
	var online *bool
	if s := q.Get("online"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			writeError(w, fleet.Errorf(fleet.EINVALID, "online: %q is not true or false", s))
			return
		}
		online = &b
	}
	health := fleet.Health(q.Get("health"))
	if health != "" {
		if err := health.Validate(); err != nil {
			writeError(w, err)
			return
		}
	}
	devices, err := a.svc.Devices.FindDevices(r.Context(), f)
	if err != nil {
		writeError(w, err)
		return
	}
	views := []DeviceView{}
	for _, d := range devices {
		if !tok.InScope(d.Site) {
			continue
		}
		v := a.view(d)
		if (online == nil || v.Presence.Online == *online) && (health == "" || v.Health == health) {
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
