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
	lhhttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/fleet/parcels"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// parcelStore is the real parcel store and service in reg's database, serving FindParcels as
// the hub does. Parcels go in through the store, with the times a test needs.
type parcelStore struct {
	store *sqldb.ParcelStore
	svc   *parcels.Service
	reg   *registry
}

func newParcelStore(t testing.TB, reg *registry) *parcelStore {
	t.Helper()
	store := sqldb.NewParcelStore(reg.db)
	// The views only read: the service is not started, and needs no broker, presence or commands.
	svc, err := parcels.New(store, reg.devices, nil, nil, nil, parcels.Config{}, parcels.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &parcelStore{store: store, svc: svc, reg: reg}
}

// add stores ps, each of the registration of its unit.
func (s *parcelStore) add(t testing.TB, ps ...*fleet.Parcel) {
	t.Helper()
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "token:carrier"})
	regs := map[string]string{}
	for _, p := range ps {
		if _, ok := regs[p.DeviceID]; !ok {
			d, err := s.reg.devices.FindDeviceByID(ctx, p.DeviceID)
			if err != nil {
				t.Fatal(err)
			}
			regs[p.DeviceID] = d.Registration
		}
		p.Registration, p.Actor = regs[p.DeviceID], "token:carrier"
		if p.ExpiresAt.IsZero() {
			p.ExpiresAt = p.CreatedAt.Add(7 * 24 * time.Hour)
		}
		e, err := fleet.NewAuditEntry(ctx, fleet.AuditParcelDeliver, p.DeviceID, map[string]any{"parcel": p.ID})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.store.CreateParcel(ctx, p, e); err != nil {
			t.Fatalf("parcel %s: %v", p.ID, err)
		}
	}
}

