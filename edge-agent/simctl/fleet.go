// Package simctl drives simulated units on demand: faults on and off, a site's outside
// temperature, a unit's network down and up, the simulated people (carriers who deliver parcels
// through the hub and residents who collect them with their codes), and a resident typing a
// pickup code at a unit's keypad.
// Fleet holds the units and the state that spans them; Handler serves it as a small JSON API
// on loopback, and Client is how `lockerhub sim` talks to that API. `lockerhub simulate`,
// `lockerhub demo` and the edge-agent binary with simulated hardware all serve the same
// Handler, so a technician, a support engineer or a test drives any of them the same way.
//
// Faults come from two sources that must not undo each other: random ones (RandomFaults) clear
// themselves after a few minutes, while a fault set on demand stays until it is cleared on
// demand. Fleet remembers which faults were set on demand, and a random fault's timer leaves
// those alone.
package simctl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/agent"
	"github.com/lockerhub/lockerhub/edge-agent/hardware"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/logs"
)

// FaultStaleTelemetry is the one fault that lives in the agent rather than the hardware: the
// unit stays connected and keeps sending door events, but no periodic snapshots.
const FaultStaleTelemetry hardware.Fault = "stale-telemetry"

// faultNetwork names a network outage among a unit's faults (set with SetNetwork).
const faultNetwork = "network"

// Errors of Fleet's methods, possibly wrapped; hardware.ErrNoSuchDoor and
// hardware.ErrUnsupported come back from the hardware as they are.
var (
	ErrUnknownUnit  = errors.New("unknown unit")
	ErrUnknownSite  = errors.New("unknown site")
	ErrUnknownFault = errors.New("unknown fault")
	ErrNoPeople     = errors.New("this simulator has no simulated people")
)

// Unit is one simulated unit: its registry identity, its hardware and the agent running it.
type Unit struct {
	ID, Site string
	HW       *hardware.Simulator
	Agent    *agent.Agent
}

// Fleet is a set of simulated units driven together. It is safe for concurrent use.
type Fleet struct {
	units []*Unit // sorted by id
	byID  map[string]*Unit
	log   *slog.Logger

	mu       sync.Mutex
	onDemand map[string]bool // "unit/fault/door" set on demand: random timers leave them alone
	atRandom map[string]bool // "unit/fault/door" set at random and not cleared yet: not set again meanwhile
	observe  func(FaultEvent)

	people     atomic.Bool
	withPeople bool
}

// NewFleet returns a fleet of units. withPeople says whether the caller runs People, so that
// turning people on is refused where nobody would come. log may be nil.
func NewFleet(units []*Unit, withPeople bool, log *slog.Logger) *Fleet {
	log = logs.OrDiscard(log)
	f := &Fleet{units: slices.Clone(units), byID: make(map[string]*Unit, len(units)), log: log,
		onDemand: map[string]bool{}, atRandom: map[string]bool{}, withPeople: withPeople, observe: func(FaultEvent) {}}
	slices.SortFunc(f.units, func(a, b *Unit) int { return strings.Compare(a.ID, b.ID) })
	for _, u := range f.units {
		f.byID[u.ID] = u
	}
	return f
}

// Units returns the units, sorted by id.
func (f *Fleet) Units() []*Unit { return f.units }

// FaultEvent is a fault starting or clearing on a unit, at random or on demand.
type FaultEvent struct {
	At       time.Time      `json:"at"`
	Unit     string         `json:"unit"`
	Site     string         `json:"site,omitempty"`
	Fault    hardware.Fault `json:"fault"` // a hardware fault, stale-telemetry or network
	Door     int            `json:"door,omitempty"`
	On       bool           `json:"on"`
	OnDemand bool           `json:"on_demand"`       // set through the control surface, not at random
	Lasts    time.Duration  `json:"lasts,omitempty"` // how long a random fault is to last, when it starts
}

// Observe makes fn see every fault as it starts or clears, such as the demo that says which
// faults it injected. fn runs with the fleet locked, in the order of the events: it must be
// quick and must not call the fleet. Call it before the fleet is driven.
func (f *Fleet) Observe(fn func(FaultEvent)) { f.observe = fn }

