package hardware

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// t0 is noon UTC, where the ambient is halfway between its extremes and rising to the 16:00 peak.
var t0 = time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)

// fakeClock is a Clock that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newSim returns a simulator on a fake clock starting at start (t0 when zero), with 4 doors
// unless cfg says otherwise.
func newSim(t *testing.T, cfg SimConfig, start time.Time) (*Simulator, *fakeClock) {
	t.Helper()
	if start.IsZero() {
		start = t0
	}
	clk := &fakeClock{now: start}
	cfg.Clock = clk
	if cfg.Doors == 0 {
		cfg.Doors = 4
	}
	s, err := NewSimulator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

func read(t *testing.T, s *Simulator) State {
	t.Helper()
	st, err := s.Read()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// control is the temperature a thermostat would regulate: the warmest compartment of a fridge,
// the enclosure of a locker bank.
func control(st State) float64 {
	if st.Compartments == nil {
		return st.Enclosure.C
	}
	c := math.Inf(-1)
	for _, tc := range st.Compartments {
		c = max(c, tc.C)
	}
	return c
}

func TestFridgeThermostatHoldsTemperature(t *testing.T) {
	s, clk := newSim(t, SimConfig{Kind: KindFridge}, time.Time{})
	const lo, hi = 1.5, 5.0
	on, cycled := false, false
	for elapsed := time.Duration(0); elapsed < 6*time.Hour; elapsed += 10 * time.Second {
		clk.Advance(10 * time.Second)
		st := read(t, s)
		if cycled {
			for i, c := range st.Compartments {
				if c.C < lo || c.C > hi {
					t.Fatalf("after %s compartment %d is %.2f °C, want %.1f..%.1f", elapsed, i+1, c.C, lo, hi)
				}
			}
		}
		switch c := control(st); {
		case c >= 4:
			on = true
		case c <= 2:
			cycled = cycled || on
			on = false
		}
		must(t, s.SetCompressor(on))
	}
	if !cycled {
		t.Fatal("the compressor never completed a cycle")
	}
}

func TestFridgeWarming(t *testing.T) {
	t.Run("compressor fault warms above 8 °C within 90 min", func(t *testing.T) {
		s, clk := newSim(t, SimConfig{Kind: KindFridge}, time.Time{})
		must(t, s.SetCompressor(true))
		must(t, s.SetFault(FaultCompressor, 0, true))
		var warm time.Duration
		for elapsed := time.Minute; elapsed <= 90*time.Minute && warm == 0; elapsed += time.Minute {
			clk.Advance(time.Minute)
			if st := read(t, s); st.Compartments[0].C > 8 {
				warm = elapsed
			}
		}
		// 20 − 17·e^(−t/2h) passes 8 °C at about 42 min.
		if warm < 20*time.Minute || warm == 0 {
			t.Fatalf("compartment passed 8 °C after %s, want between 20 and 90 min", warm)
		}
	})
	t.Run("an open door warms its compartment faster", func(t *testing.T) {
		s, clk := newSim(t, SimConfig{Kind: KindFridge, HoldOpen: time.Hour}, time.Time{})
		must(t, s.OpenByHand(1, AccessKeypad))
		clk.Advance(10 * time.Minute)
		st := read(t, s)
		if !st.Doors[0].Open {
			t.Fatal("door 1 closed before its hold time")
		}
		if open, closed := st.Compartments[0].C, st.Compartments[1].C; open < closed+5 {
			t.Fatalf("after 10 min the open compartment is %.2f °C and the closed one %.2f °C, want the open one >5 °C warmer", open, closed)
		}
	})
}

func TestLockerBankHeater(t *testing.T) {
	tests := []struct {
		name       string
		fault      bool
		span       time.Duration
		wantFreeze bool // the enclosure falls below 0 °C within span
	}{
		{"heater on keeps the enclosure above freezing", false, 6 * time.Hour, false},
		{"failed heater lets it freeze within 2 h", true, 2 * time.Hour, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, clk := newSim(t, SimConfig{Kind: KindLockerBank, AmbientMeanC: -5}, time.Time{})
			must(t, s.SetHeater(true))
			must(t, s.SetFault(FaultHeater, 0, tc.fault))
			coldest := math.Inf(1)
			for elapsed := time.Duration(0); elapsed < tc.span; elapsed += time.Minute {
				clk.Advance(time.Minute)
				st := read(t, s)
				if !st.Heater {
					t.Fatal("heater reads as off")
				}
				coldest = min(coldest, st.Enclosure.C)
			}
			if froze := coldest < 0; froze != tc.wantFreeze {
				t.Fatalf("coldest enclosure reading %.2f °C; want freezing %v", coldest, tc.wantFreeze)
			}
			if !tc.wantFreeze && coldest < 3 {
				t.Fatalf("coldest enclosure reading %.2f °C, want well above 0 °C", coldest)
			}
		})
	}
}

func TestAmbientDailyCycle(t *testing.T) {
	midnight := time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		cfg        SimConfig
		at4, at16  float64
		wantColder bool
	}{
		{"locker bank default: cold nights", SimConfig{Kind: KindLockerBank}, -4, 8, true},
		{"fridge default: steady indoors", SimConfig{Kind: KindFridge}, 20, 20, false},
		{"explicit climate", SimConfig{Kind: KindFridge, AmbientMeanC: 10, AmbientSwingC: 3}, 7, 13, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, clk := newSim(t, tc.cfg, midnight)
			clk.Advance(4 * time.Hour)
			at4 := read(t, s).Ambient
			clk.Advance(12 * time.Hour)
			at16 := read(t, s).Ambient
			if !at4.OK || !at16.OK {
				t.Fatal("ambient sensor gives no reading")
			}
			if math.Abs(at4.C-tc.at4) > 0.3 || math.Abs(at16.C-tc.at16) > 0.3 {
				t.Fatalf("ambient %.2f °C at 04:00 and %.2f °C at 16:00, want %.1f and %.1f", at4.C, at16.C, tc.at4, tc.at16)
			}
			if colder := at4.C < at16.C-1; colder != tc.wantColder {
				t.Fatalf("04:00 colder than 16:00 = %v, want %v", colder, tc.wantColder)
			}
		})
	}
}

