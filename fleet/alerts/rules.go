package alerts

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// Kind is what a rule watches. Each kind has a fixed condition and clear condition; a rule
// gives it thresholds, durations, a severity and a name. Several rules may share a kind (a
// major alert after 15 minutes above 5 °C, a critical one at once above 8 °C).
type Kind string

// Rule kinds. Thresholds are in °C unless said otherwise.
const (
	// KindOffline: the unit is not connected, or sends nothing for HeartbeatTimeout.
	// Clears when it is connected and heard from again.
	KindOffline Kind = "offline"
	// KindStale: connected, but no telemetry snapshot for Intervals times the unit's usual
	// interval. Clears with the next snapshot.
	KindStale Kind = "stale"
	// KindDoorOpen: a door open (ajar). Clears when it is closed.
	KindDoorOpen Kind = "door_open"
	// KindForcedEntry: a door opened without an unlock command for it within
	// Config.AuthorizeWindow, and without the unit reporting an authorized local opening.
	// Security incidents are resolved by a person, never automatically.
	KindForcedEntry Kind = "forced_entry"
	// KindUnlockFailed: Count unlock commands for one door within Window ended jammed (the door
	// did not open after the lock was released) or failed. Clears when the door next opens
	// after an unlock or an authorized local action.
	KindUnlockFailed Kind = "unlock_failed"
	// KindTempAbove: a refrigerated compartment of Class above Threshold. Clears at or below
	// ClearThreshold. Not counted while its door is open for a pickup (at most
	// Config.PickupGrace), nor while its sensor gives no reading.
	KindTempAbove Kind = "temp_above"
	// KindHeaterFailure: a locker bank's heater on while its enclosure is below Threshold.
	// Clears above ClearThreshold.
	KindHeaterFailure Kind = "heater_failure"
	// KindHeaterStuck: the heater on while the enclosure is more than Threshold above the
	// heater's setpoint. Clears when the heater is off or within ClearThreshold of it.
	KindHeaterStuck Kind = "heater_stuck"
	// KindCompressorIneffective: the compressor running at least Duty of the time while the
	// warmest compartment is more than Threshold above its setpoint. Clears within
	// ClearThreshold of the setpoint.
	KindCompressorIneffective Kind = "compressor_ineffective"
	// KindSensorImplausible: a temperature sensor the unit must have gives no reading, or a
	// reading outside Min..Max. Clears with plausible readings.
	KindSensorImplausible Kind = "sensor_implausible"
	// KindSensorStuck: a temperature reading exactly repeated for For. A real sensor is noisy;
	// a stuck one freezes the thermostat that controls on it, so no other rule sees a warm
	// compartment. Scope: the compartment (door n), or the unit for its enclosure and ambient
	// sensors (door 0). Clears when the reading changes.
	KindSensorStuck Kind = "sensor_stuck"
	// KindSequenceGap: telemetry lost on the way (sequence numbers that never arrived, or
	// snapshots the unit's full outbox dropped). Clears after ClearFor without a new loss.
	KindSequenceGap Kind = "sequence_gap"
	// KindParcelOverdue: a parcel in its compartment (a door) for longer than After since its
	// drop-off; every parcel but a perishable one in a fridge or freezer compartment, which
	// KindPerishableOverdue watches. Clears when the parcel leaves (picked up or retrieved).
	KindParcelOverdue Kind = "parcel_overdue"
	// KindPerishableOverdue: a perishable parcel in a fridge compartment for longer than Fridge
	// since its drop-off, in a freezer compartment for longer than Freezer. Clears when it
	// leaves.
	KindPerishableOverdue Kind = "perishable_overdue"
	// KindKeypadLockout: the unit's keypad locked out after too many wrong codes in a row
	// (someone guessing codes). Clears after ClearFor without a new lockout.
	KindKeypadLockout Kind = "keypad_lockout"
)

