package fleet

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// tp is tm as a pointer, for the optional times of a parcel.
func tp(s string) *time.Time {
	t := tm(s)
	return &t
}

func TestOccupancyOf(t *testing.T) {
	devices := []*Device{
		{ID: "oak-b1", Kind: KindLockerBank, Site: "oak", Doors: 4},
		{ID: "oak-f1", Kind: KindFridge, Site: "oak", Doors: 2},
		{ID: "pine-z1", Kind: KindFridge, Site: "pine", Doors: 2, Labels: map[string]string{"class": "freezer"}, Registration: "new"},
	}
	parcels := []*Parcel{
		{ID: "in", DeviceID: "oak-b1", Door: 1, Status: ParcelInLocker, DroppedAt: tp("03-01 10:00")},
		{ID: "reserved", DeviceID: "oak-b1", Door: 2, Status: ParcelAwaitingDropoff},
		{ID: "gone", DeviceID: "oak-b1", Door: 3, Status: ParcelPickedUp, DroppedAt: tp("03-01 10:00"), PickedUpAt: tp("03-01 11:00")},
		// Called off after its drop-off: still inside until staff take it out.
		{ID: "cancelled-inside", DeviceID: "oak-b1", Door: 4, Status: ParcelCancelled, DroppedAt: tp("03-01 10:00")},
		{ID: "cancelled-before", DeviceID: "oak-b1", Door: 3, Status: ParcelCancelled},
		{ID: "no-such-door", DeviceID: "oak-b1", Door: 9, Status: ParcelInLocker, DroppedAt: tp("03-01 10:00")},
		{ID: "expired", DeviceID: "oak-f1", Door: 1, Status: ParcelExpired, DroppedAt: tp("03-01 10:00")},
		{ID: "old-registration", DeviceID: "pine-z1", Door: 1, Status: ParcelInLocker, DroppedAt: tp("03-01 10:00"), Registration: "old"},
		{ID: "ghost", DeviceID: "elm-b1", Door: 1, Status: ParcelInLocker, DroppedAt: tp("03-01 10:00")},
	}
	got := OccupancyOf(devices, parcels)
	want := Occupancy{
		Units: []UnitOccupancy{
			{DeviceID: "oak-b1", Site: "oak", KindOccupancy: KindOccupancy{Kind: CompartmentDry, Total: 4, Occupied: 2, Reserved: 1, Free: 1}},
			{DeviceID: "oak-f1", Site: "oak", KindOccupancy: KindOccupancy{Kind: CompartmentFridge, Total: 2, Occupied: 1, Free: 1}},
			{DeviceID: "pine-z1", Site: "pine", KindOccupancy: KindOccupancy{Kind: CompartmentFreezer, Total: 2, Free: 2}},
		},
		Sites: []SiteOccupancy{
			{Site: "oak", Kinds: []KindOccupancy{{Kind: CompartmentDry, Total: 4, Occupied: 2, Reserved: 1, Free: 1}, {Kind: CompartmentFridge, Total: 2, Occupied: 1, Free: 1}}},
			{Site: "pine", Kinds: []KindOccupancy{{Kind: CompartmentFreezer, Total: 2, Free: 2}}},
		},
		Fleet: []KindOccupancy{
			{Kind: CompartmentDry, Total: 4, Occupied: 2, Reserved: 1, Free: 1},
			{Kind: CompartmentFridge, Total: 2, Occupied: 1, Free: 1},
			{Kind: CompartmentFreezer, Total: 2, Free: 2},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if empty := OccupancyOf(nil, nil); empty.Units == nil || empty.Sites == nil || empty.Fleet == nil {
		t.Errorf("no units: %+v, want empty lists (JSON [] rather than null)", empty)
	}
}

// A door named by a reservation and a parcel inside (which the service prevents, but a
// reservation may race a staff correction) counts once, as occupied.
func TestDoorHolderPrefersParcelInside(t *testing.T) {
	d := &Device{ID: "oak-b1", Kind: KindLockerBank, Doors: 2}
	held := DoorHolder(d, []*Parcel{
		{ID: "r", DeviceID: "oak-b1", Door: 1, Status: ParcelAwaitingDropoff},
		{ID: "p", DeviceID: "oak-b1", Door: 1, Status: ParcelInLocker, DroppedAt: tp("03-01 10:00")},
		{ID: "r2", DeviceID: "oak-b1", Door: 1, Status: ParcelAwaitingDropoff},
	})
	if len(held) != 1 || held[1].ID != "p" {
		t.Errorf("holders %v, want door 1 held by p", held)
	}
	if occ := OccupancyOf([]*Device{d}, []*Parcel{held[1], {ID: "r", DeviceID: "oak-b1", Door: 1, Status: ParcelAwaitingDropoff}}); occ.Units[0].Occupied != 1 || occ.Units[0].Reserved != 0 || occ.Units[0].Free != 1 {
		t.Errorf("occupancy %+v, want 1 occupied 1 free", occ.Units[0])
	}
}

func TestParcelDwellAndOverdue(t *testing.T) {
	now := tm("03-10 12:00")
	for _, tc := range []struct {
		name    string
		p       Parcel
		dwell   time.Duration
		overdue bool
	}{
		{"reserved", Parcel{Status: ParcelAwaitingDropoff, Compartment: CompartmentFreezer}, 0, false},
		{"dry inside 72h exactly", Parcel{Status: ParcelInLocker, Compartment: CompartmentDry, DroppedAt: tp("03-07 12:00")}, 72 * time.Hour, false},
		{"dry inside a minute past 72h", Parcel{Status: ParcelInLocker, Compartment: CompartmentDry, DroppedAt: tp("03-07 11:59")}, 72*time.Hour + time.Minute, true},
		{"not perishable, 25h in a fridge: held to the dry limit, as the rules do", Parcel{Status: ParcelInLocker, Compartment: CompartmentFridge, DroppedAt: tp("03-09 11:00")}, 25 * time.Hour, false},
		{"fridge inside 25h", Parcel{Status: ParcelExpired, Compartment: CompartmentFridge, Perishable: true, DroppedAt: tp("03-09 11:00")}, 25 * time.Hour, true},
		{"freezer picked up after 13h", Parcel{Status: ParcelPickedUp, Compartment: CompartmentFreezer, Perishable: true, DroppedAt: tp("03-01 00:00"), PickedUpAt: tp("03-01 13:00"), ClosedAt: tp("03-05 00:00")}, 13 * time.Hour, true},
		{"picked up, no unit time: the hub's", Parcel{Status: ParcelPickedUp, Compartment: CompartmentDry, DroppedAt: tp("03-01 00:00"), ClosedAt: tp("03-01 02:00")}, 2 * time.Hour, false},
		{"retrieved after 11h from a freezer", Parcel{Status: ParcelRetrieved, Compartment: CompartmentFreezer, Perishable: true, DroppedAt: tp("03-01 00:00"), ClosedAt: tp("03-01 11:00")}, 11 * time.Hour, false},
		{"unit clock behind the drop-off", Parcel{Status: ParcelPickedUp, Compartment: CompartmentDry, DroppedAt: tp("03-01 00:00"), PickedUpAt: tp("02-28 23:00")}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.Dwell(now); got != tc.dwell {
				t.Errorf("dwell %v, want %v", got, tc.dwell)
			}
			if got := tc.p.Overdue(now, DefaultDwellLimits); got != tc.overdue {
				t.Errorf("overdue %v, want %v", got, tc.overdue)
			}
		})
	}
}

func TestAttentionOrder(t *testing.T) {
	now := tm("03-10 12:00")
	ps := []*Parcel{
		{ID: "dry-fresh", Compartment: CompartmentDry, Status: ParcelInLocker, DroppedAt: tp("03-10 08:00")},
		{ID: "dry-overdue", Compartment: CompartmentDry, Status: ParcelExpired, DroppedAt: tp("03-01 08:00")},
		{ID: "reserved", Compartment: CompartmentDry, Status: ParcelAwaitingDropoff, CreatedAt: tm("03-10 07:00")},
		{ID: "fridge-overdue-newer", Compartment: CompartmentFridge, Perishable: true, Status: ParcelInLocker, DroppedAt: tp("03-09 10:00")},
		{ID: "perishable-dry-overdue", Compartment: CompartmentDry, Perishable: true, Status: ParcelInLocker, DroppedAt: tp("03-06 10:00")},
		{ID: "freezer-fresh", Compartment: CompartmentFreezer, Perishable: true, Status: ParcelInLocker, DroppedAt: tp("03-10 09:00")},
		{ID: "dry-older", Compartment: CompartmentDry, Status: ParcelInLocker, DroppedAt: tp("03-09 08:00")},
	}
	AttentionOrder(ps, now, DefaultDwellLimits)
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	want := "perishable-dry-overdue fridge-overdue-newer dry-overdue dry-older reserved dry-fresh freezer-fresh"
	if got := strings.Join(ids, " "); got != want {
		t.Errorf("order\n got %s\nwant %s", got, want)
	}
}

// reportParcels is a known week of deliveries, 03-01 to 03-08, looked at on 03-10 12:00.
func reportParcels() []*Parcel {
	var ps []*Parcel
	// Ten dry parcels dropped at 03-03 00:00 and picked up after 1..10 hours: six by dhl, four by ups.
	for i := 1; i <= 10; i++ {
		carrier := "dhl"
		if i > 6 {
			carrier = "ups"
		}
		ps = append(ps, &Parcel{ID: fmt.Sprintf("dry%d", i), Compartment: CompartmentDry, Carrier: carrier, Status: ParcelPickedUp,
			CreatedAt: tm("03-02 23:00"), DroppedAt: tp("03-03 00:00"), PickedUpAt: ptr(tm("03-03 00:00").Add(time.Duration(i) * time.Hour))})
	}
	return append(ps,
		// Staff took it out after 30 hours: overdue in a fridge.
		&Parcel{ID: "fridge-retrieved", Compartment: CompartmentFridge, Perishable: true, Carrier: "dhl", Status: ParcelRetrieved,
			CreatedAt: tm("03-04 00:00"), DroppedAt: tp("03-04 00:00"), ClosedAt: tp("03-05 06:00")},
		&Parcel{ID: "fridge-offline", Compartment: CompartmentFridge, Perishable: true, Carrier: "ups", Status: ParcelPickedUp, Offline: true,
			CreatedAt: tm("03-04 00:00"), DroppedAt: tp("03-04 00:00"), PickedUpAt: tp("03-04 02:00"), ClosedAt: tp("03-04 09:00")},
		// Still inside: 84 hours, overdue.
		&Parcel{ID: "freezer-inside", Compartment: CompartmentFreezer, Perishable: true, Status: ParcelInLocker,
			CreatedAt: tm("03-07 00:00"), DroppedAt: tp("03-07 00:00")},
		&Parcel{ID: "dry-expired", Compartment: CompartmentDry, Status: ParcelExpired,
			CreatedAt: tm("03-02 00:00"), DroppedAt: tp("03-02 00:00")},
		&Parcel{ID: "cancelled", Compartment: CompartmentDry, Status: ParcelCancelled, CreatedAt: tm("03-05 00:00")},
		// Outside the range: delivered before it (but inside at its start) and at its end.
		&Parcel{ID: "before", Compartment: CompartmentDry, Carrier: "dhl", Status: ParcelPickedUp,
			CreatedAt: tm("02-28 20:00"), DroppedAt: tp("02-28 20:00"), PickedUpAt: tp("03-01 05:00")},
		&Parcel{ID: "at-to", Compartment: CompartmentDry, Carrier: "dhl", Status: ParcelInLocker,
			CreatedAt: tm("03-08 00:00"), DroppedAt: tp("03-08 00:00")},
	)
}

func ptr[T any](v T) *T { return &v }

func TestNewDeliveryReport(t *testing.T) {
	from, to, now := tm("03-01 00:00"), tm("03-08 00:00"), tm("03-10 12:00")
	r := NewDeliveryReport(reportParcels(), from, to, now, DefaultDwellLimits)
	h := func(n float64) float64 { return n * 3600 }

	wantTotal := DeliveryStats{Delivered: 15, DroppedOff: 14, PickedUp: 11, Retrieved: 1, Expired: 1, Cancelled: 1, Overdue: 3, OfflinePickups: 1,
		// dwell hours 1,2,2,3,4,5,6,7,8,9,10,30: nearest ranks 6, 11 and 12 of 12
		Dwell: DwellStats{Count: 12, P50: h(5), P90: h(10), P99: h(30)}}
	if r.Total != wantTotal {
		t.Errorf("total\n got %+v\nwant %+v", r.Total, wantTotal)
	}
	var carriers []string
	for _, c := range r.Carriers {
		carriers = append(carriers, fmt.Sprintf("%q:%d/%d", c.Carrier, c.DroppedOff, c.PickedUp))
	}
	if got, want := strings.Join(carriers, " "), `"dhl":7/6 "ups":5/5 "":2/0`; got != want {
		t.Errorf("carriers (dropped off/picked up) %s, want %s", got, want)
	}
	wantKinds := []CompartmentStats{
		// 1..10 hours and the expired one inside: ranks 5, 9, 10 of 10
		{CompartmentDry, DeliveryStats{Delivered: 12, DroppedOff: 11, PickedUp: 10, Expired: 1, Cancelled: 1, Overdue: 1, Dwell: DwellStats{Count: 10, P50: h(5), P90: h(9), P99: h(10)}}},
		{CompartmentFridge, DeliveryStats{Delivered: 2, DroppedOff: 2, PickedUp: 1, Retrieved: 1, Overdue: 1, OfflinePickups: 1, Dwell: DwellStats{Count: 2, P50: h(2), P90: h(30), P99: h(30)}}},
		{CompartmentFreezer, DeliveryStats{Delivered: 1, DroppedOff: 1, Overdue: 1}},
	}
	if !reflect.DeepEqual(r.Compartments, wantKinds) {
		t.Errorf("compartments\n got %+v\nwant %+v", r.Compartments, wantKinds)
	}

	if r.Step != 3600 || len(r.Utilisation) != 7*24+1 || r.Utilisation[7*24] != (UtilisationSample{At: to, Occupied: 3}) {
		t.Fatalf("utilisation: step %ds, %d samples; want hourly, 168 and the end's 3 (the one dropped off at to)", r.Step, len(r.Utilisation))
	}
	at := map[time.Time]int{}
	for _, s := range r.Utilisation {
		at[s.At] = s.Occupied
	}
	for _, tc := range []struct {
		at   string
		want int
	}{
		{"03-01 00:00", 1}, // the parcel delivered before the range
		{"03-01 05:00", 0}, // picked up at 05:00: out
		{"03-02 00:00", 1}, // the expired one, dropped off then
		{"03-03 04:00", 7}, // the expired one and the six dry ones picked up after more than 4 hours
		{"03-04 01:00", 3}, // the expired one and both fridge parcels
		{"03-05 05:00", 2}, // the retrieved fridge parcel is out at 06:00
		{"03-07 23:00", 2}, // the expired one and the freezer's
	} {
		if got := at[tm(tc.at)]; got != tc.want {
			t.Errorf("occupied at %s: %d, want %d", tc.at, got, tc.want)
		}
	}

	long := NewDeliveryReport(reportParcels(), tm("03-01 00:00"), tm("03-31 00:00"), tm("03-10 12:00"), DefaultDwellLimits)
	if long.Step != 86400 || len(long.Utilisation) != 11 || long.Utilisation[9].At != tm("03-10 00:00") ||
		long.Utilisation[10] != (UtilisationSample{At: tm("03-10 12:00"), Occupied: 3}) {
		t.Errorf("a month to 03-10 12:00: step %ds, %d samples (%+v); want daily up to 03-10, then now's: 3 inside",
			long.Step, len(long.Utilisation), long.Utilisation[len(long.Utilisation)-1])
	}
	long = NewDeliveryReport(nil, tm("03-01 00:00"), tm("03-31 00:00"), tm("03-10 12:00"), DefaultDwellLimits)
	if long.Carriers == nil || long.Compartments == nil || long.Total != (DeliveryStats{}) {
		t.Errorf("no parcels: %+v", long)
	}
}

func TestDeliveryRows(t *testing.T) {
	ps := reportParcels()
	for _, p := range ps {
		p.Site = "oak"
	}
	ps[0].Site = "elm" // one dhl pickup after an hour
	rows := DeliveryRows(ps, tm("03-01 00:00"), tm("03-08 00:00"), tm("03-10 12:00"), DefaultDwellLimits)
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s/%s/%q:%d/%d/%.0f", r.Site, r.Compartment, r.Carrier, r.Delivered, r.PickedUp, r.Dwell.P50/3600))
	}
	want := `elm/dry/"dhl":1/1/1 oak/dry/"":2/0/0 oak/dry/"dhl":5/5/4 oak/dry/"ups":4/4/8 oak/fridge/"dhl":1/0/30 oak/fridge/"ups":1/1/2 oak/freezer/"":1/0/0`
	if s := strings.Join(got, " "); s != want {
		t.Errorf("rows (site/kind/carrier:delivered/picked up/p50 hours)\n got %s\nwant %s", s, want)
	}
}