// apiGet asks the API at addr for path with tok and returns the status and body.
func apiGet(t *testing.T, addr, tok, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// parcelFleet registers units at oak and pine and returns parcels in them, relative to now.
func parcelFleet(t *testing.T, reg *registry, now time.Time) []*fleet.Parcel {
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	for _, d := range []*fleet.Device{
		{ID: "oak-b1", Kind: fleet.KindLockerBank, Site: "oak", Doors: 4},
		{ID: "oak-f1", Kind: fleet.KindFridge, Site: "oak", Doors: 2},
		{ID: "pine-z1", Kind: fleet.KindFridge, Site: "pine", Doors: 2, Labels: map[string]string{"class": "freezer"}},
	} {
		if _, err := reg.devices.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	ago := func(h float64) *time.Time {
		t := now.Add(-time.Duration(h * float64(time.Hour)))
		return &t
	}
	parcel := func(id, dev, site string, door int, kind fleet.CompartmentKind, carrier string, status fleet.ParcelStatus, created float64, dropped, out *time.Time) *fleet.Parcel {
		p := &fleet.Parcel{ID: id, DeviceID: dev, Site: site, Door: door, Compartment: kind, Carrier: carrier, Status: status,
			CreatedAt: *ago(created), DroppedAt: dropped, CodeSalt: []byte("salt-never-shown"), CodeHash: []byte("hash-never-shown"), Recipient: "flat-12",
			Perishable: kind != fleet.CompartmentDry} // the service puts only perishables in fridges and freezers
		if status == fleet.ParcelPickedUp {
			p.PickedUpAt, p.ClosedAt = out, out
		} else if status == fleet.ParcelRetrieved {
			p.ClosedAt = out
		}
		return p
	}
	return []*fleet.Parcel{
		parcel("p-dry-old", "oak-b1", "oak", 1, fleet.CompartmentDry, "dhl", fleet.ParcelExpired, 100, ago(100), nil),   // overdue
		parcel("p-dry-new", "oak-b1", "oak", 2, fleet.CompartmentDry, "ups", fleet.ParcelInLocker, 2, ago(2), nil),      // fresh
		parcel("p-reserved", "oak-b1", "oak", 3, fleet.CompartmentDry, "ups", fleet.ParcelAwaitingDropoff, 1, nil, nil), // reserved
		parcel("p-fridge", "oak-f1", "oak", 1, fleet.CompartmentFridge, "dhl", fleet.ParcelInLocker, 30, ago(30), nil),  // overdue perishable
		parcel("p-picked", "oak-f1", "oak", 2, fleet.CompartmentFridge, "=cmd|' /C calc'!A0", fleet.ParcelPickedUp, 50, ago(50), ago(46)),
		parcel("p-freezer", "pine-z1", "pine", 1, fleet.CompartmentFreezer, "dhl", fleet.ParcelInLocker, 13, ago(13), nil), // overdue perishable
		parcel("p-pine-gone", "pine-z1", "pine", 2, fleet.CompartmentFreezer, "dhl", fleet.ParcelRetrieved, 20, ago(20), ago(10)),
	}
}

// neverACode fails if body shows anything of a parcel's code.
func neverACode(t *testing.T, what, body string) {
	t.Helper()
	for _, s := range []string{"code", "salt", "hash", "c2FsdC1uZXZlci1zaG93bg", "aGFzaC1uZXZlci1zaG93bg"} {
		if strings.Contains(strings.ToLower(body), strings.ToLower(s)) {
			t.Errorf("%s shows %q: %.400s", what, s, body)
		}
	}
}

func TestOccupancyAPI(t *testing.T) { eachEngine(t, testOccupancyAPI) }

func testOccupancyAPI(t *testing.T, reg *registry) {
	now := time.Now()
	ps := newParcelStore(t, reg)
	ps.add(t, parcelFleet(t, reg, now)...)
	addr := reg.serve(t, lhhttp.Services{Parcels: ps.svc})
	viewer, oakViewer := reg.token(t, "v", fleet.RoleViewer), reg.token(t, "o", fleet.RoleViewer, "oak")

	get := func(tok, path string) lhhttp.OccupancyAnswer {
		t.Helper()
		status, body := apiGet(t, addr, tok, path)
		var ans lhhttp.OccupancyAnswer
		if status != 200 || json.Unmarshal([]byte(body), &ans) != nil {
			t.Fatalf("%s: %d %.300s", path, status, body)
		}
		neverACode(t, path, body)
		return ans
	}
	summary := func(ks []fleet.KindOccupancy) string {
		var out []string
		for _, k := range ks {
			out = append(out, fmt.Sprintf("%s %d/%d/%d/%d", k.Kind, k.Total, k.Occupied, k.Reserved, k.Free))
		}
		return strings.Join(out, ", ")
	}
	all := get(viewer, "/api/v1/occupancy")
	if got, want := summary(all.Fleet), "dry 4/2/1/1, fridge 2/1/0/1, freezer 2/1/0/1"; got != want {
		t.Errorf("fleet (total/occupied/reserved/free): %s, want %s", got, want)
	}
	if len(all.Sites) != 2 || all.Sites[0].Site != "oak" || summary(all.Sites[1].Kinds) != "freezer 2/1/0/1" || len(all.Units) != 3 || all.Doors != nil {
		t.Errorf("sites and units: %+v", all)
	}
	if sites := get(viewer, "/api/v1/occupancy?units=false"); len(sites.Units) != 0 || len(sites.Sites) != 2 || summary(sites.Fleet) != summary(all.Fleet) {
		t.Errorf("units=false: %+v, want the sites and the fleet without the units", sites)
	}
	if status, body := apiGet(t, addr, viewer, "/api/v1/occupancy?units=few"); status != 400 || !strings.Contains(body, `units: \"few\" is not true or false`) {
		t.Errorf("units=few: %d %s, want 400", status, body)
	}
	oak := get(oakViewer, "/api/v1/occupancy")
	if got, want := summary(oak.Fleet), "dry 4/2/1/1, fridge 2/1/0/1"; got != want || len(oak.Sites) != 1 || len(oak.Units) != 2 {
		t.Errorf("oak's token: %s with %d sites and %d units, want %s at oak only", got, len(oak.Sites), len(oak.Units), want)
	}
	if pine := get(oakViewer, "/api/v1/occupancy?site=pine"); len(pine.Units) != 0 || len(pine.Fleet) != 0 {
		t.Errorf("oak's token asking for pine: %+v", pine)
	}
	if pine := get(viewer, "/api/v1/occupancy?site=pine"); summary(pine.Fleet) != "freezer 2/1/0/1" {
		t.Errorf("site=pine: %+v", pine)
	}

	// One unit: each door, its state and the parcel's age, status and carrier.
	unit := get(oakViewer, "/api/v1/occupancy?device=oak-b1")
	var doors []string
	for _, d := range unit.Doors {
		s := fmt.Sprintf("%d %s %s", d.Door, d.Kind, d.State)
		if d.Parcel != nil {
			s += fmt.Sprintf(" %s %s %s %dh overdue=%v", d.Parcel.ID, d.Parcel.Status, d.Parcel.Carrier, d.Parcel.DwellSeconds/3600, d.Parcel.Overdue)
		}
		doors = append(doors, s)
	}
	want := "1 dry occupied p-dry-old expired dhl 100h overdue=true; 2 dry occupied p-dry-new in-locker ups 2h overdue=false; " +
		"3 dry reserved p-reserved awaiting-dropoff ups 0h overdue=false; 4 dry free"
	if got := strings.Join(doors, "; "); got != want {
		t.Errorf("doors of oak-b1\n got %s\nwant %s", got, want)
	}
	if len(unit.Units) != 1 || unit.Units[0].Occupied != 2 {
		t.Errorf("oak-b1's counts: %+v", unit.Units)
	}
	for _, path := range []string{"/api/v1/occupancy?device=pine-z1", "/api/v1/occupancy?device=nope"} {
		if status, body := apiGet(t, addr, oakViewer, path); status != 404 {
			t.Errorf("%s with oak's token: %d %s, want 404", path, status, body)
		}
	}
}

func TestOccupancyParcelsAPI(t *testing.T) {
	reg := openRegistry(t)
	ps := newParcelStore(t, reg)
	ps.add(t, parcelFleet(t, reg, time.Now())...)
	// elm-b1 was removed with a parcel inside and registered again: that parcel is the earlier
	// unit's, not this one's.
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	elm := &fleet.Device{ID: "elm-b1", Kind: fleet.KindLockerBank, Site: "elm", Doors: 1}
	if _, err := reg.devices.CreateDevice(ctx, elm); err != nil {
		t.Fatal(err)
	}
	dropped := time.Now().Add(-time.Hour)
	ps.add(t, &fleet.Parcel{ID: "p-earlier-unit", DeviceID: "elm-b1", Site: "elm", Door: 1, Compartment: fleet.CompartmentDry,
		Status: fleet.ParcelInLocker, CreatedAt: dropped, DroppedAt: &dropped})
	if err := reg.devices.DeleteDevice(ctx, "elm-b1"); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.devices.CreateDevice(ctx, &fleet.Device{ID: "elm-b1", Kind: fleet.KindLockerBank, Site: "elm", Doors: 1}); err != nil {
		t.Fatal(err)
	}
	addr := reg.serve(t, lhhttp.Services{Parcels: ps.svc})
	viewer, oakViewer := reg.token(t, "v", fleet.RoleViewer), reg.token(t, "o", fleet.RoleViewer, "oak")
	list := func(tok, path string) string {
		t.Helper()
		status, body := apiGet(t, addr, tok, path)
		var ans struct{ Parcels []lhhttp.ParcelView }
		if status != 200 || json.Unmarshal([]byte(body), &ans) != nil {
			t.Fatalf("%s: %d %.300s", path, status, body)
		}
		neverACode(t, path, body)
		var ids []string
		for _, p := range ans.Parcels {
			ids = append(ids, fmt.Sprintf("%s:%v", p.ID, p.Overdue))
		}
		return strings.Join(ids, " ")
	}
	for _, tc := range []struct{ tok, path, want string }{
		// Overdue perishables, oldest first; then overdue dry; then the rest. No reservation,
		// nothing picked up or retrieved.
		{viewer, "/api/v1/occupancy/parcels", "p-fridge:true p-freezer:true p-dry-old:true p-dry-new:false"},
		{viewer, "/api/v1/occupancy/parcels?site=pine", "p-freezer:true"},
		{viewer, "/api/v1/occupancy/parcels?site=elm", ""},
		{oakViewer, "/api/v1/occupancy/parcels", "p-fridge:true p-dry-old:true p-dry-new:false"},
		{oakViewer, "/api/v1/occupancy/parcels?site=pine", ""},
	} {
		if got := list(tc.tok, tc.path); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.path, got, tc.want)
		}
	}
}

