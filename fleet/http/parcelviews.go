package http

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// The views of parcel custody (fleet/parcelview.go) over HTTP: how full the compartments are,
// the parcels inside in the order an operator deals with them, and the deliveries report.
// They read the parcels through fleet.ParcelService, a page at a time, and answer only what
// lies in the token's sites.

// maxParcelPage is the largest page fleet.ParcelService.FindParcels returns.
const maxParcelPage = 1000

// ParcelView is a parcel as the views show it: never its code, which the hub does not hold,
// with how long it has been inside and whether that is beyond its compartment's limit.
type ParcelView struct {
	*fleet.Parcel
	DwellSeconds int64 `json:"dwell_seconds"`
	Overdue      bool  `json:"overdue"`
}

func (a *api) parcelView(p *fleet.Parcel, now time.Time) ParcelView {
	return ParcelView{Parcel: p, DwellSeconds: int64(p.Dwell(now) / time.Second), Overdue: p.Overdue(now, a.dwellLimits())}
}

// dwellLimits are the limits of Services.DwellLimits, or fleet.DefaultDwellLimits when unset.
func (a *api) dwellLimits() fleet.DwellLimits {
	if a.svc.DwellLimits == (fleet.DwellLimits{}) {
		return fleet.DefaultDwellLimits
	}
	return a.svc.DwellLimits
}

// parcels returns every parcel matching f in tok's scope, reading FindParcels a page at a
// time. Pages are newest first, so the next is what was created up to the oldest of the last
// one, to the millisecond the stores keep (a bound of To inside that millisecond would be cut
// to its start, leaving out the parcels of the page's last millisecond not yet read); those
// read again are dropped as seen.
func (a *api) parcels(ctx context.Context, tok *fleet.Token, f fleet.ParcelFilter) ([]*fleet.Parcel, error) {
	if a.svc.Parcels == nil {
		return nil, fleet.Errorf(fleet.EUNAVAILABLE, "parcel custody is not configured on this hub")
	}
	f.Sites, f.Limit = tok.Sites, maxParcelPage
	seen := map[string]bool{}
	var out []*fleet.Parcel
	for {
		page, err := a.svc.Parcels.FindParcels(ctx, f)
		if err != nil {
			return nil, err
		}
		added := 0
		for _, p := range page {
			if !seen[p.ID] {
				seen[p.ID] = true
				added++
				if tok.InScope(p.Site) {
					out = append(out, p)
				}
			}
		}
		if len(page) < f.Limit || added == 0 {
			return out, nil
		}
		f.To = page[len(page)-1].CreatedAt.Truncate(time.Millisecond).Add(time.Millisecond)
	}
}

// holding returns the parcels that hold compartments (fleet.Parcel.Holds) matching f: those
// inside and the reservations, of the units' current registrations.
func (a *api) holding(ctx context.Context, tok *fleet.Token, f fleet.ParcelFilter) ([]*fleet.Parcel, error) {
	f.Occupies, f.Current = true, true
	inside, err := a.parcels(ctx, tok, f)
	if err != nil {
		return nil, err
	}
	f.Occupies, f.Status = false, []fleet.ParcelStatus{fleet.ParcelAwaitingDropoff}
	reserved, err := a.parcels(ctx, tok, f)
	return append(inside, reserved...), err
}

// OccupancyAnswer is the answer of GET /api/v1/occupancy. Doors is there only for one unit
// (device=): its compartments, with the parcel holding each.
type OccupancyAnswer struct {
	At time.Time `json:"at"`
	fleet.Occupancy
	Doors []DoorView `json:"doors,omitempty"`
}

// DoorView is one compartment of a unit and the parcel holding it, if any.
type DoorView struct {
	Door   int                   `json:"door"`
	Kind   fleet.CompartmentKind `json:"kind"`
	State  string                `json:"state"` // free, reserved or occupied
	Parcel *ParcelView           `json:"parcel,omitempty"`
}

