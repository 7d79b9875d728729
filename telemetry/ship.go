package telemetry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/lockerhub/lockerhub/internal/backoff"
	"github.com/lockerhub/lockerhub/telemetry/influx"
	"github.com/lockerhub/lockerhub/telemetry/spool"
)

// Writer writes line-protocol points (millisecond timestamps) to the time-series store. A
// failure that is an *influx.WriteError says whether retrying can help.
//
// Each element of records is a spool record's payload as stored: one or more lines of line
// protocol, newline-separated. Splitting them into lines would copy every byte the hub ships
// once more only for the writer to join them again.
type Writer interface {
	Write(ctx context.Context, records []string) error
}

var _ Writer = (*influx.Client)(nil)

// Shipper settings.
const (
	readMessages  = 2000    // messages taken from the spool at once
	readBytes     = 8 << 20 // and at most this many bytes
	quarantineDir = "quarantine"
)

// retryBackoff is the wait between writes of a batch that failed. Its Max bounds how long
// history lags once InfluxDB is back (docs/PERFORMANCE.md, tuning choices), and a retry every
// 5 s costs a down InfluxDB next to nothing; a 429 or 503 asking for longer is honoured.
// Jittered because the Writers of a hub, and the hubs of a cluster, lose InfluxDB together and
// would otherwise all retry in step.
var retryBackoff = backoff.Policy{Min: 500 * time.Millisecond, Max: 5 * time.Second, Jitter: backoff.Equal}

// Shipper moves the spool to the store: it writes batches of up to BatchPoints points, Writers
// of them at once, commits the spool past a batch once it and every batch before it are
// written, retries failures that can pass with exponential backoff, and quarantines the
// messages the store refuses as bad data. Batches may reach the store out of order; each point
// carries its own timestamp, and a point written twice (after a restart) is stored once.
type Shipper struct {
	Spool       *spool.Spool
	Writer      Writer
	BatchPoints int    // points per write; 5,000 by default
	Writers     int    // writes in flight at once; 1 by default
	DataDir     string // where quarantine/ is made
	pipeline    *Pipeline
}

// NewShipper returns a shipper for the pipeline's spool.
func (p *Pipeline) NewShipper(w Writer, batchPoints, writers int, dataDir string) *Shipper {
	return &Shipper{Spool: p.spool, Writer: w, BatchPoints: batchPoints, Writers: writers, DataDir: dataDir, pipeline: p}
}

// Run ships until ctx is done. It returns nil then, or the first error it cannot get past
// (the spool itself failing).
//
// Reading and writing overlap: one goroutine reads the spool ahead (ReadNext) and starts each
// batch's write as soon as one of the Writers is free, while Run commits the batches in order
// as they are stored. Reading a next round only after every write of the last one had
// finished left InfluxDB waiting on the slowest write of each round, and a burst's messages
// mostly in the spool until acceptance was over.
func (s *Shipper) Run(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	writes := max(s.Writers, 1)
	// Batches in order, each with the outcome of its write. Writes in flight (slots) and
	// those written but not yet committed (started) are bounded, so that reading ahead
	// holds little memory.
	started := make(chan shipment, writes)
	slots := make(chan struct{}, writes)
	var wg sync.WaitGroup
	readErr := make(chan error, 1)
	wg.Go(func() {
		defer close(started)
		// The first read starts at the cursor: what an earlier Run read ahead but did not
		// store must be read again, not skipped.
		read := s.Spool.Read
		for ctx.Err() == nil {
			recs, err := read(ctx, readMessages, readBytes)
			read = s.Spool.ReadNext
			if err != nil {
				if ctx.Err() == nil {
					readErr <- fmt.Errorf("read spool: %w", err)
				}
				return
			}
			for _, b := range s.batches(recs) {
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					return
				}
				sh := shipment{last: b.recs[len(b.recs)-1].Pos, done: make(chan error, 1)}
				wg.Go(func() {
					sh.done <- s.ship(ctx, b)
					<-slots
				})
				select {
				case started <- sh:
				case <-ctx.Done():
					return
				}
			}
		}
	})
	err := s.commitInOrder(ctx, started)
	cancel()
	wg.Wait()
	select {
	case rerr := <-readErr:
		return rerr
	default:
	}
	if parent.Err() != nil {
		return nil
	}
	return err
}

