package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/simctl"
	"github.com/lockerhub/lockerhub/fleet"
	fleethttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/testhub"
)

// The simulated parcel flow through the real binaries: `lockerhub simulate` with a carrier
// token delivers through a real hub's API, its residents collect with their codes (some after
// a typo, some never, some while the unit's network is down), and a pickup made at a unit
// without network is recorded as made offline, with no forced entry. The hub counts a pickup
// as offline when it hears of it 2 s late rather than a minute (parcels.offline_after), so
// outages last seconds.
func TestSimulatedParcels(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rules := filepath.Join(dir, "alerts.yaml")
	if err := os.WriteFile(rules, []byte(`
tick: 100ms
rules:
  - {name: forced-entry, kind: forced_entry, severity: critical}
  - {name: parcel-overdue, kind: parcel_overdue, severity: warning, after: 3s}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	environ := env(filepath.Join(dir, "hub"), "LOCKERHUB_INFLUX_URL=http://127.0.0.1:"+freePort(t), "LOCKERHUB_ALERTS_FILE="+rules,
		"LOCKERHUB_PARCELS_OFFLINE_AFTER=2s")
	hub := startHub(t, environ)
	hubURL := "http://" + hub.http
	carrier := createToken(t, environ, "--name", "sim carriers", "--role", "carrier").Token
	operator := createToken(t, environ, "--name", "desk", "--role", "operator").Token

	// Two locker banks, people off for now. Once on: a delivery every half second or so, each
	// resident a second later on average, half of them after a typo, a fifth never, one in ten
	// during an outage of 8 s (typing 2 s in, the door open up to 3 s later: the hub hears of
	// it at least 3 s late).
	simOut := startSimulate(t, environ, 2, 30*time.Second, "--sites", "1", "--fridge-share", "0", "--provision",
		"--interval", "300ms", "--hub", "tcp://"+hub.mqtt, "--control", "127.0.0.1:0", "--seed", "7",
		"--api", hubURL, "--token", carrier, "--delivery-rate", "3600", "--pickup-wait", "1s",
		"--wrong-share", "0.5", "--late-share", "0", "--never-share", "0.2", "--offline-share", "0.1", "--outage", "8s")
	sim := simCLI(t, environ, simOut)
	parcels := func(query string) []*fleet.Parcel {
		t.Helper()
		code, body := hub.getAs(t, operator, "/api/v1/parcels?limit=1000"+query)
		var res fleethttp.ParcelList
		if code != 200 || json.Unmarshal([]byte(body), &res) != nil {
			t.Fatalf("GET parcels: %d %s", code, body)
		}
		return res.Parcels
	}
	var list simctl.List
	if err := json.Unmarshal([]byte(sim("list", "--json")), &list); err != nil || len(list.Units) != 2 || list.People || !list.PeopleAvailable {
		t.Fatalf("sim list: %+v, %v", list, err)
	}

	// By hand first, with nobody else at the unit: a delivery, the network down, the code typed.
	unit := list.Units[0].ID
	out, errOut, code := run(t, environ, "deliver", "--unit", unit, "--json", "--hub", hubURL, "--token", carrier)
	var d fleethttp.DeliveryResponse
	if code != 0 || json.Unmarshal([]byte(out), &d) != nil {
		t.Fatalf("deliver: exit %d %s %s", code, out, errOut)
	}
	applied := regexp.MustCompile(`"msg":"code set applied".*"device":"` + unit + `".*"codes":1\b`)
	testhub.WaitFor(t, 10*time.Second, unit+" holding the code", func() bool { return applied.MatchString(simOut.String()) })
	sim("network", unit, "down")
	testhub.WaitFor(t, 10*time.Second, unit+" offline at the hub", func() bool {
		_, body := hub.getAs(t, operator, "/api/v1/devices/"+unit)
		return strings.Contains(body, `"online":false`)
	})
	sim("keypad", unit, d.Code)
	typed := time.Now()
	accepted := regexp.MustCompile(`"msg":"keypad entry".*"device":"` + unit + `".*"result":"accepted","parcel":"` + d.Parcel.ID + `"`)
	testhub.WaitFor(t, 5*time.Second, "the unit accepting the code offline", func() bool { return accepted.MatchString(simOut.String()) })
	// Offline, the hub cannot know: the parcel stays in the locker until the unit is back. The
	// resident opens the door up to 3 s after the unlock (the simulator's OpenDelay).
	for time.Since(typed) < 6*time.Second {
		if p := parcels("&device=" + unit + "&status=picked-up"); len(p) > 0 {
			t.Fatalf("the hub recorded a pickup from a unit without network: %+v", p[0])
		}
		time.Sleep(100 * time.Millisecond)
	}
	sim("network", unit, "up")
	var got *fleet.Parcel
	testhub.WaitFor(t, 15*time.Second, "the offline pickup recorded", func() bool {
		code, body := hub.getAs(t, operator, "/api/v1/parcels/"+d.Parcel.ID)
		var res fleethttp.ParcelResponse
		if code != 200 || json.Unmarshal([]byte(body), &res) != nil {
			t.Fatalf("GET parcel: %d %s", code, body)
		}
		got = res.Parcel
		return got.Status == fleet.ParcelPickedUp
	})
	if !got.Offline || got.PickedUpAt == nil || got.PickedUpAt.Before(typed.Add(-time.Second)) || got.PickedUpAt.After(typed.Add(4*time.Second)) {
		t.Fatalf("offline pickup recorded as %+v, want offline, picked up when the code was typed (%s)", got, typed)
	}

	// Now the simulated people: the carriers' deliveries, and the residents' pickups, online and
	// during an outage.
	sim("people", "on")
	testhub.WaitFor(t, 30*time.Second, "deliveries by the carriers' token and pickups with their codes, online and offline", func() bool {
		var delivered, online, offline int
		for _, p := range parcels("") {
			if p.ID == d.Parcel.ID {
				continue
			}
			if p.ActorName == "sim carriers" {
				delivered++
			}
			if p.Status == fleet.ParcelPickedUp && p.PickedUpAt != nil && p.ClosedBy == "device:"+p.DeviceID {
				if p.Offline {
					offline++
				} else {
					online++
				}
			}
		}
		return delivered >= 5 && online >= 3 && offline >= 1
	})
	// A wrong code typed before the right one is in the trail.
	testhub.WaitFor(t, 10*time.Second, "a wrong code audited", func() bool {
		out, _, _ := run(t, environ, "audit", "export")
		return strings.Contains(out, `"action":"parcel.keypad"`) && strings.Contains(out, `"result":"wrong"`)
	})
	// A resident who never came: the parcel stays and goes overdue.
	testhub.WaitFor(t, 10*time.Second, "a parcel overdue", func() bool {
		code, body := hub.getAs(t, operator, "/api/v1/alerts?state=open")
		return code == 200 && strings.Contains(body, `"parcel-overdue"`)
	})
	sim("people", "off")

	// Every door the residents opened, online or off, was opened by a code: no forced entry.
	code, body := hub.getAs(t, operator, "/api/v1/alerts")
	if code != 200 || strings.Contains(body, `"forced-entry"`) {
		t.Fatalf("alerts: %d %s", code, body)
	}
	// Neither simulate (its residents, the agents) nor the hub's trail holds a code: no value in
	// their records has a code's form.
	out, _, _ = run(t, environ, "audit", "export")
	for _, line := range strings.Split(out+simOut.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue // simulate's progress lines
		}
		if holdsCode(rec) {
			t.Fatalf("a record holds a pickup code: %s", line)
		}
	}
}

// holdsCode reports whether a decoded JSON value has a string of a pickup code's form anywhere.
func holdsCode(v any) bool {
	switch v := v.(type) {
	case string:
		return wire.ValidCode(v)
	case map[string]any:
		for _, e := range v {
			if holdsCode(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if holdsCode(e) {
				return true
			}
		}
	}
	return false
}
