package agent

import "time"

// thermostat is a bang-bang controller with hysteresis for one heater or compressor. It switches
// on when the temperature leaves the band on the wrong side of the setpoint and off once it has
// crossed to the other edge, so the actuator never chatters around the setpoint. It also keeps
// the on-time since the last report for the duty cycle the agent publishes.
type thermostat struct {
	cooling    bool    // compressor (true) or heater (false)
	setpoint   float64 // °C
	hysteresis float64 // half-width of the band, °C

	on        bool
	lastTick  time.Time
	onTime    time.Duration
	windowBeg time.Time
}

func newThermostat(cooling bool, setpoint, hysteresis float64, now time.Time) *thermostat {
	return &thermostat{cooling: cooling, setpoint: setpoint, hysteresis: hysteresis, lastTick: now, windowBeg: now}
}

// decide returns whether the actuator should run, given the control temperature (ok false when
// no sensor gives a reading). Without a reading it fails safe by running: warm food and frozen
// lock solenoids both cost more than the energy.
func (t *thermostat) decide(now time.Time, temp float64, ok bool) bool {
	if t.on {
		t.onTime += now.Sub(t.lastTick)
	}
	t.lastTick = now
	switch {
	case !ok:
		t.on = true
	case t.cooling && temp >= t.setpoint+t.hysteresis, !t.cooling && temp <= t.setpoint-t.hysteresis:
		t.on = true
	case t.cooling && temp <= t.setpoint-t.hysteresis, !t.cooling && temp >= t.setpoint+t.hysteresis:
		t.on = false
	}
	return t.on
}

// duty returns the fraction of time the actuator ran since the previous call, and starts a new
// window.
func (t *thermostat) duty(now time.Time) float64 {
	on := t.onTime
	if t.on {
		on += now.Sub(t.lastTick)
	}
	window := now.Sub(t.windowBeg)
	t.onTime, t.lastTick, t.windowBeg = 0, now, now
	if window <= 0 {
		return 0
	}
	return min(1, max(0, on.Seconds()/window.Seconds()))
}
