package main_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/device"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/http/web/webtest"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// backdateParcel moves a parcel's delivery and drop-off back by ago, in the SQLite database of
// dataDir, which no command can: for a parcel that has sat in its locker for a day.
func backdateParcel(t *testing.T, dataDir, id string, ago time.Duration) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dataDir, sqldb.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	at := time.Now().Add(-ago).UnixMilli()
	res, err := db.Exec(`UPDATE parcels SET created_at = ?, dropped_at = ? WHERE id = ?`, at, at, id)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("backdate parcel %s: %d rows (%v), want 1", id, n, err)
	}
}

// The parcel views against the real hub: parcels delivered through its API (one of them made
// to have sat in its fridge for 30 hours), then `lockerhub fleet status` with the compartments,
// `lockerhub report deliveries` as tables and CSV, for the fleet and for a token of one site,
// and the dashboard in Chromium: the overview's compartments, the Parcels page with the overdue
// parcel first and a new one as it is delivered, the unit page's doors; nowhere a pickup code.
func TestParcelViewsEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	environ := env(dir, "LOCKERHUB_INFLUX_URL=http://127.0.0.1:"+freePort(t), "LOCKERHUB_TOKEN=")
	for _, d := range [][]string{{"bank-1", "locker-bank", "oak", "4"}, {"fridge-1", "fridge", "oak", "2"}, {"bank-2", "locker-bank", "pine", "2"}} {
		if _, errOut, code := run(t, environ, "device", "add", "--id", d[0], "--kind", d[1], "--site", d[2], "--doors", d[3]); code != 0 {
			t.Fatalf("device add %s: %s", d[0], errOut)
		}
	}
	hub := startHub(t, environ)
	operator := createToken(t, environ, "--name", "front desk", "--role", "operator").Token
	viewer := createToken(t, environ, "--name", "wall screen", "--role", "viewer").Token
	oakViewer := createToken(t, environ, "--name", "oak manager", "--role", "viewer", "--sites", "oak").Token

	var codes []string
	deliver := func(t *testing.T, body string) *fleet.Parcel {
		t.Helper()
		status, answer := hub.send(t, "POST", operator, "/api/v1/deliveries", body)
		var res struct {
			Parcel *fleet.Parcel
			Code   string
		}
		if status != 201 || json.Unmarshal([]byte(answer), &res) != nil || res.Parcel == nil || res.Code == "" {
			t.Fatalf("deliver %s: %d %s", body, status, answer)
		}
		codes = append(codes, res.Code)
		return res.Parcel
	}
	inBank := deliver(t, `{"device": "bank-1", "door": 1, "carrier": "dhl"}`)
	inFridge := deliver(t, `{"device": "fridge-1", "door": 2, "perishable": true, "carrier": "ups"}`)
	deliver(t, `{"device": "bank-1", "door": 3, "carrier": "ups", "reserve": true}`)
	deliver(t, `{"device": "bank-2", "door": 1, "carrier": "dhl"}`)
	backdateParcel(t, dir, inFridge.ID, 30*time.Hour)
	cli := func(tok string, args ...string) string {
		t.Helper()
		out, errOut, code := run(t, environ, append(args, "--hub", "http://"+hub.http, "--token", tok)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		return out
	}

	t.Run("fleet status", func(t *testing.T) {
		out := cli(viewer, "fleet", "status")
		_, occupancy, ok := strings.Cut(out, "\n\n")
		want := "SITE COMPARTMENTS TOTAL OCCUPIED RESERVED FREE|oak dry 4 1 1 2|oak fridge 2 1 0 1|pine dry 2 1 0 1|TOTAL dry 6 2 1 3|TOTAL fridge 2 1 0 1"
		if got := fieldsByLine(occupancy); !ok || got != want {
			t.Errorf("fleet status: compartments\n got %s\nwant %s\n%s", got, want, out)
		}
		var res struct {
			Total     fleet.SiteHealth
			Occupancy struct{ Fleet []fleet.KindOccupancy }
		}
		if out := cli(oakViewer, "fleet", "status", "--json"); json.Unmarshal([]byte(out), &res) != nil || res.Total.Units != 2 ||
			len(res.Occupancy.Fleet) != 2 || res.Occupancy.Fleet[0] != (fleet.KindOccupancy{Kind: fleet.CompartmentDry, Total: 4, Occupied: 1, Reserved: 1, Free: 2}) {
			t.Errorf("fleet status --json with oak's token: %s", out)
		}
	})

	t.Run("report deliveries", func(t *testing.T) {
		from := time.Now().UTC().AddDate(0, 0, -2).Format(time.DateOnly)
		to := time.Now().UTC().Format(time.DateOnly)
		out := cli(viewer, "report", "deliveries", "--from", from, "--to", to)
		blocks := strings.Split(strings.TrimSpace(out), "\n\n")
		if len(blocks) != 4 || !strings.HasPrefix(blocks[0], "deliveries at all sites from "+from+"T00:00:00Z to ") ||
			!strings.HasSuffix(blocks[0], ": 4 delivered, 3 dropped off, 0 picked up (0 while offline), 0 retrieved, 0 expired, 0 cancelled, 1 overdue") ||
			!strings.HasPrefix(blocks[3], "most compartments occupied at once: 3, at ") {
			t.Fatalf("report deliveries:\n%s", out)
		}
		for i, want := range []string{
			"CARRIER DELIVERED DROPPED OFF PICKED UP OFFLINE RETRIEVED EXPIRED CANCELLED OVERDUE|dhl 2 2 0 0 0 0 0 0|ups 2 1 0 0 0 0 0 1",
			"COMPARTMENT DELIVERED OVERDUE DWELL P50 P90 P99|dry 3 0 - - -|fridge 1 1 - - -",
		} {
			if got := fieldsByLine(blocks[i+1]); got != want {
				t.Errorf("report deliveries, table %d\n got %s\nwant %s", i+1, got, want)
			}
		}
		csv := cli(oakViewer, "report", "deliveries", "--from", from, "--to", to, "--csv")
		wantCSV := "site,compartment,carrier,delivered,dropped_off,picked_up,retrieved,expired,cancelled,overdue,offline_pickups,dwell_count,dwell_p50_h,dwell_p90_h,dwell_p99_h\n" +
			"oak,dry,dhl,1,1,0,0,0,0,0,0,0,0.00,0.00,0.00\n" +
			"oak,dry,ups,1,0,0,0,0,0,0,0,0,0.00,0.00,0.00\n" +
			"oak,fridge,ups,1,1,0,0,0,0,1,0,0,0.00,0.00,0.00\n"
		if csv != wantCSV {
			t.Errorf("report deliveries --csv with oak's token:\n%s\nwant\n%s", csv, wantCSV)
		}
		if _, errOut, code := run(t, environ, "report", "deliveries", "--from", "2026-01-01", "--to", "2026-06-01",
			"--hub", "http://"+hub.http, "--token", viewer); code == 0 || !strings.Contains(errOut, "at most 93 days") {
			t.Errorf("a range of 5 months: exit %d, %s", code, errOut)
		}
	})

	t.Run("dashboard", func(t *testing.T) {
		webtest.Chromium(t)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		b := webtest.Open(t, ctx)
		hubURL := "http://" + hub.http + "/"
		b.SignIn(hubURL, oakViewer)
		b.Wait("oak's compartments", `document.querySelector('table.occupancy tr[data-site="oak"] [data-kind="dry"]')?.textContent.includes('1 of 4 occupied · 1 reserved · 2 free')`)
		if pine := webtest.Eval[bool](b, `Boolean(document.querySelector('table.occupancy tr[data-site="pine"]'))`); pine {
			t.Error("oak's token sees pine's compartments")
		}

		b.Do("the parcels page", chromedp.Navigate(hubURL+"#/parcels"))
		b.Wait("the overdue fridge parcel, then the bank's", fmt.Sprintf(`document.querySelector('table.parcels.overdue tr[data-parcel="%s"]') &&
			[...document.querySelectorAll('table.parcels.inside tr[data-parcel]')].map((tr) => tr.dataset.parcel).join() === '%s'`, inFridge.ID, inBank.ID))
		row := webtest.Eval[string](b, fmt.Sprintf(`document.querySelector('tr[data-parcel="%s"]').innerText`, inFridge.ID))
		for _, want := range []string{"fridge-1", "Fridge", "perishable", "1 d 6 h", "Overdue", "In locker", "ups"} {
			if !strings.Contains(row, want) {
				t.Errorf("the overdue parcel's row lacks %q: %q", want, row)
			}
		}
		// A delivery shows without a reload, told by the event stream.
		webtest.Eval[chromedp.Void](b, `window.notReloaded = true`)
		late := deliver(t, `{"device": "fridge-1", "door": 1, "perishable": true, "carrier": "dpd"}`)
		b.Wait("the new parcel", fmt.Sprintf(`document.querySelector('table.parcels.inside tr[data-parcel="%s"]')`, late.ID))
		if !webtest.Eval[bool](b, `window.notReloaded === true`) {
			t.Error("the parcels page reloaded to show the new parcel")
		}
		noCode(t, b, codes)
		b.FitsWidth("the parcels page at 1280 px")
		b.Screenshot(filepath.Join(artifactDir(t), "parcels-desktop.png"))

		b.Do("bank-1's page on a phone", chromedp.Emulate(device.IPhone12Pro), chromedp.Navigate(hubURL+"#/unit/bank-1"))
		b.Wait("its compartments", `document.querySelectorAll('.door[data-compartment]').length === 4`)
		doors := webtest.Eval[[]string](b, `[...document.querySelectorAll('.door')].map((d) => d.dataset.compartment + ': ' + d.querySelector('.door-parcel').textContent)`)
		want := []string{"occupied: Dry · parcel under 1 min · In locker · dhl", "free: Dry · free", "reserved: Dry · reserved for ups", "free: Dry · free"}
		if strings.Join(doors, "|") != strings.Join(want, "|") {
			t.Errorf("bank-1's doors\n got %q\nwant %q", doors, want)
		}
		b.FitsWidth("bank-1's page with its compartments on a phone")
		b.Screenshot(filepath.Join(artifactDir(t), "unit-compartments-phone.png"))
		noCode(t, b, codes)
	})
}

// noCode fails if the page shows any of the pickup codes, in its text or its markup.
func noCode(t *testing.T, b *webtest.Browser, codes []string) {
	t.Helper()
	page := webtest.Eval[string](b, `document.documentElement.outerHTML`)
	for _, c := range codes {
		if strings.Contains(page, c) {
			t.Errorf("the page shows the pickup code %s:\n%s", c, b.Page())
		}
	}
}

// fieldsByLine is text with its runs of spaces made one and its lines joined with |.
func fieldsByLine(text string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return strings.Join(lines, "|")
}
