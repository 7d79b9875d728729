package sqldb_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/credential"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// other is the engine that is not e.
func other(e engine) engine {
	if e == sqliteEngine {
		return postgresEngine
	}
	return sqliteEngine
}

// fixture is what fill stored, with the secrets that only their creation shows.
type fixture struct {
	deviceSecrets map[string]string // device id -> secret
	liveToken     string            // secret of a token still valid
	revokedToken  string            // secret of a revoked token
}

// fill stores a hub's worth of everything in db through the package's services: devices (one
// disabled), tokens (one revoked), commands in every status (one with an idempotency key, one
// setpoint), alerts firing, acknowledged and resolved, and an audit trail of several entries:
// the 8 of the registry's and the token store's changes, then 5 of its own.
func fill(t *testing.T, db *sqldb.DB) fixture {
	t.Helper()
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	fx := fixture{deviceSecrets: map[string]string{}}

	devices := sqldb.NewDeviceService(db)
	ds := []*fleet.Device{
		{ID: "bank-1", Kind: fleet.KindLockerBank, Site: "elm-street", Doors: 24, Labels: map[string]string{"floor": "lobby", "note": `"quoted" & ü`}},
		{ID: "bank-2", Kind: fleet.KindLockerBank, Site: "elm-street", Doors: 8},
		{ID: "fridge-1", Kind: fleet.KindFridge, Site: "oak", Doors: 6, Labels: map[string]string{"zone": "cold"}},
	}
	secrets, err := devices.CreateDevices(ctx, ds)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range ds {
		fx.deviceSecrets[d.ID] = secrets[i]
	}
	if _, err := devices.SetEnabled(ctx, "bank-2", false); err != nil {
		t.Fatal(err)
	}
	if fx.deviceSecrets["fridge-1"], err = devices.RotateSecret(ctx, "fridge-1"); err != nil {
		t.Fatal(err)
	}

	tokens := sqldb.NewTokenService(db)
	live := &fleet.Token{Name: "oak property manager", Role: fleet.RoleOperator, Sites: []string{"oak", "elm-street"}}
	if fx.liveToken, err = tokens.CreateToken(ctx, live); err != nil {
		t.Fatal(err)
	}
	gone := &fleet.Token{Name: "old dashboard", Role: fleet.RoleViewer}
	if fx.revokedToken, err = tokens.CreateToken(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if err := tokens.RevokeToken(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}

	bank, err := devices.FindDeviceByID(ctx, "bank-1")
	if err != nil {
		t.Fatal(err)
	}
	in := time.Date(2026, 11, 1, 7, 0, 0, 0, time.UTC).Add(456 * time.Millisecond)
	parcel := &fleet.Parcel{ID: "p-in", DeviceID: "bank-1", Registration: bank.Registration, Site: bank.Site, Door: 2,
		Compartment: fleet.CompartmentDry, Size: fleet.SizeLarge, Perishable: true, Recipient: "flat 2", Status: fleet.ParcelInLocker,
		CreatedAt: in, DroppedAt: &in, ExpiresAt: in.Add(24 * time.Hour), Actor: "cli",
		CodeSalt: []byte("0123456789abcdef"), CodeHash: []byte("0123456789abcdef0123456789abcdef")}
	e, err := fleet.NewAuditEntry(ctx, fleet.AuditParcelDeliver, "bank-1", map[string]any{"parcel": "p-in"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sqldb.NewParcelStore(db).CreateParcel(ctx, parcel, e); err != nil {
		t.Fatal(err)
	}

	cmds := sqldb.NewCommandStore(db)
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC).Add(123 * time.Millisecond)
	setpoint := math.Nextafter(4.5, 5) // 4.500000000000001: a float that only survives if copied exactly
	for i, c := range []*fleet.Command{
		{ID: "c-created", DeviceID: "bank-1", Type: wire.CommandUnlock, Door: 3, Reason: "courier", Actor: "token:" + live.ID, Status: fleet.CommandCreated},
		{ID: "c-sent", DeviceID: "bank-1", Type: wire.CommandLock, Door: 4, Reason: "left open", Actor: "token:" + live.ID, Status: fleet.CommandCreated},
		{ID: "c-ok", DeviceID: "bank-1", Type: wire.CommandUnlock, Door: 5, Reason: "parcel stuck", Actor: "token:" + live.ID,
			IdempotencyKey: "retry-7f3a", Status: fleet.CommandCreated},
		{ID: "c-failed", DeviceID: "bank-2", Type: wire.CommandUnlock, Door: 1, Reason: "courier", Actor: "cli", Status: fleet.CommandCreated},
		{ID: "c-expired", DeviceID: "fridge-1", Type: wire.CommandSetpoint, Target: "compressor", SetpointC: &setpoint,
			Reason: "summer", Actor: "token:" + live.ID, Status: fleet.CommandCreated},
	} {
		c.CreatedAt = t0.Add(time.Duration(i) * time.Second)
		c.ExpiresAt = c.CreatedAt.Add(30 * time.Second)
		if _, err := cmds.CreateCommand(ctx, c); err != nil {
			t.Fatal(err)
		}
		if c.ID == "c-created" {
			continue
		}
		sent := c.CreatedAt.Add(7 * time.Millisecond)
		c.Status, c.SentAt = fleet.CommandSent, &sent
		if ok, err := cmds.UpdateCommand(ctx, c, fleet.CommandCreated); !ok || err != nil {
			t.Fatalf("%s: created -> sent: %v, %v", c.ID, ok, err)
		}
		done := c.CreatedAt.Add(900 * time.Millisecond)
		switch c.ID {
		case "c-ok":
			c.Status, c.Outcome, c.CompletedAt = fleet.CommandSucceeded, wire.OutcomeOpened, &done
		case "c-failed":
			c.Status, c.Outcome, c.Detail, c.CompletedAt = fleet.CommandFailed, wire.OutcomeJammed, "bolt did not move", &done
		case "c-expired":
			c.Status, c.CompletedAt = fleet.CommandExpired, &done
		default:
			continue
		}
		if ok, err := cmds.UpdateCommand(ctx, c, fleet.CommandSent); !ok || err != nil {
			t.Fatalf("%s: sent -> %s: %v, %v", c.ID, c.Status, ok, err)
		}
	}

	alerts := sqldb.NewAlertStore(db)
	temp := math.Pi
	var ids []int64
	for _, a := range []*fleet.Alert{
		{Rule: "cold-holding", Severity: fleet.SeverityMajor, Scope: fleet.ScopeCompartment, DeviceID: "fridge-1", Site: "oak", Door: 2,
			Summary: "compartment 2 at 9.5 °C", Value: &temp, FiredAt: t0},
		{Rule: "door-ajar", Severity: fleet.SeverityMinor, Scope: fleet.ScopeDoor, DeviceID: "bank-1", Site: "elm-street", Door: 1,
			Summary: "door 1 open for 10m", FiredAt: t0.Add(time.Minute)},
		{Rule: "offline", Severity: fleet.SeverityCritical, Scope: fleet.ScopeDevice, DeviceID: "bank-2", Site: "elm-street",
			Summary: "no heartbeat for 5m", FiredAt: t0.Add(2 * time.Minute)},
	} {
		if err := alerts.CreateAlert(ctx, a); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	if _, err := alerts.AckAlert(ctx, ids[0], live.Actor(), "on my way", t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := alerts.AckAlert(ctx, ids[1], live.Actor(), "", t0.Add(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := alerts.ResolveAlert(ctx, ids[1], fleet.Hub, "door closed", t0.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}

	trail := sqldb.NewAuditService(db)
	for _, e := range []*fleet.AuditEntry{
		{Actor: "cli", Action: "device.create", Device: "bank-1", Detail: map[string]any{"kind": "locker-bank", "site": "elm-street", "doors": 24}},
		{Actor: "cli", Action: "device.disable", Device: "bank-2"},
		{Actor: "token:" + live.ID, Action: "command.unlock", Device: "bank-1", Detail: map[string]any{"door": 5, "reason": "parcel stuck", "outcome": "opened"}},
		{Actor: "cli", Action: "token.revoke", Detail: map[string]any{"token": gone.ID, "note": "ünïcode ✓ and \"quotes\""}},
		{Actor: fleet.ActorHub, Action: "alert.resolve", Device: "bank-1", Detail: map[string]any{"alert": ids[1], "value": math.Nextafter(0.3, 1)}},
	} {
		if err := trail.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	return fx
}

// contents is everything a store holds, read through the package's own services.
type contents struct {
	Devices     []*fleet.Device
	Credentials []fleet.Credential
	Tokens      []*fleet.Token
	Commands    []*fleet.Command
	Alerts      []*fleet.Alert
	Parcels     []*fleet.Parcel
	CodeSet     fleet.CodeSetVersion
	Audit       []*fleet.AuditEntry
	Head        fleet.VerifyResult
}

func read(t *testing.T, db *sqldb.DB) contents {
	t.Helper()
	ctx := context.Background()
	var c contents
	var err error
	devices := sqldb.NewDeviceService(db)
	if c.Devices, err = devices.FindDevices(ctx, fleet.DeviceFilter{}); err != nil {
		t.Fatal(err)
	}
	for _, d := range c.Devices {
		cred, err := devices.DeviceCredential(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		c.Credentials = append(c.Credentials, cred)
	}
	if c.Tokens, err = sqldb.NewTokenService(db).FindTokens(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Commands, err = sqldb.NewCommandStore(db).FindCommands(ctx, fleet.CommandFilter{Limit: 1000}); err != nil {
		t.Fatal(err)
	}
	if c.Alerts, err = sqldb.NewAlertStore(db).FindAlerts(ctx, fleet.AlertFilter{Limit: 1000}); err != nil {
		t.Fatal(err)
	}
	parcels := sqldb.NewParcelStore(db)
	if c.Parcels, err = parcels.FindParcels(ctx, fleet.ParcelFilter{Limit: 1000}); err != nil {
		t.Fatal(err)
	}
	if c.CodeSet, _, err = parcels.CodeSet(ctx, "bank-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	trail := sqldb.NewAuditService(db)
	c.Audit = readTrail(t, trail, fleet.AuditFilter{})
	c.Head = verify(t, trail)
	return c
}

// sameContents fails the test unless got and want hold the same values, field by field.
func sameContents(t *testing.T, got, want contents) {
	t.Helper()
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range g.NumField() {
		name := g.Type().Field(i).Name
		if !reflect.DeepEqual(g.Field(i).Interface(), w.Field(i).Interface()) {
			gj, _ := json.MarshalIndent(g.Field(i).Interface(), "", "  ")
			wj, _ := json.MarshalIndent(w.Field(i).Interface(), "", "  ")
			t.Errorf("%s differ:\ngot  %s\nwant %s", name, gj, wj)
		}
	}
}

// The upgrade and the way back: SQLite to PostgreSQL and back to SQLite, every value kept.
func TestCopyRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srcStore := newStore(t, sqliteEngine)
	src := srcStore.open(t)
	fx := fill(t, src)
	want := read(t, src)
	if len(want.Devices) != 3 || len(want.Tokens) != 2 || len(want.Commands) != 5 || len(want.Alerts) != 3 || len(want.Parcels) != 1 || want.CodeSet.Want != 1 || len(want.Audit) != 14 || !want.Head.OK {
		t.Fatalf("the source is not what fill stores: %+v", want)
	}

	pg := newStore(t, postgresEngine).open(t)
	stats, err := sqldb.Copy(ctx, pg, src)
	if err != nil {
		t.Fatal(err)
	}
	wantStats := sqldb.CopyStats{From: stats.From, To: stats.To, Devices: 3, Tokens: 2, Commands: 5, Alerts: 3, Parcels: 1,
		CodeSets: 1, Audit: 14, AuditHead: 14, AuditHeadHash: want.Head.HeadHash, Verified: 14}
	if stats != wantStats || !strings.HasSuffix(stats.From, "lockerhub.db") || !strings.HasPrefix(stats.To, "postgres://") {
		t.Fatalf("stats = %+v, want %+v", stats, wantStats)
	}
	sameContents(t, read(t, pg), want)

	// Straight back, the SQLite file holds what it held, value for value and type for type:
	// 1 and 0 for enabled, BLOBs for token hashes, NULL (not '') for no idempotency key.
	exact := newStore(t, sqliteEngine)
	if _, err := sqldb.Copy(ctx, exact.open(t), pg); err != nil {
		t.Fatal(err)
	}
	if got, want := sqliteDump(t, exact), sqliteDump(t, srcStore); got != want {
		t.Fatalf("SQLite -> PostgreSQL -> SQLite changed the stored values:\n%s\nwant\n%s", got, want)
	}

	checkCopyWorks(t, pg, fx, want)

	// The copy is refused a second time and left as it was.
	before := read(t, pg)
	for _, from := range []*sqldb.DB{src, newStore(t, sqliteEngine).open(t)} { // the same data, and none at all
		stats, err = sqldb.Copy(ctx, pg, from)
		if !errors.Is(err, sqldb.ErrNotEmpty) || fleet.ErrorCode(err) != fleet.ECONFLICT {
			t.Fatalf("copy into a store with data: %v, want ErrNotEmpty (conflict)", err)
		}
		if stats.Devices != 0 || stats.Audit != 0 || stats.Verified != 0 {
			t.Fatalf("a refused copy reports %+v", stats)
		}
	}
	sameContents(t, read(t, pg), before)

	// Back to SQLite, with what the cluster added meanwhile.
	added := &fleet.Alert{Rule: "cold-holding", Severity: fleet.SeverityMajor, Scope: fleet.ScopeCompartment, DeviceID: "fridge-1",
		Site: "oak", Door: 3, Summary: "compartment 3 at 8 °C", FiredAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := sqldb.NewAlertStore(pg).CreateAlert(ctx, added); err != nil {
		t.Fatal(err)
	}
	if err := sqldb.NewAuditService(pg).Append(ctx, &fleet.AuditEntry{Actor: "cli", Action: "device.enable", Device: "bank-2"}); err != nil {
		t.Fatal(err)
	}
	want = read(t, pg)
	back := newStore(t, sqliteEngine).open(t)
	stats, err = sqldb.Copy(ctx, back, pg)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(len(want.Audit))
	if stats.Devices != 3 || stats.Alerts != int64(len(want.Alerts)) || stats.Audit != n || stats.AuditHead != n || stats.Verified != n {
		t.Fatalf("stats = %+v, want %d alerts and %d audit entries", stats, len(want.Alerts), n)
	}
	sameContents(t, read(t, back), want)
	checkCopyWorks(t, back, fx, want)
}

// sqliteDump returns every stored value of the copied tables in an SQLite store, quoted by
// SQLite so that the type shows (1 or '1', X'..' or '...', NULL or an empty string), with every
// digit of a REAL, and the alert counter.
func sqliteDump(t *testing.T, st store) string {
	t.Helper()
	db := st.raw(t)
	var b strings.Builder
	for _, table := range []string{"devices", "tokens", "commands", "alerts", "parcels", "code_sets", "audit", "audit_head", "sqlite_sequence"} {
		var cols []string
		for _, c := range queryStrings(t, db, `SELECT name FROM pragma_table_info(?) ORDER BY cid`, table) {
			cols = append(cols, "quote("+c+")")
		}
		for _, line := range queryStrings(t, db, `SELECT `+strings.Join(cols, " || ' ' || ")+` FROM `+table+` ORDER BY 1`) {
			fmt.Fprintf(&b, "%s: %s\n", table, line)
		}
	}
	return b.String()
}

// checkCopyWorks checks that the services work on the copy as on the original: secrets still
// verify, the audit chain goes on, a new alert gets a new id, an idempotency key is still taken.
func checkCopyWorks(t *testing.T, db *sqldb.DB, fx fixture, was contents) {
	t.Helper()
	ctx := context.Background()
	devices := sqldb.NewDeviceService(db)
	for id, secret := range fx.deviceSecrets {
		cred, err := devices.DeviceCredential(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := credential.Verify(cred.SecretHash, secret); !ok || err != nil {
			t.Errorf("device %s: its secret does not verify against the copied hash: %v, %v", id, ok, err)
		}
		if wantEnabled := id != "bank-2"; cred.Enabled != wantEnabled {
			t.Errorf("device %s: enabled %v, want %v", id, cred.Enabled, wantEnabled)
		}
	}
	disabled := false
	if got, err := devices.FindDevices(ctx, fleet.DeviceFilter{Enabled: &disabled}); err != nil || len(got) != 1 || got[0].ID != "bank-2" {
		t.Errorf("disabled devices: %v, %v; want bank-2", got, err)
	}
	tokens := sqldb.NewTokenService(db)
	if tok, err := tokens.Authenticate(ctx, fx.liveToken); err != nil || tok.Role != fleet.RoleOperator {
		t.Errorf("the live token does not authenticate on the copy: %+v, %v", tok, err)
	}
	if _, err := tokens.Authenticate(ctx, fx.revokedToken); fleet.ErrorCode(err) != fleet.EUNAUTHORIZED {
		t.Errorf("the revoked token: %v, want unauthorized", err)
	}

	var ok *fleet.Command
	for _, c := range was.Commands {
		if c.IdempotencyKey != "" {
			ok = c
		}
	}
	retry := *ok
	retry.ID = "c-retry"
	earlier, err := sqldb.NewCommandStore(db).CreateCommand(ctx, &retry)
	if err != nil || earlier == nil || earlier.ID != ok.ID {
		t.Errorf("a retry with the copied idempotency key: %+v, %v; want the earlier command %s", earlier, err, ok.ID)
	}

	var maxID int64
	for _, a := range was.Alerts {
		maxID = max(maxID, a.ID)
	}
	a := &fleet.Alert{Rule: "door-ajar", Severity: fleet.SeverityMinor, Scope: fleet.ScopeDoor, DeviceID: "bank-1", Site: "elm-street",
		Door: 100 + len(was.Alerts), Summary: "open for 10m", FiredAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := sqldb.NewAlertStore(db).CreateAlert(ctx, a); err != nil {
		t.Fatal(err)
	}
	if a.ID <= maxID {
		t.Errorf("a new alert on the copy got id %d, not above the copied ids (up to %d)", a.ID, maxID)
	}

	trail := sqldb.NewAuditService(db)
	e := &fleet.AuditEntry{Actor: "cli", Action: "device.rotate", Device: "bank-1"}
	if err := trail.Append(ctx, e); err != nil {
		t.Fatal(err)
	}
	if e.Seq != was.Head.HeadSeq+1 || e.PrevHash != was.Head.HeadHash {
		t.Errorf("appended %d after %s, want %d after the copied head %s", e.Seq, e.PrevHash, was.Head.HeadSeq+1, was.Head.HeadHash)
	}
	if res := verify(t, trail); !res.OK {
		t.Errorf("the copy's trail after an append: %+v", res)
	}
}

// Any data at all in the destination refuses the copy, and the destination stays as it was.
func TestCopyRefusesADestinationWithData(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
		src := newStore(t, other(e)).open(t)
		fill(t, src)
		for _, tc := range []struct {
			name string
			add  func(db *sqldb.DB) error
		}{
			{"device", func(db *sqldb.DB) error {
				_, err := sqldb.NewDeviceService(db).CreateDevice(ctx, &fleet.Device{ID: "bank-9", Kind: fleet.KindLockerBank, Site: "pine", Doors: 4})
				return err
			}},
			{"token", func(db *sqldb.DB) error {
				_, err := sqldb.NewTokenService(db).CreateToken(ctx, &fleet.Token{Name: "x", Role: fleet.RoleViewer})
				return err
			}},
			{"command", func(db *sqldb.DB) error {
				now := time.Now()
				_, err := sqldb.NewCommandStore(db).CreateCommand(ctx, &fleet.Command{ID: "c-9", DeviceID: "bank-9", Type: wire.CommandUnlock,
					Door: 1, Reason: "x", Actor: "cli", Status: fleet.CommandCreated, CreatedAt: now, ExpiresAt: now})
				return err
			}},
			{"alert", func(db *sqldb.DB) error {
				return sqldb.NewAlertStore(db).CreateAlert(ctx, &fleet.Alert{Rule: "offline", Severity: fleet.SeverityMajor, Scope: fleet.ScopeDevice,
					DeviceID: "bank-9", Site: "pine", Summary: "x", FiredAt: time.Now()})
			}},
			{"audit entry", func(db *sqldb.DB) error {
				return sqldb.NewAuditService(db).Append(ctx, &fleet.AuditEntry{Actor: "cli", Action: "device.create", Device: "bank-9"})
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				dst := newStore(t, e).open(t)
				if err := tc.add(dst); err != nil {
					t.Fatal(err)
				}
				before := read(t, dst)
				_, err := sqldb.Copy(ctx, dst, src)
				if !errors.Is(err, sqldb.ErrNotEmpty) {
					t.Fatalf("Copy = %v, want ErrNotEmpty", err)
				}
				sameContents(t, read(t, dst), before)
			})
		}
		t.Run("audit head only", func(t *testing.T) {
			// Entries deleted behind lockerhub's back still leave the head: not an empty store.
			st := newStore(t, e)
			dst := st.open(t)
			if err := sqldb.NewAuditService(dst).Append(ctx, &fleet.AuditEntry{Actor: "cli", Action: "device.create", Device: "bank-9"}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.raw(t).Exec(`DELETE FROM audit`); err != nil {
				t.Fatal(err)
			}
			if _, err := sqldb.Copy(ctx, dst, src); !errors.Is(err, sqldb.ErrNotEmpty) || !strings.Contains(err.Error(), "audit head at entry 1") {
				t.Fatalf("Copy = %v, want ErrNotEmpty naming the audit head", err)
			}
		})
	})
}

// A copy onto itself is refused however the store is reached; on two engines it cannot be one.
func TestCopyRefusesTheSameStore(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		st := newStore(t, e)
		a, b := st.open(t), st.open(t)
		for _, pair := range [][2]*sqldb.DB{{a, a}, {a, b}} {
			if _, err := sqldb.Copy(ctx, pair[0], pair[1]); !errors.Is(err, sqldb.ErrSameStore) || fleet.ErrorCode(err) != fleet.EINVALID {
				t.Fatalf("Copy onto the same store = %v, want ErrSameStore", err)
			}
		}
		// Two stores of one engine are not the same: an empty source copies nothing, and fine.
		stats, err := sqldb.Copy(ctx, newStore(t, e).open(t), a)
		if err != nil || stats.Devices != 0 || stats.Verified != 0 {
			t.Fatalf("Copy of an empty store = %+v, %v", stats, err)
		}
	})
}

// A broken audit chain in the source is not copied: the copy would carry a trail that does not
// verify, so nothing is written.
func TestCopyRefusesABrokenChain(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		for _, tc := range []struct {
			name, tamper, want string
		}{
			{"entry edited", `UPDATE audit SET actor = 'someone else' WHERE seq = 3`, "at entry 3"},
			{"tail deleted", `DELETE FROM audit WHERE seq = 5`, "at entry 5"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				st := newStore(t, e)
				src := st.open(t)
				fill(t, src)
				if _, err := st.raw(t).Exec(tc.tamper); err != nil {
					t.Fatal(err)
				}
				dst := newStore(t, other(e)).open(t)
				_, err := sqldb.Copy(ctx, dst, src)
				if !errors.Is(err, sqldb.ErrUnverified) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing was copied") {
					t.Fatalf("Copy = %v, want ErrUnverified %s", err, tc.want)
				}
				if got := read(t, dst); len(got.Devices) != 0 || len(got.Tokens) != 0 || len(got.Audit) != 0 || got.Head.HeadSeq != 0 {
					t.Fatalf("a refused copy left %+v", got)
				}
				// Nothing was written, so a copy after the repair is not refused as non-empty.
				if _, err := sqldb.Copy(ctx, dst, newStore(t, e).open(t)); err != nil {
					t.Fatalf("copy into the destination of a refused copy: %v", err)
				}
			})
		}
	})
}

// A column Copy does not know (a later migration that did not teach Copy about it, or one added
// by hand) stops the copy instead of being left behind.
func TestCopyRefusesAnUnknownColumn(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		st := newStore(t, e)
		src := st.open(t)
		fill(t, src)
		if _, err := st.raw(t).Exec(`ALTER TABLE devices ADD COLUMN firmware TEXT`); err != nil {
			t.Fatal(err)
		}
		dst := newStore(t, other(e)).open(t)
		if _, err := sqldb.Copy(ctx, dst, src); !errors.Is(err, sqldb.ErrSchema) || !strings.Contains(err.Error(), "firmware") {
			t.Fatalf("Copy = %v, want ErrSchema naming the column", err)
		}
		if _, err := sqldb.Copy(ctx, src, dst); !errors.Is(err, sqldb.ErrSchema) {
			t.Fatalf("Copy into a store with the column = %v, want ErrSchema", err)
		}
		if _, err := st.raw(t).Exec(`INSERT INTO schema_migrations (name, applied_at) VALUES ('migrations/9999_future.sql', 0)`); err != nil {
			t.Fatal(err)
		}
		if _, err := st.raw(t).Exec(`ALTER TABLE devices DROP COLUMN firmware`); err != nil {
			t.Fatal(err)
		}
		if _, err := sqldb.Copy(ctx, dst, src); !errors.Is(err, sqldb.ErrSchema) || !strings.Contains(err.Error(), "9999_future") {
			t.Fatalf("Copy from a store a newer lockerhub migrated = %v, want ErrSchema naming the migration", err)
		}
	})
}

// Copy knows every table the migrations create; a new one must be taught to it (copy.go).
func TestCopyKnowsEveryTable(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		st := newStore(t, e)
		st.open(t)
		q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`
		if e == postgresEngine {
			q = `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`
		}
		tables := queryStrings(t, st.raw(t), q)
		// Copied: alerts, audit, audit_head, code_sets, commands, devices, parcels, tokens. Not copied:
		// registry_version (the triggers keep it) and schema_migrations (Open writes it).
		if got := strings.Join(tables, " "); got != "alerts audit audit_head code_sets commands devices parcels registry_version schema_migrations tokens" {
			t.Fatalf("tables %s: teach Copy (copy.go) about the new one", got)
		}
	})
}

// Alert ids are never given twice, even when the newest alerts were deleted before the copy:
// the destination's counter starts past the source's, not past its highest id.
func TestCopyKeepsAlertIDsUnique(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		st := newStore(t, e)
		src := st.open(t)
		alerts := sqldb.NewAlertStore(src)
		var last int64
		for i := 1; i <= 3; i++ {
			a := &fleet.Alert{Rule: "offline", Severity: fleet.SeverityMajor, Scope: fleet.ScopeDevice, DeviceID: fmt.Sprintf("bank-%d", i),
				Site: "pine", Summary: "x", FiredAt: time.Now()}
			if err := alerts.CreateAlert(ctx, a); err != nil {
				t.Fatal(err)
			}
			last = a.ID
		}
		if _, err := st.raw(t).Exec(`DELETE FROM alerts WHERE id >= 2`); err != nil {
			t.Fatal(err)
		}
		dst := newStore(t, other(e)).open(t)
		if _, err := sqldb.Copy(ctx, dst, src); err != nil {
			t.Fatal(err)
		}
		a := &fleet.Alert{Rule: "offline", Severity: fleet.SeverityMajor, Scope: fleet.ScopeDevice, DeviceID: "bank-9",
			Site: "pine", Summary: "x", FiredAt: time.Now()}
		if err := sqldb.NewAlertStore(dst).CreateAlert(ctx, a); err != nil {
			t.Fatal(err)
		}
		if a.ID <= last {
			t.Fatalf("new alert id %d on the copy, want above %d, the last id the source gave", a.ID, last)
		}
	})
}
