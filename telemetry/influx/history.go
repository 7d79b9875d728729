package influx

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

var _ fleet.HistoryService = (*Client)(nil)

// History runs q as a Flux query: the series' points in the range, converted to numbers
// (booleans count as 0 and 1) and averaged over windows of q.Every with aggregateWindow.
// The range starts at q.Since if that is later than q.From: the points of the device's id
// before its registration are an earlier unit's (the points carry the id, not the
// registration). The query service validated q; an unknown field is an EINVALID error here too.
func (c *Client) History(ctx context.Context, q fleet.HistoryQuery) ([]fleet.HistoryPoint, error) {
	s, ok := series[q.Field]
	if !ok {
		return nil, fleet.Errorf(fleet.EINVALID, "unknown field %q", q.Field)
	}
	from := q.From
	if q.Since.After(from) {
		from = q.Since
	}
	if !from.Before(q.To) {
		return nil, nil // the range ends before the registration began
	}
	filters := []string{
		fluxEqual("_measurement", s.measurement),
		fluxEqual("_field", s.field),
		fluxEqual(tagDevice, q.DeviceID),
	}
	for k, v := range s.tags {
		filters = append(filters, fluxEqual(k, v))
	}
	if fleet.HistoryFields[q.Field].NeedsDoor {
		filters = append(filters, fluxEqual(tagDoor, strconv.Itoa(q.Door)))
	}
	flux := fmt.Sprintf(`from(bucket: %s)
  |> range(start: %s, stop: %s)
  |> filter(fn: (r) => %s)
  |> map(fn: (r) => ({r with _value: float(v: r._value)}))
  |> aggregateWindow(every: %s, fn: mean, createEmpty: false)`,
		strconv.Quote(c.cfg.Bucket), from.UTC().Format(time.RFC3339Nano), q.To.UTC().Format(time.RFC3339Nano),
		strings.Join(filters, " and "), fluxDuration(q.Every))
	res, err := c.query.Query(ctx, flux)
	if err != nil {
		return nil, fleet.Errorf(fleet.EUNAVAILABLE, "history store: %v", err)
	}
	defer res.Close()
	var out []fleet.HistoryPoint
	for res.Next() {
		r := res.Record()
		v, ok := r.Value().(float64)
		if !ok {
			continue
		}
		out = append(out, fleet.HistoryPoint{T: r.Time().UTC(), V: v})
	}
	if err := res.Err(); err != nil {
		return nil, fleet.Errorf(fleet.EUNAVAILABLE, "history store: %v", err)
	}
	return out, nil
}

// fluxDuration writes d as a Flux duration literal in whole milliseconds.
func fluxDuration(d time.Duration) string {
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// fluxEqual writes the Flux predicate that column (a tag key, _measurement or _field) of the
// record r equals value.
func fluxEqual(column, value string) string {
	return "r." + column + " == " + strconv.Quote(value)
}
