package influx

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

var _ fleet.HistoryService = (*Client)(nil)

// History answers q with InfluxQL. Windows are multiples of q.Every since the epoch, clipped to
// the range, each stamped with its end (the start of the next window, or the range's end) and
// left out when it has no data, as Flux's aggregateWindow did before.
//
// Numbers are the mean of the window's points, booleans (heater_on, compressor_on) the fraction
// of its points that are true. door_open is the fraction of the window's time the door was open
// (doorOpen). The range starts at q.Since if that is later than q.From: the points of the
// device's id before its registration are an earlier unit's (the points carry the id, not the
// registration). The query service validated q; an unknown field is an EINVALID error here too,
// InfluxDB not answering EUNAVAILABLE.
func (c *Client) History(ctx context.Context, q fleet.HistoryQuery) ([]fleet.HistoryPoint, error) {
	s, ok := series[q.Field]
	if !ok {
		return nil, fleet.Errorf(fleet.EINVALID, "unknown field %q", q.Field)
	}
	from := q.From
	if q.Since.After(from) {
		from = q.Since
	}
	if q.Every < time.Millisecond {
		return nil, fleet.Errorf(fleet.EINVALID, "every: %s is shorter than a millisecond", q.Every)
	}
	q.Every = q.Every.Truncate(time.Millisecond) // InfluxQL's and the hub's windows alike
	if !from.Before(q.To) {
		return nil, nil // the range ends before the registration began
	}
	where := []string{tagIs(tagDevice, q.DeviceID)}
	for _, k := range slices.Sorted(maps.Keys(s.tags)) {
		where = append(where, tagIs(k, s.tags[k]))
	}
	if fleet.HistoryFields[q.Field].NeedsDoor {
		where = append(where, tagIs(tagDoor, strconv.Itoa(q.Door)))
	}
	var (
		out []fleet.HistoryPoint
		err error
	)
	if q.Field == "door_open" {
		out, err = c.doorOpen(ctx, strings.Join(where, " AND "), from, q)
	} else {
		out, err = c.windowMeans(ctx, s.measurement, s.field, s.boolean, strings.Join(where, " AND "), from, q)
	}
	if err != nil {
		return nil, fleet.Errorf(fleet.EUNAVAILABLE, "history store: %v", err)
	}
	return out, nil
}

