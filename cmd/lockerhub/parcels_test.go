package main_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	fleethttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/testhub"
)

// Parcel custody through the real binary: a carrier delivers with the CLI, the unit (a real
// MQTT client) receives the code's hash, reports the pickup it made while offline, and the
// record shows it; the carrier may do nothing else, and the code is shown only once.
func TestParcelsEndToEnd(t *testing.T) {
	t.Parallel()
	environ := env(t.TempDir(), "LOCKERHUB_INFLUX_URL=http://127.0.0.1:"+freePort(t))
	out, errOut, code := run(t, environ, "device", "add", "--id", "bank-1", "--kind", "locker-bank", "--site", "oak", "--doors", "4", "--json")
	var added struct{ Secret string }
	if code != 0 || json.Unmarshal([]byte(out), &added) != nil {
		t.Fatal(errOut)
	}
	hub := startHub(t, environ)
	hubURL := "http://" + hub.http
	carrier := createToken(t, environ, "--name", "courier co", "--role", "carrier", "--sites", "oak").Token
	operator := createToken(t, environ, "--name", "desk", "--role", "operator").Token
	viewer := createToken(t, environ, "--name", "screen", "--role", "viewer").Token
	cli := func(token string, args ...string) (string, string, int) {
		return run(t, environ, append(args, "--hub", hubURL, "--token", token)...)
	}

	// The unit: it keeps the code sets the hub sends it.
	var mu sync.Mutex
	var sets []wire.CodeSet
	keep := func(_ paho.Client, m paho.Message) {
		var s wire.CodeSet
		if json.Unmarshal(m.Payload(), &s) == nil {
			mu.Lock()
			sets = append(sets, s)
			mu.Unlock()
		}
	}
	unit := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + hub.mqtt).SetClientID("bank-1").SetUsername("bank-1").
		SetPassword(added.Secret).SetAutoReconnect(false).SetDefaultPublishHandler(keep))
	if tok := unit.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("unit connect: %v", tok.Error())
	}
	t.Cleanup(func() { unit.Disconnect(0) })
	if tok := unit.Subscribe(wire.Topic("bank-1", wire.ChannelCodes), 1, keep); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	out, errOut, code = cli(carrier, "deliver", "--site", "oak", "--recipient", "flat 2", "--json")
	var d fleethttp.DeliveryResponse
	if code != 0 || json.Unmarshal([]byte(out), &d) != nil || !wire.ValidCode(d.Code) || d.Parcel.DeviceID != "bank-1" {
		t.Fatalf("deliver: exit %d %s %s", code, out, errOut)
	}
	testhub.WaitFor(t, 10*time.Second, "the code set at the unit", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(sets) > 0 && len(sets[len(sets)-1].Codes) == 1 && sets[len(sets)-1].Codes[0].Matches(d.Code)
	})

	// The recipient picked it up while the unit was offline; the unit reports it now.
	opened := time.Now().Add(-3 * time.Minute).Truncate(time.Millisecond)
	payload, _ := wire.Marshal(wire.Event{V: wire.Version, Seq: 1, TS: opened.UnixMilli(), Kind: wire.EventDoor, Door: d.Parcel.Door,
		Open: true, Cause: wire.CauseCode, Parcel: d.Parcel.ID})
	if tok := unit.Publish(wire.Topic("bank-1", wire.ChannelEvents), 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish the pickup: %v", tok.Error())
	}
	testhub.WaitFor(t, 10*time.Second, "the pickup recorded", func() bool {
		out, _, _ := cli(viewer, "parcels", "show", d.Parcel.ID)
		return strings.Contains(out, "picked-up") && strings.Contains(out, "while the unit was offline")
	})
	out, _, _ = cli(viewer, "parcels", "show", d.Parcel.ID, "--json")
	var shown fleethttp.ParcelResponse
	if json.Unmarshal([]byte(out), &shown) != nil || !shown.Parcel.PickedUpAt.Equal(opened) || shown.Parcel.ClosedBy != "device:bank-1" {
		t.Fatalf("parcel after the pickup: %s", out)
	}

	// The carrier lists its own parcels, and may not unlock, list devices or cancel.
	if out, errOut, code := cli(carrier, "parcels"); code != 0 || !strings.Contains(out, d.Parcel.ID) {
		t.Fatalf("carrier's parcels: exit %d %s %s", code, out, errOut)
	}
	for _, args := range [][]string{
		{"unlock", "--device", "bank-1", "--door", "1", "--reason", "x"},
		{"alerts"},
		{"parcels", "cancel", d.Parcel.ID, "--reason", "x"},
	} {
		if _, errOut, code := cli(carrier, args...); code == 0 || !strings.Contains(errOut, "HTTP 403") {
			t.Errorf("carrier %v: exit %d %s, want 403", args, code, errOut)
		}
	}

	// An operator delivers into a named door and calls it off; the text output shows the code once.
	out, errOut, code = cli(operator, "deliver", "--unit", "bank-1", "--door", "3", "--size", "medium")
	if code != 0 || !strings.Contains(out, "code") || !strings.Contains(out, "door 3") {
		t.Fatalf("deliver: exit %d %s %s", code, out, errOut)
	}
	var second string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "parcel" {
			second = f[1]
		}
	}
	if out, errOut, code := cli(operator, "parcels", "cancel", second, "--reason", "wrong address"); code != 0 || !strings.Contains(out, "cancelled") {
		t.Fatalf("cancel: exit %d %s %s", code, out, errOut)
	}
	out, _, _ = cli(viewer, "parcels", "--unit", "bank-1", "--status", "cancelled,picked-up", "--json")
	if !strings.Contains(out, second) || !strings.Contains(out, d.Parcel.ID) || strings.Contains(out, d.Code) {
		t.Fatalf("parcel list: %s", out)
	}

	// The trail has the custody, never a code.
	out, _, _ = run(t, environ, "audit", "export", "--device", "bank-1")
	for _, want := range []string{`"action":"parcel.deliver"`, `"action":"parcel.pickup"`, `"action":"parcel.cancel"`, `"actor":"device:bank-1"`} {
		if !strings.Contains(out, want) {
			t.Errorf("audit export lacks %s", want)
		}
	}
	if strings.Contains(out, d.Code) {
		t.Fatal("the audit trail holds a pickup code")
	}
	// Nor does the hub's log: what it logged since it started serving.
	for {
		select {
		case rec := <-hub.logs:
			if line, _ := json.Marshal(rec); strings.Contains(string(line), d.Code) {
				t.Fatalf("the hub logged a pickup code: %s", line)
			}
			continue
		default:
		}
		break
	}
}
