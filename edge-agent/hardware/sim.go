package hardware

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Physics of the simulator. The rates are per compartment or per enclosure, in °C per second.
const (
	fridgeStartC    = 3.0
	fridgeTauClosed = 2 * time.Hour   // warming toward ambient through closed insulation
	fridgeTauOpen   = 3 * time.Minute // warm air floods in through an open door
	compressorRate  = 0.006           // cooling while the compressor runs: a duty cycle of about 40 % holds 3 °C in a 20 °C room

	enclosureMinStartC = 5.0
	enclosureTau       = 40 * time.Minute
	heaterRate         = 0.01 // holds the enclosure ~24 °C above ambient at equilibrium

	warmestAt = 16 * time.Hour // time of day (UTC) of the ambient maximum; the minimum is 12 h later

	maxStep    = time.Second
	maxAdvance = 48 * time.Hour // ≫ the largest time constant: any state older than this is forgotten
	maxDoors   = 64
)

// RoomC is the air around a simulated fridge by default (indoors), and so the temperature a
// fridge being commissioned starts at.
const RoomC = 20.0

// Clock is the time source of the simulator, injected so tests can drive physics
// deterministically.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// SimConfig describes a simulated unit. Zero fields take the defaults given with them.
type SimConfig struct {
	Kind  Kind
	Doors int   // 1..64
	Seed  int64 // seeds noise and the simulated people, for reproducible runs
	// AmbientMeanC and AmbientSwingC set the outside air to
	// AmbientMeanC + AmbientSwingC·cos(2π(t − 16:00)/24h): warmest at 16:00 and coldest at 04:00
	// UTC (the simulator's local time). They default as a pair, only when both are zero: RoomC
	// and 0 for fridges (indoors), 2 °C and 6 for locker banks (outdoors or in a garage, with
	// cold nights). Any other pair is taken as given, so a steady -5 °C is {-5, 0}.
	AmbientMeanC  float64
	AmbientSwingC float64
	// OpenDelay is how long after an unlock a simulated person opens the door; default 2s,
	// randomised ±50% per unlock. The person opens only if the latch is still released then, so
	// an unlock pulse shorter than the delay drawn leaves the door shut and locked: pulses longer
	// than 1.5×OpenDelay always open it, pulses shorter than 0.5×OpenDelay never do.
	OpenDelay time.Duration
	HoldOpen  time.Duration // how long the person keeps the door open; default 8s, randomised ±50%
	NoiseC    float64       // standard deviation of the Gaussian noise on every temperature reading; default 0.05
	Clock     Clock         // default: real time
	// StartC is the fridge compartments' temperature at start, °C; nil: 3 °C, a chilled unit at
	// its setpoint. A freezer starts at its own setpoint; a unit being commissioned (just
	// installed, or back from maintenance) starts at room temperature and pulls down.
	StartC *float64
}