func TestSensorFaults(t *testing.T) {
	// A strong daily swing moves every temperature between the checks.
	for _, kind := range []Kind{KindFridge, KindLockerBank} {
		for _, fault := range []Fault{FaultStuckSensor, FaultDeadSensor} {
			t.Run(string(kind)+"/"+string(fault), func(t *testing.T) {
				cfg := SimConfig{Kind: kind, AmbientMeanC: 10, AmbientSwingC: 8}
				s, clk := newSim(t, cfg, time.Date(2026, 1, 15, 4, 0, 0, 0, time.UTC))
				must(t, s.SetFault(fault, 0, true))
				first := read(t, s)
				clk.Advance(6 * time.Hour)
				later := read(t, s)
				temps := func(st State) []Temp { return append([]Temp{st.Ambient, st.Enclosure}, st.Compartments...) }
				switch fault {
				case FaultStuckSensor:
					if !reflect.DeepEqual(temps(first), temps(later)) {
						t.Fatalf("stuck readings moved:\n%v\n%v", temps(first), temps(later))
					}
					if math.Abs(later.Ambient.C-s.ambientAt(clk.Now())) < 4 {
						t.Fatalf("stuck ambient %.2f °C follows the model", later.Ambient.C)
					}
				case FaultDeadSensor:
					if n := len(later.Compartments); kind == KindFridge && n != s.Doors() {
						t.Fatalf("%d compartment readings, want one per door", n)
					}
					for _, tc := range temps(later) {
						if tc.OK {
							t.Fatalf("dead sensor gives a reading: %v", temps(later))
						}
					}
				}
				must(t, s.SetFault(fault, 0, false))
				live := read(t, s)
				if !live.Ambient.OK || math.Abs(live.Ambient.C-s.ambientAt(clk.Now())) > 0.3 {
					t.Fatalf("after clearing the fault ambient reads %v, want %.2f °C", live.Ambient, s.ambientAt(clk.Now()))
				}
				if okEnclosure := kind == KindLockerBank; live.Enclosure.OK != okEnclosure {
					t.Fatalf("enclosure OK = %v on a %s", live.Enclosure.OK, kind)
				}
			})
		}
	}
}