// event tells the observer of a fault; the caller holds f.mu.
func (f *Fleet) event(u *Unit, fault hardware.Fault, door int, on, onDemand bool, lasts time.Duration) {
	f.observe(FaultEvent{At: time.Now(), Unit: u.ID, Site: u.Site, Fault: fault, Door: door, On: on, OnDemand: onDemand, Lasts: lasts})
}

// unit returns the unit with id, or ErrUnknownUnit.
func (f *Fleet) unit(id string) (*Unit, error) {
	u, ok := f.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownUnit, id)
	}
	return u, nil
}

func faultKey(id string, fault hardware.Fault, door int) string {
	return id + "/" + string(fault) + "/" + strconv.Itoa(door)
}

// SetFault turns a fault of unit id on or off on demand; it stays until cleared on demand.
// door is 1..doors for the per-door faults (jammed, ajar, forced) and must be 0 for the others.
// It returns ErrUnknownUnit, ErrUnknownFault, hardware.ErrNoSuchDoor or hardware.ErrUnsupported
// (a heater fault on a fridge), possibly wrapped.
func (f *Fleet) SetFault(id string, fault hardware.Fault, door int, on bool) error {
	u, err := f.unit(id)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.apply(u, fault, door, on); err != nil {
		return err
	}
	key := faultKey(id, fault, door)
	if on {
		f.onDemand[key] = true
	} else {
		delete(f.onDemand, key)
	}
	delete(f.atRandom, key) // its timer now leaves it alone
	f.event(u, fault, door, on, true, 0)
	f.log.Info("fault set on demand", "device", id, "fault", fault, "door", door, "on", on)
	return nil
}

// apply switches the fault on the hardware or the agent; the caller holds f.mu.
func (f *Fleet) apply(u *Unit, fault hardware.Fault, door int, on bool) error {
	if !fault.DoorFault() && door != 0 {
		return fmt.Errorf("fault %s: %w: %s is a fault of the whole unit, give no door", fault, hardware.ErrNoSuchDoor, fault)
	}
	switch {
	case fault == FaultStaleTelemetry:
		u.Agent.SetTelemetry(!on)
		return nil
	case slices.Contains(hardware.AllFaults, fault):
		return u.HW.SetFault(fault, door, on)
	}
	return fmt.Errorf("%w %q: want one of %s", ErrUnknownFault, fault, strings.Join(FaultNames(), ", "))
}

// FaultNames returns every fault SetFault knows.
func FaultNames() []string {
	names := []string{string(FaultStaleTelemetry)}
	for _, f := range hardware.AllFaults {
		names = append(names, string(f))
	}
	slices.Sort(names)
	return names
}

// SetNetwork takes unit id's network down (up false) or brings it back, as a real outage
// would: the unit goes offline and its outbox keeps what it records meanwhile. It returns
// ErrUnknownUnit.
func (f *Fleet) SetNetwork(id string, up bool) error {
	u, err := f.unit(id)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	u.Agent.SetNetwork(up)
	key := faultKey(id, faultNetwork, 0)
	if up {
		delete(f.onDemand, key)
	} else {
		f.onDemand[key] = true
	}
	delete(f.atRandom, key)
	f.event(u, faultNetwork, 0, !up, true, 0)
	f.log.Info("network set on demand", "device", id, "up", up)
	return nil
}

// EnterCode types code at unit id's keypad, as a resident collecting a parcel does; the unit's
// agent checks it and reports what it did to the hub. It returns ErrUnknownUnit, or
// hardware.ErrKeypadBusy while the keypad holds codes the agent has not read yet.
func (f *Fleet) EnterCode(id, code string) error {
	u, err := f.unit(id)
	if err != nil {
		return err
	}
	if err := u.HW.EnterCode(code); err != nil {
		return err
	}
	f.log.Info("keypad code entered on demand", "device", id) // never the code: it opens a door
	return nil
}

