package web_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/device"

	"github.com/lockerhub/lockerhub/fleet/http/web/webtest"
)

// longID is a unit id as long as ids get in practice: site, building, bank and a serial.
const longID = "oak-street-building-7-locker-bank-0042-sn-5f3a9c"

// The layout at the sizes people use, measured: an alert's state does not break inside its word
// on a laptop; the header leaves a phone most of its screen; a long unit id stays on one line
// in its tile, cut with an ellipsis and whole in its title.
func TestDashboardLayout(t *testing.T) {
	webtest.Chromium(t)
	api := newFakeAPI(t)
	// Summaries as long as the rules write them.
	summary := "no telemetry for 10 min: the last report came at 08:12 from 10.20.30.40 over TLS, with 3 sequence gaps in the hour before"
	api.alerts["open"] = []map[string]any{
		{"id": 8, "rule": "cold-holding", "severity": "major", "device": longID + "-b", "site": "oak", "state": "firing", "summary": summary},
		{"id": 9, "rule": "telemetry-loss", "severity": "warning", "device": longID, "site": "oak", "state": "firing", "summary": summary},
	}
	for _, a := range api.alerts["open"] {
		a["fired_at"] = time.Now().Add(-time.Hour).UTC()
	}
	api.extraDevices = []string{longID}
	url := serveDashboard(t, api)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := webtest.Open(t, ctx)
	b.SignIn(url, operatorToken) // with the alerts' actions, which take their room in the table

	b.Do("the alerts page at 1280 px", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(url+"#/alerts"))
	b.Wait("the alerts", `document.querySelectorAll('tr[data-alert-id] .state').length === 3`)
	for _, id := range []string{"7", "8", "9"} {
		if lines := lines(b, `document.querySelector('tr[data-alert-id="`+id+`"] .state')`); lines != 1 {
			t.Errorf("the state of alert %s takes %d lines at 1280 px, want 1", id, lines)
		}
	}

	b.Do("sign out on a phone", chromedp.Emulate(device.IPhone12Pro),
		chromedp.Click(chromedp.ID(`sign-out`)), chromedp.WaitVisible(chromedp.CSS(`input[name=token]`)))
	b.SignIn(url, viewerToken) // on the overview, with the stream, which adds the count of open alerts to the header
	b.Wait("the stream", `document.getElementById('conn').dataset.state === 'live'`)
	// A big fleet's count of open alerts, from the stream.
	api.events <- sse("health", map[string]any{"sites": []any{}, "total": map[string]any{"site": "*", "units": 2400, "ok": 2100, "warning": 200, "critical": 60, "offline": 40, "alerts_open": 1280}})
	b.Wait("the count of open alerts", `document.getElementById('alert-count').textContent === '(1280 open)'`)
	b.Wait("the long id's tile", `document.querySelector('a.tile[data-device="`+longID+`"] .tile-id')`)
	if vp := webtest.Eval[[]int](b, `[innerWidth, innerHeight]`); vp[0] != 390 || vp[1] != 844 {
		t.Fatalf("viewport %v, want 390x844", vp)
	}
	if h := webtest.Eval[float64](b, `document.querySelector('header.topbar').getBoundingClientRect().height`); h > 120 {
		t.Errorf("the header is %.0f px high on a 390x844 phone, want at most 120", h)
	}
	tile := `document.querySelector('a.tile[data-device="` + longID + `"] .tile-id')`
	if lines := lines(b, tile); lines != 1 {
		t.Errorf("the long id takes %d lines in its tile, want 1", lines)
	}
	if title := webtest.Eval[string](b, tile+`.title`); title != longID {
		t.Errorf("the long id's title is %q, want the whole id", title)
	}
	b.FitsWidth("the overview with a long id on a phone")
}

// lines is how many lines of text the element that expr finds takes.
func lines(b *webtest.Browser, expr string) int {
	return webtest.Eval[int](b, `((el) => Math.round(el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight)))(`+expr+`)`)
}

// The parcel views on a phone, with names as long as they get: nothing overflows sideways, the
// parcels table becomes cards, and a door's compartment line stays inside its door.
func TestParcelViewsLayout(t *testing.T) {
	webtest.Chromium(t)
	api := newFakeAPI(t)
	dropped := time.Now().Add(-30 * time.Hour).UTC()
	parcel := map[string]any{"id": "p-0f3a9c5b2e7d4a1c", "device": longID, "site": "oak-street-building-7", "door": 12,
		"compartment": "fridge", "perishable": true, "carrier": "Northern Express Parcel Logistics International", "status": "in-locker",
		"created_at": dropped, "dropped_at": dropped, "dwell_seconds": 30 * 3600, "overdue": true}
	kinds := []map[string]any{{"kind": "dry", "total": 24, "occupied": 17, "reserved": 2, "free": 5}, {"kind": "fridge", "total": 8, "occupied": 8, "reserved": 0, "free": 0}}
	api.occupancy = map[string]any{
		"units=false": map[string]any{"units": []any{}, "sites": []any{map[string]any{"site": "oak", "kinds": kinds}, map[string]any{"site": "pine", "kinds": kinds[:1]}}, "fleet": kinds},
		"device=fridge-1": map[string]any{"units": []any{}, "sites": []any{}, "fleet": kinds, "doors": []any{
			map[string]any{"door": 1, "kind": "fridge", "state": "occupied", "parcel": parcel},
			map[string]any{"door": 2, "kind": "fridge", "state": "free"}}},
		"parcels": map[string]any{"parcels": []any{parcel}},
	}
	url := serveDashboard(t, api)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := webtest.Open(t, ctx)
	b.Do("a phone", chromedp.Emulate(device.IPhone12Pro))
	b.SignIn(url, operatorToken)

	b.Wait("the sites' compartments", `document.querySelector('table.occupancy tr[data-site="oak"] [data-kind="dry"]')?.textContent.includes('17 of 24 occupied · 2 reserved · 5 free')`)
	b.FitsWidth("the overview with compartments on a phone")

	b.Do("the parcels page", chromedp.Navigate(url+"#/parcels"))
	b.Wait("the overdue parcel", `document.querySelector('table.parcels.overdue tr[data-parcel="p-0f3a9c5b2e7d4a1c"]')`)
	b.FitsWidth("the parcels page on a phone")
	if display := webtest.Eval[string](b, `getComputedStyle(document.querySelector('table.parcels tr')).display`); display != "block" {
		t.Errorf("a parcel's row is laid out as %q on a phone, want a card (block)", display)
	}

	b.Do("the unit page", chromedp.Navigate(url+"#/unit/fridge-1"))
	b.Wait("door 1's parcel", `document.querySelector('.door[data-compartment="occupied"] .door-parcel')?.textContent.includes('Northern Express')`)
	b.FitsWidth("the unit page with a parcel on a phone")
	if over := webtest.Eval[bool](b, `(() => { const d = document.querySelector('.door[data-compartment="occupied"]'); const p = d.querySelector('.door-parcel');
		return p.getBoundingClientRect().right > d.getBoundingClientRect().right + 1; })()`); over {
		t.Error("door 1's parcel line runs out of its door")
	}
}
