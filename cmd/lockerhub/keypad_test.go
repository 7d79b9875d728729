package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/testhub"
	"github.com/lockerhub/lockerhub/internal/testinflux"
)

// A unit's keypad lockout, sent over MQTT to the real hub: stored as a keypad point, not a door
// change, and raising keypad-brute-force until the quiet period passes without another.
func TestKeypadLockoutEndToEnd(t *testing.T) {
	t.Parallel()
	inf := testinflux.Require(t)
	dir := t.TempDir()
	rules := filepath.Join(dir, "alerts.yaml")
	if err := os.WriteFile(rules, []byte(`
tick: 100ms
rules:
  - {name: forced-entry, kind: forced_entry, severity: critical}
  - {name: keypad-brute-force, kind: keypad_lockout, severity: major, clear_for: 2s}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	environ := env(filepath.Join(dir, "hub"), "LOCKERHUB_INFLUX_URL="+inf.URL, "LOCKERHUB_INFLUX_BUCKET="+inf.Bucket,
		"LOCKERHUB_ALERTS_FILE="+rules)
	out, errOut, code := run(t, environ, "device", "add", "--id", "bank-1", "--kind", "locker-bank", "--site", "oak", "--doors", "4", "--json")
	var added struct{ Secret string }
	if code != 0 || json.Unmarshal([]byte(out), &added) != nil {
		t.Fatalf("device add: %s", errOut)
	}
	hub := startHub(t, environ)
	tech := createToken(t, environ, "--name", "tech", "--role", "technician").Token

	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + hub.mqtt).SetClientID("bank-1").SetUsername("bank-1").
		SetPassword(added.Secret).SetProtocolVersion(4).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	now := time.Now()
	snap := wire.Telemetry{V: wire.Version, Seq: 1, TS: now.UnixMilli()}
	for d := 1; d <= 4; d++ {
		snap.Doors = append(snap.Doors, wire.DoorState{Door: d, Locked: true})
	}
	for _, m := range []struct {
		ch  wire.Channel
		msg wire.Message
	}{
		{wire.ChannelTelemetry, snap},
		{wire.ChannelEvents, wire.Event{V: wire.Version, Seq: 2, TS: now.UnixMilli(), Kind: wire.EventKeypad, Keypad: wire.KeypadLockedOut,
			Failures: 5, LockedUntil: now.Add(15 * time.Minute).UnixMilli()}},
	} {
		b, err := wire.Marshal(m.msg)
		if err != nil {
			t.Fatal(err)
		}
		if tok := c.Publish(wire.Topic("bank-1", m.ch), 1, false, b); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}

	open := func() []string {
		t.Helper()
		code, body := hub.getAs(t, tech, "/api/v1/alerts?state=open&device=bank-1")
		var res struct{ Alerts []fleet.Alert }
		if code != 200 || json.Unmarshal([]byte(body), &res) != nil {
			t.Fatalf("GET alerts: %d %s", code, body)
		}
		var rules []string
		for _, a := range res.Alerts {
			rules = append(rules, a.Rule)
		}
		return rules
	}
	testhub.WaitFor(t, 30*time.Second, "keypad-brute-force open", func() bool { return slices.Equal(open(), []string{"keypad-brute-force"}) })
	testhub.WaitFor(t, 30*time.Second, "keypad-brute-force resolved after 2 quiet seconds", func() bool { return len(open()) == 0 })

	testhub.WaitFor(t, 30*time.Second, "the keypad point in InfluxDB", func() bool { return inf.Count(t, "keypad") == 1 })
	if rows := inf.Query(t, `SELECT "result", "failures" FROM keypad WHERE device='bank-1'`); len(rows) != 1 || rows[0][1] != "locked-out" || rows[0][2] != 5.0 {
		t.Fatalf("keypad points %v, want one lockout after 5 wrong codes", rows)
	}
	if n := inf.Count(t, "door_event"); n != 0 {
		t.Fatalf("%d door events stored for a keypad lockout", n)
	}
	code, body := hub.getAs(t, tech, "/api/v1/devices/bank-1")
	var view struct {
		Live struct {
			Doors     []wire.DoorState
			LastEvent *wire.Event `json:"last_event"`
		}
	}
	if code != 200 || json.Unmarshal([]byte(body), &view) != nil || len(view.Live.Doors) != 4 || view.Live.LastEvent != nil {
		t.Fatalf("device view %d %s: want the snapshot's 4 doors and no door event", code, body)
	}
}
