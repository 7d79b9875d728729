package http

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
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
	v := DeviceView{Device: *d, Presence: a.presence(d), Health: a.health(d)}
	if l, ok := a.svc.Live.LiveState(d); ok {
		v.Live = &l
	}
	return v
}

// presence returns d's presence, or none if all of it happened before d was registered: an
// earlier unit's with the same id.
func (a *api) presence(d *fleet.Device) fleet.Presence {
	if p, ok := a.svc.Presence.Presence(d.ID); ok && !allBefore(d.CreatedAt, p.ConnectedSince, p.DisconnectedAt, p.LastSeen) {
		return p
	}
	return fleet.Presence{DeviceID: d.ID}
}

func (a *api) online(d *fleet.Device) bool { return a.presence(d).Online }

// health returns d's health; "" for a disabled device, or without the health rules.
func (a *api) health(d *fleet.Device) fleet.Health {
	if a.svc.Alerts == nil {
		return ""
	}
	h, _ := a.svc.Alerts.Health(d)
	return h
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

// handleDevices lists the devices in the token's scope: filtered by site, kind, online, health
// (one or several, comma-separated) and q (a part of the id), ordered by id or, with
// order=attention, critical, offline and warning units first, and paged with limit and after
// (the next of the page before). It answers the devices of the page, how many match in all
// (total), and the cursor of the next page (next), absent on the last. Without limit every
// match is one page.
func (a *api) handleDevices(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	lq, err := parseDeviceQuery(r.URL.Query())
	if err != nil {
		writeError(w, err)
		return
	}
	page, err := a.listDevices(r, tok, lq)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// DevicePage is a page of GET /api/v1/devices.
type DevicePage struct {
	Devices []DeviceView `json:"devices"`
	Total   int          `json:"total"`          // devices matching the query, on every page
	Next    string       `json:"next,omitempty"` // after= for the next page; absent on the last
}

// deviceQuery is what GET /api/v1/devices asks for.
type deviceQuery struct {
	filter    fleet.DeviceFilter
	q         string // part of the id, lower case
	online    *bool
	health    map[fleet.Health]bool // any of these; nil for all
	attention bool                  // order=attention
	limit     int                   // 0: no paging
	after     cursor
}

// MaxDevicePage bounds limit on GET /api/v1/devices.
const MaxDevicePage = 1000

// parseDeviceQuery reads the query parameters of GET /api/v1/devices; EINVALID naming the
// parameter for anything it does not understand.
func parseDeviceQuery(v url.Values) (deviceQuery, error) {
	lq := deviceQuery{filter: fleet.DeviceFilter{Site: v.Get("site"), Kind: fleet.Kind(v.Get("kind"))}, q: strings.ToLower(v.Get("q"))}
	if s := v.Get("online"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return lq, fleet.Errorf(fleet.EINVALID, "online: %q is not true or false", s)
		}
		lq.online = &b
	}
	if s := v.Get("health"); s != "" {
		lq.health = map[fleet.Health]bool{}
		for _, h := range strings.Split(s, ",") {
			if err := fleet.Health(h).Validate(); err != nil {
				return lq, fleet.Errorf(fleet.EINVALID, "health: %v", err)
			}
			lq.health[fleet.Health(h)] = true
		}
	}
	switch o := v.Get("order"); o {
	case "", "id":
	case "attention":
		lq.attention = true
	default:
		return lq, fleet.Errorf(fleet.EINVALID, "order: %q is not id or attention", o)
	}
	limit, err := positiveParam(v.Get("limit"), "limit")
	if err != nil {
		return lq, err
	}
	if limit > MaxDevicePage {
		return lq, fleet.Errorf(fleet.EINVALID, "limit: %d is more than %d", limit, MaxDevicePage)
	}
	lq.limit = int(limit)
	if s := v.Get("after"); s != "" {
		if lq.after, err = parseCursor(s, lq.attention); err != nil {
			return lq, err
		}
	}
	return lq, nil
}

// cursor is where a page of devices starts: after the device with this rank (in attention
// order; 0 in id order) and id.
type cursor struct {
	rank int
	id   string
}

// The cursor says which order it belongs to, so that one of the other order is refused rather
// than read wrongly.
const (
	cursorByID        = "i"
	cursorByAttention = "a"
)

func cursorOrder(attention bool) string {
	if attention {
		return cursorByAttention
	}
	return cursorByID
}

func (c cursor) String(attention bool) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%s%d:%s", cursorOrder(attention), c.rank, c.id))
}