func TestErrors(t *testing.T) {
	bank, _ := newSim(t, SimConfig{Kind: KindLockerBank}, time.Time{})
	fridge, _ := newSim(t, SimConfig{Kind: KindFridge}, time.Time{})

	t.Run("bad door numbers", func(t *testing.T) {
		ops := map[string]func(n int) error{
			"Unlock":     func(n int) error { return bank.Unlock(n, time.Second) },
			"Lock":       bank.Lock,
			"OpenByHand": func(n int) error { return bank.OpenByHand(n, AccessKey) },
			"SetFault":   func(n int) error { return bank.SetFault(FaultJammed, n, true) },
		}
		for name, op := range ops {
			for _, n := range []int{-1, 0, 5} {
				if err := op(n); !errors.Is(err, ErrNoSuchDoor) {
					t.Errorf("%s(%d) = %v, want ErrNoSuchDoor", name, n, err)
				}
			}
		}
		if got := bank.Unlocks(5); got != 0 {
			t.Errorf("Unlocks(5) = %d, want 0", got)
		}
	})
	t.Run("unsupported", func(t *testing.T) {
		for name, err := range map[string]error{
			"SetHeater on a fridge":             fridge.SetHeater(true),
			"SetCompressor on a locker bank":    bank.SetCompressor(true),
			"heater fault on a fridge":          fridge.SetFault(FaultHeater, 0, true),
			"stuck heater on a fridge":          fridge.SetFault(FaultHeaterStuck, 0, true),
			"compressor fault on a locker bank": bank.SetFault(FaultCompressor, 0, true),
		} {
			if !errors.Is(err, ErrUnsupported) {
				t.Errorf("%s: %v, want ErrUnsupported", name, err)
			}
		}
	})
	t.Run("caller errors", func(t *testing.T) {
		if err := bank.SetFault("melted", 0, true); err == nil || !strings.Contains(err.Error(), "melted") {
			t.Errorf("unknown fault: %v", err)
		}
		if err := bank.Unlock(1, 0); err == nil {
			t.Error("Unlock with a zero pulse succeeded")
		}
		if got := bank.Unlocks(1); got != 0 {
			t.Errorf("refused unlocks were counted: %d", got)
		}
		if got := bank.Faults(); len(got) != 0 {
			t.Errorf("failed SetFault calls left faults %v", got)
		}
	})
}

func TestNewSimulatorValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  SimConfig
		want string // in the error
	}{
		{"no kind", SimConfig{Doors: 1}, "SimConfig.Kind"},
		{"unknown kind", SimConfig{Kind: "freezer", Doors: 1}, "SimConfig.Kind"},
		{"no doors", SimConfig{Kind: KindFridge}, "SimConfig.Doors"},
		{"too many doors", SimConfig{Kind: KindFridge, Doors: 65}, "SimConfig.Doors"},
		{"NaN mean", SimConfig{Kind: KindFridge, Doors: 1, AmbientMeanC: math.NaN()}, "SimConfig.AmbientMeanC"},
		{"negative swing", SimConfig{Kind: KindFridge, Doors: 1, AmbientSwingC: -1}, "SimConfig.AmbientSwingC"},
		{"negative noise", SimConfig{Kind: KindFridge, Doors: 1, NoiseC: -0.1}, "SimConfig.NoiseC"},
		{"negative open delay", SimConfig{Kind: KindFridge, Doors: 1, OpenDelay: -time.Second}, "SimConfig.OpenDelay"},
		{"negative hold", SimConfig{Kind: KindFridge, Doors: 1, HoldOpen: -time.Second}, "SimConfig.HoldOpen"},
		{"NaN start", SimConfig{Kind: KindFridge, Doors: 1, StartC: new(math.NaN())}, "SimConfig.StartC"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewSimulator(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewSimulator = %v, want an error naming %s", err, tc.want)
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		s, err := NewSimulator(SimConfig{Kind: KindLockerBank, Doors: 64})
		if err != nil {
			t.Fatal(err)
		}
		if st := read(t, s); len(st.Doors) != 64 || st.Compartments != nil || !st.Enclosure.OK || st.Enclosure.C < 4.7 { // starts at 5 °C, plus noise
			t.Fatalf("fresh locker bank reads %+v", st)
		}
	})
}

