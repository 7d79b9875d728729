package agent

import (
	"math"
	"testing"
	"time"
)

func TestThermostatHysteresis(t *testing.T) {
	t0 := time.Unix(0, 0)
	for _, tc := range []struct {
		name    string
		cooling bool
		temps   []float64 // NaN = no reading
		want    []bool
	}{
		// compressor, setpoint 3, band 2..4: on at >= 4, off at <= 2, holds in between
		{"compressor", true, []float64{3, 4, 3.5, 2.5, 2, 3, 3.9, 4.2}, []bool{false, true, true, true, false, false, false, true}},
		// heater, setpoint 5, band 4..6: on at <= 4, off at >= 6
		{"heater", false, []float64{5, 4, 4.5, 5.9, 6, 5, 3}, []bool{false, true, true, true, false, false, true}},
		{"compressor fails safe without a reading", true, []float64{3, math.NaN(), 1}, []bool{false, true, false}},
		{"heater fails safe without a reading", false, []float64{7, math.NaN(), 7}, []bool{false, true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := 5.0
			if tc.cooling {
				sp = 3
			}
			th := newThermostat(tc.cooling, sp, 1, t0)
			for i, temp := range tc.temps {
				got := th.decide(t0.Add(time.Duration(i)*time.Second), temp, !math.IsNaN(temp))
				if got != tc.want[i] {
					t.Fatalf("step %d (%.1f °C): on=%v, want %v", i, temp, got, tc.want[i])
				}
			}
		})
	}
}

func TestThermostatDuty(t *testing.T) {
	t0 := time.Unix(0, 0)
	th := newThermostat(false, 5, 1, t0)
	th.decide(t0, 3, true)                     // on
	th.decide(t0.Add(30*time.Second), 7, true) // off after 30 s on
	if d := th.duty(t0.Add(100 * time.Second)); math.Abs(d-0.3) > 1e-9 {
		t.Fatalf("duty = %v, want 0.3", d)
	}
	th.decide(t0.Add(100*time.Second), 3, true) // on for the whole next window
	if d := th.duty(t0.Add(110 * time.Second)); d != 1 {
		t.Fatalf("duty = %v, want 1", d)
	}
	if d := th.duty(t0.Add(110 * time.Second)); d != 0 {
		t.Fatalf("duty of an empty window = %v, want 0", d)
	}
}