// withDefaults validates c and fills in its zero fields.
func (c SimConfig) withDefaults() (SimConfig, error) {
	switch c.Kind {
	case KindLockerBank, KindFridge:
	default:
		return c, fmt.Errorf("hardware: SimConfig.Kind %q: want %q or %q", c.Kind, KindLockerBank, KindFridge)
	}
	if c.Doors < 1 || c.Doors > maxDoors {
		return c, fmt.Errorf("hardware: SimConfig.Doors %d: want 1..%d", c.Doors, maxDoors)
	}
	if math.IsNaN(c.AmbientMeanC) || math.IsInf(c.AmbientMeanC, 0) {
		return c, fmt.Errorf("hardware: SimConfig.AmbientMeanC %v: want a finite temperature", c.AmbientMeanC)
	}
	// !(x >= 0) rather than x < 0 so that NaN is refused too.
	if !(c.AmbientSwingC >= 0) || math.IsInf(c.AmbientSwingC, 0) {
		return c, fmt.Errorf("hardware: SimConfig.AmbientSwingC %v: want a finite amplitude >= 0", c.AmbientSwingC)
	}
	if !(c.NoiseC >= 0) || math.IsInf(c.NoiseC, 0) {
		return c, fmt.Errorf("hardware: SimConfig.NoiseC %v: want a finite standard deviation >= 0", c.NoiseC)
	}
	if c.OpenDelay < 0 {
		return c, fmt.Errorf("hardware: SimConfig.OpenDelay %s: want >= 0", c.OpenDelay)
	}
	if c.HoldOpen < 0 {
		return c, fmt.Errorf("hardware: SimConfig.HoldOpen %s: want >= 0", c.HoldOpen)
	}

	if c.AmbientMeanC == 0 && c.AmbientSwingC == 0 {
		c.AmbientMeanC, c.AmbientSwingC = RoomC, 0
		if c.Kind == KindLockerBank {
			c.AmbientMeanC, c.AmbientSwingC = 2, 6
		}
	}
	if c.OpenDelay == 0 {
		c.OpenDelay = 2 * time.Second
	}
	if c.HoldOpen == 0 {
		c.HoldOpen = 8 * time.Second
	}
	if c.NoiseC == 0 {
		c.NoiseC = 0.05
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.StartC == nil {
		start := fridgeStartC
		c.StartC = &start
	} else if !(*c.StartC >= -60 && *c.StartC <= 60) { // also refuses NaN
		return c, fmt.Errorf("hardware: SimConfig.StartC %v: want -60..60 °C", *c.StartC)
	}
	return c, nil
}

// Simulator is a simulated unit with thermal physics, simulated people at the doors and
// injectable faults. Time is whatever its Clock says: every method first advances the model
// to the clock's now, so a Simulator needs no goroutine and a test clock drives it exactly.
type Simulator struct {
	cfg SimConfig // defaults applied; read-only after NewSimulator

	mu         sync.Mutex
	rng        *rand.Rand
	now        time.Time // the instant the model has been advanced to
	doors      []door
	comp       []float64 // fridge compartment temperatures, °C; nil for locker banks
	encl       float64   // locker bank enclosure temperature, °C
	heater     bool      // energised
	compressor bool      // energised

	heaterFailed, compressorFailed bool
	heaterStuck                    bool
	dead                           bool
	ambient                        *float64 // a steady outside temperature set by SetAmbient; nil follows the daily cycle
	frozen                         *temps   // the readings a stuck sensor keeps reporting; nil unless stuck

	keypad chan string // codes typed and not yet taken by the agent
}

var (
	_ Device = (*Simulator)(nil)
	_ Keypad = (*Simulator)(nil)
)

// keypadBuffer is how many typed codes the simulated keypad holds for the agent, which checks
// one at a time; a real keypad's controller buffers a few entries too.
const keypadBuffer = 8

// ErrKeypadBusy is EnterCode's answer while the keypad holds keypadBuffer codes not yet read.
var ErrKeypadBusy = errors.New("hardware: keypad busy: too many codes waiting to be checked")

// temps is one set of temperature readings.
type temps struct {
	comp          []Temp
	ambient, encl Temp
}

// NewSimulator returns a simulated unit with all doors closed and locked, its actuator off,
// fridge compartments at StartC (3 °C by default) and a locker bank's enclosure at the ambient temperature but no
// colder than 5 °C. It returns an error naming the field when cfg is invalid.
func NewSimulator(cfg SimConfig) (*Simulator, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Simulator{
		cfg:    cfg,
		rng:    rand.New(rand.NewPCG(uint64(cfg.Seed), 0)),
		now:    cfg.Clock.Now(),
		doors:  make([]door, cfg.Doors),
		keypad: make(chan string, keypadBuffer),
	}
	for i := range s.doors {
		s.doors[i].latched = true
	}
	if cfg.Kind == KindFridge {
		s.comp = make([]float64, cfg.Doors)
		for i := range s.comp {
			s.comp[i] = *cfg.StartC
		}
	} else {
		s.encl = max(s.ambientAt(s.now), enclosureMinStartC)
	}
	return s, nil
}

// Kind returns the kind of unit simulated.
func (s *Simulator) Kind() Kind { return s.cfg.Kind }

// Doors returns the number of doors.
func (s *Simulator) Doors() int { return s.cfg.Doors }

// Read returns what the sensors report now.
func (s *Simulator) Read() (State, error) {
	s.lockAndAdvance()
	defer s.mu.Unlock()
	st := State{Doors: make([]DoorState, len(s.doors)), Heater: s.heating(), Compressor: s.compressor}
	for i := range s.doors {
		st.Doors[i] = s.doors[i].state()
	}
	var t temps
	switch {
	case s.dead:
		if s.comp != nil {
			t.comp = make([]Temp, len(s.comp))
		}
	case s.frozen != nil:
		t = *s.frozen
		t.comp = slices.Clone(t.comp) // the caller may keep or change its State
	default:
		t = s.sense()
	}
	st.Compartments, st.Ambient, st.Enclosure = t.comp, t.ambient, t.encl
	return st, nil
}

// Unlock releases door n's latch for pulse and sends a simulated person to open the door after
// OpenDelay (see SimConfig.OpenDelay). A jammed latch does not release, but the actuation is
// still counted. A pulse <= 0 is refused as a caller error.
func (s *Simulator) Unlock(n int, pulse time.Duration) error {
	s.lockAndAdvance()
	defer s.mu.Unlock()
	d, err := s.door(n)
	if err != nil {
		return err
	}
	if pulse <= 0 {
		return fmt.Errorf("hardware: unlock door %d: pulse %s: want > 0", n, pulse)
	}
	d.unlock(s.now, pulse, s.jitter(s.cfg.OpenDelay), s.jitter(s.cfg.HoldOpen))
	return nil
}

// Lock re-engages door n's latch at once.
func (s *Simulator) Lock(n int) error {
	s.lockAndAdvance()
	defer s.mu.Unlock()
	d, err := s.door(n)
	if err != nil {
		return err
	}
	d.lock()
	return nil
}

// OpenByHand opens door n at the unit itself, without Unlock: a courier's keypad code, a key or
// service mode (via reports which, see DoorState.Via), or AccessUnknown to play a unit whose
// hardware cannot tell. It is not counted by Unlocks and works on a jammed latch. The person
// closes the door after HoldOpen, unless it is ajar. An open door is left as it is. It returns
// ErrNoSuchDoor for a bad n and an error for AccessRemote, which only Unlock can cause.
func (s *Simulator) OpenByHand(n int, via Access) error {
	if via != AccessUnknown && !via.Local() {
		return fmt.Errorf("hardware: open door %d by hand via %q: want keypad, key, service or unknown", n, via)
	}
	s.lockAndAdvance()
	defer s.mu.Unlock()
	d, err := s.door(n)
	if err != nil {
		return err
	}
	d.openByHand(s.now, s.jitter(s.cfg.HoldOpen), via)
	return nil
}

// EnterCode types code at the unit's keypad, as a resident collecting a parcel does. It never
// blocks: with keypadBuffer codes still waiting to be read it returns ErrKeypadBusy.
func (s *Simulator) EnterCode(code string) error {
	select {
	case s.keypad <- code:
		return nil
	default:
		return ErrKeypadBusy
	}
}

// Entries returns the codes typed with EnterCode; see Keypad.
func (s *Simulator) Entries() <-chan string { return s.keypad }

// Unlocks returns how many times door n's lock has been actuated by Unlock (0 for a bad door).
func (s *Simulator) Unlocks(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.door(n)
	if err != nil {
		return 0
	}
	return d.unlocks
}

// SetHeater energises or de-energises a locker bank's heater; ErrUnsupported on fridges.
func (s *Simulator) SetHeater(on bool) error {
	return s.setActuator(KindLockerBank, "heater", &s.heater, on)
}

// SetCompressor energises or de-energises a fridge's compressor; ErrUnsupported on locker
// banks.
func (s *Simulator) SetCompressor(on bool) error {
	return s.setActuator(KindFridge, "compressor", &s.compressor, on)
}

func (s *Simulator) setActuator(kind Kind, name string, out *bool, on bool) error {
	if s.cfg.Kind != kind {
		return fmt.Errorf("%w: a %s has no %s", ErrUnsupported, s.cfg.Kind, name)
	}
	s.lockAndAdvance()
	defer s.mu.Unlock()
	*out = on
	return nil
}

// lockAndAdvance takes the mutex and brings the model up to the clock; the caller unlocks.
func (s *Simulator) lockAndAdvance() {
	s.mu.Lock()
	s.advance(s.cfg.Clock.Now())
}

// door returns door n, 1-based.
func (s *Simulator) door(n int) (*door, error) {
	if n < 1 || n > len(s.doors) {
		return nil, fmt.Errorf("%w: %d (doors are 1..%d)", ErrNoSuchDoor, n, len(s.doors))
	}
	return &s.doors[n-1], nil
}

// jitter draws a duration uniformly within ±50% of d.
func (s *Simulator) jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(s.rng.Int64N(int64(d)))
}

