package main

import (
	"fmt"

	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

// storedSeqs returns how many points of device carry each seq, over the measurements that
// hold a seq: snapshots ("unit") and door events ("door_event"). InfluxDB overwrites a point
// written twice with the same series and time, so a count above one means the hub stored one
// message as two points.
func storedSeqs(db *testbed.Influx, device string) (map[uint64]int, error) {
	out := map[uint64]int{}
	for _, m := range []string{"unit", "door_event"} {
		res, err := db.Query(fmt.Sprintf(`SELECT "seq" FROM %q WHERE "device" = '%s'`, m, device))
		if err != nil {
			return nil, err
		}
		for _, s := range res {
			for _, row := range s.Values {
				if v, ok := row[1].(float64); ok {
					out[uint64(v)]++
				}
			}
		}
	}
	return out, nil
}

// delivery is what a case's units sent, what the hub acknowledged and what InfluxDB holds,
// counted in messages with a seq.
type delivery struct {
	Sent       int64 `json:"sent"`         // messages the agents emitted
	Acked      int64 `json:"acknowledged"` // of those, acknowledged by the hub
	Unacked    int64 `json:"unacknowledged_at_stop"`
	Results    int64 `json:"command_results"` // acknowledged but not stored in InfluxDB by design
	Arrived    int64 `json:"in_influxdb"`     // distinct seqs in InfluxDB
	Lost       int64 `json:"lost"`            // acknowledged, not a result, not in InfluxDB
	Duplicates int64 `json:"duplicate_points"`
	// Missing lists, per unit with a loss, the first acknowledged seqs absent from InfluxDB.
	Missing map[string][]uint64 `json:"missing,omitempty"`
}

// maxMissingListed bounds the seqs listed per unit in a report.
const maxMissingListed = 10

// tally compares one unit's ledger with the seqs InfluxDB holds for it and adds it to d.
// Results take a seq each but are not telemetry, so up to l.Results acknowledged seqs may be
// absent without a loss; which seqs they were is not known here (see agentLogHandler).
func (d *delivery) tally(l unitLedger, stored map[uint64]int) {
	pending := map[uint64]bool{}
	for _, s := range l.Pending {
		pending[s] = true
	}
	var missing []uint64
	for seq := uint64(1); seq <= l.LastSeq; seq++ {
		if !pending[seq] && stored[seq] == 0 {
			missing = append(missing, seq)
		}
	}
	for _, n := range stored {
		d.Duplicates += int64(n - 1)
	}
	d.Sent += int64(l.LastSeq)
	d.Unacked += int64(len(pending))
	d.Acked += int64(l.LastSeq) - int64(len(pending))
	d.Results += int64(l.Results)
	d.Arrived += int64(len(stored))
	if lost := len(missing) - l.Results; lost > 0 {
		d.Lost += int64(lost)
		if d.Missing == nil {
			d.Missing = map[string][]uint64{}
		}
		d.Missing[l.ID] = missing[:min(len(missing), maxMissingListed)]
	}
}

// verifyDelivery tallies every unit against InfluxDB.
func verifyDelivery(db *testbed.Influx, ledgers []unitLedger) (*delivery, error) {
	d := &delivery{}
	for _, l := range ledgers {
		stored, err := storedSeqs(db, l.ID)
		if err != nil {
			return d, err
		}
		d.tally(l, stored)
	}
	return d, nil
}
