package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

// firstSeq is every unit's first seq: each scenario provisions its own units.
const firstSeq = 1

// pointsPerMessage is what one snapshot from snapshot becomes in InfluxDB.
const pointsPerMessage = testbed.DoorsPerUnit + 4

// snapshot is a realistic locker-bank telemetry message: every door, two temperatures and the
// heater, varying with seq so that InfluxDB does not see the same values over and over.
func snapshot(seq uint64, ts int64) ([]byte, error) {
	doors := make([]wire.DoorState, testbed.DoorsPerUnit)
	for i := range doors {
		open := (seq+uint64(i))%7 == 0
		doors[i] = wire.DoorState{Door: i + 1, Open: open, Locked: !open}
	}
	ambient := -5 + float64(seq%200)/10
	enclosure := 12 + float64(seq%50)/10
	return wire.Marshal(wire.Telemetry{
		V: wire.Version, Seq: seq, TS: ts, Doors: doors,
		AmbientC: &ambient, EnclosureC: &enclosure,
		Heater: &wire.Thermal{On: seq%3 == 0, SetpointC: 5, Duty: float64(seq%10) / 10},
	})
}

// load is one run of publishers: every unit sends messages snapshots at QoS 1 with at most
// window of them unacknowledged, as fast as the broker acknowledges them.
type load struct {
	broker   string // tcp://127.0.0.1:PORT
	units    []testbed.Unit
	messages int
	window   int
	connects int // concurrent connects while setting up a scenario
	progress io.Writer
	// onPublish, if set, is called just before each message is handed to the client.
	onPublish func(unit int, seq uint64, at time.Time)
	payloads  [][]byte // by seq-firstSeq, made by runAfterConnect
	tsStart   int64    // edge timestamp of every unit's first message, ms; see tsOf
	// interval, if set, paces every unit to one message per interval (the commands scenario's
	// background ingest) instead of as fast as the broker acknowledges; stop, if set, ends the
	// publishing early, as a normal end of the run, not an error.
	interval time.Duration
	stop     <-chan struct{}
	start    time.Time // first publish, set by runAfterConnect

	sent, acked atomic.Int64
}

// loadResult is what the publishers saw.
type loadResult struct {
	Connect      time.Duration // all units connected, before any publishing
	Start, End   time.Time     // first publish, last PUBACK
	Sent, Acked  int64
	AckLatencies []time.Duration // publish to PUBACK, every message
	Errors       []string        // first error of each unit that failed
}

// Rate is the acceptance rate: acknowledged messages per second between the first publish and
// the last PUBACK.
func (r *loadResult) Rate() float64 {
	if d := r.End.Sub(r.Start).Seconds(); d > 0 {
		return float64(r.Acked) / d
	}
	return 0
}

// tsOf is the edge timestamp (ms) of message seq of every unit: start + seq - firstSeq. A
// point is identified by its series and timestamp, so a unit's snapshots must not share a
// millisecond or they would overwrite each other in InfluxDB; units differ by their device
// tag. The last message is a few seconds ahead of the clock at most, far inside the hub's
// 24 h of tolerance.
func tsOf(start int64, seq uint64) int64 { return start + int64(seq-firstSeq) }

// runAfterConnect connects every unit (l.connects at a time), calls onStart, then lets all of
// them publish at once, so that the acceptance rate does not include the connect storm. ctx
// bounds the whole run.
func (l *load) runAfterConnect(ctx context.Context, onStart func()) (*loadResult, error) {
	res := &loadResult{}
	if err := l.makePayloads(); err != nil {
		return nil, err
	}
	clients := make([]paho.Client, len(l.units))
	t0 := time.Now()
	if err := l.connectAll(ctx, clients); err != nil {
		return nil, err
	}
	res.Connect = time.Since(t0)
	defer func() {
		for _, c := range clients {
			c.Disconnect(100)
		}
	}()
	fmt.Fprintf(l.progress, "  %d units connected in %s\n", len(l.units), res.Connect.Round(time.Millisecond))

	stopProgress := l.reportProgress()
	defer stopProgress()
	lat := make([][]time.Duration, len(l.units))
	errs := make([]error, len(l.units))
	var wg sync.WaitGroup
	onStart()
	res.Start = time.Now()
	l.start = res.Start
	for i := range l.units {
		wg.Go(func() { lat[i], errs[i] = l.publish(ctx, i, clients[i]) })
	}
	wg.Wait()
	res.End = time.Now()
	res.Sent, res.Acked = l.sent.Load(), l.acked.Load()
	for i := range l.units {
		res.AckLatencies = append(res.AckLatencies, lat[i]...)
		if errs[i] != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", l.units[i].ID, errs[i]))
		}
	}
	sort.Slice(res.AckLatencies, func(a, b int) bool { return res.AckLatencies[a] < res.AckLatencies[b] })
	return res, nil
}