// advance brings the model from s.now to to. Sub-steps are at most maxStep long and also end
// at every door event, so an opening or closing door changes the physics at the right instant.
// Each sub-step is the exact solution for constant inputs (see relax), so however the interval
// is cut (however often the methods are called) the result is the same up to rounding. A clock
// going backwards is ignored.
func (s *Simulator) advance(to time.Time) {
	if from := to.Add(-maxAdvance); s.now.Before(from) {
		// After maxAdvance the temperatures no longer depend on where they started, so the
		// rest of a long gap (a laptop asleep, a clock jump) is skipped to stay bounded.
		s.settleDoors(from)
		s.now = from
	}
	// Events already due: one an action scheduled for the instant it ran, or the overdue close
	// of a door whose ajar fault was just cleared. Every later event lies ahead, so dt > 0 below.
	s.settleDoors(s.now)
	for s.now.Before(to) {
		dt := min(maxStep, to.Sub(s.now))
		for i := range s.doors {
			if at, ok := s.doors[i].next(); ok {
				dt = min(dt, at.Sub(s.now))
			}
		}
		s.stepThermal(dt)
		s.now = s.now.Add(dt)
		s.settleDoors(s.now)
	}
}

func (s *Simulator) settleDoors(t time.Time) {
	for i := range s.doors {
		s.doors[i].settle(t)
	}
}

