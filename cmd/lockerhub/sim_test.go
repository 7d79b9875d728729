package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/simctl"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/internal/testhub"
)

// simRules are rules short enough for a test. The heartbeat timeout is far above the agents'
// keepalive, so that a unit that only stops its snapshots is stale, not offline. The
// heater-stuck threshold fires on any running heater: the test holds the units warm, so the
// thermostat keeps it off and only the stuck relay runs it.
const simRules = `
tick: 100ms
authorize_window: 5s
heartbeat_timeout: 2m
telemetry_interval: 300ms
rules:
  - {name: device-offline, kind: offline, severity: major, for: 1s}
  - {name: telemetry-stale, kind: stale, severity: minor, intervals: 3}
  - {name: forced-entry, kind: forced_entry, severity: critical}
  - {name: sensor-implausible, kind: sensor_implausible, severity: minor, min: -40, max: 60, for: 500ms, clear_for: 500ms}
  - {name: heater-stuck, kind: heater_stuck, severity: minor, threshold: -100, clear_threshold: -101, for: 500ms, clear_for: 500ms}
`

// Faults on demand through the real binaries: a hub, `lockerhub simulate` with its control
// surface, and `lockerhub sim` raising and clearing the conditions the hub's rules detect.
func TestSimOnDemand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rules := filepath.Join(dir, "alerts.yaml")
	if err := os.WriteFile(rules, []byte(simRules), 0o600); err != nil {
		t.Fatal(err)
	}
	environ := env(filepath.Join(dir, "hub"), "LOCKERHUB_INFLUX_URL=http://127.0.0.1:"+freePort(t), "LOCKERHUB_ALERTS_FILE="+rules)
	hub := startHub(t, environ)
	tech := createToken(t, environ, "--name", "tech", "--role", "technician").Token

	// One fridge and one locker bank.
	simOut := startSimulate(t, environ, 2, 60*time.Second, "--sites", "1", "--fridge-share", "0.1", "--provision",
		"--interval", "300ms", "--hub", "tcp://"+hub.mqtt, "--control", "127.0.0.1:0")
	control := simControl(t, simOut)

	sim := func(args ...string) (string, string, int) {
		return run(t, environ, append([]string{"sim", "--control", control}, args...)...)
	}
	// mustSim fails the whole test: each step leaves the fleet as the next one expects.
	mustSim := func(args ...string) string {
		out, errOut, code := sim(args...)
		if code != 0 {
			t.Fatalf("sim %s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	var list simctl.List
	if err := json.Unmarshal([]byte(mustSim("list", "--json")), &list); err != nil || len(list.Units) != 2 {
		t.Fatalf("sim list: %+v, %v", list, err)
	}
	fridge, bank := list.Units[0].ID, list.Units[1].ID
	if list.Units[0].Kind != "fridge" || list.Units[1].Kind != "locker-bank" {
		t.Fatalf("units %+v, want a fridge and a locker bank", list.Units)
	}
	// Warm air: a heater only runs now if its relay is stuck.
	mustSim("ambient", "--site", "site-1", "30")

	open := func(device string) map[string]bool {
		code, body := hub.getAs(t, tech, "/api/v1/alerts?state=open&device="+device)
		var res struct{ Alerts []fleet.Alert }
		if code != 200 || json.Unmarshal([]byte(body), &res) != nil {
			t.Fatalf("GET alerts: %d %s", code, body)
		}
		rules := map[string]bool{}
		for _, a := range res.Alerts {
			rules[a.Rule] = true
		}
		return rules
	}
	raiseAndClear := func(t *testing.T, device, rule string, on, off []string) {
		t.Helper()
		mustSim(on...)
		testhub.WaitFor(t, 15*time.Second, rule+" on "+device, func() bool { return open(device)[rule] })
		mustSim(off...)
		testhub.WaitFor(t, 15*time.Second, rule+" resolved on "+device, func() bool { return !open(device)[rule] })
	}

	t.Run("dead sensor", func(t *testing.T) {
		raiseAndClear(t, fridge, "sensor-implausible",
			[]string{"fault", "--unit", fridge, "dead-sensor", "on"}, []string{"fault", "--unit", fridge, "dead-sensor", "off"})
	})
	t.Run("heater stuck", func(t *testing.T) {
		testhub.WaitFor(t, 15*time.Second, "no heater running in the warm", func() bool { return !open(bank)["heater-stuck"] })
		raiseAndClear(t, bank, "heater-stuck",
			[]string{"fault", "--unit", bank, "heater-stuck", "on"}, []string{"fault", "--unit", bank, "heater-stuck", "off"})
	})
	t.Run("stale telemetry is stale, not offline", func(t *testing.T) {
		raiseAndClear(t, bank, "telemetry-stale",
			[]string{"fault", "--unit", bank, "stale-telemetry", "on"}, []string{"fault", "--unit", bank, "stale-telemetry", "off"})
		if open(bank)["device-offline"] {
			t.Fatal("a unit that only stopped its snapshots is offline")
		}
	})
	t.Run("network down and up", func(t *testing.T) {
		raiseAndClear(t, fridge, "device-offline", []string{"network", fridge, "down"}, []string{"network", fridge, "up"})
	})
	t.Run("forced door", func(t *testing.T) {
		mustSim("fault", "--unit", bank, "--door", "2", "forced", "on")
		testhub.WaitFor(t, 15*time.Second, "forced entry on "+bank, func() bool { return open(bank)["forced-entry"] })
		if out := mustSim("list"); !strings.Contains(out, "forced:2") {
			t.Fatalf("sim list does not show the forced door:\n%s", out)
		}
		mustSim("fault", "--unit", bank, "--door", "2", "forced", "off")
	})
	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"fault", "--unit", "nope", "dead-sensor", "on"}, `unknown unit "nope"`},
			{[]string{"fault", "--unit", bank, "--door", "99", "jammed", "on"}, "no such door"},
			{[]string{"fault", "--unit", bank, "jammed", "on"}, "no such door"},
			{[]string{"fault", "--unit", fridge, "heater-stuck", "on"}, "not supported by this unit"},
			{[]string{"fault", "--unit", bank, "melted", "on"}, `unknown fault "melted"`},
			{[]string{"fault", "--unit", bank, "ajar", "maybe"}, `"maybe": want on or off`},
			{[]string{"ambient", "--site", "nowhere", "-15"}, `unknown site "nowhere"`},
			{[]string{"ambient", "--site", "site-1", "-99"}, "want -60..60"},
			{[]string{"network", "nope", "down"}, `unknown unit "nope"`},
			{[]string{"--control", "127.0.0.1:" + freePort(t), "list"}, "no simulator control surface answers"},
		} {
			if out, errOut, code := sim(tc.args...); code == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("sim %s: exit %d, %s%s; want an error with %q", strings.Join(tc.args, " "), code, out, errOut, tc.want)
			}
		}
		// A negative temperature parses as a number, not as a flag.
		if out := mustSim("ambient", "--site", "site-1", "-15"); !strings.Contains(out, "ambient of 2 units set to -15") {
			t.Errorf("sim ambient -15: %s", out)
		}
		if _, errOut, code := run(t, environ, "simulate", "--units", "1", "--control", "0.0.0.0:0"); code == 0 || !strings.Contains(errOut, "must be on loopback") {
			t.Errorf("simulate --control 0.0.0.0:0: exit %d, %s", code, errOut)
		}
	})
	// The unit reports the code it was given (a wrong one: the hub sent it no codes) as a keypad
	// event, which the hub must take in its stride: a snapshot taken after it reaches the hub.
	t.Run("a code typed at a keypad", func(t *testing.T) {
		entered := time.Now().UnixMilli()
		if out := mustSim("keypad", bank, "00000000"); out != bank+": code entered at the keypad\n" {
			t.Fatalf("sim keypad: %q", out)
		}
		testhub.WaitFor(t, 15*time.Second, "a snapshot of "+bank+" taken after the code", func() bool {
			code, body := hub.getAs(t, tech, "/api/v1/devices/"+bank)
			var v struct{ Live fleet.LiveState }
			if code != 200 || json.Unmarshal([]byte(body), &v) != nil {
				t.Fatalf("GET device: %d %s", code, body)
			}
			return v.Live.Snapshot != nil && v.Live.Snapshot.TS > entered
		})
		if _, errOut, code := sim("keypad", "no-such-unit", "00000000"); code == 0 || !strings.Contains(errOut, `unknown unit "no-such-unit"`) {
			t.Fatalf("sim keypad at an unknown unit: exit %d: %s", code, errOut)
		}
	})
}