// A freezer starts at its setpoint and a fridge being commissioned at room temperature, not
// at a chilled unit's 3 °C.
func TestFridgeStartTemperature(t *testing.T) {
	for _, start := range []float64{-18, 20} {
		s, err := NewSimulator(SimConfig{Kind: KindFridge, Doors: 2, StartC: &start, NoiseC: 1e-9, Clock: &fakeClock{now: t0}})
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range read(t, s).Compartments {
			if math.Abs(c.C-start) > 0.01 {
				t.Errorf("StartC %v: compartment %d reads %v", start, i+1, c.C)
			}
		}
	}
}

func TestDeterminism(t *testing.T) {
	script := func(s *Simulator, clk *fakeClock) []State {
		must(t, s.Unlock(1, 5*time.Second))
		must(t, s.OpenByHand(2, AccessKeypad))
		must(t, s.SetCompressor(true))
		var out []State
		for range 120 {
			clk.Advance(5 * time.Second)
			out = append(out, read(t, s))
		}
		return out
	}
	run := func(seed int64) []State {
		s, clk := newSim(t, SimConfig{Kind: KindFridge, Seed: seed}, time.Time{})
		return script(s, clk)
	}
	a, b := run(7), run(7)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two simulators with the same seed and clock read differently")
	}
	if reflect.DeepEqual(a, run(8)) {
		t.Fatal("the seed does not change the readings")
	}
}

// TestLazyIntegration checks that the model does not depend on how often it is looked at:
// reading every second for an hour and reading once at the end give the same temperatures,
// with doors opening and closing at odd instants and the ambient changing in between.
func TestLazyIntegration(t *testing.T) {
	clk := &fakeClock{now: t0}
	cfg := SimConfig{Kind: KindFridge, Doors: 3, Seed: 3, AmbientMeanC: 20, AmbientSwingC: 6, HoldOpen: 10 * time.Minute, Clock: clk}
	often, err := NewSimulator(cfg)
	must(t, err)
	once, err := NewSimulator(cfg)
	must(t, err)
	for _, s := range []*Simulator{often, once} {
		must(t, s.Unlock(1, 5*time.Second))
		must(t, s.OpenByHand(2, AccessKeypad))
	}
	for range 3600 {
		clk.Advance(time.Second)
		read(t, often)
	}
	end := read(t, once)
	read(t, often)
	for i := range often.comp {
		if d := math.Abs(often.comp[i] - once.comp[i]); d > 1e-6 {
			t.Errorf("compartment %d: %.6f °C read every second, %.6f °C read once", i+1, often.comp[i], once.comp[i])
		}
		if d := math.Abs(end.Compartments[i].C - once.comp[i]); d > 5*cfg.NoiseC+0.25 {
			t.Errorf("compartment %d reads %.3f °C, model %.3f °C", i+1, end.Compartments[i].C, once.comp[i])
		}
	}
	if once.comp[0] <= once.comp[2]+0.1 || once.comp[1] <= once.comp[2]+0.1 {
		t.Errorf("door openings left no mark: %v", once.comp)
	}
}

func TestLongGapIsBounded(t *testing.T) {
	s, clk := newSim(t, SimConfig{Kind: KindFridge}, time.Time{})
	clk.Advance(365 * 24 * time.Hour)
	start := time.Now()
	st := read(t, s)
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Fatalf("a year's gap took %s to catch up", elapsed)
	}
	if c := st.Compartments[0].C; math.Abs(c-20) > 0.5 {
		t.Fatalf("after a year off, compartment reads %.2f °C, want the 20 °C room", c)
	}
}

func TestConcurrentUse(t *testing.T) {
	s, clk := newSim(t, SimConfig{Kind: KindFridge}, time.Time{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				door := g + 1
				clk.Advance(time.Second)
				s.Read()
				s.Unlock(door, time.Second)
				s.SetFault(FaultAjar, door, i%2 == 0)
				s.SetCompressor(i%3 == 0)
				s.Faults()
				s.Unlocks(door)
			}
		})
	}
	wg.Wait()
	for door := 1; door <= 4; door++ {
		if got := s.Unlocks(door); got != 200 {
			t.Errorf("door %d: %d unlocks counted, want 200", door, got)
		}
	}
}

