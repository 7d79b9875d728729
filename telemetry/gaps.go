package telemetry

import "time"

// Sequence tracking. An agent's two outbox lanes mean its messages may arrive out of seq order
// (events overtake a backlog of snapshots), so a hole in the sequence is only a loss once it has
// stayed open for the hole timeout (Options.HoleTimeout) or the out-of-order window is full.
const (
	// DefaultHoleTimeout is how long a hole in a unit's sequence may stay open before the
	// numbers in it count as lost.
	DefaultHoleTimeout = 10 * time.Minute
	maxAhead           = 4096 // seqs remembered above the watermark
)

// seqTracker follows one device's sequence numbers.
type seqTracker struct {
	watermark uint64              // every seq <= watermark was seen (or given up on)
	ahead     map[uint64]struct{} // seqs seen above watermark+1
	holeSince time.Time           // when the current lowest hole opened
}

// record records seq at time now and reports whether it is a duplicate and how many
// sequence numbers it now counts as lost: those of a hole open for longer than holeTimeout.
func (s *seqTracker) record(seq uint64, now time.Time, holeTimeout time.Duration) (duplicate bool, lost uint64) {
	switch {
	case s.watermark == 0 && s.ahead == nil:
		s.watermark = seq // first message since the hub started: nothing before it is known
		return false, 0
	case seq == 1 && s.watermark > 1:
		*s = seqTracker{watermark: 1} // the unit lost its state and started over
		return false, 0
	case seq <= s.watermark:
		return true, 0
	}
	if _, dup := s.ahead[seq]; dup {
		return true, 0
	}
	if seq == s.watermark+1 {
		s.watermark = seq
	} else {
		if s.ahead == nil {
			s.ahead = make(map[uint64]struct{})
		}
		if len(s.ahead) == 0 {
			s.holeSince = now
		}
		s.ahead[seq] = struct{}{}
	}
	s.advance()
	if len(s.ahead) > 0 && (len(s.ahead) > maxAhead || now.Sub(s.holeSince) > holeTimeout) {
		lost = s.skipHole()
		s.holeSince = now
	}
	return false, lost
}

// advance moves the watermark over seqs that have arrived.
func (s *seqTracker) advance() {
	for {
		if _, ok := s.ahead[s.watermark+1]; !ok {
			return
		}
		delete(s.ahead, s.watermark+1)
		s.watermark++
	}
}

// skipHole gives up on the lowest hole: its seqs are lost. It returns how many.
func (s *seqTracker) skipHole() uint64 {
	next := uint64(0)
	for seq := range s.ahead {
		if next == 0 || seq < next {
			next = seq
		}
	}
	lost := next - s.watermark - 1
	s.watermark = next - 1
	s.advance()
	return lost
}