func TestDeliveriesReportAPI(t *testing.T) { eachEngine(t, testDeliveriesReportAPI) }

func testDeliveriesReportAPI(t *testing.T, reg *registry) {
	now := time.Now()
	ps := newParcelStore(t, reg)
	ps.add(t, parcelFleet(t, reg, now)...)
	addr := reg.serve(t, lhhttp.Services{Parcels: ps.svc})
	viewer, oakViewer := reg.token(t, "v", fleet.RoleViewer), reg.token(t, "o", fleet.RoleViewer, "oak")
	from, to := now.Add(-7*24*time.Hour).UTC().Format(time.RFC3339), now.Add(time.Hour).UTC().Format(time.RFC3339)
	rng := "from=" + from + "&to=" + to

	report := func(tok, query string) lhhttp.DeliveryReportAnswer {
		t.Helper()
		status, body := apiGet(t, addr, tok, "/api/v1/reports/deliveries?"+query)
		var r lhhttp.DeliveryReportAnswer
		if status != 200 || json.Unmarshal([]byte(body), &r) != nil {
			t.Fatalf("?%s: %d %.300s", query, status, body)
		}
		neverACode(t, query, body)
		return r
	}
	r := report(viewer, rng)
	want := fleet.DeliveryStats{Delivered: 7, DroppedOff: 6, PickedUp: 1, Retrieved: 1, Expired: 1, Overdue: 3,
		Dwell: fleet.DwellStats{Count: 2, P50: 4 * 3600, P90: 10 * 3600, P99: 10 * 3600}}
	if r.Total != want {
		t.Errorf("fleet\n got %+v\nwant %+v", r.Total, want)
	}
	if len(r.Carriers) != 3 || r.Carriers[0].Carrier != "dhl" || r.Carriers[0].DroppedOff != 4 {
		t.Errorf("carriers: %+v", r.Carriers)
	}
	if len(r.Utilisation) == 0 || r.Step != 86400 && r.Step != 3600 {
		t.Errorf("utilisation: step %d, %d samples", r.Step, len(r.Utilisation))
	}
	if oak := report(oakViewer, rng); oak.Total.Delivered != 5 || oak.Total.Overdue != 2 {
		t.Errorf("oak's token: %+v, want oak's 5 deliveries", oak.Total)
	}
	if pine := report(oakViewer, rng+"&site=pine"); pine.Total.Delivered != 0 || pine.Site != "pine" {
		t.Errorf("oak's token asking for pine: %+v", pine)
	}

	// CSV: one row per site, compartment and carrier; a carrier's name never runs as a formula.
	status, body := apiGet(t, addr, oakViewer, "/api/v1/reports/deliveries?format=csv&"+rng)
	wantCSV := `site,compartment,carrier,delivered,dropped_off,picked_up,retrieved,expired,cancelled,overdue,offline_pickups,dwell_count,dwell_p50_h,dwell_p90_h,dwell_p99_h
oak,dry,dhl,1,1,0,0,1,0,1,0,0,0.00,0.00,0.00
oak,dry,ups,2,1,0,0,0,0,0,0,0,0.00,0.00,0.00
oak,fridge,'=cmd|' /C calc'!A0,1,1,1,0,0,0,0,0,1,4.00,4.00,4.00
oak,fridge,dhl,1,1,0,0,0,0,1,0,0,0.00,0.00,0.00
`
	if status != 200 || body != wantCSV {
		t.Errorf("CSV: %d\n%s\nwant\n%s", status, body, wantCSV)
	}

	for _, tc := range []struct {
		query string
		code  int
		want  string
	}{
		{"from=2026-01-01&to=2026-04-04", 400, "at most 93 days"},
		{"from=2026-03-05&to=2026-03-01", 400, "must be before"},
		{"format=xml", 400, "format"},
	} {
		if status, body := apiGet(t, addr, viewer, "/api/v1/reports/deliveries?"+tc.query); status != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("?%s: %d %s, want %d saying %s", tc.query, status, body, tc.code, tc.want)
		}
	}
	if status, _ := apiGet(t, addr, "", "/api/v1/reports/deliveries"); status != 401 {
		t.Errorf("without a token: %d, want 401", status)
	}
}

