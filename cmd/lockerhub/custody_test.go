package main_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/simctl"
	"github.com/lockerhub/lockerhub/fleet"
	fleethttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/internal/testhub"
)

// Parcel custody at a unit: the real hub, the real agent on simulated hardware (`lockerhub
// simulate`), codes typed at its keypad (`lockerhub sim keypad`). What a door did is read from
// the simulated lock, never from a message: a code opens its own door once, and a code that was
// used, cancelled, expired or retrieved opens nothing. A pickup made while the hub is down is
// recorded when it is back, with the unit's time, and raises no forced entry; too many wrong
// codes lock the keypad and raise keypad-brute-force.
func TestParcelCustodyAtTheUnit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mqtt := "127.0.0.1:" + freePort(t)
	environ := env(filepath.Join(dir, "hub"), "LOCKERHUB_MQTT_ADDR="+mqtt, "LOCKERHUB_INFLUX_URL=http://127.0.0.1:"+freePort(t))
	hub := startHub(t, environ)
	simOut := startSimulate(t, environ, 2, 60*time.Second, "--sites", "1", "--fridge-share", "0", "--provision",
		"--interval", "300ms", "--hub", "tcp://"+mqtt, "--control", "127.0.0.1:0")
	sim := simCLI(t, environ, simOut)
	// The first unit takes the parcels; the second one a parcel whose code expires, in a minute
	// that passes while the first one is tested.
	unitsStatus := func() []simctl.UnitStatus {
		t.Helper()
		var list simctl.List
		if err := json.Unmarshal([]byte(sim("list", "--json")), &list); err != nil || len(list.Units) != 2 {
			t.Fatalf("sim list: %+v, %v", list, err)
		}
		return list.Units
	}
	unitStatus := func() simctl.UnitStatus { return unitsStatus()[0] }
	unit, other := unitStatus().ID, unitsStatus()[1].ID
	hubURL := "http://" + hub.http
	carrier := createToken(t, environ, "--name", "courier co", "--role", "carrier", "--sites", "site-1").Token
	operator := createToken(t, environ, "--name", "desk", "--role", "operator").Token
	cli := func(token string, args ...string) string {
		t.Helper()
		out, errOut, code := run(t, environ, append(args, "--hub", hubURL, "--token", token)...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}

	// Every change of a unit's live codes raises its set's version by one, and the unit holds
	// the set once its agent reports that version.
	version := unitStatus().Codes
	synced := func(what string) {
		t.Helper()
		version++
		testhub.WaitFor(t, 15*time.Second, fmt.Sprintf("the unit to hold code set %d (%s)", version, what), func() bool {
			return unitStatus().Codes >= version
		})
	}
	deliver := func(door int, args ...string) fleethttp.DeliveryResponse {
		t.Helper()
		var d fleethttp.DeliveryResponse
		out := cli(carrier, append([]string{"deliver", "--unit", unit, "--door", strconv.Itoa(door), "--json"}, args...)...)
		if err := json.Unmarshal([]byte(out), &d); err != nil || d.Parcel.Door != door {
			t.Fatalf("deliver to door %d: %s", door, out)
		}
		synced("delivery to door " + strconv.Itoa(door))
		return d
	}
	status := func(id string) fleet.Parcel {
		t.Helper()
		var p fleethttp.ParcelResponse
		if err := json.Unmarshal([]byte(cli(operator, "parcels", "show", id, "--json")), &p); err != nil {
			t.Fatal(err)
		}
		return *p.Parcel
	}
	waitStatus := func(id string, want fleet.ParcelStatus) fleet.Parcel {
		t.Helper()
		var p fleet.Parcel
		testhub.WaitFor(t, 20*time.Second, "parcel "+id+" "+string(want), func() bool {
			p = status(id)
			return p.Status == want
		})
		return p
	}
	// waitAttempts waits for the hub to have recorded n keypad attempts of the unit in the audit
	// trail, and n of them with result if it is not "". A code the unit no longer holds is
	// simply wrong to it: "used" lasts only until the hub's next set leaves the code out.
	waitAttempts := func(result string, n int) {
		t.Helper()
		testhub.WaitFor(t, 15*time.Second, fmt.Sprintf("%d keypad attempts %q recorded", n, result), func() bool {
			out, _, _ := run(t, environ, "audit", "export", "--device", unit)
			if result != "" {
				return strings.Count(out, `"result":"`+result+`"`) >= n
			}
			return strings.Count(out, `"action":"parcel.keypad"`) >= n
		})
	}
	unlocks := func() []int { return unitStatus().Unlocks }
	wantUnlocks := func(when string, want map[int]int) {
		t.Helper()
		got := unlocks()
		for door, n := range want {
			if got[door-1] != n {
				t.Fatalf("%s: door %d's latch released %d times, want %d (all doors: %v)", when, door, got[door-1], n, got)
			}
		}
	}

	var short fleethttp.DeliveryResponse
	if err := json.Unmarshal([]byte(cli(carrier, "deliver", "--unit", other, "--door", "1", "--expires-in", "1m", "--json")), &short); err != nil {
		t.Fatal(err)
	}
	testhub.WaitFor(t, 15*time.Second, "the other unit to hold its code", func() bool { return unitsStatus()[1].Codes >= 1 })

	door3, door4 := deliver(3), deliver(4)
	sim("keypad", unit, door3.Code)
	picked := waitStatus(door3.Parcel.ID, fleet.ParcelPickedUp)
	if picked.PickedUpAt == nil || picked.ClosedBy != "device:"+unit || picked.Offline {
		t.Fatalf("pickup recorded as %+v", picked)
	}
	// The resident closes the door: the custody's last step.
	testhub.WaitFor(t, 20*time.Second, "door 3 closed after the pickup", func() bool {
		p := status(door3.Parcel.ID)
		return p.DoorClosedAt != nil && p.DoorClosedAt.After(*p.PickedUpAt)
	})
	wantUnlocks("door 3's code", map[int]int{3: 1, 4: 0})
	synced("the pickup")

	// The same code again opens nothing; neither does door 4's code open door 3.
	sim("keypad", unit, door3.Code)
	waitAttempts("", 2)
	wantUnlocks("door 3's code again", map[int]int{3: 1, 4: 0})

	// Cancel and retrieval each take the code off the unit; so does expiry, below.
	cli(operator, "parcels", "cancel", door4.Parcel.ID, "--reason", "wrong building")
	synced("the cancel")
	sim("keypad", unit, door4.Code)
	waitAttempts("", 3)
	wantUnlocks("a cancelled code", map[int]int{4: 0})

	kept := deliver(6)
	cli(operator, "parcels", "retrieve", kept.Parcel.ID, "--reason", "resident moved out")
	waitStatus(kept.Parcel.ID, fleet.ParcelRetrieved)
	wantUnlocks("the retrieval", map[int]int{6: 1})
	synced("the retrieval")
	sim("keypad", unit, kept.Code)
	waitAttempts("", 4)
	wantUnlocks("a retrieved parcel's code", map[int]int{6: 1})

	// Picked up while the hub is down: the unit checks the code itself, and the hub records the
	// pickup with the unit's time once it is back.
	offline := deliver(7)
	hub.cmd.Process.Signal(syscall.SIGKILL)
	<-hub.exited
	testhub.WaitFor(t, 15*time.Second, "the unit to notice the hub is gone", func() bool { return !unitStatus().Online })
	sim("keypad", unit, offline.Code)
	testhub.WaitFor(t, 15*time.Second, "door 7 opened while the hub is down", func() bool {
		st := unitStatus()
		return st.Unlocks[6] == 1 && st.Opens[6] == 1
	})
	time.Sleep(300 * time.Millisecond) // the agent reads its doors every 100 ms: the opening is in its outbox now
	back := time.Now()
	hub = startHub(t, environ)
	hubURL = "http://" + hub.http
	p := waitStatus(offline.Parcel.ID, fleet.ParcelPickedUp)
	if p.PickedUpAt == nil || !p.PickedUpAt.Before(back) {
		t.Fatalf("offline pickup recorded at %v, want the unit's time, before the hub came back at %s", p.PickedUpAt, back)
	}

	// The expired code opens nothing.
	testhub.WaitFor(t, 90*time.Second, "the short code to expire", func() bool { return status(short.Parcel.ID).Status == fleet.ParcelExpired })
	sim("keypad", other, short.Code)
	testhub.WaitFor(t, 15*time.Second, "the expired code's attempt recorded", func() bool {
		out, _, _ := run(t, environ, "audit", "export", "--device", other)
		return strings.Contains(out, `"action":"parcel.keypad"`)
	})
	if n := unitsStatus()[1].Unlocks[0]; n != 0 {
		t.Fatalf("an expired code released its door %d times", n)
	}

	// Five wrong codes in a row lock the keypad; the hub raises keypad-brute-force. The last
	// accepted code (the offline pickup) reset the count.
	for range 5 {
		sim("keypad", unit, "00000000")
	}
	waitAttempts("locked-out", 1)
	testhub.WaitFor(t, 15*time.Second, "keypad-brute-force raised", func() bool {
		out, _, _ := run(t, environ, "alerts", "--hub", hubURL, "--token", operator, "--device", unit, "--rule", "keypad-brute-force", "--json")
		return strings.Contains(out, `"rule":"keypad-brute-force"`)
	})
	// No opening in all of this was unauthorized.
	out, _, _ := run(t, environ, "alerts", "--hub", hubURL, "--token", operator, "--device", unit, "--rule", "forced-entry", "--state", "all", "--json")
	if strings.Contains(out, `"rule":"forced-entry"`) {
		t.Fatalf("a code's opening raised a forced entry: %s", out)
	}
}