// makePayloads encodes the messages once, before the clock starts, for all units: encoding
// JSON per message took a tenth of the load generator's CPU, which it needs to saturate
// Mosquitto. See tsOf for their timestamps.
func (l *load) makePayloads() error {
	l.payloads = make([][]byte, l.messages)
	for n := range l.payloads {
		var err error
		seq := firstSeq + uint64(n)
		if l.payloads[n], err = snapshot(seq, tsOf(l.tsStart, seq)); err != nil {
			return err
		}
	}
	return nil
}

func (l *load) connectAll(ctx context.Context, clients []paho.Client) error {
	c := connectUnits(ctx, l.units, l.connects, func(u testbed.Unit) (*paho.ClientOptions, error) {
		return publisherOptions(l.broker, u), nil
	}, nil)
	if err := c.firstErr(l.units); err != nil {
		c.disconnect()
		return err
	}
	copy(clients, c.clients)
	return nil
}

// publish sends unit i's messages with at most l.window in flight: a second goroutine waits
// for the PUBACKs in publishing order (a broker acknowledges QoS 1 in order on one connection)
// and frees a token of free for each. It returns every message's publish-to-PUBACK time.
func (l *load) publish(ctx context.Context, i int, c paho.Client) ([]time.Duration, error) {
	type inflight struct {
		tok paho.Token
		at  time.Time
	}
	topic := wire.Topic(l.units[i].ID, wire.ChannelTelemetry)
	slots := make(chan inflight, l.window)
	free := make(chan struct{}, l.window) // one token per message in flight
	lat := make([]time.Duration, 0, l.messages)
	waitErr := make(chan error, 1)
	go func() {
		var first error
		for f := range slots {
			select {
			case <-f.tok.Done():
				if err := f.tok.Error(); err != nil && first == nil {
					first = err
				}
				if first == nil {
					lat = append(lat, time.Since(f.at))
					l.acked.Add(1)
				}
				<-free
			case <-ctx.Done():
				if first == nil {
					first = ctx.Err()
				}
				<-free
			}
		}
		waitErr <- first
	}()
	var err error
	for n, payload := range l.payloads {
		if err = ctx.Err(); err != nil {
			break
		}
		if !l.wait(ctx, i, n) {
			break
		}
		free <- struct{}{}
		now := time.Now()
		if l.onPublish != nil {
			l.onPublish(i, firstSeq+uint64(n), now)
		}
		slots <- inflight{tok: c.Publish(topic, 1, false, payload), at: now}
		l.sent.Add(1)
	}
	close(slots)
	if werr := <-waitErr; err == nil {
		err = werr
	}
	return lat, err
}

// wait holds unit i's message n until its time when the load is paced (see sendAt), and
// reports whether to send it: false once l.stop is closed or ctx is done.
func (l *load) wait(ctx context.Context, i, n int) bool {
	if l.interval == 0 {
		select {
		case <-l.stop:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(time.Until(sendAt(l.start, l.interval, i, len(l.units), n)))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.stop:
		return false
	case <-ctx.Done():
		return false
	}
}

// sendAt is when unit i of units sends its message n in a paced load: every interval, from
// start plus its share of one interval, so that the units' messages are spread evenly instead
// of arriving together. Times are fixed in advance, so a late message does not delay the next.
func sendAt(start time.Time, interval time.Duration, i, units, n int) time.Time {
	return start.Add(time.Duration(n)*interval + interval*time.Duration(i)/time.Duration(units))
}

// reportProgress prints the messages sent and acknowledged so far and the rate of the last
// interval, every two seconds, until the returned function is called.
func (l *load) reportProgress() func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		last, lastAt := l.acked.Load(), time.Now()
		total := len(l.units) * l.messages
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				acked := l.acked.Load()
				fmt.Fprintf(l.progress, "  sent %d/%d, acknowledged %d, %.0f msg/s\n",
					l.sent.Load(), total, acked, float64(acked-last)/now.Sub(lastAt).Seconds())
				last, lastAt = acked, now
			}
		}
	}()
	return func() { close(done); <-stopped }
}
