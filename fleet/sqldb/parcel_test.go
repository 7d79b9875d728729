package sqldb_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// parcelFixture is a store with one registered locker bank.
type parcelFixture struct {
	ctx     context.Context
	db      *sqldb.DB
	parcels *sqldb.ParcelStore
	audit   *sqldb.AuditService
	devices *sqldb.DeviceService
	bank    *fleet.Device
	now     time.Time
}

func newParcelFixture(t *testing.T, db *sqldb.DB) *parcelFixture {
	t.Helper()
	f := &parcelFixture{ctx: fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "token:op", Name: "desk"}), db: db,
		parcels: sqldb.NewParcelStore(db), audit: sqldb.NewAuditService(db), devices: sqldb.NewDeviceService(db),
		now: time.Now().UTC().Truncate(time.Millisecond)}
	f.bank = &fleet.Device{ID: "bank-1", Kind: fleet.KindLockerBank, Site: "oak", Doors: 4}
	if _, err := f.devices.CreateDevice(f.ctx, f.bank); err != nil {
		t.Fatal(err)
	}
	return f
}

// parcel returns a parcel in the locker behind door of d, created at f.now+age.
func (f *parcelFixture) parcel(id string, d *fleet.Device, door int, age time.Duration) *fleet.Parcel {
	at := f.now.Add(age)
	return &fleet.Parcel{ID: id, DeviceID: d.ID, Registration: d.Registration, Site: d.Site, Door: door,
		Compartment: fleet.CompartmentOf(d), Status: fleet.ParcelInLocker, CreatedAt: at, DroppedAt: &at,
		ExpiresAt: at.Add(time.Hour), Actor: "token:op", ActorName: "desk",
		CodeSalt: []byte("0123456789abcdef"), CodeHash: []byte(strings.Repeat("h", 32))}
}