// windowMeans averages field over the windows of [from, q.To): mean() for numbers; for booleans,
// which InfluxQL does not average, the count of true over the count of all.
func (c *Client) windowMeans(ctx context.Context, measurement, field string, boolean bool, where string, from time.Time, q fleet.HistoryQuery) ([]fleet.HistoryPoint, error) {
	where += " AND time >= " + timeLiteral(from) + " AND time < " + timeLiteral(q.To)
	group := " GROUP BY time(" + strconv.FormatInt(q.Every.Milliseconds(), 10) + "ms) fill(none)"
	stmt := "SELECT mean(" + ident(field) + ") FROM " + ident(measurement) + " WHERE " + where + group
	if boolean {
		stmt = "SELECT count(" + ident(field) + ") FROM " + ident(measurement) + " WHERE " + where + group +
			"; SELECT count(" + ident(field) + ") FROM " + ident(measurement) + " WHERE " + where + " AND " + ident(field) + " = true" + group
	}
	var (
		windows []time.Time // window starts, from the first statement
		values  []float64
		trues   = make(map[time.Time]float64)
	)
	err := c.query(ctx, stmt, false, func(r result) error {
		for _, s := range r.Series {
			for _, row := range s.Values {
				t, v, err := numberRow(row)
				if err != nil {
					return err
				}
				if r.StatementID == 0 {
					windows, values = append(windows, t), append(values, v)
				} else {
					trues[t] = v
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]fleet.HistoryPoint, len(windows))
	for i, start := range windows {
		v := values[i]
		if boolean {
			v = trues[start] / v
		}
		out[i] = fleet.HistoryPoint{T: earlier(start.Add(q.Every), q.To), V: v}
	}
	return out, nil
}

// doorOpen computes door_open, which InfluxQL cannot: the door's state at a time is that of its
// latest door or door_event point at or before it (docs/telemetry.md: door points are written
// when the state changes and in periodic keyframes, events at every change), and a window's value
// is the fraction of its time the door was open, over the part of the window where the state is
// known. The state at from is the latest point before it (since q.Since); it holds until the next
// point, through to q.To or now, whichever comes first.
//
// Both measurements come in time order, as separate series; door points can be many (a shape
// with one in every snapshot), events are few. The events are read first and kept, and the door
// points are streamed in chunks and merged with them, so that a long range is never in memory.
func (c *Client) doorOpen(ctx context.Context, where string, from time.Time, q fleet.HistoryQuery) ([]fleet.HistoryPoint, error) {
	before := where + " AND time < " + timeLiteral(from)
	if !q.Since.IsZero() {
		before += " AND time >= " + timeLiteral(q.Since)
	}
	in := where + " AND time >= " + timeLiteral(from) + " AND time < " + timeLiteral(q.To)
	open := ident(fieldOpen)
	stmts := []string{
		"SELECT " + open + " FROM " + ident(measDoor) + ", " + ident(measDoorEvent) + " WHERE " + before + " ORDER BY time DESC LIMIT 1",
		"SELECT " + open + " FROM " + ident(measDoorEvent) + " WHERE " + in,
		"SELECT " + open + " FROM " + ident(measDoor) + " WHERE " + in,
	}
	acc := newStepWindows(from, earlier(q.To, time.Now()), q.Every)
	var (
		prior     doorPoint
		events    []doorPoint
		nextEvent int
	)
	err := c.query(ctx, strings.Join(stmts, "; "), true, func(r result) error {
		for _, s := range r.Series {
			for _, row := range s.Values {
				p, err := readDoorPoint(row)
				if err != nil {
					return err
				}
				switch r.StatementID {
				case 0: // the latest of each measurement: the later one holds at from
					if !prior.known || p.t.After(prior.t) || (p.t.Equal(prior.t) && s.Name == measDoor) {
						prior = p
					}
				case 1:
					events = append(events, p)
				default:
					if prior.known { // every event is read by now
						acc.set(prior)
						prior.known = false
					}
					// At the same time, the door point (the state the unit reported) goes last.
					for ; nextEvent < len(events) && !events[nextEvent].t.After(p.t); nextEvent++ {
						acc.set(events[nextEvent])
					}
					acc.set(p)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if prior.known { // no door point in the range
		acc.set(prior)
	}
	for _, e := range events[nextEvent:] {
		acc.set(e)
	}
	return acc.points(q.To), nil
}

// doorPoint is a door's state from a time on.
type doorPoint struct {
	t           time.Time
	open, known bool
}

// readDoorPoint reads a row [time, open].
func readDoorPoint(row []any) (doorPoint, error) {
	if len(row) == 2 {
		t, ok := rowTime(row[0])
		open, isBool := row[1].(bool)
		if ok && isBool {
			return doorPoint{t: t, open: open, known: true}, nil
		}
	}
	return doorPoint{}, fmt.Errorf("unexpected row %v from /query, want [time, open]", row)
}

// stepWindows sums, for each window of [from, to) (multiples of every since the epoch), how long
// a step function was known and how long it was open; the function's points are set in time
// order.
type stepWindows struct {
	first         time.Time // start of the first window, at or before from
	from, to      time.Time
	every         time.Duration
	known, opened []time.Duration // by window
	cur           doorPoint       // the state from cur.t on, once known
}

func newStepWindows(from, to time.Time, every time.Duration) *stepWindows {
	ms, step := from.UnixMilli(), every.Milliseconds()
	first := time.UnixMilli(ms - ((ms%step)+step)%step).UTC()
	n := 0
	if to.After(first) {
		n = int((to.Sub(first) + every - 1) / every)
	}
	return &stepWindows{first: first, from: from, to: to, every: every,
		known: make([]time.Duration, n), opened: make([]time.Duration, n)}
}

// set records that the state is p from p.t on: the previous state held until then.
func (w *stepWindows) set(p doorPoint) {
	if w.cur.known {
		w.hold(w.cur, p.t)
	}
	w.cur = p
}

// hold adds the span of p's state from p.t until end, clipped to [from, to), to its windows.
func (w *stepWindows) hold(p doorPoint, end time.Time) {
	a, b := later(p.t, w.from), earlier(end, w.to)
	for a.Before(b) {
		i := int(a.Sub(w.first) / w.every)
		e := earlier(b, w.first.Add(time.Duration(i+1)*w.every))
		w.known[i] += e.Sub(a)
		if p.open {
			w.opened[i] += e.Sub(a)
		}
		a = e
	}
}

// points closes the last state at the end and returns each window where the state was known at
// some time, stamped with its end clipped to stop.
func (w *stepWindows) points(stop time.Time) []fleet.HistoryPoint {
	if w.cur.known {
		w.hold(w.cur, w.to)
		w.cur.known = false
	}
	var out []fleet.HistoryPoint
	for i, k := range w.known {
		if k > 0 {
			end := earlier(w.first.Add(time.Duration(i+1)*w.every), stop)
			out = append(out, fleet.HistoryPoint{T: end, V: float64(w.opened[i]) / float64(k)})
		}
	}
	return out
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
