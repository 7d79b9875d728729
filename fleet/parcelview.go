package fleet

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// The views operators take of parcel custody, computed from the parcels themselves (no
// storage of their own): how full the compartments are (Occupancy), which parcels have been
// waiting too long (Overdue, AttentionOrder), and what became of a period's deliveries
// (NewDeliveryReport).

// DwellLimits are how long a parcel may sit in its compartment before it is overdue: Dry is the
// parcel-overdue alert rule's threshold, which holds every parcel but a perishable one in a
// fridge or freezer compartment, which the perishable-overdue rule holds to Fridge or Freezer.
type DwellLimits struct {
	Dry, Fridge, Freezer time.Duration
}

// DefaultDwellLimits are the parcel-overdue rule's defaults: perishables go bad sooner.
var DefaultDwellLimits = DwellLimits{Dry: 72 * time.Hour, Fridge: 24 * time.Hour, Freezer: 12 * time.Hour}

// For returns the limit of p, as the alert rules judge it.
func (l DwellLimits) For(p *Parcel) time.Duration {
	switch {
	case !p.Perishable:
	case p.Compartment == CompartmentFridge:
		return l.Fridge
	case p.Compartment == CompartmentFreezer:
		return l.Freezer
	}
	return l.Dry
}

// OccupiedUntil returns when p left its compartment: the unit's time of the pickup (the
// hub's record of it when the unit sent none), or when staff retrieved it. ok is false while
// it is inside, and for a parcel never dropped off.
func (p *Parcel) OccupiedUntil() (t time.Time, ok bool) {
	switch {
	case p.DroppedAt == nil:
		return t, false
	case p.Status == ParcelPickedUp && p.PickedUpAt != nil:
		return *p.PickedUpAt, true
	case p.Status == ParcelPickedUp || p.Status == ParcelRetrieved:
		if p.ClosedAt != nil {
			return *p.ClosedAt, true
		}
		return *p.DroppedAt, true
	}
	return t, false
}

// Dwell returns how long p has been, or was, in its compartment as of now; 0 for a parcel
// never dropped off.
func (p *Parcel) Dwell(now time.Time) time.Duration {
	if p.DroppedAt == nil {
		return 0
	}
	end, ok := p.OccupiedUntil()
	if !ok {
		end = now
	}
	return max(end.Sub(*p.DroppedAt), 0)
}

// Overdue reports whether p sits, or sat, in its compartment longer than its limit.
func (p *Parcel) Overdue(now time.Time, l DwellLimits) bool {
	return p.DroppedAt != nil && p.Dwell(now) > l.For(p)
}

// Perishable reports whether p spoils: declared so, or kept cold.
func (p *Parcel) perishable() bool { return p.Perishable || p.Compartment != CompartmentDry }

// AttentionOrder sorts parcels for an operator's list, in place: overdue ones first, and of
// those perishables first; then the others; oldest drop-off (then creation) first within
// each group, ids breaking ties so that the order is stable across calls.
func AttentionOrder(parcels []*Parcel, now time.Time, l DwellLimits) {
	rank := func(p *Parcel) int {
		switch {
		case p.Overdue(now, l) && p.perishable():
			return 0
		case p.Overdue(now, l):
			return 1
		}
		return 2
	}
	since := func(p *Parcel) time.Time {
		if p.DroppedAt != nil {
			return *p.DroppedAt
		}
		return p.CreatedAt
	}
	slices.SortStableFunc(parcels, func(a, b *Parcel) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), since(a).Compare(since(b)), cmp.Compare(a.ID, b.ID))
	})
}

// KindOccupancy counts the compartments of one kind: Occupied hold a parcel, Reserved are
// kept for a carrier's drop-off, Free are the rest (Total = Occupied + Reserved + Free).
type KindOccupancy struct {
	Kind     CompartmentKind `json:"kind"`
	Total    int             `json:"total"`
	Occupied int             `json:"occupied"`
	Reserved int             `json:"reserved"`
	Free     int             `json:"free"`
}

// UnitOccupancy is one unit's compartments (every door of a unit is of one kind).
type UnitOccupancy struct {
	DeviceID string `json:"device"`
	Site     string `json:"site"`
	KindOccupancy
}

