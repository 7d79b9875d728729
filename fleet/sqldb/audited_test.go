package sqldb_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// Each change to the registry and the token store appends its own entry, for the actor of its
// context, with the detail the trail has always had and "by" for a change made through a tool.
func TestChangesRecordTheirActor(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ana := fleet.Actor{ID: "token:0123456789abcdef", Name: "Ana, night desk"}
		ctx := fleet.NewContextWithActor(context.Background(), ana)
		db := openDB(t, e)
		devices, tokens := sqldb.NewDeviceService(db), sqldb.NewTokenService(db)
		imported := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli", Via: "import"})
		if _, err := devices.CreateDevices(imported, []*fleet.Device{{ID: "bank-1", Kind: fleet.KindLockerBank, Site: "elm", Doors: 4}}); err != nil {
			t.Fatal(err)
		}
		if _, err := devices.RotateSecret(ctx, "bank-1"); err != nil {
			t.Fatal(err)
		}
		if _, err := devices.SetEnabled(ctx, "bank-1", false); err != nil {
			t.Fatal(err)
		}
		if _, err := devices.SetEnabled(ctx, "bank-1", true); err != nil {
			t.Fatal(err)
		}
		if err := devices.DeleteDevice(ctx, "bank-1"); err != nil {
			t.Fatal(err)
		}
		tok := &fleet.Token{Name: "night desk", Role: fleet.RoleOperator, Sites: []string{"elm"}}
		if _, err := tokens.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if err := tokens.RevokeToken(ctx, tok.ID); err != nil {
			t.Fatal(err)
		}
		// Changes that are not made are not recorded.
		if err := devices.DeleteDevice(ctx, "bank-1"); fleet.ErrorCode(err) != fleet.ENOTFOUND {
			t.Fatalf("removing a removed device: %v, want not found", err)
		}
		if err := tokens.RevokeToken(ctx, "nope"); fleet.ErrorCode(err) != fleet.ENOTFOUND {
			t.Fatalf("revoking an unknown token: %v, want not found", err)
		}

		type entry struct {
			actor, name string
			action      fleet.AuditAction
			device      string
			detail      string
		}
		want := []entry{
			{"cli", "", fleet.AuditDeviceCreate, "bank-1", `{"by":"import","doors":4,"kind":"locker-bank","site":"elm"}`},
			{ana.ID, ana.Name, fleet.AuditDeviceRotateSecret, "bank-1", `{}`},
			{ana.ID, ana.Name, fleet.AuditDeviceDisable, "bank-1", `{}`},
			{ana.ID, ana.Name, fleet.AuditDeviceEnable, "bank-1", `{}`},
			{ana.ID, ana.Name, fleet.AuditDeviceRemove, "bank-1", `{}`},
			{ana.ID, ana.Name, fleet.AuditTokenCreate, "", `{"name":"night desk","role":"operator","sites":["elm"],"token":"` + tok.ID + `"}`},
			{ana.ID, ana.Name, fleet.AuditTokenRevoke, "", `{"token":"` + tok.ID + `"}`},
		}
		var got []entry
		err := sqldb.NewAuditService(db).Entries(context.Background(), fleet.AuditFilter{}, func(e *fleet.AuditEntry) error {
			detail, err := fleet.EncodeAuditDetail(e.Detail)
			got = append(got, entry{e.Actor, e.ActorName, e.Action, e.Device, string(detail)})
			return err
		})
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("trail %+v, %v\nwant %+v", got, err, want)
		}
		if res := verify(t, sqldb.NewAuditService(db)); !res.OK {
			t.Fatalf("trail does not verify: %+v", res)
		}
	})
}

