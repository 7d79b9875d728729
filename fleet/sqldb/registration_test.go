package sqldb_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// commandIDs returns the ids of the commands f selects, newest first.
func commandIDs(t *testing.T, s *sqldb.CommandStore, f fleet.CommandFilter) string {
	t.Helper()
	cs, err := s.FindCommands(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	return strings.Join(ids, " ")
}

// alertSummaries returns the summaries of the alerts f selects, newest first.
func alertSummaries(t *testing.T, s *sqldb.AlertStore, f fleet.AlertFilter) string {
	t.Helper()
	as, err := s.FindAlerts(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range as {
		out = append(out, a.Summary)
	}
	return strings.Join(out, " ")
}

// A device id removed and registered again is another registration: the commands and alerts of
// the first are not the second's, and an alert of the first left open does not keep the
// second's from firing.
func TestRegistrationsKeepDataApart(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
		db := openDB(t, e)
		devices, cmds, alerts := sqldb.NewDeviceService(db), sqldb.NewCommandStore(db), sqldb.NewAlertStore(db)
		now := time.Now().UTC().Truncate(time.Millisecond)
		command := func(id string, d *fleet.Device) {
			t.Helper()
			c := &fleet.Command{ID: id, DeviceID: d.ID, Registration: d.Registration, Type: wire.CommandUnlock, Door: 1,
				Reason: "reason of " + id, Actor: "token:op", Status: fleet.CommandCreated, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
			if _, err := cmds.CreateCommand(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		forced := func(summary string, d *fleet.Device) error {
			return alerts.CreateAlert(ctx, &fleet.Alert{Rule: "forced-entry", Severity: fleet.SeverityCritical, Scope: fleet.ScopeDoor,
				DeviceID: d.ID, Site: d.Site, Registration: d.Registration, Door: 1, Summary: summary, FiredAt: now})
		}
		current := fleet.CommandFilter{DeviceID: "x-1", Current: true}
		currentAlerts := fleet.AlertFilter{DeviceID: "x-1", Current: true}

		oak := &fleet.Device{ID: "x-1", Kind: fleet.KindLockerBank, Site: "oak", Doors: 2}
		if _, err := devices.CreateDevice(ctx, oak); err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(oak.Registration) {
			t.Fatalf("registration %q, want 128 random bits in hex", oak.Registration)
		}
		command("c-oak", oak)
		if err := forced("oak-forced", oak); err != nil {
			t.Fatal(err)
		}
		if got := commandIDs(t, cmds, current); got != "c-oak" {
			t.Fatalf("current commands of the oak unit: %q", got)
		}
		if got := alertSummaries(t, alerts, currentAlerts); got != "oak-forced" {
			t.Fatalf("current alerts of the oak unit: %q", got)
		}

		if err := devices.DeleteDevice(ctx, "x-1"); err != nil {
			t.Fatal(err)
		}
		if got := commandIDs(t, cmds, current); got != "" {
			t.Errorf("current commands of a removed device: %q", got)
		}
		if got := alertSummaries(t, alerts, currentAlerts); got != "" {
			t.Errorf("current alerts of a removed device: %q", got)
		}

		elm := &fleet.Device{ID: "x-1", Kind: fleet.KindLockerBank, Site: "elm", Doors: 2}
		if _, err := devices.CreateDevice(ctx, elm); err != nil {
			t.Fatal(err)
		}
		if got, err := devices.FindDeviceByID(ctx, "x-1"); err != nil || got.Registration != elm.Registration || elm.Registration == oak.Registration {
			t.Fatalf("registered again: %+v %v; want a registration other than the first's %s", got, err, oak.Registration)
		}
		if got := commandIDs(t, cmds, current); got != "" {
			t.Errorf("current commands of the id registered again: %q, want none of the unit before", got)
		}
		if got := alertSummaries(t, alerts, fleet.AlertFilter{Current: true, Sites: []string{"oak", "elm"}}); got != "" {
			t.Errorf("current alerts of the id registered again: %q, want none of the unit before", got)
		}

		// The oak unit's alert is still open; the elm unit's door is its own condition.
		if err := forced("elm-forced", elm); err != nil {
			t.Fatalf("an open alert of the unit before kept the new unit's from firing: %v", err)
		}
		if err := forced("elm-forced-again", elm); fleet.ErrorCode(err) != fleet.ECONFLICT {
			t.Fatalf("a second open alert of the same condition: %v, want conflict", err)
		}
		command("c-elm", elm)
		if got := commandIDs(t, cmds, current); got != "c-elm" {
			t.Errorf("current commands: %q, want the elm unit's only", got)
		}
		if got := alertSummaries(t, alerts, currentAlerts); got != "elm-forced" {
			t.Errorf("current alerts: %q, want the elm unit's only", got)
		}
		// Both are kept, for what the audit trail says of them.
		if got := commandIDs(t, cmds, fleet.CommandFilter{DeviceID: "x-1"}); !strings.Contains(got, "c-oak") || !strings.Contains(got, "c-elm") {
			t.Errorf("every command of the id: %q", got)
		}
		for id, want := range map[string]string{"c-oak": oak.Registration, "c-elm": elm.Registration} {
			if c, err := cmds.FindCommandByID(ctx, id); err != nil || c.Registration != want {
				t.Errorf("command %s: %+v %v, want registration %s", id, c, err, want)
			}
		}
	})
}

// legacyMigrations returns the migration files before 0007_registrations.sql that engine e runs,
// in order, with the names they are recorded under.
func legacyMigrations(t *testing.T, e engine) (names, files []string) {
	t.Helper()
	entries, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, en := range entries {
		have[en.Name()] = true
	}
	for _, en := range entries {
		n := en.Name()
		if strings.HasSuffix(n, ".postgres.sql") || n >= "0007" {
			continue
		}
		file := n
		if v := strings.TrimSuffix(n, ".sql") + ".postgres.sql"; e == postgresEngine && have[v] {
			file = v
		}
		names, files = append(names, "migrations/"+n), append(files, "migrations/"+file)
	}
	slices.Sort(names)
	slices.Sort(files)
	return names, files
}

// A store written before registrations: each command and alert is given its device's
// registration if that existed when it was made, and otherwise none, so that what was recorded
// of a removed unit, or of an id's earlier unit, is not shown as the current unit's.
func TestMigrationGivesRowsTheirRegistration(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		st := newStore(t, e)
		raw := st.raw(t)
		exec := func(db *sql.DB, q string) {
			t.Helper()
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%.80s: %v", q, err)
			}
		}
		exec(raw, `CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`)
		names, files := legacyMigrations(t, e)
		if len(names) != 6 {
			t.Fatalf("migrations before 0007: %v", names)
		}
		for i, f := range files {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			exec(raw, string(body))
			exec(raw, fmt.Sprintf(`INSERT INTO schema_migrations (name, applied_at) VALUES ('%s', 0)`, names[i]))
		}
		// kept-1 registered at 1000 and still; again-1 registered again at 5000; gone-1 removed.
		exec(raw, `INSERT INTO devices (id, kind, site, doors, labels, enabled, secret_hash, created_at, updated_at) VALUES
			('kept-1', 'locker-bank', 'oak', 2, '{}', TRUE, 'x', 1000, 1000),
			('again-1', 'locker-bank', 'elm', 2, '{}', TRUE, 'x', 5000, 5000)`)
		exec(raw, `INSERT INTO commands (id, device, type, door, reason, actor, status, created_at, expires_at) VALUES
			('c-kept', 'kept-1', 'unlock', 1, 'r', 'token:op', 'succeeded', 2000, 9000),
			('c-gone', 'gone-1', 'unlock', 1, 'r', 'token:op', 'succeeded', 2000, 9000),
			('c-before', 'again-1', 'unlock', 1, 'r', 'token:op', 'succeeded', 3000, 9000),
			('c-after', 'again-1', 'unlock', 1, 'r', 'token:op', 'succeeded', 6000, 9000)`)
		exec(raw, `INSERT INTO alerts (rule, severity, scope, device, site, door, state, summary, fired_at) VALUES
			('offline', 'major', 'device', 'kept-1', 'oak', 0, 'firing', 'a-kept', 2000),
			('offline', 'major', 'device', 'gone-1', 'oak', 0, 'firing', 'a-gone', 2000),
			('forced-entry', 'critical', 'door', 'again-1', 'oak', 1, 'firing', 'a-before', 3000),
			('offline', 'major', 'device', 'again-1', 'elm', 0, 'firing', 'a-after', 6000)`)

		db := st.open(t) // migrates
		devices, cmds, alerts := sqldb.NewDeviceService(db), sqldb.NewCommandStore(db), sqldb.NewAlertStore(db)
		regs := map[string]string{}
		for _, id := range []string{"kept-1", "again-1"} {
			d, err := devices.FindDeviceByID(ctx, id)
			if err != nil || !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(d.Registration) {
				t.Fatalf("%s after the migration: %+v %v, want a registration of 128 random bits in hex", id, d, err)
			}
			regs[id] = d.Registration
		}
		if regs["kept-1"] == regs["again-1"] {
			t.Fatalf("two devices were given the registration %s", regs["kept-1"])
		}
		for id, want := range map[string]string{"c-kept": regs["kept-1"], "c-gone": "", "c-before": "", "c-after": regs["again-1"]} {
			if c, err := cmds.FindCommandByID(ctx, id); err != nil || c.Registration != want {
				t.Errorf("command %s: registration %q (%v), want %q", id, c.Registration, err, want)
			}
		}
		if got := commandIDs(t, cmds, fleet.CommandFilter{Current: true}); got != "c-after c-kept" {
			t.Errorf("current commands: %q, want c-after c-kept", got)
		}
		if got := alertSummaries(t, alerts, fleet.AlertFilter{Current: true}); got != "a-after a-kept" {
			t.Errorf("current alerts: %q, want a-after a-kept", got)
		}
		// again-1's earlier unit's forced door, still open, is not the current unit's condition.
		if err := alerts.CreateAlert(ctx, &fleet.Alert{Rule: "forced-entry", Severity: fleet.SeverityCritical, Scope: fleet.ScopeDoor,
			DeviceID: "again-1", Site: "elm", Registration: regs["again-1"], Door: 1, Summary: "a-new", FiredAt: time.Now()}); err != nil {
			t.Errorf("the current unit's forced door after the migration: %v", err)
		}
	})
}