// More parcels than a page, several created in one millisecond across a page's edge, in the
// real store, which keeps milliseconds: each is counted once.
func TestDeliveriesReportPages(t *testing.T) { eachEngine(t, testDeliveriesReportPages) }

func testDeliveriesReportPages(t *testing.T, reg *registry) {
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	if _, err := reg.devices.CreateDevice(ctx, &fleet.Device{ID: "oak-b1", Kind: fleet.KindLockerBank, Site: "oak", Doors: 4}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Millisecond)
	var created []*fleet.Parcel
	const n = 1200
	for i := range n {
		// Three in each millisecond; cancelled before their drop-off, so that they hold no door.
		created = append(created, &fleet.Parcel{ID: fmt.Sprintf("p%04d", i), DeviceID: "oak-b1", Site: "oak", Door: 1, Compartment: fleet.CompartmentDry,
			Carrier: "dhl", Status: fleet.ParcelCancelled, CreatedAt: now.Add(-time.Duration(i/3) * time.Millisecond)})
	}
	ps := newParcelStore(t, reg)
	ps.add(t, created...)
	addr := reg.serve(t, lhhttp.Services{Parcels: ps.svc})
	status, body := apiGet(t, addr, reg.token(t, "v", fleet.RoleViewer),
		"/api/v1/reports/deliveries?from="+now.Add(-time.Hour).UTC().Format(time.RFC3339)+"&to="+now.Add(time.Second).UTC().Format(time.RFC3339))
	var r lhhttp.DeliveryReportAnswer
	if status != 200 || json.Unmarshal([]byte(body), &r) != nil {
		t.Fatalf("%d %.300s", status, body)
	}
	if r.Total.Delivered != n || r.Total.Cancelled != n {
		t.Errorf("%d delivered, %d cancelled; want %d", r.Total.Delivered, r.Total.Cancelled, n)
	}
}