// A change and its audit entry are one transaction: when the entry cannot be appended, the
// change is not made either, and the caller is told why.
func TestChangeWithoutItsAuditEntryIsNotMade(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
		st := newStore(t, e)
		db := st.open(t)
		devices, tokens, trail := sqldb.NewDeviceService(db), sqldb.NewTokenService(db), sqldb.NewAuditService(db)
		if _, err := devices.CreateDevice(ctx, &fleet.Device{ID: "bank-1", Kind: fleet.KindLockerBank, Site: "elm", Doors: 4}); err != nil {
			t.Fatal(err)
		}
		live := &fleet.Token{Name: "desk", Role: fleet.RoleViewer}
		if _, err := tokens.CreateToken(ctx, live); err != nil {
			t.Fatal(err)
		}
		cred, err := devices.DeviceCredential(ctx, "bank-1")
		if err != nil {
			t.Fatal(err)
		}
		before := verify(t, trail)

		// An entry too large to record (a scope of very many sites) refuses its token.
		var sites []string
		for i := range 80 {
			sites = append(sites, strings.Repeat(string(rune('a'+i%26)), 60))
		}
		if _, err := tokens.CreateToken(ctx, &fleet.Token{Name: "wide", Role: fleet.RoleViewer, Sites: sites}); fleet.ErrorCode(err) != fleet.EINVALID ||
			!strings.Contains(err.Error(), "not made, since the audit trail could not record it") {
			t.Fatalf("a token whose entry is too large: %v, want invalid and not made", err)
		}

		// A trail that cannot be appended to (its head gone) refuses every change.
		raw := st.raw(t)
		if _, err := raw.Exec(`DELETE FROM audit_head`); err != nil {
			t.Fatal(err)
		}
		for name, change := range map[string]func() error{
			"create": func() error {
				_, err := devices.CreateDevice(ctx, &fleet.Device{ID: "bank-2", Kind: fleet.KindFridge, Site: "elm", Doors: 2})
				return err
			},
			"import": func() error {
				_, err := devices.CreateDevices(ctx, []*fleet.Device{{ID: "bank-3", Kind: fleet.KindFridge, Site: "elm", Doors: 2}})
				return err
			},
			"rotate":  func() error { _, err := devices.RotateSecret(ctx, "bank-1"); return err },
			"disable": func() error { _, err := devices.SetEnabled(ctx, "bank-1", false); return err },
			"remove":  func() error { return devices.DeleteDevice(ctx, "bank-1") },
			"token": func() error {
				_, err := tokens.CreateToken(ctx, &fleet.Token{Name: "new", Role: fleet.RoleAdmin})
				return err
			},
			"revoke": func() error { return tokens.RevokeToken(ctx, live.ID) },
		} {
			err := change()
			// The API shows a fleet.Error's message alone: it must say what happened.
			var fe *fleet.Error
			if !errors.As(err, &fe) || fe.Code != fleet.EINTERNAL || !strings.Contains(fe.Message, "not made, since the audit trail could not record it") {
				t.Errorf("%s with a broken trail: %v, want an internal error saying it was not made", name, err)
			}
		}
		if _, err := raw.Exec(fmt.Sprintf(`INSERT INTO audit_head (id, seq, hash) VALUES (1, %d, '%s')`, before.HeadSeq, before.HeadHash)); err != nil {
			t.Fatal(err)
		}

		// Nothing changed: the devices and tokens are as they were, and so is the trail.
		ds, err := devices.FindDevices(ctx, fleet.DeviceFilter{})
		if err != nil || len(ds) != 1 || ds[0].ID != "bank-1" || !ds[0].Enabled {
			t.Fatalf("devices after the refused changes: %v, %v; want bank-1 alone, enabled", ds, err)
		}
		if now, err := devices.DeviceCredential(ctx, "bank-1"); err != nil || now != cred {
			t.Fatalf("credential after a refused rotation: %+v, %v; want %+v", now, err, cred)
		}
		ts, err := tokens.FindTokens(ctx)
		if err != nil || len(ts) != 1 || ts[0].ID != live.ID || ts[0].RevokedAt != nil {
			t.Fatalf("tokens after the refused changes: %+v, %v; want %s alone, live", ts, err, live.ID)
		}
		if after := verify(t, trail); !after.OK || after.Entries != before.Entries || after.HeadHash != before.HeadHash {
			t.Fatalf("trail after the refused changes: %+v, want it as before: %+v", after, before)
		}
	})
}

// A change whose context names no actor is refused before the store is touched.
func TestChangeWithoutAnActorIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t, sqliteEngine)
	devices := sqldb.NewDeviceService(db)
	if _, err := devices.CreateDevice(ctx, &fleet.Device{ID: "bank-1", Kind: fleet.KindLockerBank, Site: "elm", Doors: 4}); fleet.ErrorCode(err) != fleet.EINTERNAL {
		t.Fatalf("a device created without an actor: %v, want an internal error", err)
	}
	if _, err := sqldb.NewTokenService(db).CreateToken(ctx, &fleet.Token{Name: "x", Role: fleet.RoleViewer}); fleet.ErrorCode(err) != fleet.EINTERNAL {
		t.Fatalf("a token created without an actor: %v, want an internal error", err)
	}
	if ds, err := devices.FindDevices(ctx, fleet.DeviceFilter{}); err != nil || len(ds) != 0 {
		t.Fatalf("devices: %v, %v; want none", ds, err)
	}
}