// SetAmbient holds the outside air of every unit at site (every unit when site is empty) at
// c °C, or returns it to the daily cycle when c is nil. It returns the ids of the units it
// changed, ErrUnknownSite for a site without units, or the hardware's error for an implausible c.
func (f *Fleet) SetAmbient(site string, c *float64) ([]string, error) {
	var ids []string
	for _, u := range f.units {
		if site != "" && u.Site != site {
			continue
		}
		if err := u.HW.SetAmbient(c); err != nil {
			return ids, err
		}
		ids = append(ids, u.ID)
	}
	if ids == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownSite, site)
	}
	f.log.Info("ambient set on demand", "site", site, "units", len(ids), "celsius", c)
	return ids, nil
}

// SetPeople turns the simulated people on or off; ErrNoPeople where none are simulated.
func (f *Fleet) SetPeople(on bool) error {
	if !f.withPeople {
		return ErrNoPeople
	}
	f.people.Store(on)
	f.log.Info("simulated people", "on", on)
	return nil
}

// PeopleState reports whether simulated people are coming, and whether this fleet has any.
func (f *Fleet) PeopleState() (on, available bool) { return f.people.Load(), f.withPeople }

// Faults returns unit u's active faults, sorted: the hardware's ("jammed:3", "heater"), plus
// stale-telemetry and network while they last.
func Faults(u *Unit) []string {
	out := u.HW.Faults()
	if !u.Agent.TelemetryOn() {
		out = append(out, string(FaultStaleTelemetry))
	}
	if !u.Agent.NetworkUp() {
		out = append(out, faultNetwork)
	}
	slices.Sort(out)
	return out
}

// FaultRate is how often random faults start and how long they last.
type FaultRate struct {
	PerUnitHour        float64       // faults started per unit and hour, over the whole fleet
	MinLasts, MaxLasts time.Duration // each lasts a uniform draw in between; MaxLasts >= MinLasts > 0
}

// DefaultFaultRate is how long the random faults of `lockerhub simulate` last; its
// --fault-rate sets PerUnitHour.
var DefaultFaultRate = FaultRate{MinLasts: time.Minute, MaxLasts: 10 * time.Minute}

// RandomFaults starts a random fault on a random unit at r.PerUnitHour per unit and hour and
// clears it after r.MinLasts to r.MaxLasts, until ctx is done. A fault set on demand, or one
// already set at random, is neither started nor cleared by it. A door left ajar is opened too,
// as a courier who collects a parcel and leaves it ajar: nobody would notice a closed one.
func (f *Fleet) RandomFaults(ctx context.Context, r FaultRate, rng *rand.Rand) {
	mean := time.Duration(float64(time.Hour) / (r.PerUnitHour * float64(len(f.units))))
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(rng.ExpFloat64() * float64(mean))):
		}
		u := f.units[rng.IntN(len(f.units))]
		faults := []hardware.Fault{hardware.FaultJammed, hardware.FaultAjar, hardware.FaultForced, hardware.FaultStuckSensor, hardware.FaultDeadSensor, hardware.FaultHeater}
		if u.HW.Kind() == hardware.KindFridge {
			faults[len(faults)-1] = hardware.FaultCompressor
		}
		lasts := r.MinLasts + time.Duration(rng.Int64N(int64(r.MaxLasts-r.MinLasts)+1))
		if rng.IntN(len(faults)+1) == 0 {
			f.random(u, faultNetwork, 0, lasts, networkFault(u))
			continue
		}
		fault := faults[rng.IntN(len(faults))]
		door := 0
		if fault.DoorFault() {
			door = 1 + rng.IntN(u.HW.Doors())
		}
		f.random(u, fault, door, lasts, func(on bool) error {
			if err := u.HW.SetFault(fault, door, on); err != nil || !on || fault != hardware.FaultAjar {
				return err
			}
			return u.HW.OpenByHand(door, hardware.AccessKeypad)
		})
	}
}

// networkFault is how random turns u's network fault on (the network down) and off.
func networkFault(u *Unit) func(on bool) error {
	return func(on bool) error { u.Agent.SetNetwork(!on); return nil }
}