// parseCursor reads after=; EINVALID unless it is a cursor of the same order.
func parseCursor(s string, attention bool) (cursor, error) {
	bad := fleet.Errorf(fleet.EINVALID, "after: %q is not the next of a page in this order", s)
	b, err := base64.RawURLEncoding.DecodeString(s)
	rest, ok := strings.CutPrefix(string(b), cursorOrder(attention))
	if err != nil || !ok {
		return cursor{}, bad
	}
	rank, id, ok := strings.Cut(rest, ":")
	n, err := strconv.Atoi(rank)
	if !ok || err != nil || n < 0 || n > len(attentionRank) || !wire.ValidDeviceID(id) {
		return cursor{}, bad
	}
	return cursor{rank: n, id: id}, nil
}

// attentionRank orders units by how much they need someone: critical first, then offline (no
// news from it at all), warning, ok; a disabled unit (no health) last.
var attentionRank = map[fleet.Health]int{fleet.HealthCritical: 0, fleet.HealthOffline: 1, fleet.HealthWarning: 2, fleet.HealthOK: 3}

func rankOf(h fleet.Health) int {
	if r, ok := attentionRank[h]; ok {
		return r
	}
	return len(attentionRank)
}

// listDevices answers a device query for tok. Only the devices of the page are viewed in full:
// matching the others takes their health and presence, not their live state.
func (a *api) listDevices(r *http.Request, tok *fleet.Token, lq deviceQuery) (DevicePage, error) {
	devices, err := a.svc.Devices.FindDevices(r.Context(), lq.filter)
	if err != nil {
		return DevicePage{}, err
	}
	type match struct {
		d    *fleet.Device
		rank int
	}
	var matches []match
	for _, d := range devices {
		if !tok.InScope(d.Site) || lq.q != "" && !strings.Contains(d.ID, lq.q) {
			continue
		}
		if lq.online != nil && a.online(d) != *lq.online {
			continue
		}
		m := match{d: d}
		if lq.health != nil || lq.attention { // the health rules' verdict is only asked for when needed
			h := a.health(d)
			if lq.health != nil && !lq.health[h] {
				continue
			}
			if lq.attention {
				m.rank = rankOf(h)
			}
		}
		matches = append(matches, m)
	}
	// Sorted here, byte-wise, whatever collation the store orders ids by: the cursor relies on it.
	slices.SortFunc(matches, func(x, y match) int { return cmp.Or(cmp.Compare(x.rank, y.rank), cmp.Compare(x.d.ID, y.d.ID)) })
	page := DevicePage{Devices: []DeviceView{}, Total: len(matches)}
	if lq.after.id != "" {
		i, _ := slices.BinarySearchFunc(matches, lq.after, func(m match, c cursor) int {
			return cmp.Or(cmp.Compare(m.rank, c.rank), cmp.Compare(m.d.ID, c.id))
		})
		for i < len(matches) && matches[i].rank == lq.after.rank && matches[i].d.ID == lq.after.id {
			i++
		}
		matches = matches[i:]
	}
	if lq.limit > 0 && len(matches) > lq.limit {
		last := matches[lq.limit-1]
		page.Next = cursor{rank: last.rank, id: last.d.ID}.String(lq.attention)
		matches = matches[:lq.limit]
	}
	for _, m := range matches {
		page.Devices = append(page.Devices, a.view(m.d))
	}
	return page, nil
}

func (a *api) handleDevice(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	d, err := a.device(r, tok, r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.view(d))
}
