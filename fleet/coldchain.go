package fleet

import (
	"context"
	"time"

	"github.com/lockerhub/lockerhub/fleet/wire"
)

// MaxColdChainDays bounds the range of one cold-chain report: a quarter of a year of daily
// rows, the longest period a manager accounts for at once. Every reading in the range is read
// raw (nothing is aggregated, so no excursion can be averaged away), which is what makes
// longer ranges expensive.
const MaxColdChainDays = 93

// Compartment is one refrigerated compartment: a door of a fridge unit, with its own
// temperature sensor, and the food-safety threshold of the unit's class. Since is the start of
// the unit's registration (Device.CreatedAt): readings before it are an earlier unit's with the
// same id and are not this compartment's, so the time before it counts as no data.
//
// StuckAfter is how long a reading exactly repeated must last to be a stuck sensor's (the
// sensor_stuck rule's for); 0 trusts every reading. A real sensor is noisy: a stuck one repeats
// one value while the compartment warms, so its readings say nothing about the temperature.
type Compartment struct {
	DeviceID, Site string
	Door           int
	Class          string  // ClassChilled or ClassFreezer
	ThresholdC     float64 // readings above this break the cold chain
	Since          time.Time
	StuckAfter     time.Duration
}

// ColdChainDay is one compartment's food-safety record for one UTC day.
type ColdChainDay struct {
	Date          string   `json:"date"` // YYYY-MM-DD (UTC)
	DeviceID      string   `json:"device"`
	Site          string   `json:"site"`
	Door          int      `json:"door"`
	Class         string   `json:"class"`
	ThresholdC    float64  `json:"threshold_c"`
	MinutesAbove  float64  `json:"minutes_above"`
	PeakC         *float64 `json:"peak_c"` // nil when no reading was taken that day
	MinutesNoData float64  `json:"minutes_no_data"`
	Samples       int      `json:"samples"` // readings taken that day
	// MinutesUntrusted is the time held by readings of a stuck sensor: like no data, the
	// temperature is not known, and it counts neither as above nor towards the peak.
	MinutesUntrusted float64 `json:"minutes_untrusted"`
}

// ColdChainQuery asks for the daily records of Compartments over [From, To).
type ColdChainQuery struct {
	Compartments []Compartment
	From, To     time.Time
}

// Validate returns an EINVALID *Error unless From is before To, the range spans at most
// MaxColdChainDays days, and every compartment names a valid device and door.
func (q ColdChainQuery) Validate() error {
	if !q.From.Before(q.To) {
		return Errorf(EINVALID, "from..to: from (%s) must be before to (%s)", q.From.UTC().Format(time.RFC3339), q.To.UTC().Format(time.RFC3339))
	}
	if q.To.Sub(q.From) > MaxColdChainDays*24*time.Hour {
		return Errorf(EINVALID, "from..to: a cold-chain report covers at most %d days", MaxColdChainDays)
	}
	for _, c := range q.Compartments {
		if !wire.ValidDeviceID(c.DeviceID) || c.Door < 1 || c.Door > wire.MaxDoors {
			return Errorf(EINVALID, "compartment: invalid device %q or door %d", c.DeviceID, c.Door)
		}
	}
	return nil
}

// ColdChainService computes cold-chain reports from the telemetry history.
type ColdChainService interface {
	// ColdChain returns one row per compartment of q and UTC day of [q.From, q.To), ordered
	// by site, device, door and date: EINVALID for a query that fails Validate, EUNAVAILABLE
	// when the history store does not answer.
	ColdChain(ctx context.Context, q ColdChainQuery) ([]ColdChainDay, error)
}

