package telemetry

import (
	"testing"
	"time"
)

func TestSeqTracker(t *testing.T) {
	t0 := time.Unix(0, 0)
	for _, tc := range []struct {
		name     string
		seqs     []uint64
		gapAfter time.Duration // time between messages
		wantDups int
		wantLost uint64
	}{
		{"in order", []uint64{5, 6, 7, 8}, time.Second, 0, 0},
		{"duplicates", []uint64{5, 6, 6, 7, 5}, time.Second, 2, 0},
		{"lanes out of order, nothing lost", []uint64{10, 14, 15, 11, 12, 13, 16}, time.Second, 0, 0},
		{"duplicate ahead of the watermark", []uint64{10, 14, 14, 11, 12, 13}, time.Second, 1, 0},
		{"hole that never fills", []uint64{10, 13, 14, 15}, 6 * time.Minute, 0, 2},
		{"restart from 1", []uint64{500, 501, 1, 2, 3}, time.Second, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s seqTracker
			dups, lost := 0, uint64(0)
			for i, seq := range tc.seqs {
				d, l := s.record(seq, t0.Add(time.Duration(i)*tc.gapAfter), DefaultHoleTimeout)
				if d {
					dups++
				}
				lost += l
			}
			if dups != tc.wantDups || lost != tc.wantLost {
				t.Fatalf("duplicates %d, lost %d; want %d, %d", dups, lost, tc.wantDups, tc.wantLost)
			}
		})
	}
}