// kinds describes each kind: its scope, the unit kind it applies to ("" for all) and which
// parameters it needs.
var kinds = map[Kind]struct {
	scope      fleet.Scope
	unit       fleet.Kind
	thresholds bool // Threshold and ClearThreshold with hysteresis
	above      bool // fires above Threshold (else below), so ClearThreshold must be lower
	counts     bool // its value is a count of events, and its summary follows it while it grows
}{
	KindOffline:               {scope: fleet.ScopeDevice},
	KindStale:                 {scope: fleet.ScopeDevice},
	KindDoorOpen:              {scope: fleet.ScopeDoor},
	KindForcedEntry:           {scope: fleet.ScopeDoor},
	KindUnlockFailed:          {scope: fleet.ScopeDoor, counts: true},
	KindTempAbove:             {scope: fleet.ScopeCompartment, unit: fleet.KindFridge, thresholds: true, above: true},
	KindHeaterFailure:         {scope: fleet.ScopeDevice, unit: fleet.KindLockerBank, thresholds: true},
	KindHeaterStuck:           {scope: fleet.ScopeDevice, unit: fleet.KindLockerBank, thresholds: true, above: true},
	KindCompressorIneffective: {scope: fleet.ScopeDevice, unit: fleet.KindFridge, thresholds: true, above: true},
	KindSensorImplausible:     {scope: fleet.ScopeDevice},
	KindSensorStuck:           {scope: fleet.ScopeCompartment},
	KindSequenceGap:           {scope: fleet.ScopeDevice},
	KindParcelOverdue:         {scope: fleet.ScopeDoor},
	KindPerishableOverdue:     {scope: fleet.ScopeCompartment, unit: fleet.KindFridge},
	KindKeypadLockout:         {scope: fleet.ScopeDevice},
}

// Rule is one configured health rule.
type Rule struct {
	Name     string         `mapstructure:"name"`
	Kind     Kind           `mapstructure:"kind"`
	Severity fleet.Severity `mapstructure:"severity"`
	// For is how long the condition must hold before the alert fires; 0 fires at once. Time
	// while the condition is suppressed (a compartment's door open for a pickup) is not
	// counted, and the count goes on when it ends.
	For time.Duration `mapstructure:"for"`
	// ClearFor is how long the clear condition must hold before the alert resolves itself;
	// 0 resolves at once.
	ClearFor time.Duration `mapstructure:"clear_for"`

	Threshold      float64       `mapstructure:"threshold"`
	ClearThreshold float64       `mapstructure:"clear_threshold"`
	Class          string        `mapstructure:"class"`     // temp_above: chilled or freezer
	Count          int           `mapstructure:"count"`     // unlock_failed
	Window         time.Duration `mapstructure:"window"`    // unlock_failed
	Intervals      float64       `mapstructure:"intervals"` // stale
	Duty           float64       `mapstructure:"duty"`      // compressor_ineffective: 0..1
	Min            float64       `mapstructure:"min"`       // sensor_implausible
	Max            float64       `mapstructure:"max"`       // sensor_implausible
	After          time.Duration `mapstructure:"after"`     // parcel_overdue: since the drop-off
	Fridge         time.Duration `mapstructure:"fridge"`    // perishable_overdue: in a fridge compartment
	Freezer        time.Duration `mapstructure:"freezer"`   // perishable_overdue: in a freezer compartment
}

// Scope returns what the rule's alerts on door are about: a compartment rule's condition on
// door 0 is about the unit's own sensors (sensor_stuck on the enclosure).
func (r *Rule) Scope(door int) fleet.Scope {
	if s := kinds[r.Kind].scope; s != fleet.ScopeCompartment || door > 0 {
		return s
	}
	return fleet.ScopeDevice
}

// AppliesTo reports whether the rule watches device d.
func (r *Rule) AppliesTo(d *fleet.Device) bool {
	k := kinds[r.Kind]
	if k.unit != "" && k.unit != d.Kind {
		return false
	}
	return r.Kind != KindTempAbove || r.Class == fleet.ClassOf(d)
}

