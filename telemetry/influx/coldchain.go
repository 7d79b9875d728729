package influx

import (
	"cmp"
	"context"
	"errors"
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

// ColdChain computes the cold-chain report for q from the raw compartment temperatures, with an
// InfluxQL query per coldChainBatch devices. Readings from coldChainMaxGap (or the longest
// StuckAfter) before q.From are read too, so that the reading that holds at q.From, and whether
// it is a stuck sensor's, is known. A device's readings from before its compartments' Since are
// left out: they are an earlier unit's with the same id (the points carry the id, not the
// registration), and that time counts as no data.
//
// InfluxDB streams one series per device and door, oldest reading first, in chunks; each series
// is turned into days as soon as it is complete, so only one compartment's readings are in memory
// at a time.
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
		if err := c.coldChainReadings(ctx, q, lookback, devices, since, func(k compartmentKey, samples []fleet.HistoryPoint) error {
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

// coldChainBatch is how many devices one query names: a fleet's report takes several queries,
// each a URL of at most about 16 KiB (device ids are up to 64 characters), which the servers
// accept, rather than one of unbounded length.
const coldChainBatch = 100

// coldChainReadings queries the compartment temperatures of devices from lookback before
// q.From, and calls table with each device and door's readings from the device's since on,
// oldest first. InfluxQL cannot give each device its own start in one query (it does not
// support time conditions under OR), so the readings of a device before its since are read and dropped here; they
// are at most the range's, and only for a unit registered again within it.
func (c *Client) coldChainReadings(ctx context.Context, q fleet.ColdChainQuery, lookback time.Duration, devices []string,
	since map[string]time.Time, table func(compartmentKey, []fleet.HistoryPoint) error) error {
	for batch := range slices.Chunk(devices, coldChainBatch) {
		terms := make([]string, len(batch))
		for i, d := range batch {
			terms[i] = tagIs(tagDevice, d)
		}
		// GROUP BY device and door merges the series of a compartment whatever its other tags (a
		// unit that moved to another site) in time order; chunked streams them one after another.
		stmt := "SELECT " + ident(fieldCelsius) + " FROM " + ident(measTemperature) + " WHERE " + tagIs(tagSensor, sensorCompartment) +
			" AND (" + strings.Join(terms, " OR ") + ") AND time >= " + timeLiteral(q.From.Add(-lookback)) + " AND time < " + timeLiteral(q.To) +
			" GROUP BY " + ident(tagDevice) + ", " + ident(tagDoor)
		var (
			key     compartmentKey
			samples []fleet.HistoryPoint
			started bool
		)
		err := c.query(ctx, stmt, true, func(r result) error {
			for _, s := range r.Series {
				door, err := strconv.Atoi(s.Tags[tagDoor])
				if err != nil {
					continue // not a compartment series the hub wrote
				}
				if k := (compartmentKey{s.Tags[tagDevice], door}); k != key || !started {
					if started {
						if err := table(key, samples); err != nil {
							return err
						}
					}
					key, samples, started = k, samples[:0], true
				}
				from := since[key.device]
				for _, row := range s.Values {
					t, v, err := numberRow(row)
					if err != nil {
						return err
					}
					if !t.Before(from) {
						samples = append(samples, fleet.HistoryPoint{T: t, V: v})
					}
				}
			}
			return nil
		})
		if err == nil && started {
			err = table(key, samples)
		}
		if err != nil {
			if fe := (*fleet.Error)(nil); errors.As(err, &fe) {
				return err // the report's own
			}
			return fleet.Errorf(fleet.EUNAVAILABLE, "cold-chain report: InfluxDB did not answer: %v", err)
		}
	}
	return nil
}
