package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/commands"
	lhhttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// Commands, alerts and the audit trail name the token that acted, as it was named then, and
// keep naming it after the token is revoked.
func TestActorNames(t *testing.T) {
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	reg := openRegistry(t)
	d := &fleet.Device{ID: "oak-1", Kind: fleet.KindLockerBank, Site: "oak", Doors: 4}
	if _, err := reg.devices.CreateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	store := sqldb.NewAlertStore(reg.db)
	var alertIDs []int64
	for _, door := range []int{1, 2} {
		a := &fleet.Alert{Rule: "forced-entry", Severity: fleet.SeverityCritical, Scope: fleet.ScopeDoor, DeviceID: d.ID, Site: d.Site,
			Registration: d.Registration, Door: door, Summary: "forced", FiredAt: time.Now()}
		if err := store.CreateAlert(ctx, a); err != nil {
			t.Fatal(err)
		}
		alertIDs = append(alertIDs, a.ID)
	}
	cmds, err := commands.New(sqldb.NewCommandStore(reg.db), reg.devices, everyoneOnline{}, everyoneOnline{},
		commands.Options{Audit: reg.audit})
	if err != nil {
		t.Fatal(err)
	}
	addr := reg.serve(t, lhhttp.Services{Presence: everyoneOnline{}, Live: nobodyOnline{}, History: nobodyOnline{},
		Commands: cmds, Alerts: newAlertKeeper(t, reg)})
	admin, ana := reg.token(t, "Root desk", fleet.RoleAdmin), reg.token(t, "Ana, night desk", fleet.RoleOperator)

	call := func(tok, method, path, body string, into any) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		if into != nil {
			if err := json.Unmarshal(b, into); err != nil {
				t.Fatalf("%s %s: %v: %s", method, path, err, b)
			}
		}
	}
	var who fleet.Token
	call(ana, "GET", "/api/v1/whoami", "", &who)
	call(ana, "POST", "/api/v1/devices/oak-1/doors/3/unlock?wait=false", `{"reason":"courier"}`, nil)
	call(ana, "POST", fmt.Sprintf("/api/v1/alerts/%d/ack", alertIDs[0]), `{"note":"on my way"}`, nil)
	call(ana, "POST", fmt.Sprintf("/api/v1/alerts/%d/resolve", alertIDs[0]), `{"note":"latch replaced"}`, nil)
	call(admin, "DELETE", "/api/v1/tokens/"+who.ID, "", nil)

	anaID := "token:" + who.ID
	var cs struct{ Commands []fleet.Command }
	call(admin, "GET", "/api/v1/commands?device=oak-1", "", &cs)
	if len(cs.Commands) != 1 || cs.Commands[0].Actor != anaID || cs.Commands[0].ActorName != "Ana, night desk" {
		t.Errorf("commands after the revocation: %+v, want one by %s named Ana, night desk", cs.Commands, anaID)
	}
	var al fleet.Alert
	call(admin, "GET", fmt.Sprint("/api/v1/alerts/", alertIDs[0]), "", &al)
	if al.AckedBy != anaID || al.AckedByName != "Ana, night desk" || al.ResolvedBy != anaID || al.ResolvedByName != "Ana, night desk" {
		t.Errorf("alert after the revocation: %+v", al)
	}

	var trail struct{ Entries []fleet.AuditEntry }
	call(admin, "GET", "/api/v1/audit", "", &trail)
	names := map[fleet.AuditAction]string{} // action: the name of its actor
	for _, e := range trail.Entries {
		names[e.Action] = e.ActorName
	}
	for action, want := range map[fleet.AuditAction]string{fleet.AuditCommandUnlock: "Ana, night desk", fleet.AuditAlertAck: "Ana, night desk",
		fleet.AuditAlertResolve: "Ana, night desk", fleet.AuditTokenRevoke: "Root desk"} {
		if got, ok := names[action]; !ok || got != want {
			t.Errorf("audit entry %s by %q (recorded: %t), want by %q", action, got, ok, want)
		}
	}
	if res, err := reg.audit.Verify(ctx); err != nil || !res.OK {
		t.Fatalf("audit trail with names: %+v %v", res, err)
	}
}