// SiteOccupancy is a site's compartments by kind, in CompartmentKinds order, only the kinds
// the site has.
type SiteOccupancy struct {
	Site  string          `json:"site"`
	Kinds []KindOccupancy `json:"kinds"`
}

// Occupancy is the compartments of a set of units, per unit (ordered as given), per site
// (ordered by name) and all together.
type Occupancy struct {
	Units []UnitOccupancy `json:"units"`
	Sites []SiteOccupancy `json:"sites"`
	Fleet []KindOccupancy `json:"fleet"`
}

// DoorHolder returns, for each door of d, the parcel holding it (Parcel.Holds), if any: a
// parcel inside before a reservation, should both name one door. Parcels of another unit, of
// an earlier registration of d's id, or of a door d does not have are not d's.
func DoorHolder(d *Device, parcels []*Parcel) map[int]*Parcel {
	held := map[int]*Parcel{}
	for _, p := range parcels {
		if p.DeviceID != d.ID || !p.Holds() || p.Door < 1 || p.Door > d.Doors ||
			(p.Registration != "" && d.Registration != "" && p.Registration != d.Registration) {
			continue
		}
		if cur := held[p.Door]; cur == nil || !cur.Occupies() && p.Occupies() {
			held[p.Door] = p
		}
	}
	return held
}

// OccupancyOf counts the compartments of devices from the parcels that hold them (any parcels
// may be given; those that hold nothing are ignored).
func OccupancyOf(devices []*Device, parcels []*Parcel) Occupancy {
	byDevice := map[string][]*Parcel{}
	for _, p := range parcels {
		if p.Holds() {
			byDevice[p.DeviceID] = append(byDevice[p.DeviceID], p)
		}
	}
	occ := Occupancy{Units: make([]UnitOccupancy, 0, len(devices)), Sites: []SiteOccupancy{}}
	sites := map[string]map[CompartmentKind]*KindOccupancy{}
	fleet := map[CompartmentKind]*KindOccupancy{}
	add := func(into map[CompartmentKind]*KindOccupancy, k KindOccupancy) {
		c := into[k.Kind]
		if c == nil {
			c = &KindOccupancy{Kind: k.Kind}
			into[k.Kind] = c
		}
		c.Total, c.Occupied, c.Reserved, c.Free = c.Total+k.Total, c.Occupied+k.Occupied, c.Reserved+k.Reserved, c.Free+k.Free
	}
	for _, d := range devices {
		u := UnitOccupancy{DeviceID: d.ID, Site: d.Site, KindOccupancy: KindOccupancy{Kind: CompartmentOf(d), Total: d.Doors}}
		for _, p := range DoorHolder(d, byDevice[d.ID]) {
			if p.Occupies() {
				u.Occupied++
			} else {
				u.Reserved++
			}
		}
		u.Free = u.Total - u.Occupied - u.Reserved
		occ.Units = append(occ.Units, u)
		if sites[d.Site] == nil {
			sites[d.Site] = map[CompartmentKind]*KindOccupancy{}
		}
		add(sites[d.Site], u.KindOccupancy)
		add(fleet, u.KindOccupancy)
	}
	kinds := func(m map[CompartmentKind]*KindOccupancy) []KindOccupancy {
		out := []KindOccupancy{}
		for _, k := range CompartmentKinds {
			if c := m[k]; c != nil {
				out = append(out, *c)
			}
		}
		return out
	}
	for site, m := range sites {
		occ.Sites = append(occ.Sites, SiteOccupancy{Site: site, Kinds: kinds(m)})
	}
	slices.SortFunc(occ.Sites, func(a, b SiteOccupancy) int { return cmp.Compare(a.Site, b.Site) })
	occ.Fleet = kinds(fleet)
	return occ
}

// MaxDeliveryReportDays bounds the range of one deliveries report, as MaxColdChainDays does
// the cold-chain report's: a quarter of daily utilisation samples.
const MaxDeliveryReportDays = 93

// UtilisationLookback is how long before a report's range its parcels are read for the
// utilisation: a parcel dropped off earlier that left its compartment within the range is not
// counted there (those still inside are, however old).
const UtilisationLookback = 31 * 24 * time.Hour