// handleOccupancy answers GET /api/v1/occupancy?site=&device=&units=: the compartments of the
// units in the token's scope (at site, or the one unit device, whatever site says) by kind:
// free, reserved and occupied, per unit, per site and in all. With device, every door of the
// unit and the parcel holding it. Disabled units count: the parcels inside them are still
// there. units=false leaves the list of units empty: a fleet's is long, and the overview shows
// only the sites.
func (a *api) handleOccupancy(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	q := r.URL.Query()
	id := q.Get("device")
	units := true
	var err error
	if v := q.Get("units"); v != "" {
		if units, err = strconv.ParseBool(v); err != nil {
			err = fleet.Errorf(fleet.EINVALID, "units: %q is not true or false", v)
		}
	}
	var devices []*fleet.Device
	f := fleet.ParcelFilter{Site: q.Get("site")}
	switch {
	case err != nil:
	case id != "":
		var d *fleet.Device
		if d, err = a.device(r, tok, id); err == nil {
			devices, f = []*fleet.Device{d}, fleet.ParcelFilter{DeviceID: id}
		}
	default:
		devices, err = a.svc.Devices.FindDevices(r.Context(), fleet.DeviceFilter{Site: f.Site})
	}
	var held []*fleet.Parcel
	if err == nil {
		held, err = a.holding(r.Context(), tok, f)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	inScope := devices[:0:0]
	for _, d := range devices {
		if tok.InScope(d.Site) {
			inScope = append(inScope, d)
		}
	}
	now := time.Now()
	ans := OccupancyAnswer{At: now, Occupancy: fleet.OccupancyOf(inScope, held)}
	if !units {
		ans.Units = []fleet.UnitOccupancy{}
	}
	if id != "" {
		ans.Doors = a.doorViews(inScope[0], held, now)
	}
	writeJSON(w, http.StatusOK, ans)
}

// doorViews returns every door of d with the parcel holding it among held.
func (a *api) doorViews(d *fleet.Device, held []*fleet.Parcel, now time.Time) []DoorView {
	holder := fleet.DoorHolder(d, held)
	doors := make([]DoorView, d.Doors)
	for i := range doors {
		doors[i] = DoorView{Door: i + 1, Kind: fleet.CompartmentOf(d), State: "free"}
		if p := holder[i+1]; p != nil {
			v := a.parcelView(p, now)
			doors[i].Parcel, doors[i].State = &v, "reserved"
			if p.Occupies() {
				doors[i].State = "occupied"
			}
		}
	}
	return doors
}

// handleOccupancyParcels answers GET /api/v1/occupancy/parcels?site=: the parcels inside
// compartments in the token's scope (at site), in fleet.AttentionOrder: overdue ones first,
// perishables first, oldest first. Those of a unit's ended registration are left out, as the
// unit's other records are.
func (a *api) handleOccupancyParcels(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	inside, err := a.parcels(r.Context(), tok, fleet.ParcelFilter{Site: r.URL.Query().Get("site"), Occupies: true, Current: true})
	if err != nil {
		writeError(w, err)
		return
	}
	now := time.Now()
	fleet.AttentionOrder(inside, now, a.dwellLimits())
	views := make([]ParcelView, len(inside))
	for i, p := range inside {
		views[i] = a.parcelView(p, now)
	}
	writeJSON(w, http.StatusOK, map[string]any{"at": now, "parcels": views})
}

// DeliveryReportAnswer is the JSON answer of GET /api/v1/reports/deliveries.
type DeliveryReportAnswer struct {
	Site string `json:"site,omitempty"`
	fleet.DeliveryReport
}

// deliveriesCSVHeader is the first line of the CSV form of a deliveries report. Dwell times
// are in hours.
var deliveriesCSVHeader = []string{"site", "compartment", "carrier", "delivered", "dropped_off", "picked_up", "retrieved", "expired",
	"cancelled", "overdue", "offline_pickups", "dwell_count", "dwell_p50_h", "dwell_p90_h", "dwell_p99_h"}

// handleDeliveries answers GET /api/v1/reports/deliveries?site=&from=&to=&format=: what became
// of the parcels delivered in [from, to) at the token's sites (at site if given), as of now
// (fleet.NewDeliveryReport). from and to are read as for the cold-chain report, with the same
// defaults (the last 7 full days); at most fleet.MaxDeliveryReportDays days.
//
// The answer is JSON (DeliveryReportAnswer), or CSV with format=csv or Accept: text/csv: one
// row per site, compartment kind and carrier (deliveriesCSVHeader).
func (a *api) handleDeliveries(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	q := r.URL.Query()
	site := q.Get("site")
	now := time.Now()
	asCSV, err := wantsCSV(r)
	var from, to time.Time
	if err == nil {
		from, to, err = coldChainRange(q.Get("from"), q.Get("to"), now)
	}
	if err == nil && !from.Before(to) {
		err = fleet.Errorf(fleet.EINVALID, "from..to: from (%s) must be before to (%s)", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	if err == nil && to.Sub(from) > fleet.MaxDeliveryReportDays*24*time.Hour {
		err = fleet.Errorf(fleet.EINVALID, "from..to: a deliveries report covers at most %d days", fleet.MaxDeliveryReportDays)
	}
	var parcels, older []*fleet.Parcel
	if err == nil {
		// The range's deliveries and, for the utilisation, those of the lookback before it,
		// and the older ones still inside.
		parcels, err = a.parcels(r.Context(), tok, fleet.ParcelFilter{Site: site, From: from.Add(-fleet.UtilisationLookback), To: to})
	}
	if err == nil {
		older, err = a.parcels(r.Context(), tok, fleet.ParcelFilter{Site: site, Occupies: true, To: from.Add(-fleet.UtilisationLookback)})
	}
	if err != nil {
		writeError(w, err)
		return
	}
	parcels = append(parcels, older...)
	limits := a.dwellLimits()
	if !asCSV {
		writeJSON(w, http.StatusOK, DeliveryReportAnswer{Site: site, DeliveryReport: fleet.NewDeliveryReport(parcels, from, to, now, limits)})
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="deliveries_%s_%s.csv"`,
		from.Format(time.DateOnly), to.Format(time.DateOnly)))
	hours := func(s float64) string { return strconv.FormatFloat(s/3600, 'f', 2, 64) }
	cw := csv.NewWriter(w)
	cw.Write(deliveriesCSVHeader)
	for _, row := range fleet.DeliveryRows(parcels, from, to, now, limits) {
		s := row.DeliveryStats
		cw.Write([]string{row.Site, string(row.Compartment), csvText(row.Carrier), strconv.Itoa(s.Delivered), strconv.Itoa(s.DroppedOff),
			strconv.Itoa(s.PickedUp), strconv.Itoa(s.Retrieved), strconv.Itoa(s.Expired), strconv.Itoa(s.Cancelled), strconv.Itoa(s.Overdue),
			strconv.Itoa(s.OfflinePickups), strconv.Itoa(s.Dwell.Count), hours(s.Dwell.P50), hours(s.Dwell.P90), hours(s.Dwell.P99)})
	}
	cw.Flush() // an error here is the client going away: nothing left to tell it
}

// csvText returns s as a CSV cell a spreadsheet shows as text: a carrier's name is what a
// delivering client sent, and one starting with =, +, - or @ would be run as a formula by the
// manager opening the report.
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
