package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/testhub"
	"github.com/lockerhub/lockerhub/internal/testinflux"
)

// A unit removed with `device remove` and its id registered again at another site with
// `device add`, through the real hub, broker and InfluxDB: the new site's tokens read nothing
// of the old unit (its command with the actor and reason, its forced-door alert, its telemetry
// history, its live state and connection), neither at once nor once the hub has followed the
// registry change, when the old unit's alert is resolved; the old site's tokens see nothing of
// the id.
func TestReusedDeviceIDEndToEnd(t *testing.T) {
	t.Parallel()
	inf := testinflux.Require(t)
	dataDir := t.TempDir()
	environ := env(dataDir, "LOCKERHUB_INFLUX_URL="+inf.URL, "LOCKERHUB_INFLUX_BUCKET="+inf.Bucket)
	hub := startHub(t, environ)
	add := func(site string) string {
		t.Helper()
		out, errOut, code := run(t, environ, "device", "add", "--id", "x-1", "--kind", "fridge", "--site", site, "--doors", "2", "--json")
		var added struct{ Secret string }
		if code != 0 || json.Unmarshal([]byte(out), &added) != nil {
			t.Fatalf("device add at %s: exit %d %s", site, code, errOut)
		}
		return added.Secret
	}
	oakOps := createToken(t, environ, "--name", "oak ops", "--role", "operator", "--sites", "oak").Token
	oakView := createToken(t, environ, "--name", "oak wall", "--role", "viewer", "--sites", "oak").Token
	elmView := createToken(t, environ, "--name", "elm wall", "--role", "viewer", "--sites", "elm").Token

	// The oak unit: a reading, its door 1 forced, and an unlock of door 2.
	secret := add("oak")
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + hub.mqtt).SetClientID("x-1").SetUsername("x-1").
		SetPassword(secret).SetProtocolVersion(4).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	temp := 4.25
	for topic, msg := range map[string]any{
		"lockers/x-1/telemetry": wire.Telemetry{V: wire.Version, Seq: 1, TS: time.Now().UnixMilli(),
			Doors: []wire.DoorState{{Door: 1, Locked: true, TempC: &temp}, {Door: 2, Locked: true, TempC: &temp}}},
		"lockers/x-1/events": wire.Event{V: wire.Version, Seq: 2, TS: time.Now().UnixMilli(), Kind: wire.EventDoor, Door: 1, Open: true},
	} {
		b, _ := wire.Marshal(msg.(wire.Message))
		if tok := c.Publish(topic, 1, false, b); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	code, body := hub.send(t, "POST", oakOps, "/api/v1/devices/x-1/doors/2/unlock?wait=false", `{"reason":"tenant of flat 3 locked out"}`)
	var sent struct{ Command fleet.Command }
	if code != 202 || json.Unmarshal([]byte(body), &sent) != nil {
		t.Fatalf("unlock: %d %s", code, body)
	}
	history := "/api/v1/devices/x-1/telemetry?" + url.Values{"field": {"compartment_c"}, "door": {"1"}, "every": {"1m"},
		"from": {time.Now().Add(-time.Hour).Format(time.RFC3339)}, "to": {time.Now().Add(time.Hour).Format(time.RFC3339)}}.Encode()
	var alertID int64
	testhub.WaitFor(t, 30*time.Second, "the oak unit's alert and history", func() bool {
		var res struct{ Alerts []fleet.Alert }
		code, body := hub.getAs(t, oakView, "/api/v1/alerts?device=x-1")
		if code != 200 || json.Unmarshal([]byte(body), &res) != nil || len(res.Alerts) != 1 {
			return false
		}
		alertID = res.Alerts[0].ID
		code, body = hub.getAs(t, oakView, history)
		return code == 200 && strings.Contains(body, `"v":4.25`)
	})
	c.Disconnect(250)

	// Removed, and the id registered at elm by another unit, which has not connected yet.
	if _, errOut, code := run(t, environ, "device", "remove", "--id", "x-1"); code != 0 {
		t.Fatal(errOut)
	}
	add("elm")

	today := time.Now().UTC().Format(time.DateOnly)
	hidden := func(when string) {
		t.Helper()
		for _, tc := range []struct {
			tok, path string
			code      int
			not       []string // nothing of the oak unit in the answer
		}{
			{elmView, "/api/v1/devices/x-1", 200, []string{`"live"`, `"remote"`, `"disconnected_at"`, "4.25"}},
			{elmView, "/api/v1/devices", 200, []string{`"live"`, `"remote"`, "4.25"}},
			{elmView, history, 200, []string{"4.25"}},
			{elmView, "/api/v1/commands?device=x-1", 200, []string{sent.Command.ID, "flat 3"}},
			{elmView, "/api/v1/commands/" + sent.Command.ID, 404, []string{"flat 3"}},
			{elmView, "/api/v1/alerts?device=x-1", 200, []string{"forced"}},
			{elmView, fmt.Sprint("/api/v1/alerts/", alertID), 404, []string{"forced"}},
			{elmView, "/api/v1/reports/cold-chain?site=elm&from=" + today + "&to=" + today, 200, []string{"4.25"}},
			{oakView, "/api/v1/devices/x-1", 404, nil},
			{oakView, history, 404, nil},
			{oakView, "/api/v1/commands", 200, []string{sent.Command.ID}},
			{oakView, "/api/v1/alerts", 200, []string{"forced"}},
			{oakView, fmt.Sprint("/api/v1/alerts/", alertID), 404, nil},
		} {
			code, body := hub.getAs(t, tc.tok, tc.path)
			if code != tc.code {
				t.Errorf("%s: GET %s: %d %s, want %d", when, tc.path, code, body, tc.code)
			}
			for _, s := range tc.not {
				if showsToken(body, s) {
					t.Errorf("%s: GET %s shows %s of the unit removed: %s", when, tc.path, s, body)
				}
			}
		}
	}
	hidden("at once")

	db, err := sqldb.Open(context.Background(), "", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	testhub.WaitFor(t, 10*time.Second, "the hub to resolve the oak unit's alert", func() bool {
		a, err := sqldb.NewAlertStore(db).FindAlertByID(context.Background(), alertID)
		return err == nil && a.State == fleet.AlertResolved && a.ResolvedBy == fleet.ActorHub
	})
	hidden("once the hub followed the registry")
}

// showsToken reports whether s appears in body as a whole token: the
// reading 4.25 must not be found inside a timestamp such as 09:24:14.256.
func showsToken(body, s string) bool {
	for i := 0; ; {
		j := strings.Index(body[i:], s)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(s)
		if (start == 0 || !isNumberByte(body[start-1])) && (end == len(body) || !isNumberByte(body[end])) {
			return true
		}
		i = start + 1
	}
}

func isNumberByte(b byte) bool { return b >= '0' && b <= '9' || b == '.' }