func (f *parcelFixture) entry(t *testing.T, action fleet.AuditAction, p *fleet.Parcel) *fleet.AuditEntry {
	t.Helper()
	e, err := fleet.NewAuditEntry(f.ctx, action, p.DeviceID, map[string]any{"parcel": p.ID, "door": p.Door})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (f *parcelFixture) create(t *testing.T, p *fleet.Parcel) uint64 {
	t.Helper()
	v, err := f.parcels.CreateParcel(f.ctx, p, f.entry(t, fleet.AuditParcelDeliver, p))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (f *parcelFixture) ids(t *testing.T, flt fleet.ParcelFilter) string {
	t.Helper()
	ps, err := f.parcels.FindParcels(f.ctx, flt)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	return strings.Join(ids, " ")
}

func TestParcelRoundTripAndCodeSetVersions(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		f := newParcelFixture(t, openDB(t, e))
		p := f.parcel("p1", f.bank, 2, 0)
		p.Size, p.Recipient, p.Carrier, p.Perishable = fleet.SizeLarge, "flat 4b", "dhl", true
		if v := f.create(t, p); v != 1 {
			t.Fatalf("code set version after a live parcel = %d, want 1", v)
		}
		got, err := f.parcels.FindParcelByID(f.ctx, "p1")
		if err != nil {
			t.Fatal(err)
		}
		gotJSON, _ := json.Marshal(got)
		wantJSON, _ := json.Marshal(p)
		if string(gotJSON) != string(wantJSON) || string(got.CodeSalt) != string(p.CodeSalt) ||
			string(got.CodeHash) != string(p.CodeHash) || got.Registration != f.bank.Registration {
			t.Fatalf("read back %s, stored %s", gotJSON, wantJSON)
		}
		if _, err := f.parcels.FindParcelByID(f.ctx, "nope"); fleet.ErrorCode(err) != fleet.ENOTFOUND {
			t.Fatalf("unknown parcel: %v, want ENOTFOUND", err)
		}

		// A reservation holds its door but adds no code: the version stays.
		r := f.parcel("r1", f.bank, 3, time.Second)
		r.Status, r.DroppedAt = fleet.ParcelAwaitingDropoff, nil
		if v := f.create(t, r); v != 0 {
			t.Fatalf("a reservation bumped the code set to %d", v)
		}
		set, live, err := f.parcels.CodeSet(f.ctx, "bank-1", f.now)
		if err != nil || set.Want != 1 || len(live) != 1 || live[0].ID != "p1" {
			t.Fatalf("CodeSet = %+v %v %v, want version 1 with p1 alone", set, live, err)
		}
		if _, live, _ := f.parcels.CodeSet(f.ctx, "bank-1", p.ExpiresAt); len(live) != 0 {
			t.Fatalf("codes past their expiry still in the set: %v", live)
		}

		// A transition applies only from the status it was decided on.
		picked := *p
		picked.Status, picked.ClosedBy, picked.Offline = fleet.ParcelPickedUp, "device:bank-1", true
		picked.PickedUpAt, picked.ClosedAt = &f.now, &f.now
		ok, v, err := f.parcels.UpdateParcel(f.ctx, &picked, fleet.ParcelInLocker, f.entry(t, fleet.AuditParcelPickup, p))
		if err != nil || !ok || v != 2 {
			t.Fatalf("pickup = %v, version %d, %v; want applied, version 2", ok, v, err)
		}
		ok, _, err = f.parcels.UpdateParcel(f.ctx, &picked, fleet.ParcelInLocker, f.entry(t, fleet.AuditParcelPickup, p))
		if err != nil || ok {
			t.Fatalf("second pickup from in-locker = %v, %v; want not applied", ok, err)
		}
		got, _ = f.parcels.FindParcelByID(f.ctx, "p1")
		if got.Status != fleet.ParcelPickedUp || !got.Offline || got.PickedUpAt == nil || got.ClosedBy != "device:bank-1" {
			t.Fatalf("after pickup: %+v", got)
		}
		// The pickup and the delivery are in the trail; the second pickup, not applied, is not.
		var actions []string
		if err := f.audit.Entries(f.ctx, fleet.AuditFilter{}, func(e *fleet.AuditEntry) error {
			if strings.HasPrefix(string(e.Action), "parcel.") {
				actions = append(actions, string(e.Action))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(actions, " "); got != "parcel.deliver parcel.deliver parcel.pickup" {
			t.Fatalf("audit actions %q", got)
		}

		if err := f.parcels.SetReportedCodes(f.ctx, "bank-1", 2); err != nil {
			t.Fatal(err)
		}
		if set, _, _ := f.parcels.CodeSet(f.ctx, "bank-1", f.now); set.Want != 2 || set.Reported != 2 {
			t.Fatalf("CodeSet version = %+v, want 2 wanted and reported", set)
		}
	})
}

// Two deliveries to one door at once, through two handles (two hubs on PostgreSQL): exactly
// one is stored, the other is an ECONFLICT; once the first parcel leaves, the door is free.
func TestConcurrentDeliveriesToOneDoor(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		_, dbs := hubs(t, e)
		f := newParcelFixture(t, dbs[0])
		const n = 6
		errs := make([]error, n)
		race(n, func(i int) {
			p := f.parcel(fmt.Sprintf("p%d", i), f.bank, 1, 0)
			if i%2 == 1 {
				p.Status, p.DroppedAt = fleet.ParcelAwaitingDropoff, nil // a reservation takes the door too
			}
			e, err := fleet.NewAuditEntry(f.ctx, fleet.AuditParcelDeliver, p.DeviceID, map[string]any{"parcel": p.ID})
			if err == nil {
				_, err = sqldb.NewParcelStore(dbs[i%2]).CreateParcel(f.ctx, p, e)
			}
			errs[i] = err
		})
		won := ""
		for i, err := range errs {
			switch {
			case err == nil:
				if won != "" {
					t.Errorf("parcels %s and p%d both hold door 1", won, i)
				}
				won = fmt.Sprintf("p%d", i)
			case fleet.ErrorCode(err) != fleet.ECONFLICT:
				t.Errorf("delivery %d: %v, want nil or ECONFLICT", i, err)
			}
		}
		if got := f.ids(t, fleet.ParcelFilter{}); got != won {
			t.Fatalf("stored %q, want only the winner %q", got, won)
		}
		if held, err := f.parcels.HeldDoors(f.ctx, "bank-1", f.bank.Registration); err != nil || !held[1] || len(held) != 1 {
			t.Fatalf("HeldDoors = %v, %v; want door 1", held, err)
		}
		// The winner is retrieved (or its reservation cancelled): the door is free again.
		w, _ := f.parcels.FindParcelByID(f.ctx, won)
		from := w.Status
		w.Status = fleet.ParcelRetrieved
		if w.DroppedAt == nil {
			w.Status = fleet.ParcelCancelled
		}
		if ok, _, err := f.parcels.UpdateParcel(f.ctx, w, from, f.entry(t, fleet.AuditParcelRetrieve, w)); !ok || err != nil {
			t.Fatalf("close the winner: %v %v", ok, err)
		}
		f.create(t, f.parcel("next", f.bank, 1, time.Second))
	})
}

func TestFindParcels(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		f := newParcelFixture(t, openDB(t, e))
		elm := &fleet.Device{ID: "fridge-1", Kind: fleet.KindFridge, Site: "elm", Doors: 2}
		if _, err := f.devices.CreateDevice(f.ctx, elm); err != nil {
			t.Fatal(err)
		}
		f.create(t, f.parcel("a", f.bank, 1, 0))
		b := f.parcel("b", f.bank, 2, time.Second)
		b.Actor = "token:carrier"
		f.create(t, b)
		f.create(t, f.parcel("c", elm, 1, 2*time.Second))
		cancelled := f.parcel("d", elm, 2, 3*time.Second)
		cancelled.Status, cancelled.DroppedAt = fleet.ParcelCancelled, nil
		f.create(t, cancelled)

		for _, tc := range []struct {
			name string
			f    fleet.ParcelFilter
			want string
		}{
			{"all, newest first", fleet.ParcelFilter{}, "d c b a"},
			{"device", fleet.ParcelFilter{DeviceID: "bank-1"}, "b a"},
			{"site", fleet.ParcelFilter{Site: "elm"}, "d c"},
			{"sites of a scoped token", fleet.ParcelFilter{Sites: []string{"oak", "pine"}}, "b a"},
			{"no sites: every site", fleet.ParcelFilter{Sites: []string{}}, "d c b a"},
			{"statuses", fleet.ParcelFilter{Status: []fleet.ParcelStatus{fleet.ParcelCancelled, fleet.ParcelPickedUp}}, "d"},
			{"occupies", fleet.ParcelFilter{Occupies: true, Site: "elm"}, "c"},
			{"actor", fleet.ParcelFilter{Actor: "token:carrier"}, "b"},
			{"created from", fleet.ParcelFilter{From: f.now.Add(time.Second)}, "d c b"},
			{"created before", fleet.ParcelFilter{To: f.now.Add(time.Second)}, "a"},
			{"limit", fleet.ParcelFilter{Limit: 2}, "d c"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if got := f.ids(t, tc.f); got != tc.want {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
			})
		}

		// Expiry: the earliest live code, and the codes due at a time.
		next, ok, err := f.parcels.NextExpiry(f.ctx)
		if err != nil || !ok || !next.Equal(f.now.Add(time.Hour)) {
			t.Fatalf("NextExpiry = %v %v %v, want a's", next, ok, err)
		}
		due, err := f.parcels.ExpiredParcels(f.ctx, f.now.Add(time.Hour+time.Second), 10)
		if err != nil || len(due) != 2 || due[0].ID != "a" || due[1].ID != "b" {
			t.Fatalf("ExpiredParcels = %v %v, want a and b", due, err)
		}

		// A removed unit's parcels belong to its ended registration: not current, and its id
		// registered again starts with free doors and an ever higher code set version.
		if err := f.devices.DeleteDevice(f.ctx, "bank-1"); err != nil {
			t.Fatal(err)
		}
		if got := f.ids(t, fleet.ParcelFilter{Current: true}); got != "d c" {
			t.Fatalf("current parcels after the removal: %q", got)
		}
		again := &fleet.Device{ID: "bank-1", Kind: fleet.KindLockerBank, Site: "oak", Doors: 4}
		if _, err := f.devices.CreateDevice(f.ctx, again); err != nil {
			t.Fatal(err)
		}
		if v := f.create(t, f.parcel("e", again, 1, 4*time.Second)); v != 3 {
			t.Fatalf("version for the new registration = %d, want 3 (after 2 of the first)", v)
		}
		if _, live, _ := f.parcels.CodeSet(f.ctx, "bank-1", f.now); len(live) != 1 || live[0].ID != "e" {
			t.Fatalf("code set of the new registration: %v, want e alone", live)
		}
	})
}
