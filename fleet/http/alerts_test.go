package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/alerts"
	lhhttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

func newAlertKeeper(t *testing.T, reg *registry) *alerts.Engine {
	t.Helper()
	e, err := alerts.New(alerts.DefaultConfig(), sqldb.NewAlertStore(reg.db), reg.devices, nobodyOnline{}, alerts.Options{Audit: reg.audit})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

// Listing with filters and scope, acknowledging and resolving, the health summary.
func TestAlertsAPI(t *testing.T) {
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	reg := openRegistry(t)
	store := sqldb.NewAlertStore(reg.db)
	var ids []int64
	for _, d := range []*fleet.Device{
		{ID: "oak-1", Kind: fleet.KindLockerBank, Site: "oak", Doors: 4},
		{ID: "elm-1", Kind: fleet.KindFridge, Site: "elm", Doors: 2},
	} {
		if _, err := reg.devices.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
		// Rules of the default configuration, which the engine takes up when it starts.
		for _, a := range []*fleet.Alert{
			{Rule: "forced-entry", Severity: fleet.SeverityCritical, Scope: fleet.ScopeDoor, Door: 1},
			{Rule: "telemetry-loss", Severity: fleet.SeverityWarning, Scope: fleet.ScopeDevice},
		} {
			a.DeviceID, a.Site, a.Registration, a.Summary, a.FiredAt = d.ID, d.Site, d.Registration, "x", time.Now()
			if err := store.CreateAlert(ctx, a); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, a.ID)
		}
	}
	addr := reg.serve(t, lhhttp.Services{Presence: nobodyOnline{}, Live: nobodyOnline{}, History: nobodyOnline{},
		Alerts: newAlertKeeper(t, reg)})
	viewer, tech, oakTech := reg.token(t, "v", fleet.RoleViewer), reg.token(t, "t", fleet.RoleTechnician), reg.token(t, "o", fleet.RoleTechnician, "oak")

	call := func(tok, method, path, body string, into any) int {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if into != nil {
			if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode
	}
	list := func(tok, query string) []string {
		t.Helper()
		var res struct{ Alerts []fleet.Alert }
		if code := call(tok, "GET", "/api/v1/alerts?"+query, "", &res); code != 200 {
			t.Fatalf("GET alerts?%s: %d", query, code)
		}
		var out []string
		for _, a := range res.Alerts {
			out = append(out, a.DeviceID+"/"+string(a.Severity))
		}
		return out
	}
	for _, tc := range []struct {
		tok, query, want string
	}{
		{viewer, "", "[elm-1/warning elm-1/critical oak-1/warning oak-1/critical]"},
		{viewer, "severity=critical", "[elm-1/critical oak-1/critical]"},
		{viewer, "rule=telemetry-loss", "[elm-1/warning oak-1/warning]"},
		{viewer, "rule=forced-entry&device=oak-1", "[oak-1/critical]"},
		{viewer, "rule=forced", "[]"},
		{viewer, "site=oak", "[oak-1/warning oak-1/critical]"},
		{viewer, "device=elm-1&state=firing", "[elm-1/warning elm-1/critical]"},
		{viewer, "state=all", "[elm-1/warning elm-1/critical oak-1/warning oak-1/critical]"},
		{viewer, "limit=1", "[elm-1/warning]"},
		{viewer, fmt.Sprint("before=", ids[2]), "[oak-1/warning oak-1/critical]"},
		{oakTech, "", "[oak-1/warning oak-1/critical]"},
		{oakTech, "site=elm", "[]"},
	} {
		if got := fmt.Sprint(list(tc.tok, tc.query)); got != tc.want {
			t.Errorf("GET alerts?%s: %s, want %s", tc.query, got, tc.want)
		}
	}
	for _, q := range []string{"state=burning", "severity=urgent", "limit=0", "limit=5000", "before=x"} {
		if code := call(viewer, "GET", "/api/v1/alerts?"+q, "", nil); code != 400 {
			t.Errorf("GET alerts?%s: %d, want 400", q, code)
		}
	}

	ack := fmt.Sprintf("/api/v1/alerts/%d/ack", ids[0])
	var acked fleet.Alert
	for _, tc := range []struct {
		tok, path, body string
		want            int
	}{
		{viewer, ack, `{"note":"x"}`, 403},
		{oakTech, fmt.Sprintf("/api/v1/alerts/%d/ack", ids[2]), "", 404}, // elm is outside its scope
		{tech, "/api/v1/alerts/999/ack", "", 404},
		{tech, ack, `{"note":"` + strings.Repeat("x", 2000) + `"}`, 400},
		{tech, ack, `{"nope":1}`, 400},
		{oakTech, ack, `{"note":"replacing the latch"}`, 200},
		{tech, ack, "", 409},
		{tech, fmt.Sprintf("/api/v1/alerts/%d/resolve", ids[1]), `{"note":"fixed"}`, 200},
		{tech, fmt.Sprintf("/api/v1/alerts/%d/resolve", ids[1]), "", 409},
	} {
		var into any
		if tc.want == 200 && tc.path == ack {
			into = &acked
		}
		if got := call(tc.tok, "POST", tc.path, tc.body, into); got != tc.want {
			t.Errorf("POST %s %s: %d, want %d", tc.path, tc.body, got, tc.want)
		}
	}
	if acked.State != fleet.AlertAcknowledged || acked.AckNote != "replacing the latch" || !strings.HasPrefix(acked.AckedBy, "token:") {
		t.Errorf("acknowledged alert: %+v", acked)
	}
	if got := fmt.Sprint(list(viewer, "state=open&site=oak")); got != "[oak-1/critical]" {
		t.Errorf("open at oak after ack and resolve: %s", got)
	}

	// Nobody is online here, so every unit counts as offline whatever its alerts.
	var health struct {
		Sites []fleet.SiteHealth
		Total fleet.SiteHealth
	}
	if code := call(oakTech, "GET", "/api/v1/health", "", &health); code != 200 || len(health.Sites) != 1 ||
		health.Sites[0] != (fleet.SiteHealth{Site: "oak", Units: 1, Offline: 1, Open: 1}) || health.Total.Units != 1 {
		t.Errorf("health for oak: %d %+v", code, health)
	}
}