// random turns a fault on with set and off again after lasts, unless it is (or becomes) a fault
// set on demand or is on already.
func (f *Fleet) random(u *Unit, fault hardware.Fault, door int, lasts time.Duration, set func(on bool) error) {
	key := faultKey(u.ID, fault, door)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.onDemand[key] || f.atRandom[key] {
		return
	}
	if err := set(true); err != nil {
		f.log.Error("inject fault", "device", u.ID, "fault", fault, "error", err)
		return
	}
	f.atRandom[key] = true
	f.event(u, fault, door, true, false, lasts)
	f.log.Info("fault injected", "device", u.ID, "fault", fault, "door", door, "for", lasts.Round(time.Second))
	time.AfterFunc(lasts, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.atRandom[key] {
			return // set or cleared on demand meanwhile
		}
		delete(f.atRandom, key)
		if err := set(false); err != nil {
			f.log.Error("clear fault", "device", u.ID, "fault", fault, "error", err)
			return
		}
		f.event(u, fault, door, false, false, 0)
	})
}

// Delivery is a parcel a simulated carrier dropped off, as the hub answered: what its resident
// needs to collect it. The code lives only here, in memory, and is never logged.
type Delivery struct {
	Parcel  string
	Door    int
	Code    string
	Expires time.Time // when the code stops opening the door
}

// Parcels is how the simulated people handle parcels: carriers deliver through the hub, and each
// parcel's resident comes to the unit's keypad with the code, or does not.
type Parcels struct {
	PerUnitHour float64       // deliveries per unit and hour, over the whole fleet
	MeanWait    time.Duration // a resident comes an exponential wait of this mean after the delivery (> 0)
	WrongShare  float64       // of the residents who come, the share who first type a wrong code
	LateShare   float64       // of the residents, the share who come after their code expired
	NeverShare  float64       // of the residents, the share who never come: the parcel goes overdue
	// OfflineShare of the residents who come find the unit's network down: it goes down for
	// Outage (a random network fault), and they type the code a quarter of the way in, so the
	// unit checks it alone and reports the pickup when it is back.
	OfflineShare float64
	Outage       time.Duration
	// Deliver asks the hub for a delivery into unit id, as a carrier's handheld would.
	Deliver func(ctx context.Context, id string) (Delivery, error)
}

// Validate reports the first setting out of range.
func (p Parcels) Validate() error {
	switch {
	case !(p.PerUnitHour >= 0) || p.MeanWait <= 0:
		return errors.New("the delivery rate must be >= 0 and the residents' mean wait > 0")
	case !(p.WrongShare >= 0 && p.WrongShare <= 1) || !(p.OfflineShare >= 0 && p.OfflineShare <= 1):
		return errors.New("the wrong-code and offline shares must be in 0..1")
	case !(p.LateShare >= 0 && p.NeverShare >= 0 && p.LateShare+p.NeverShare <= 1):
		return errors.New("the late and never shares must be >= 0 and add up to at most 1")
	case p.OfflineShare > 0 && p.Outage <= 0:
		return errors.New("an offline pickup needs an outage > 0")
	}
	return nil
}

// resident is what one parcel's resident will do, drawn when the parcel is delivered so that
// a seed gives the same story whatever the timing.
type resident struct {
	never, late, offline bool
	wait                 time.Duration // after the delivery; after the expiry when late
	typoAt               int           // 0: no wrong code; else the first code is wrong at digit typoAt-1
	shift                int           // 1..9: how far the wrong digit is off
}

// draw decides a resident's story.
func (p Parcels) draw(rng *rand.Rand) resident {
	r := resident{wait: time.Duration(rng.ExpFloat64() * float64(p.MeanWait)), shift: 1 + rng.IntN(9)}
	switch x := rng.Float64(); {
	case x < p.NeverShare:
		r.never = true
	case x < p.NeverShare+p.LateShare:
		r.late = true
	}
	if rng.Float64() < p.WrongShare {
		r.typoAt = 1 + rng.IntN(wire.CodeDigits)
	}
	r.offline = rng.Float64() < p.OfflineShare
	return r
}