// A carrier's token delivers and reads its own parcels, and no more: not the sites'
// compartments, the other carriers' parcels nor the report on them.
func TestParcelViewsRefuseCarriers(t *testing.T) {
	reg := openRegistry(t)
	ps := newParcelStore(t, reg)
	ps.add(t, parcelFleet(t, reg, time.Now())...)
	addr := reg.serve(t, lhhttp.Services{Parcels: ps.svc})
	carrier := reg.token(t, "dhl", fleet.RoleCarrier)
	for _, path := range []string{"/api/v1/occupancy", "/api/v1/occupancy?device=oak-b1", "/api/v1/occupancy/parcels", "/api/v1/reports/deliveries?format=csv"} {
		if status, body := apiGet(t, addr, carrier, path); status != 403 || strings.Contains(body, "p-") {
			t.Errorf("%s with a carrier's token: %d %.200s, want 403", path, status, body)
		}
	}
}

// Without parcel custody the views say so rather than report an empty fleet.
func TestParcelViewsUnavailable(t *testing.T) {
	reg := openRegistry(t)
	addr := reg.serve(t, lhhttp.Services{})
	tok := reg.token(t, "v", fleet.RoleViewer)
	for _, path := range []string{"/api/v1/occupancy", "/api/v1/occupancy/parcels", "/api/v1/reports/deliveries"} {
		if status, body := apiGet(t, addr, tok, path); status != 503 {
			t.Errorf("%s: %d %s, want 503", path, status, body)
		}
	}
}
