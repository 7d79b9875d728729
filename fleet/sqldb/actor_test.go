package sqldb_test

import (
	"context"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// A command keeps the name of the token that sent it, and an alert those of the tokens that
// acknowledged and resolved it, after the token is revoked; records made before the names were
// stored get them from the tokens table when the store is upgraded.
func TestActorNames(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
		st := newStore(t, e)
		db := st.open(t)
		tok := &fleet.Token{Name: "Ana, night desk", Role: fleet.RoleOperator}
		if _, err := sqldb.NewTokenService(db).CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		ana := tok.Actor()
		t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
		commands, alerts := sqldb.NewCommandStore(db), sqldb.NewAlertStore(db)
		c := &fleet.Command{ID: "c-new", DeviceID: "bank-1", Type: wire.CommandUnlock, Door: 3, Reason: "courier",
			Actor: ana.ID, ActorName: ana.Name, Status: fleet.CommandCreated, CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}
		if _, err := commands.CreateCommand(ctx, c); err != nil {
			t.Fatal(err)
		}
		a := &fleet.Alert{Rule: "forced-entry", Severity: fleet.SeverityCritical, Scope: fleet.ScopeDoor, DeviceID: "bank-1",
			Site: "oak", Door: 3, Summary: "door 3 forced", FiredAt: t0}
		if err := alerts.CreateAlert(ctx, a); err != nil {
			t.Fatal(err)
		}
		if _, err := alerts.AckAlert(ctx, a.ID, ana, "on my way", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, err := alerts.ResolveAlert(ctx, a.ID, ana, "fixed", t0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := sqldb.NewTokenService(db).RevokeToken(ctx, tok.ID); err != nil {
			t.Fatal(err)
		}
		if got, err := commands.FindCommandByID(ctx, c.ID); err != nil || got.Actor != ana.ID || got.ActorName != ana.Name {
			t.Errorf("command after the token was revoked: %+v, %v; want actor %s named %q", got, err, ana.ID, ana.Name)
		}
		al, err := alerts.FindAlertByID(ctx, a.ID)
		if err != nil || al.AckedBy != ana.ID || al.AckedByName != ana.Name || al.ResolvedBy != ana.ID || al.ResolvedByName != ana.Name {
			t.Errorf("alert after the token was revoked: %+v, %v; want acknowledged and resolved by %s named %q", al, err, ana.ID, ana.Name)
		}

		// A store from before the names: the columns gone, and a command and an alert of the
		// revoked token, and one of a token the store does not know (left without a name).
		raw := st.raw(t)
		for _, q := range []string{
			`ALTER TABLE commands DROP COLUMN actor_name`,
			`ALTER TABLE alerts DROP COLUMN acked_by_name`,
			`ALTER TABLE alerts DROP COLUMN resolved_by_name`,
			`ALTER TABLE audit DROP COLUMN actor_name`,
			`DELETE FROM schema_migrations WHERE name = 'migrations/0008_actor_names.sql'`,
			`INSERT INTO commands (id, device, type, reason, actor, status, created_at, expires_at)
				SELECT 'c-old', device, type, reason, actor, status, created_at, expires_at FROM commands WHERE id = 'c-new'`,
			`INSERT INTO commands (id, device, type, reason, actor, status, created_at, expires_at)
				SELECT 'c-unknown', device, type, reason, 'token:gone', status, created_at, expires_at FROM commands WHERE id = 'c-new'`,
			`UPDATE alerts SET state = 'resolved', resolved_by = 'hub'`,
		} {
			if _, err := raw.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		db = st.open(t)
		commands, alerts = sqldb.NewCommandStore(db), sqldb.NewAlertStore(db)
		al, err = alerts.FindAlertByID(ctx, a.ID)
		if err != nil || al.AckedByName != ana.Name || al.ResolvedBy != fleet.ActorHub || al.ResolvedByName != "" {
			t.Errorf("alert after the upgrade: %+v, %v; want acknowledged by %q, resolved by the hub", al, err, ana.Name)
		}
		for id, want := range map[string]string{"c-new": ana.Name, "c-old": ana.Name, "c-unknown": ""} {
			if got, err := commands.FindCommandByID(ctx, id); err != nil || got.ActorName != want {
				t.Errorf("command %s after the upgrade: %+v, %v; want actor name %q", id, got, err, want)
			}
		}
	})
}