// typo returns code with one digit mistyped: a well-formed code that is not code.
func (r resident) typo(code string) string {
	b := []byte(code)
	i := (r.typoAt - 1) % len(b)
	if b[i] >= '0' && b[i] <= '9' {
		b[i] = '0' + (b[i]-'0'+byte(r.shift))%10
	}
	return string(b)
}

// Keypad pacing: a resident who mistyped looks at the code again before the second try, and one
// who finds the keypad busy (another entry not read yet) tries again shortly.
const (
	retypePause  = 2 * time.Second
	keypadRetry  = 200 * time.Millisecond
	keypadTries  = 25
	beforeExpiry = 0.9 // a resident on time comes at the latest this far into the code's life
)

// RunParcels sends simulated carriers to deliver parcels into random units at p.PerUnitHour per
// unit and hour while people are on (SetPeople), until ctx is done, and each parcel's resident
// to collect it as drawn: on time with the code (some after a typo), after the code expired, or
// never. Pickups go on while a unit's network is down: its agent checks codes itself.
func (f *Fleet) RunParcels(ctx context.Context, p Parcels, rng *rand.Rand) {
	if p.PerUnitHour <= 0 || p.Deliver == nil {
		return
	}
	mean := time.Duration(float64(time.Hour) / (p.PerUnitHour * float64(len(f.units))))
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(rng.ExpFloat64() * float64(mean))):
		}
		u := f.units[rng.IntN(len(f.units))]
		r := p.draw(rng)
		if !f.people.Load() {
			continue // drawn anyway, so that turning people off and on keeps one random sequence
		}
		go f.deliver(ctx, u, p, r)
	}
}

// deliver has a carrier deliver into u, then the parcel's resident come as r says.
func (f *Fleet) deliver(ctx context.Context, u *Unit, p Parcels, r resident) {
	delivered := time.Now()
	d, err := p.Deliver(ctx, u.ID)
	if err != nil {
		if ctx.Err() == nil {
			f.log.Warn("simulated delivery failed", "device", u.ID, "error", err)
		}
		return
	}
	f.log.Info("parcel delivered", "device", u.ID, "parcel", d.Parcel, "door", d.Door, "expires", d.Expires)
	if r.never {
		return
	}
	at := delivered.Add(r.wait)
	if r.late {
		at = d.Expires.Add(r.wait)
	} else if latest := delivered.Add(time.Duration(beforeExpiry * float64(d.Expires.Sub(delivered)))); at.After(latest) {
		at = latest
	}
	if !sleep(ctx, time.Until(at)) || !f.people.Load() {
		return
	}
	if r.offline {
		f.random(u, faultNetwork, 0, p.Outage, networkFault(u))
		if !sleep(ctx, p.Outage/4) {
			return
		}
	}
	if r.typoAt != 0 {
		if !f.enter(ctx, u, r.typo(d.Code)) || !sleep(ctx, retypePause) {
			return
		}
	}
	if f.enter(ctx, u, d.Code) {
		f.log.Info("resident at the keypad", "device", u.ID, "parcel", d.Parcel, "door", d.Door,
			"late", r.late, "mistyped", r.typoAt != 0, "network_up", u.Agent.NetworkUp())
	}
}

// enter types code at u's keypad, waiting while the keypad is busy; false if it gave up.
func (f *Fleet) enter(ctx context.Context, u *Unit, code string) bool {
	for range keypadTries {
		err := u.HW.EnterCode(code)
		if err == nil {
			return true
		}
		if !errors.Is(err, hardware.ErrKeypadBusy) {
			f.log.Error("keypad entry", "device", u.ID, "error", err)
			return false
		}
		if !sleep(ctx, keypadRetry) {
			return false
		}
	}
	f.log.Warn("resident gave up: the keypad stayed busy", "device", u.ID)
	return false
}

// sleep waits d, or less if ctx is done first; false then.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
