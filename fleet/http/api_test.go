package http_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/commands"
	lhhttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// Stand-ins for the parts that need a broker or InFluxDB; their own tests use the real ones.
type nobodyOnline struct{}

func (nobodyOnline) Presence(string) (fleet.Presence, bool)                             { return fleet.Presence{}, false }
func (nobodyOnline) LiveState(*fleet.Device) (fleet.LiveState, bool)                    { return fleet.LiveState{}, false }
func (nobodyOnline) PublishRequest(string, []byte, time.Duration, string, []byte) error { return nil }
func (nobodyOnline) History(context.Context, fleet.HistoryQuery) ([]fleet.HistoryPoint, error) {
	return nil, nil
}

// Every endpoint against every role and a token scoped to another site.
func TestRolesAndScopes(t *testing.T) {
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	reg := openRegistry(t)
	oak := map[string]*fleet.Device{}
	for _, id := range []string{"oak-1", "oak-2", "oak-3", "oak-4"} {
		oak[id] = &fleet.Device{ID: id, Kind: fleet.KindLockerBank, Site: "oak", Doors: 4}
		if _, err := reg.devices.CreateDevice(ctx, oak[id]); err != nil {
			t.Fatal(err)
		}
	}
	cmds, err := commands.New(sqldb.NewCommandStore(reg.db), reg.devices, nobodyOnline{}, nobodyOnline{}, commands.Options{})
	if err != nil {
		t.Fatal(err)
	}
	alert := &fleet.Alert{Rule: "forced-entry", Severity: fleet.SeverityCritical, Scope: fleet.ScopeDoor, DeviceID: "oak-1",
		Site: "oak", Registration: oak["oak-1"].Registration, Door: 1, Summary: "door 1 forced", FiredAt: time.Now()}
	if err := sqldb.NewAlertStore(reg.db).CreateAlert(ctx, alert); err != nil {
		t.Fatal(err)
	}
	addr := reg.serve(t, lhhttp.Services{Presence: nobodyOnline{}, Live: nobodyOnline{}, History: nobodyOnline{},
		Commands: cmds, Alerts: newAlertKeeper(t, reg)})

	secret := map[string]string{"pine-admin": reg.token(t, "pine", fleet.RoleAdmin, "pine")}
	for _, role := range fleet.Roles {
		secret[string(role)] = reg.token(t, string(role), role)
	}
	secret["carrier"] = reg.token(t, "courier co", fleet.RoleCarrier)

	do := func(token, method, path, body string) int {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	reason := `{"reason":"test"}`
	for _, ep := range []struct {
		method, path, body string
		need               fleet.Role
		ok                 int // status when allowed (the device is offline for commands)
	}{
		{"GET", "/api/v1/whoami", "", fleet.RoleViewer, 200},
		{"GET", "/api/v1/devices", "", fleet.RoleViewer, 200},
		{"GET", "/api/v1/devices/oak-1", "", fleet.RoleViewer, 200},
		{"GET", "/api/v1/devices/oak-1/telemetry?field=ambient_c", "", fleet.RoleViewer, 200},
		{"POST", "/api/v1/devices/oak-1/doors/1/unlock", reason, fleet.RoleOperator, 409},
		{"POST", "/api/v1/devices/oak-1/doors/1/lock", reason, fleet.RoleOperator, 409},
		{"POST", "/api/v1/devices/oak-1/setpoint", `{"target":"heater","setpoint_c":5,"reason":"x"}`, fleet.RoleOperator, 409},
		{"POST", "/api/v1/devices/oak-1/rotate-secret", "", fleet.RoleAdmin, 200},
		{"POST", "/api/v1/devices/oak-2/disable", "", fleet.RoleAdmin, 200},
		{"POST", "/api/v1/devices/oak-2/enable", "", fleet.RoleAdmin, 200},
		{"POST", "/api/v1/devices", `{"id":"oak-9","kind":"fridge","site":"oak","doors":2}`, fleet.RoleAdmin, 201},
		{"DELETE", "/api/v1/devices/oak-9", "", fleet.RoleAdmin, 204},
		{"GET", "/api/v1/tokens", "", fleet.RoleAdmin, 200},
		{"POST", "/api/v1/tokens", `{"name":"new","role":"viewer"}`, fleet.RoleAdmin, 201},
		{"GET", "/api/v1/audit", "", fleet.RoleAdmin, 200},
		{"GET", "/api/v1/commands?device=oak-1&limit=10", "", fleet.RoleViewer, 200},
		{"GET", "/api/v1/alerts?state=open&site=oak", "", fleet.RoleViewer, 200},
		{"GET", fmt.Sprint("/api/v1/alerts/", alert.ID), "", fleet.RoleViewer, 200},
		{"GET", "/api/v1/health", "", fleet.RoleViewer, 200},
	} {
		t.Run(ep.method+" "+ep.path, func(t *testing.T) {
			if got := do("", ep.method, ep.path, ep.body); got != 401 {
				t.Errorf("no token: %d, want 401", got)
			}
			if got := do("lh_0000000000000000_forged", ep.method, ep.path, ep.body); got != 401 {
				t.Errorf("forged token: %d, want 401", got)
			}
			for _, role := range fleet.Roles {
				want := 403
				if role.Allows(ep.need) {
					want = ep.ok
				}
				if got := do(secret[string(role)], ep.method, ep.path, ep.body); got != want {
					t.Errorf("%s: %d, want %d", role, got, want)
				}
			}
			// A carrier delivers parcels (TestParcelAPI) and may do none of this but ask who
			// it is.
			want := 403
			if ep.path == "/api/v1/whoami" {
				want = 200
			}
			if got := do(secret["carrier"], ep.method, ep.path, ep.body); got != want {
				t.Errorf("carrier: %d, want %d", got, want)
			}
			// A token for another property sees none of oak's devices.
			if strings.Contains(ep.path, "/devices/oak-") || strings.Contains(ep.path, "/alerts/") {
				if got := do(secret["pine-admin"], ep.method, ep.path, ep.body); got != 404 {
					t.Errorf("token scoped to pine: %d, want 404", got)
				}
			}
		})
	}
	if got := do(secret["pine-admin"], "POST", "/api/v1/devices", `{"id":"oak-8","kind":"fridge","site":"oak","doors":2}`); got != 403 {
		t.Errorf("scoped admin creating a device at another site: %d, want 403", got)
	}
	if got := do(secret["pine-admin"], "POST", "/api/v1/tokens", `{"name":"x","role":"admin"}`); got != 201 {
		t.Errorf("scoped admin creating a token (scoped to its own sites): %d, want 201", got)
	}
	if got := do(secret["pine-admin"], "POST", "/api/v1/tokens", `{"name":"x","role":"admin","sites":["oak"]}`); got != 403 {
		t.Errorf("scoped admin creating a token for another site: %d, want 403", got)
	}

	if got := do(secret["pine-admin"], "GET", "/api/v1/audit", ""); got != 403 {
		t.Errorf("site-scoped admin reading the audit trail: %d, want 403", got)
	}

	// The audit trail holds the failed logins (one per forged token, counted in batches; a
	// request without a token presents no credential) and the administration done above, and
	// is intact.
	failed := 0
	for _, e := range reg.loginFailures(t) {
		failed += failureCount(t, e)
	}
	actions := map[fleet.AuditAction]int{}
	reg.audit.Entries(ctx, fleet.AuditFilter{}, func(e *fleet.AuditEntry) error { actions[e.Action]++; return nil })
	for action, atLeast := range map[fleet.AuditAction]int{fleet.AuditDeviceCreate: 1, fleet.AuditDeviceRemove: 1, fleet.AuditDeviceDisable: 1,
		fleet.AuditDeviceRotateSecret: 1, fleet.AuditTokenCreate: 2} {
		if actions[action] < atLeast {
			t.Errorf("audit trail has %d %s entries, want at least %d (all: %v)", actions[action], action, atLeast, actions)
		}
	}
	if failed != 19 {
		t.Errorf("audit trail counts %d failed logins, want one per forged token (19)", failed)
	}
	if res, err := reg.audit.Verify(ctx); err != nil || !res.OK {
		t.Fatalf("audit trail broken: %+v %v", res, err)
	}
}
