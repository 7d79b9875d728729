package main

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

// probe measures publish-to-queryable latency on every message of a few sample units. It polls
// InfluxDB for the highest seq stored for each of them: a unit's messages reach InfluxDB in
// order (one connection, a FIFO spool, batches committed one after the other), so every seq
// up to that one is queryable, and each newly covered message's latency is the time from its
// publish to the answer that first showed it. The resolution is the poll interval plus one
// query; the cost to InfluxDB is one aggregate query per interval over the points not yet
// seen.
type probe struct {
	db       *testbed.Influx
	interval time.Duration
	tsStart  int64       // load.tsStart
	sampled  map[int]int // unit index -> index in ids
	ids      []string

	mu        sync.Mutex
	published [][]time.Time // per sampled unit, publish time by seq-firstSeq
	lat       []time.Duration
	errs      int
}

func newProbe(db *testbed.Influx, units []testbed.Unit, n, messages int, tsStart int64, interval time.Duration) *probe {
	p := &probe{db: db, interval: interval, tsStart: tsStart, sampled: map[int]int{}}
	n = min(n, len(units))
	for k := range n {
		i := k * len(units) / n // spread over the fleet
		p.sampled[i] = len(p.ids)
		p.ids = append(p.ids, units[i].ID)
		p.published = append(p.published, make([]time.Time, messages))
	}
	return p
}

// onPublish is load.onPublish: it notes when a sampled unit's message was published.
func (p *probe) onPublish(unit int, seq uint64, at time.Time) {
	if k, ok := p.sampled[unit]; ok {
		p.mu.Lock()
		p.published[k][seq-firstSeq] = at
		p.mu.Unlock()
	}
}

// run polls until every sampled message is queryable or ctx is done.
func (p *probe) run(ctx context.Context) {
	if len(p.ids) == 0 {
		return
	}
	seen := make([]uint64, len(p.ids)) // messages of each sampled unit already measured
	total := len(p.ids) * len(p.published[0])
	measured := 0
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for measured < total {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// Only points from the oldest message not yet seen on: the query stays small.
		oldest := uint64(len(p.published[0]))
		for _, s := range seen {
			oldest = min(oldest, s)
		}
		top, err := p.db.MaxSeq(p.ids, tsOf(p.tsStart, firstSeq+oldest))
		now := time.Now()
		p.mu.Lock()
		if err != nil {
			p.errs++
		}
		for k, id := range p.ids {
			maxSeq, ok := top[id]
			if !ok || maxSeq < firstSeq {
				continue
			}
			upTo := min(maxSeq-firstSeq+1, uint64(len(p.published[k])))
			for ; seen[k] < upTo; seen[k]++ {
				if at := p.published[k][seen[k]]; !at.IsZero() {
					p.lat = append(p.lat, now.Sub(at))
				}
				measured++
			}
		}
		p.mu.Unlock()
	}
}

// latencies returns the measured latencies, sorted.
func (p *probe) latencies() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := append([]time.Duration(nil), p.lat...)
	sort.Slice(out, func(a, b int) bool { return out[a] < out[b] })
	return out
}
