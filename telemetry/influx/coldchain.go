package influx

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

var _ fleet.ColdChainService = (*Client)(nil)

// coldChainMaxGap is how long a compartment reading stands for the temperature after it. Units
// report every 10 to 30 seconds; no reading for 5 minutes means readings were lost (unit
// offline, sensor unplugged), and a food-safety record must show that as no data rather than
// assume the last temperature held.
const coldChainMaxGap = 5 * time.Minute

// compartmentKey identifies a compartment's series: its device and door tags.
type compartmentKey struct {
	device string
	door   int
}

// ColdChain computes the cold-chain report for q from the raw compartment temperatures, with one
// Flux query for all compartments. Readings from coldChainMaxGap (or the longest StuckAfter)
// before q.From are read too, so that the reading that holds at q.From, and whether it is a
// stuck sensor's, is known. A device's readings from before its
// compartments' Since are not read: they are an earlier unit's with the same id (the points
// carry the id, not the registration), and that time counts as no data.
//
// InfluxDB sends one table per device and door, oldest reading first; each table is turned into
// days as soon as it is complete, so only one compartment's readings are in memory at a time.
func (c *Client) ColdChain(ctx context.Context, q fleet.ColdChainQuery) ([]fleet.ColdChainDay, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	want := make(map[compartmentKey]fleet.Compartment, len(q.Compartments))
	var devices []string // each once, in the order of q
	since := make(map[string]time.Time)
	lookback := coldChainMaxGap // what holds at q.From, and the stuck runs going on then
	for _, cp := range q.Compartments {
		lookback = max(lookback, cp.StuckAfter)
		want[compartmentKey{cp.DeviceID, cp.Door}] = cp
		s, seen := since[cp.DeviceID]
		if !seen {
			devices = append(devices, cp.DeviceID)
		}
		if !seen || cp.Since.After(s) {
			since[cp.DeviceID] = cp.Since
		}
	}
	days := make(map[compartmentKey][]fleet.ColdChainDay, len(q.Compartments))
	if len(devices) > 0 {
		if err := c.coldChainReadings(ctx, q, lookback, devicesFilter(devices, since), func(k compartmentKey, samples []fleet.HistoryPoint) error {
			cp, ok := want[k]
			if !ok {
				return nil // a door the report does not cover
			}
			if _, dup := days[k]; dup {
				return fleet.Errorf(fleet.EINTERNAL, "cold-chain report: InfluxDB split the readings of %s door %d", k.device, k.door)
			}
			days[k] = fleet.ColdChainDays(cp, samples, q.From, q.To, coldChainMaxGap)
			return nil
		}); err != nil {
			return nil, err
		}
	}

	comps := slices.Clone(q.Compartments)
	slices.SortFunc(comps, func(a, b fleet.Compartment) int {
		return cmp.Or(strings.Compare(a.Site, b.Site), strings.Compare(a.DeviceID, b.DeviceID), a.Door-b.Door)
	})
	var out []fleet.ColdChainDay
	for _, cp := range comps {
		d, ok := days[compartmentKey{cp.DeviceID, cp.Door}]
		if !ok { // no reading in the range at all
			d = fleet.ColdChainDays(cp, nil, q.From, q.To, coldChainMaxGap)
		}
		out = append(out, d...)
	}
	return out, nil
}

// devicesFilter returns the Flux predicate that selects the points of devices, each from its
// since on (when that is set).
func devicesFilter(devices []string, since map[string]time.Time) string {
	terms := make([]string, len(devices))
	for i, d := range devices {
		terms[i] = fluxEqual(tagDevice, d)
		if s := since[d]; !s.IsZero() {
			terms[i] = "(" + terms[i] + " and r._time >= " + s.UTC().Format(time.RFC3339Nano) + ")"
		}
	}
	return strings.Join(terms, " or ")
}

// coldChainReadings queries the compartment temperatures of the points devices (a Flux
// predicate) selects, from lookback before q.From, and calls table with each device and door's
// readings, oldest first.
func (c *Client) coldChainReadings(ctx context.Context, q fleet.ColdChainQuery, lookback time.Duration, devices string,
	table func(compartmentKey, []fleet.HistoryPoint) error) error {
	// group() merges the series of a device and door whatever their other tags (a unit that
	// moved to another site), which leaves the merged table out of time order: hence the sort.
	flux := fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => %s and %s and %s)
  |> filter(fn: (r) => %s)
  |> keep(columns: ["_time", "_value", %q, %q])
  |> group(columns: [%q, %q])
  |> sort(columns: ["_time"])`,
		strconv.Quote(c.cfg.Bucket), q.From.Add(-lookback).UTC().Format(time.RFC3339Nano), q.To.UTC().Format(time.RFC3339Nano),
		fluxEqual("_measurement", measTemperature), fluxEqual("_field", fieldCelsius), fluxEqual(tagSensor, sensorCompartment),
		devices, tagDevice, tagDoor, tagDevice, tagDoor)
	res, err := c.query.Query(ctx, flux)
	if err != nil {
		return fleet.Errorf(fleet.EUNAVAILABLE, "cold-chain report: InfluxDB did not answer: %v", err)
	}
	defer res.Close()
	var (
		key     compartmentKey
		samples []fleet.HistoryPoint
	)
	for res.Next() {
		r := res.Record()
		device, _ := r.ValueByKey(tagDevice).(string)
		doorTag, _ := r.ValueByKey(tagDoor).(string)
		door, err := strconv.Atoi(doorTag)
		if err != nil {
			continue // not a compartment series the hub wrote
		}
		if k := (compartmentKey{device, door}); k != key {
			if samples != nil {
				if err := table(key, samples); err != nil {
					return err
				}
			}
			key, samples = k, samples[:0]
		}
		if v, ok := r.Value().(float64); ok {
			samples = append(samples, fleet.HistoryPoint{T: r.Time(), V: v})
		}
	}
	if err := res.Err(); err != nil {
		return fleet.Errorf(fleet.EUNAVAILABLE, "cold-chain report: reading from InfluxDB: %v", err)
	}
	if samples != nil {
		return table(key, samples)
	}
	return nil
}