// Validate reports the first setting of r that cannot work, naming it.
func (r *Rule) Validate() error {
	k, ok := kinds[r.Kind]
	switch {
	case !validName(r.Name):
		return fmt.Errorf("name %q: want 1..64 of a-z 0-9 -", r.Name)
	case !ok:
		return fmt.Errorf("kind %q: unknown", r.Kind)
	case r.Severity.Validate() != nil:
		return fmt.Errorf("severity %q: want critical, major, minor or warning", r.Severity)
	case r.For < 0 || r.ClearFor < 0:
		return errors.New("for, clear_for: must not be negative")
	case k.thresholds && k.above && !(r.ClearThreshold < r.Threshold):
		return fmt.Errorf("clear_threshold %v: must be below threshold %v (hysteresis)", r.ClearThreshold, r.Threshold)
	case k.thresholds && !k.above && !(r.ClearThreshold > r.Threshold):
		return fmt.Errorf("clear_threshold %v: must be above threshold %v (hysteresis)", r.ClearThreshold, r.Threshold)
	}
	switch r.Kind {
	case KindTempAbove:
		if r.Class != fleet.ClassChilled && r.Class != fleet.ClassFreezer {
			return fmt.Errorf("class %q: want %s or %s", r.Class, fleet.ClassChilled, fleet.ClassFreezer)
		}
	case KindUnlockFailed:
		if r.Count < 1 || r.Window <= 0 {
			return errors.New("count, window: want at least 1 failure within a positive window")
		}
	case KindStale:
		if r.Intervals < 1 {
			return fmt.Errorf("intervals %v: want at least 1", r.Intervals)
		}
	case KindCompressorIneffective:
		if r.Duty <= 0 || r.Duty > 1 {
			return fmt.Errorf("duty %v: want a fraction in (0, 1]", r.Duty)
		}
	case KindSensorImplausible:
		if !(r.Min < r.Max) {
			return fmt.Errorf("min %v, max %v: want min < max", r.Min, r.Max)
		}
	case KindSensorStuck:
		if r.For <= 0 {
			return errors.New("for: a stuck sensor is one that did not change for a while; want > 0")
		}
	case KindSequenceGap:
		if r.ClearFor <= 0 {
			return errors.New("clear_for: a loss is an event; want how long without a new one resolves it (> 0)")
		}
	case KindKeypadLockout:
		if r.ClearFor <= 0 {
			return errors.New("clear_for: a lockout is an event; want how long without a new one resolves it (> 0)")
		}
	case KindParcelOverdue:
		if r.After <= 0 {
			return fmt.Errorf("after %s: want how long a parcel may stay in its compartment (> 0)", r.After)
		}
	case KindPerishableOverdue:
		if r.Fridge <= 0 || r.Freezer <= 0 {
			return fmt.Errorf("fridge %s, freezer %s: want how long a perishable parcel may stay in each (> 0)", r.Fridge, r.Freezer)
		}
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Config is the alert configuration: configs/alerts.yaml documents every key and its default.
type Config struct {
	// Tick is how soon the rules look again after a loss of telemetry (which counts the time
	// without a loss from then) and after the store refused an alert, and how often a hub of a
	// cluster looks at its leadership. Rules are evaluated when a unit's message comes or one
	// of its deadlines falls due, not on the tick.
	Tick time.Duration `mapstructure:"tick"`
	// AuthorizeWindow is how long after an unlock command a door of it may open without
	// being a forced entry (the person walks to the locker).
	AuthorizeWindow time.Duration `mapstructure:"authorize_window"`
	// PickupGrace bounds how long an open door suppresses its compartment's temperature rules.
	PickupGrace time.Duration `mapstructure:"pickup_grace"`
	// HeartbeatTimeout is how long a connected unit may be silent before it counts as offline
	// (a half-open connection that the broker has not noticed yet).
	HeartbeatTimeout time.Duration `mapstructure:"heartbeat_timeout"`
	// TelemetryInterval is the snapshot interval assumed until a unit's own is learned.
	TelemetryInterval time.Duration `mapstructure:"telemetry_interval"`
	// Pulldown is how a fridge of each class that has just started is expected to cool.
	Pulldown Pulldowns `mapstructure:"pulldown"`
	Rules    []Rule    `mapstructure:"rules"`
}

// Pulldowns holds the pull-down of each fridge class.
type Pulldowns struct {
	Chilled Pulldown `mapstructure:"chilled"`
	Freezer Pulldown `mapstructure:"freezer"`
}

// Of returns the pull-down of a fridge class.
func (p *Pulldowns) Of(class string) Pulldown {
	if class == fleet.ClassFreezer {
		return p.Freezer
	}
	return p.Chilled
}

// Pulldown is how a fridge that has just started (installed, after maintenance, a power cut or
// a defrost: it came online, or its compressor started) cools from room temperature. While a
// compartment cools by at least Rate °C per hour, measured over pulldownWindow, its
// temp_above rules and the unit's compressor_ineffective rules wait, for at most Max from the
// start; a compartment that stops cooling ends its pull-down, and an alert whose for has passed
// fires at once. Max 0: no pull-down.
type Pulldown struct {
	Rate float64       `mapstructure:"rate"` // °C per hour
	Max  time.Duration `mapstructure:"max"`
}

func (p Pulldown) validate(key string) error {
	if p.Max < 0 || p.Max > 0 && !(p.Rate > 0) {
		return fmt.Errorf("alerts.pulldown.%s: max %s, rate %v: want max >= 0 (0: none) and, with a max, a rate above 0 °C per hour", key, p.Max, p.Rate)
	}
	return nil
}

// Validate reports the first bad setting, naming its key.
func (c *Config) Validate() error {
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"tick", c.Tick}, {"authorize_window", c.AuthorizeWindow}, {"pickup_grace", c.PickupGrace},
		{"heartbeat_timeout", c.HeartbeatTimeout}, {"telemetry_interval", c.TelemetryInterval}} {
		if d.v <= 0 {
			return fmt.Errorf("alerts.%s: %s must be positive", d.key, d.v)
		}
	}
	if err := cmp.Or(c.Pulldown.Chilled.validate("chilled"), c.Pulldown.Freezer.validate("freezer")); err != nil {
		return err
	}
	seen := make(map[string]bool)
	for i := range c.Rules {
		r := &c.Rules[i]
		if err := r.Validate(); err != nil {
			return fmt.Errorf("alerts.rules[%d] (%s): %w", i, r.Name, err)
		}
		if seen[r.Name] {
			return fmt.Errorf("alerts.rules[%d]: name %q used twice", i, r.Name)
		}
		seen[r.Name] = true
	}
	return nil
}