// ColdChainDays computes the daily records of compartment c over [from, to) from its raw
// readings, oldest first, with sample-and-hold:
//
//   - A reading stands for the compartment's temperature from its time until the next reading,
//     but for at most maxGap: past that, readings were lost and the time until the next one is
//     "no data" rather than a guess.
//   - MinutesAbove is the held time with a reading strictly above c.ThresholdC; a reading equal
//     to the threshold is not above it. MinutesNoData is the time no reading holds. Both are
//     split exactly at UTC midnight and clipped to [from, to), so a day's two add up to at
//     most the part of the day inside the range (the whole day when from and to are midnights).
//   - Readings of a stuck sensor (the same value exactly, repeated for at least c.StuckAfter)
//     are untrusted: the time they hold is MinutesUntrusted, neither above nor held, and they
//     are not the peak. MinutesNoData does not include it.
//   - PeakC and Samples come from the readings taken within the day's part of the range. A
//     reading held over midnight counts towards the next day's minutes but not its peak, so a
//     day without readings has PeakC nil even if a reading from before holds into it.
//
// Readings before from matter only for the time they hold into the range and for the stuck
// runs they begin, which is why a caller passes the readings from the longer of maxGap and
// c.StuckAfter before from. There is one row per UTC day that
// overlaps [from, to), whether or not it has readings; none if from is not before to.
func ColdChainDays(c Compartment, samples []HistoryPoint, from, to time.Time, maxGap time.Duration) []ColdChainDay {
	from, to = from.UTC(), to.UTC()
	if !from.Before(to) {
		return nil
	}
	type day struct {
		start, end  time.Time // the day clipped to [from, to)
		held, above time.Duration
		untrusted   time.Duration
		peak        *float64
		samples     int
	}
	first := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, time.UTC)
	var days []day
	for d := first; d.Before(to); d = d.Add(24 * time.Hour) {
		days = append(days, day{start: later(d, from), end: earlier(d.Add(24*time.Hour), to)})
	}
	dayOf := func(t time.Time) *day { return &days[t.Sub(first)/(24*time.Hour)] }

	stuck := stuckReadings(samples, c.StuckAfter)
	for i, s := range samples {
		if !s.T.Before(from) && s.T.Before(to) {
			d := dayOf(s.T)
			d.samples++
			if !stuck[i] && (d.peak == nil || s.V > *d.peak) {
				d.peak = &s.V
			}
		}
		until := s.T.Add(maxGap)
		if i+1 < len(samples) {
			until = earlier(until, samples[i+1].T)
		}
		// The held span [a, b), cut at each midnight it crosses.
		for a, b := later(s.T, from), earlier(until, to); a.Before(b); {
			d := dayOf(a)
			end := earlier(b, d.end)
			switch {
			case stuck[i]:
				d.untrusted += end.Sub(a)
			case s.V > c.ThresholdC:
				d.above += end.Sub(a)
				fallthrough
			default:
				d.held += end.Sub(a)
			}
			a = end
		}
	}

	out := make([]ColdChainDay, len(days))
	for i, d := range days {
		out[i] = ColdChainDay{Date: d.start.Format(time.DateOnly), DeviceID: c.DeviceID, Site: c.Site, Door: c.Door,
			Class: c.Class, ThresholdC: c.ThresholdC, MinutesAbove: d.above.Minutes(), PeakC: d.peak,
			MinutesNoData: (d.end.Sub(d.start) - d.held - d.untrusted).Minutes(), Samples: d.samples,
			MinutesUntrusted: d.untrusted.Minutes()}
	}
	return out
}

// stuckReadings marks the readings of runs of one value, exactly repeated, that last at least
// after (from the run's first reading to its last); none when after is 0.
func stuckReadings(samples []HistoryPoint, after time.Duration) []bool {
	stuck := make([]bool, len(samples))
	if after <= 0 {
		return stuck
	}
	for i := 0; i < len(samples); {
		j := i
		for j+1 < len(samples) && samples[j+1].V == samples[i].V {
			j++
		}
		if samples[j].T.Sub(samples[i].T) >= after {
			for k := i; k <= j; k++ {
				stuck[k] = true
			}
		}
		i = j + 1
	}
	return stuck
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
