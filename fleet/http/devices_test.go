package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/alerts"
	lhhttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// mixedFleet registers oak-01..oak-12 and elm-01..elm-03, with oak-03 and oak-07 offline, a
// forced door on oak-09 (critical) and telemetry lost from oak-05 (warning), and serves them.
func mixedFleet(t *testing.T, stream *lhhttp.Stream) (*registry, string, *someOnline) {
	t.Helper()
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	reg := openRegistry(t)
	store := sqldb.NewAlertStore(reg.db)
	var ds []*fleet.Device
	for i := 1; i <= 12; i++ {
		ds = append(ds, &fleet.Device{ID: fmt.Sprintf("oak-%02d", i), Kind: fleet.KindLockerBank, Site: "oak", Doors: 2})
	}
	for i := 1; i <= 3; i++ {
		ds = append(ds, &fleet.Device{ID: fmt.Sprintf("elm-%02d", i), Kind: fleet.KindFridge, Site: "elm", Doors: 1})
	}
	if _, err := reg.devices.CreateDevices(ctx, ds); err != nil {
		t.Fatal(err)
	}
	for _, a := range []*fleet.Alert{
		{Rule: "forced-entry", Severity: fleet.SeverityCritical, Scope: fleet.ScopeDoor, Door: 1, DeviceID: "oak-09"},
		{Rule: "telemetry-loss", Severity: fleet.SeverityWarning, Scope: fleet.ScopeDevice, DeviceID: "oak-05"},
	} {
		d, err := reg.devices.FindDeviceByID(ctx, a.DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		a.Site, a.Registration, a.Summary, a.FiredAt = d.Site, d.Registration, "x", time.Now()
		if err := store.CreateAlert(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	broker := &someOnline{offline: map[string]bool{"oak-03": true, "oak-07": true}, gaps: map[string]uint64{}}
	engine, err := alerts.New(alerts.DefaultConfig(), store, reg.devices, broker, alerts.Options{Audit: reg.audit})
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Start(ctx); err != nil {
		t.Fatal(err)
	}
	addr := reg.serve(t, lhhttp.Services{Presence: broker, Live: broker, History: nobodyOnline{}, Alerts: engine, Stream: stream})
	return reg, addr, broker
}

// The device list at fleet scale: search, health filters, the attention order, and pages that
// add up to the whole list, within the token's scope; bad parameters are refused by name.
func TestDeviceListPages(t *testing.T) {
	reg, addr, _ := mixedFleet(t, nil)
	viewer, oakViewer := reg.token(t, "v", fleet.RoleViewer), reg.token(t, "o", fleet.RoleViewer, "oak")
	list := func(token, query string) lhhttp.DevicePage {
		t.Helper()
		a := call(t, "GET", "http://"+addr+"/api/v1/devices?"+query, token, "")
		var page lhhttp.DevicePage
		if a.code != 200 || json.Unmarshal([]byte(a.body), &page) != nil {
			t.Fatalf("GET devices?%s: %d %s", query, a.code, a.body)
		}
		return page
	}
	ids := func(p lhhttp.DevicePage) []string {
		var out []string
		for _, d := range p.Devices {
			out = append(out, d.ID+":"+string(d.Health))
		}
		return out
	}
	// all pages every limit units at a time, following next.
	all := func(token, query string, limit int) ([]string, int) {
		t.Helper()
		var got []string
		after, pages := "", 0
		for {
			p := list(token, fmt.Sprintf("%s&limit=%d&after=%s", query, limit, url.QueryEscape(after)))
			if len(p.Devices) > limit {
				t.Fatalf("a page of %d units with limit %d", len(p.Devices), limit)
			}
			got, pages = append(got, ids(p)...), pages+1
			if p.Next == "" {
				return got, pages
			}
			after = p.Next
		}
	}

	attention := []string{"oak-09:critical", "oak-03:offline", "oak-07:offline", "oak-05:warning",
		"elm-01:ok", "elm-02:ok", "elm-03:ok", "oak-01:ok", "oak-02:ok", "oak-04:ok", "oak-06:ok", "oak-08:ok", "oak-10:ok", "oak-11:ok", "oak-12:ok"}
	if got, pages := all(viewer, "order=attention", 4); !slices.Equal(got, attention) || pages != 4 {
		t.Errorf("attention order in pages of 4: %v in %d pages, want %v in 4", got, pages, attention)
	}
	if p := list(viewer, "order=attention&limit=4"); p.Total != 15 || p.Next == "" {
		t.Errorf("first page: total %d, next %q; want 15 and a next", p.Total, p.Next)
	}
	byID, _ := all(viewer, "", 5)
	if len(byID) != 15 || byID[0] != "elm-01:ok" || byID[14] != "oak-12:ok" || !slices.IsSortedFunc(byID, strings.Compare) {
		t.Errorf("by id in pages of 5: %v", byID)
	}
	if got := ids(list(viewer, "")); !slices.Equal(got, byID) {
		t.Errorf("without limit: %v, want every unit by id", got)
	}

	for _, c := range []struct {
		token, query string
		want         []string
		total        int
	}{
		{viewer, "q=OAK-1", []string{"oak-10:ok", "oak-11:ok", "oak-12:ok"}, 3},
		{viewer, "q=-0&health=critical,offline&order=attention", []string{"oak-09:critical", "oak-03:offline", "oak-07:offline"}, 3},
		{viewer, "health=warning", []string{"oak-05:warning"}, 1},
		{viewer, "health=ok&site=elm&limit=2", []string{"elm-01:ok", "elm-02:ok"}, 3},
		{oakViewer, "q=elm", nil, 0},
		{oakViewer, "health=ok&order=attention&limit=1", []string{"oak-01:ok"}, 8},
	} {
		p := list(c.token, c.query)
		if got := ids(p); !slices.Equal(got, c.want) || p.Total != c.total {
			t.Errorf("%s: %v of %d, want %v of %d", c.query, got, p.Total, c.want, c.total)
		}
	}

	idCursor := list(viewer, "limit=2").Next
	for _, c := range []struct{ query, says string }{
		{"health=ok,fine", `health: unknown health "fine"`},
		{"order=newest", `order: "newest" is not id or attention`},
		{"limit=0", `limit: "0" is not a positive number`},
		{"limit=1001", "limit: 1001 is more than 1000"},
		{"after=zzz", `after: "zzz" is not the next of a page in this order`},
		{"order=attention&after=" + idCursor, "after: "},
		{"online=maybe", `online: "maybe" is not true or false`},
	} {
		a := call(t, "GET", "http://"+addr+"/api/v1/devices?"+c.query, viewer, "")
		var e struct {
			Error struct{ Code, Message string }
		}
		json.Unmarshal([]byte(a.body), &e)
		if a.code != 400 || e.Error.Code != fleet.EINVALID || !strings.HasPrefix(e.Error.Message, c.says) {
			t.Errorf("GET devices?%s: %d %s, want 400 saying %q", c.query, a.code, a.body, c.says)
		}
	}
}

// The fleet stream at connect: the health counts, then the units that need attention first,
// then the first page; afterwards only the units that changed, each to the clients whose scope
// covers it, and the units removed.
func TestStreamOverview(t *testing.T) {
	stream := lhhttp.NewStream(0)
	reg, addr, broker := mixedFleet(t, stream)
	everything, _ := openStream(t, addr, reg.token(t, "v", fleet.RoleViewer), "")
	elm, _ := openStream(t, addr, reg.token(t, "e", fleet.RoleViewer, "elm"), "")

	deviceID := func(ev sse) string {
		var d struct{ ID string }
		json.Unmarshal([]byte(ev.data), &d)
		return d.ID
	}
	// devices reads the device events that come within d.
	devices := func(events <-chan sse, d time.Duration) []string {
		t.Helper()
		var got []string
		timeout := time.After(d)
		for {
			select {
			case ev := <-events:
				if ev.name == "device" {
					got = append(got, deviceID(ev))
				}
			case <-timeout:
				return got
			}
		}
	}
	var health lhhttp.HealthSummary
	if err := json.Unmarshal([]byte(next(t, everything, "health").data), &health); err != nil ||
		health.Total.Units != 15 || health.Total.Critical != 1 || health.Total.Offline != 2 || health.Total.Warning != 1 {
		t.Fatalf("health at connect: %+v %v", health.Total, err)
	}
	snapshot := devices(everything, 1500*time.Millisecond)
	if len(snapshot) != 15 || !slices.Equal(snapshot[:4], []string{"oak-09", "oak-03", "oak-07", "oak-05"}) {
		t.Fatalf("snapshot %v: want the 15 units, critical, offline and warning first", snapshot)
	}
	if got := devices(elm, 500*time.Millisecond); !slices.Equal(got, []string{"elm-01", "elm-02", "elm-03"}) {
		t.Fatalf("elm's snapshot %v", got)
	}

	broker.setGaps("oak-02", 3)
	stream.HandleEvent(fleet.Event{Kind: fleet.EventTelemetryStored, Device: &fleet.Device{ID: "oak-02"}})
	if got := devices(everything, 2500*time.Millisecond); !slices.Equal(got, []string{"oak-02"}) {
		t.Errorf("after oak-02 changed the stream sent %v, want oak-02 alone", got)
	}
	broker.setGaps("elm-02", 1)
	stream.HandleEvent(fleet.Event{Kind: fleet.EventTelemetryStored, Device: &fleet.Device{ID: "elm-02"}})
	if got := devices(elm, 2500*time.Millisecond); !slices.Equal(got, []string{"elm-02"}) {
		t.Errorf("elm's stream sent %v, want elm-02 alone (oak-02 is not in its scope)", got)
	}

	// A disconnect is an event: the unit and the sites' counts reach the clients at the next
	// refresh, not at the next sweep of every unit's health.
	broker.setOffline("oak-04")
	stream.HandleEvent(fleet.Event{Kind: fleet.EventPresenceChanged, Presence: fleet.Presence{DeviceID: "oak-04"}})
	var offline []string // elm-02's change above reached this stream too
	for timeout := time.After(2500 * time.Millisecond); health.Total.Offline != 3 || !slices.Contains(offline, "oak-04"); {
		select {
		case ev := <-everything:
			switch ev.name {
			case "device":
				offline = append(offline, deviceID(ev))
			case "health":
				if err := json.Unmarshal([]byte(ev.data), &health); err != nil {
					t.Fatal(err)
				}
			}
		case <-timeout:
			t.Fatalf("after oak-04 disconnected: device events %v, %d offline, want oak-04 and 3", offline, health.Total.Offline)
		}
	}
	if slices.ContainsFunc(offline, func(id string) bool { return id != "oak-04" && id != "elm-02" }) {
		t.Errorf("after oak-04 disconnected the stream sent %v, want oak-04 alone", offline)
	}

	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	if err := reg.devices.DeleteDevice(ctx, "elm-03"); err != nil {
		t.Fatal(err)
	}
	stream.RegistryChanged()
	for _, events := range []<-chan sse{everything, elm} {
		if got := deviceID(next(t, events, "removed")); got != "elm-03" {
			t.Errorf("removed %q, want elm-03", got)
		}
	}
}