// shipment is a batch whose write has started.
type shipment struct {
	last spool.Position // of the batch's last record
	done chan error     // the write's outcome
}

// commitInOrder commits the spool past each shipment once it and every one before it are
// stored, until started is closed or a write or commit fails.
func (s *Shipper) commitInOrder(ctx context.Context, started <-chan shipment) error {
	for sh := range started {
		var err error
		select {
		case err = <-sh.done:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err == nil {
			err = s.Spool.Commit(sh.last)
		}
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

// batch is a run of spool records, their payloads and how many points they hold.
type batch struct {
	recs     []spool.Record
	payloads []string
	points   int
}

// batches groups records, in order, into batches of at most BatchPoints points (a single record
// with more points forms a batch of its own).
func (s *Shipper) batches(recs []spool.Record) []batch {
	max := s.BatchPoints
	if max <= 0 {
		max = 5000
	}
	var out []batch
	var cur batch
	for _, r := range recs {
		points := bytes.Count(r.Payload, []byte{'\n'}) + 1
		if cur.points > 0 && cur.points+points > max {
			out = append(out, cur)
			cur = batch{}
		}
		cur.recs = append(cur.recs, r)
		// The spool gives each record a payload of its own, never written to again.
		cur.payloads = append(cur.payloads, unsafe.String(unsafe.SliceData(r.Payload), len(r.Payload)))
		cur.points += points
	}
	if len(cur.recs) > 0 {
		out = append(out, cur)
	}
	return out
}

// ship writes one batch until it is stored (or set aside).
func (s *Shipper) ship(ctx context.Context, b batch) error {
	m := s.pipeline.metrics
	for failures := 1; ; failures++ {
		start := time.Now()
		err := s.Writer.Write(ctx, b.payloads)
		m.writeSeconds.Observe(time.Since(start).Seconds())
		if err == nil {
			m.pointsOut.Add(float64(b.points))
			return nil
		}
		var we *influx.WriteError
		if errors.As(err, &we) && we.BadData {
			return s.isolate(ctx, b, err)
		}
		wait := retryBackoff.Wait(failures, err)
		m.retries.Inc()
		s.pipeline.log.Warn("influxdb write failed; retrying", "points", b.points, "retry_in", wait, "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// isolate handles a batch refused as bad data: it writes each half on its own, down to single
// messages, so that only the messages the store refuses are quarantined and the rest is stored.
// Writing a point twice is harmless, so halves that had been partly written are simply resent.
func (s *Shipper) isolate(ctx context.Context, b batch, err error) error {
	if len(b.recs) == 1 {
		return s.quarantine(b.recs[0], err)
	}
	half := len(b.recs) / 2
	for _, part := range [][]spool.Record{b.recs[:half], b.recs[half:]} {
		for _, pb := range s.batches(part) {
			if err := s.ship(ctx, pb); err != nil {
				return err
			}
		}
	}
	return nil
}

// quarantine sets one refused message aside in the data directory, with the reason.
func (s *Shipper) quarantine(r spool.Record, cause error) error {
	dir := filepath.Join(s.DataDir, quarantineDir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	name := fmt.Sprintf("%d-%d-%d.lp", time.Now().UnixMilli(), r.Pos.Segment, r.Pos.Offset)
	body := "# refused by InfluxDB: " + strings.ReplaceAll(cause.Error(), "\n", " ") + "\n" + string(r.Payload) + "\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o640); err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	s.pipeline.metrics.quarantined.Inc()
	s.pipeline.log.Error("message quarantined: InfluxDB refused it as bad data", "file", filepath.Join(dir, name), "error", cause)
	return nil
}