// A stuck heater heats whatever the thermostat asks and reads as on; clearing it hands the
// heater back to SetHeater.
func TestHeaterStuck(t *testing.T) {
	s, clk := newSim(t, SimConfig{Kind: KindLockerBank, AmbientMeanC: 10, AmbientSwingC: 0.001}, time.Time{})
	must(t, s.SetHeater(false))
	must(t, s.SetFault(FaultHeaterStuck, 0, true))
	before := read(t, s)
	clk.Advance(time.Hour)
	after := read(t, s)
	if !after.Heater || after.Enclosure.C < before.Enclosure.C+10 {
		t.Fatalf("stuck heater: heater %v, enclosure %.1f -> %.1f °C, want on and much warmer", after.Heater, before.Enclosure.C, after.Enclosure.C)
	}
	if got := s.Faults(); !reflect.DeepEqual(got, []string{"heater-stuck"}) {
		t.Fatalf("Faults() = %q", got)
	}
	must(t, s.SetFault(FaultHeaterStuck, 0, false))
	if read(t, s).Heater {
		t.Fatal("heater still on after the stuck relay was cleared and SetHeater(false)")
	}
}

// SetAmbient holds the outside air steady, and the enclosure follows it: a heater failure is
// reachable at noon in a cold snap.
func TestSetAmbient(t *testing.T) {
	s, clk := newSim(t, SimConfig{Kind: KindLockerBank}, time.Time{})
	cold := -15.0
	must(t, s.SetAmbient(&cold))
	cold = 30 // SetAmbient keeps its own copy
	must(t, s.SetFault(FaultHeater, 0, true))
	must(t, s.SetHeater(true))
	clk.Advance(3 * time.Hour)
	st := read(t, s)
	if math.Abs(st.Ambient.C+15) > 0.3 || st.Enclosure.C > -10 {
		t.Fatalf("in a -15 °C cold snap with a failed heater: ambient %.1f, enclosure %.1f °C", st.Ambient.C, st.Enclosure.C)
	}
	if got := s.Ambient(); got == nil || *got != -15 {
		t.Fatalf("Ambient() = %v, want -15", got)
	}
	must(t, s.SetAmbient(nil))
	if got := s.Ambient(); got != nil {
		t.Fatalf("Ambient() after clearing = %v", *got)
	}
	if st := read(t, s); math.Abs(st.Ambient.C-s.ambientAt(clk.Now())) > 0.3 || math.Abs(st.Ambient.C+15) < 5 {
		t.Fatalf("after clearing, ambient reads %.1f °C, want the daily cycle's %.1f", st.Ambient.C, s.ambientAt(clk.Now()))
	}
	for _, bad := range []float64{-61, 61, math.NaN()} {
		if err := s.SetAmbient(&bad); err == nil {
			t.Errorf("SetAmbient(%v) succeeded", bad)
		}
	}
}

// The keypad hands the agent every code as typed, in order, and refuses rather than blocks when
// the agent falls behind.
func TestKeypadEntries(t *testing.T) {
	s, _ := newSim(t, SimConfig{Kind: KindLockerBank}, time.Time{})
	var kp Keypad = s
	typed := []string{"12345678", "", "not a code"}
	for _, c := range typed {
		if err := s.EnterCode(c); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range typed {
		if got := <-kp.Entries(); got != want {
			t.Fatalf("entry %q, want %q", got, want)
		}
	}
	for i := 0; i < keypadBuffer; i++ {
		if err := s.EnterCode("00000000"); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	if err := s.EnterCode("00000000"); !errors.Is(err, ErrKeypadBusy) {
		t.Fatalf("entry past the buffer: %v, want ErrKeypadBusy", err)
	}
	<-kp.Entries()
	if err := s.EnterCode("00000000"); err != nil {
		t.Fatalf("entry after one was read: %v", err)
	}
}