// DwellStats are percentiles of the dwell times (drop-off to pickup or retrieval) of the
// parcels that left their compartments, by the nearest-rank method; all 0 when Count is 0.
type DwellStats struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_seconds"`
	P90   float64 `json:"p90_seconds"`
	P99   float64 `json:"p99_seconds"`
}

// DeliveryStats is what became of a set of deliveries.
type DeliveryStats struct {
	Delivered      int        `json:"delivered"`   // parcels delivered or reserved
	DroppedOff     int        `json:"dropped_off"` // of those, put into a compartment
	PickedUp       int        `json:"picked_up"`
	Retrieved      int        `json:"retrieved"`
	Expired        int        `json:"expired"`   // still inside with a dead code
	Cancelled      int        `json:"cancelled"` // called off (some may still be inside)
	Overdue        int        `json:"overdue"`   // sat, or sit, beyond their kind's DwellLimits
	OfflinePickups int        `json:"offline_pickups"`
	Dwell          DwellStats `json:"dwell"`
}

// CarrierStats is one carrier's share of a report; Carrier is "" for deliveries naming none.
type CarrierStats struct {
	Carrier string `json:"carrier"`
	DeliveryStats
}

// CompartmentStats is one compartment kind's share of a report.
type CompartmentStats struct {
	Kind CompartmentKind `json:"compartment"`
	DeliveryStats
}

// UtilisationSample is how many compartments held a parcel at At.
type UtilisationSample struct {
	At       time.Time `json:"at"`
	Occupied int       `json:"occupied"`
}

// DeliveryReport is what became of the parcels delivered in [From, To): the parcels created
// then, whatever happened to them since, as of the report's time. Utilisation is the parcels
// inside compartments at the start of each Step of the range, and at its end (To, or the
// report's time if earlier).
type DeliveryReport struct {
	From         time.Time           `json:"from"`
	To           time.Time           `json:"to"`
	Total        DeliveryStats       `json:"total"`
	Carriers     []CarrierStats      `json:"carriers"`     // most drop-offs first
	Compartments []CompartmentStats  `json:"compartments"` // in CompartmentKinds order, kinds delivered to only
	Step         int64               `json:"step_seconds"`
	Utilisation  []UtilisationSample `json:"utilisation"`
}

// UtilisationStep is the sampling step of the utilisation over [from, to): an hour, or a day
// for ranges longer than a week.
func UtilisationStep(from, to time.Time) time.Duration {
	if to.Sub(from) > 7*24*time.Hour {
		return 24 * time.Hour
	}
	return time.Hour
}

// DeliveryStatsOf sums up parcels as of now.
func DeliveryStatsOf(parcels []*Parcel, now time.Time, l DwellLimits) DeliveryStats {
	var s DeliveryStats
	var dwell []time.Duration
	for _, p := range parcels {
		s.Delivered++
		if p.DroppedAt != nil {
			s.DroppedOff++
		}
		switch p.Status {
		case ParcelPickedUp:
			s.PickedUp++
		case ParcelRetrieved:
			s.Retrieved++
		case ParcelExpired:
			s.Expired++
		case ParcelCancelled:
			s.Cancelled++
		}
		if p.Overdue(now, l) {
			s.Overdue++
		}
		if p.Offline {
			s.OfflinePickups++
		}
		if _, out := p.OccupiedUntil(); out {
			dwell = append(dwell, p.Dwell(now))
		}
	}
	s.Dwell = dwellStats(dwell)
	return s
}

// dwellStats returns the nearest-rank percentiles of d, which it sorts.
func dwellStats(d []time.Duration) DwellStats {
	if len(d) == 0 {
		return DwellStats{}
	}
	slices.Sort(d)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(d)))) - 1
		return d[max(i, 0)].Seconds()
	}
	return DwellStats{Count: len(d), P50: rank(50), P90: rank(90), P99: rank(99)}
}

