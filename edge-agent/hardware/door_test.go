package hardware

import (
	"reflect"
	"testing"
	"time"
)

func TestDoors(t *testing.T) {
	var (
		shut     = DoorState{Locked: true}
		released = DoorState{} // closed with the latch released
		open     = DoorState{Open: true}
	)
	unlock := func(pulse time.Duration) func(*Simulator) error {
		return func(s *Simulator) error { return s.Unlock(1, pulse) }
	}
	fault := func(f Fault, on bool) func(*Simulator) error {
		return func(s *Simulator) error { return s.SetFault(f, 1, on) }
	}
	lock := func(s *Simulator) error { return s.Lock(1) }
	byHand := func(s *Simulator) error { return s.OpenByHand(1, AccessKeypad) }

	// With the defaults the person opens 1..3 s after an unlock and closes 4..12 s later.
	type step struct {
		at   time.Duration // since the start
		do   func(*Simulator) error
		want DoorState // door 1 after do
	}
	tests := []struct {
		name        string
		steps       []step
		wantUnlocks int
		wantFaults  []string
	}{
		{"unlock opens after OpenDelay and relocks after HoldOpen", []step{
			{0, unlock(5 * time.Second), released},
			{900 * time.Millisecond, nil, released},
			{3 * time.Second, nil, open},
			{4900 * time.Millisecond, nil, open},
			{15 * time.Second, nil, shut},
		}, 1, nil},
		{"pulse shorter than OpenDelay: the person finds it locked", []step{
			{0, unlock(400 * time.Millisecond), released},
			{400 * time.Millisecond, nil, shut},
			{time.Minute, nil, shut},
		}, 1, nil},
		{"jammed never opens", []step{
			{0, fault(FaultJammed, true), shut},
			{0, unlock(5 * time.Second), shut},
			{3 * time.Second, nil, shut},
			{time.Minute, nil, shut},
		}, 1, []string{"jammed:1"}},
		{"ajar never closes until cleared", []step{
			{0, fault(FaultAjar, true), shut},
			{0, unlock(5 * time.Second), released},
			{3 * time.Second, nil, open},
			{time.Hour, nil, open},
			{time.Hour, fault(FaultAjar, false), shut},
		}, 1, nil},
		{"forced opens with no unlock and shuts when cleared", []step{
			{0, fault(FaultForced, true), open},
			{time.Hour, lock, open},
			{time.Hour, fault(FaultForced, false), shut},
		}, 0, nil},
		{"Lock re-engages a released latch", []step{
			{0, unlock(5 * time.Second), released},
			{500 * time.Millisecond, lock, shut},
			{time.Minute, nil, shut},
		}, 1, nil},
		{"Lock on an open door latches when it closes", []step{
			{0, byHand, open},
			{time.Second, lock, open},
			{12 * time.Second, nil, shut},
		}, 0, nil},
		{"OpenByHand opens without an actuation", []step{
			{0, byHand, open},
			{3900 * time.Millisecond, nil, open},
			{12 * time.Second, nil, shut},
		}, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, clk := newSim(t, SimConfig{Kind: KindLockerBank, Doors: 2}, time.Time{})
			for _, st := range tc.steps {
				clk.Advance(t0.Add(st.at).Sub(clk.Now()))
				if st.do != nil {
					must(t, st.do(s))
				}
				got := read(t, s)
				opens := got.Doors[0].Opens
				got.Doors[0].Opens, got.Doors[0].Via = 0, "" // checked below and in TestOpeningVia
				if got.Doors[0] != st.want {
					t.Fatalf("at %s: door 1 is %+v, want %+v", st.at, got.Doors[0], st.want)
				}
				if want := st.want; want.Open && opens == 0 {
					t.Fatalf("at %s: door 1 is open but its opening counter is 0", st.at)
				}
				if got.Doors[1] != shut {
					t.Fatalf("at %s: door 2 is %+v, want it untouched", st.at, got.Doors[1])
				}
			}
			if got := s.Unlocks(1); got != tc.wantUnlocks {
				t.Errorf("Unlocks(1) = %d, want %d", got, tc.wantUnlocks)
			}
			if got := s.Faults(); !reflect.DeepEqual(got, tc.wantFaults) {
				t.Errorf("Faults() = %q, want %q", got, tc.wantFaults)
			}
		})
	}
}

func TestFaultsList(t *testing.T) {
	s, _ := newSim(t, SimConfig{Kind: KindFridge, Doors: 12}, time.Time{})
	for _, f := range []struct {
		fault Fault
		door  int
	}{{FaultJammed, 3}, {FaultAjar, 12}, {FaultCompressor, 0}, {FaultDeadSensor, 0}, {FaultForced, 3}} {
		must(t, s.SetFault(f.fault, f.door, true))
	}
	must(t, s.SetFault(FaultDeadSensor, 0, false))
	want := []string{"ajar:12", "compressor", "forced:3", "jammed:3"}
	if got := s.Faults(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Faults() = %q, want %q", got, want)
	}
}

// The opening counter catches an opening shorter than the time between two reads.
func TestOpensCountsShortOpenings(t *testing.T) {
	s, clk := newSim(t, SimConfig{Kind: KindLockerBank, Doors: 1, OpenDelay: 10 * time.Millisecond, HoldOpen: 20 * time.Millisecond}, time.Time{})
	before := read(t, s).Doors[0]
	must(t, s.Unlock(1, time.Second))
	clk.Advance(time.Second) // the door opened and closed again between these two reads
	after := read(t, s).Doors[0]
	if after.Open || !after.Locked {
		t.Fatalf("door after the person left: %+v", after)
	}
	if after.Opens != before.Opens+1 {
		t.Fatalf("Opens went from %d to %d over one short opening", before.Opens, after.Opens)
	}
}

// Every opening says how it was let in, and the report stays with its opening until the next.
func TestOpeningVia(t *testing.T) {
	s, clk := newSim(t, SimConfig{Kind: KindLockerBank, Doors: 3}, time.Time{})
	must(t, s.Unlock(1, 5*time.Second))
	must(t, s.OpenByHand(2, AccessKeypad))
	must(t, s.SetFault(FaultForced, 3, true))
	clk.Advance(3 * time.Second)
	want := []Access{AccessRemote, AccessKeypad, AccessUnknown}
	for i, d := range read(t, s).Doors {
		if !d.Open || d.Opens != 1 || d.Via != want[i] {
			t.Errorf("door %d: %+v, want open once via %q", i+1, d, want[i])
		}
	}
	clk.Advance(time.Minute) // closed again: the last opening's report stays
	if d := read(t, s).Doors[1]; d.Open || d.Via != AccessKeypad {
		t.Errorf("door 2 after closing: %+v, want closed with via keypad kept", d)
	}
	must(t, s.OpenByHand(2, AccessService))
	if d := read(t, s).Doors[1]; d.Opens != 2 || d.Via != AccessService {
		t.Errorf("door 2 opened in service mode: %+v", d)
	}
	if err := s.OpenByHand(1, AccessRemote); err == nil {
		t.Error("OpenByHand via remote succeeded; only Unlock opens remotely")
	}
}