// stepThermal advances the temperatures by dt, taking the ambient at the middle of the step.
func (s *Simulator) stepThermal(dt time.Duration) {
	ambient := s.ambientAt(s.now.Add(dt / 2))
	if s.cfg.Kind == KindLockerBank {
		var rate float64
		if s.heating() && !s.heaterFailed {
			rate = heaterRate
		}
		s.encl = relax(s.encl, ambient, enclosureTau, rate, dt)
		return
	}
	var rate float64
	if s.compressor && !s.compressorFailed {
		rate = -compressorRate
	}
	for i := range s.comp {
		tau := fridgeTauClosed
		if s.doors[i].open {
			tau = fridgeTauOpen
		}
		s.comp[i] = relax(s.comp[i], ambient, tau, rate, dt)
	}
}

// relax advances by dt a thermal mass that exchanges heat with air at ambient with time
// constant tau while an actuator adds rate °C/s. It is the exact solution of
// dT/dt = (ambient−T)/tau + rate for constant inputs, so it is stable for any dt and splitting
// dt into pieces does not change the result.
func relax(temp, ambient float64, tau time.Duration, rate float64, dt time.Duration) float64 {
	steady := ambient + rate*tau.Seconds() // where the mass would end up
	return steady + (temp-steady)*math.Exp(-dt.Seconds()/tau.Seconds())
}

// heating reports whether the heater is energised: as asked, or always while its relay is stuck.
func (s *Simulator) heating() bool { return s.heater || s.heaterStuck }

// SetAmbient holds the outside air at c °C from now on, as a cold snap or a heatwave would,
// or with nil returns it to the daily cycle of SimConfig. It returns an error for a c outside
// -60..60 °C, beyond any climate a unit is built for.
func (s *Simulator) SetAmbient(c *float64) error {
	if c != nil && !(*c >= -60 && *c <= 60) { // also refuses NaN
		return fmt.Errorf("hardware: ambient %v °C: want -60..60", *c)
	}
	s.lockAndAdvance()
	defer s.mu.Unlock()
	if c != nil {
		v := *c
		c = &v
	}
	s.ambient = c
	return nil
}

// Ambient returns the steady outside temperature set by SetAmbient, or nil while the air
// follows the daily cycle.
func (s *Simulator) Ambient() *float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ambient == nil {
		return nil
	}
	v := *s.ambient
	return &v
}

// ambientAt is the outside air temperature at t.
func (s *Simulator) ambientAt(t time.Time) float64 {
	if s.ambient != nil {
		return *s.ambient
	}
	ofDay := t.Sub(t.Truncate(24 * time.Hour)) // Truncate counts from the zero time, a UTC midnight
	phase := 2 * math.Pi * (ofDay - warmestAt).Hours() / 24
	return s.cfg.AmbientMeanC + s.cfg.AmbientSwingC*math.Cos(phase)
}

// sense reads every temperature sensor of the unit, with noise.
func (s *Simulator) sense() temps {
	t := temps{ambient: s.noisy(s.ambientAt(s.now))}
	if s.cfg.Kind == KindLockerBank {
		t.encl = s.noisy(s.encl)
		return t
	}
	t.comp = make([]Temp, len(s.comp))
	for i, c := range s.comp {
		t.comp[i] = s.noisy(c)
	}
	return t
}

func (s *Simulator) noisy(c float64) Temp {
	return Temp{C: c + s.rng.NormFloat64()*s.cfg.NoiseC, OK: true}
}