// ColdHoldingThreshold returns the threshold of the least urgent temp_above rule for d's class,
// which is the limit a cold-chain report counts minutes above; 0 and false without one.
func (c *Config) ColdHoldingThreshold(d *fleet.Device) (float64, bool) {
	var best *Rule
	for i := range c.Rules {
		r := &c.Rules[i]
		if r.Kind == KindTempAbove && r.AppliesTo(d) && (best == nil || r.Threshold < best.Threshold) {
			best = r
		}
	}
	if best == nil {
		return 0, false
	}
	return best.Threshold, true
}

// StuckSensorAfter returns how long an exactly repeated reading lasts before it is a stuck
// sensor's: the shortest for of the sensor_stuck rules, which a cold-chain report uses to count
// such readings as untrusted; 0 without one (every reading is trusted).
func (c *Config) StuckSensorAfter() time.Duration {
	var after time.Duration
	for i := range c.Rules {
		if r := &c.Rules[i]; r.Kind == KindSensorStuck && (after == 0 || r.For < after) {
			after = r.For
		}
	}
	return after
}

// DwellLimits returns the parcel thresholds of the parcel-overdue and perishable-overdue rules,
// the shortest where several rules of a kind are configured, so that the parcel views call a
// parcel overdue when an alert first could; fleet.DefaultDwellLimits for a kind without a rule.
func (c *Config) DwellLimits() fleet.DwellLimits {
	var l fleet.DwellLimits
	shortest := func(cur *time.Duration, v time.Duration) {
		if v > 0 && (*cur == 0 || v < *cur) {
			*cur = v
		}
	}
	for i := range c.Rules {
		switch r := &c.Rules[i]; r.Kind {
		case KindParcelOverdue:
			shortest(&l.Dry, r.After)
		case KindPerishableOverdue:
			shortest(&l.Fridge, r.Fridge)
			shortest(&l.Freezer, r.Freezer)
		}
	}
	d := fleet.DefaultDwellLimits
	l.Dry, l.Fridge, l.Freezer = cmp.Or(l.Dry, d.Dry), cmp.Or(l.Fridge, d.Fridge), cmp.Or(l.Freezer, d.Freezer)
	return l
}

