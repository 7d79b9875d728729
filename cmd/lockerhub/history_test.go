package main_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/testinflux"
)

// A unit reports its door open for 1.25 s and the history API answers door_open as the share of
// each second the door was open, whatever door points the hub chose to store (every snapshot's,
// or changes and keyframes): the door events and the snapshots say the same.
func TestDoorOpenHistoryEndToEnd(t *testing.T) {
	t.Parallel()
	inf := testinflux.Require(t)
	environ := env(t.TempDir(), "LOCKERHUB_INFLUX_URL="+inf.URL, "LOCKERHUB_INFLUX_BUCKET="+inf.Bucket)
	out, errOut, code := run(t, environ, "device", "add", "--id", "bank-1", "--kind", "locker-bank", "--site", "oak", "--doors", "2", "--json")
	if code != 0 {
		t.Fatal(out, errOut)
	}
	var added struct{ Secret string }
	json.Unmarshal([]byte(out), &added)
	hub := startHub(t, environ)
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + hub.mqtt).SetClientID("bank-1").SetUsername("bank-1").
		SetPassword(added.Secret).SetProtocolVersion(4).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(0)

	// From the second after the registration: snapshots every 250 ms for 4 s; door 1 opens at
	// 1.25 s and closes at 2.5 s.
	base := time.Now().Truncate(time.Second).Add(time.Second)
	openFrom, openUntil := base.Add(1250*time.Millisecond), base.Add(2500*time.Millisecond)
	publish := func(ch wire.Channel, m any) {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if tok := c.Publish(wire.Topic("bank-1", ch), 1, false, b); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", ch, tok.Error())
		}
	}
	seq := uint64(0)
	for at := base; at.Before(base.Add(4 * time.Second)); at = at.Add(250 * time.Millisecond) {
		open := !at.Before(openFrom) && at.Before(openUntil)
		if at.Equal(openFrom) || at.Equal(openUntil) {
			seq++
			publish(wire.ChannelEvents, wire.Event{V: wire.Version, Seq: seq, TS: at.UnixMilli(), Kind: wire.EventDoor, Door: 1,
				Open: open, Locked: !open, Cause: wire.CauseLocal, Via: wire.ViaKeypad})
		}
		seq++
		publish(wire.ChannelTelemetry, wire.Telemetry{V: wire.Version, Seq: seq, TS: at.UnixMilli(),
			Doors: []wire.DoorState{{Door: 1, Open: open, Locked: !open}, {Door: 2, Locked: true}}})
	}

	viewer := createToken(t, environ, "--name", "dashboard", "--role", "viewer")
	history := func(door int) string {
		return "/api/v1/devices/bank-1/telemetry?" + url.Values{"field": {"door_open"}, "door": {fmt.Sprint(door)}, "every": {"1s"},
			"from": {base.Format(time.RFC3339)}, "to": {base.Add(4 * time.Second).Format(time.RFC3339)}}.Encode()
	}
	// Until InfluxDB holds the four seconds and they are past.
	want := map[int]string{1: "[1:0 2:0.75 3:0.5 4:0]", 2: "[1:0 2:0 3:0 4:0]"}
	got := map[int]string{}
	for deadline := time.Now().Add(60 * time.Second); got[1] != want[1] || got[2] != want[2]; time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("door_open by door: %v, want %v", got, want)
		}
		for door := range want {
			code, body := hub.getAs(t, viewer.Token, history(door))
			var h struct {
				Points []struct {
					T time.Time
					V float64
				}
			}
			if code != 200 || json.Unmarshal([]byte(body), &h) != nil {
				t.Fatalf("history: %d %s", code, body)
			}
			var s []string
			for _, p := range h.Points {
				s = append(s, fmt.Sprintf("%d:%v", p.T.Sub(base)/time.Second, p.V))
			}
			got[door] = "[" + strings.Join(s, " ") + "]"
		}
	}
}