// NewDeliveryReport reports on the parcels created in [from, to) among parcels, as of now.
// The others given count only towards the utilisation, for the time they were inside within
// the range (see UtilisationLookback).
func NewDeliveryReport(parcels []*Parcel, from, to, now time.Time, l DwellLimits) DeliveryReport {
	r := DeliveryReport{From: from, To: to, Carriers: []CarrierStats{}, Compartments: []CompartmentStats{}, Utilisation: []UtilisationSample{}}
	cohort := createdIn(parcels, from, to)
	byCarrier := map[string][]*Parcel{}
	byKind := map[CompartmentKind][]*Parcel{}
	for _, p := range cohort {
		byCarrier[p.Carrier] = append(byCarrier[p.Carrier], p)
		byKind[p.Compartment] = append(byKind[p.Compartment], p)
	}
	r.Total = DeliveryStatsOf(cohort, now, l)
	for c, ps := range byCarrier {
		r.Carriers = append(r.Carriers, CarrierStats{Carrier: c, DeliveryStats: DeliveryStatsOf(ps, now, l)})
	}
	slices.SortFunc(r.Carriers, func(a, b CarrierStats) int {
		return cmp.Or(cmp.Compare(b.DroppedOff, a.DroppedOff), cmp.Compare(a.Carrier, b.Carrier))
	})
	for _, k := range CompartmentKinds {
		if ps := byKind[k]; ps != nil {
			r.Compartments = append(r.Compartments, CompartmentStats{Kind: k, DeliveryStats: DeliveryStatsOf(ps, now, l)})
		}
	}
	step := UtilisationStep(from, to)
	r.Step = int64(step / time.Second)
	for at := from; at.Before(to) && !at.After(now); at = at.Add(step) {
		r.Utilisation = append(r.Utilisation, UtilisationSample{At: at, Occupied: occupiedAt(parcels, at)})
	}
	// And at the end, which for a range up to now is how full the compartments are.
	end := to
	if now.Before(end) {
		end = now
	}
	if end.After(from) {
		r.Utilisation = append(r.Utilisation, UtilisationSample{At: end, Occupied: occupiedAt(parcels, end)})
	}
	return r
}

// occupiedAt counts the parcels inside their compartments at t.
func occupiedAt(parcels []*Parcel, t time.Time) int {
	n := 0
	for _, p := range parcels {
		if p.DroppedAt == nil || p.DroppedAt.After(t) {
			continue
		}
		if end, out := p.OccupiedUntil(); !out || end.After(t) {
			n++
		}
	}
	return n
}

// createdIn returns the parcels created in [from, to).
func createdIn(parcels []*Parcel, from, to time.Time) []*Parcel {
	var out []*Parcel
	for _, p := range parcels {
		if !p.CreatedAt.Before(from) && p.CreatedAt.Before(to) {
			out = append(out, p)
		}
	}
	return out
}

// DeliveryRow is the stats of the parcels of one site, compartment kind and carrier: a line
// of the CSV form of a deliveries report.
type DeliveryRow struct {
	Site        string
	Compartment CompartmentKind
	Carrier     string
	DeliveryStats
}

// DeliveryRows splits the report on the parcels created in [from, to) into one row per site,
// compartment kind and carrier that has any, ordered by those, as of now.
func DeliveryRows(parcels []*Parcel, from, to, now time.Time, l DwellLimits) []DeliveryRow {
	type key struct {
		site    string
		kind    CompartmentKind
		carrier string
	}
	groups := map[key][]*Parcel{}
	for _, p := range createdIn(parcels, from, to) {
		k := key{p.Site, p.Compartment, p.Carrier}
		groups[k] = append(groups[k], p)
	}
	rows := make([]DeliveryRow, 0, len(groups))
	for k, ps := range groups {
		rows = append(rows, DeliveryRow{Site: k.site, Compartment: k.kind, Carrier: k.carrier, DeliveryStats: DeliveryStatsOf(ps, now, l)})
	}
	kindRank := func(k CompartmentKind) int { return slices.Index(CompartmentKinds, k) }
	slices.SortFunc(rows, func(a, b DeliveryRow) int {
		return cmp.Or(cmp.Compare(a.Site, b.Site), cmp.Compare(kindRank(a.Compartment), kindRank(b.Compartment)), cmp.Compare(a.Carrier, b.Carrier))
	})
	return rows
}