// DefaultConfig is the configuration in configs/alerts.yaml.
func DefaultConfig() Config {
	return Config{
		Tick:              time.Second,
		AuthorizeWindow:   2 * time.Minute,
		PickupGrace:       10 * time.Minute,
		HeartbeatTimeout:  3 * time.Minute,
		TelemetryInterval: 30 * time.Second,
		Pulldown: Pulldowns{
			Chilled: Pulldown{Rate: 3, Max: 90 * time.Minute},
			Freezer: Pulldown{Rate: 3, Max: 4 * time.Hour},
		},
		Rules: []Rule{
			{Name: "device-offline", Kind: KindOffline, Severity: fleet.SeverityMajor, For: 5 * time.Minute, ClearFor: 30 * time.Second},
			{Name: "telemetry-stale", Kind: KindStale, Severity: fleet.SeverityMinor, Intervals: 3},
			{Name: "door-ajar", Kind: KindDoorOpen, Severity: fleet.SeverityMinor, For: 10 * time.Minute},
			{Name: "forced-entry", Kind: KindForcedEntry, Severity: fleet.SeverityCritical},
			{Name: "unlock-not-opened", Kind: KindUnlockFailed, Severity: fleet.SeverityWarning, Count: 1, Window: time.Hour},
			{Name: "door-jammed", Kind: KindUnlockFailed, Severity: fleet.SeverityMajor, Count: 3, Window: time.Hour},
			{Name: "cold-holding", Kind: KindTempAbove, Severity: fleet.SeverityMajor, Class: fleet.ClassChilled,
				Threshold: 5, ClearThreshold: 4.5, For: 15 * time.Minute, ClearFor: 2 * time.Minute},
			{Name: "cold-holding-critical", Kind: KindTempAbove, Severity: fleet.SeverityCritical, Class: fleet.ClassChilled,
				Threshold: 8, ClearThreshold: 7, ClearFor: 2 * time.Minute},
			{Name: "freezer-warm", Kind: KindTempAbove, Severity: fleet.SeverityMajor, Class: fleet.ClassFreezer,
				Threshold: -12, ClearThreshold: -13, For: 15 * time.Minute, ClearFor: 2 * time.Minute},
			{Name: "heater-failure", Kind: KindHeaterFailure, Severity: fleet.SeverityMajor,
				Threshold: 0, ClearThreshold: 2, For: 20 * time.Minute, ClearFor: 5 * time.Minute},
			{Name: "heater-stuck", Kind: KindHeaterStuck, Severity: fleet.SeverityMinor,
				Threshold: 10, ClearThreshold: 8, For: 15 * time.Minute, ClearFor: 5 * time.Minute},
			{Name: "compressor-ineffective", Kind: KindCompressorIneffective, Severity: fleet.SeverityMajor,
				Duty: 0.95, Threshold: 3, ClearThreshold: 1, For: 30 * time.Minute, ClearFor: 5 * time.Minute},
			{Name: "sensor-implausible", Kind: KindSensorImplausible, Severity: fleet.SeverityMinor,
				Min: -40, Max: 60, For: time.Minute, ClearFor: time.Minute},
			{Name: "sensor-stuck", Kind: KindSensorStuck, Severity: fleet.SeverityWarning, For: 20 * time.Minute},
			{Name: "telemetry-loss", Kind: KindSequenceGap, Severity: fleet.SeverityWarning, ClearFor: time.Hour},
			{Name: "parcel-overdue", Kind: KindParcelOverdue, Severity: fleet.SeverityWarning, After: 72 * time.Hour},
			{Name: "perishable-overdue", Kind: KindPerishableOverdue, Severity: fleet.SeverityMajor, Fridge: 24 * time.Hour, Freezer: 12 * time.Hour},
			{Name: "keypad-brute-force", Kind: KindKeypadLockout, Severity: fleet.SeverityMajor, ClearFor: 15 * time.Minute},
		},
	}
}
