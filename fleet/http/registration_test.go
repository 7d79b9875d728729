package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/alerts"
	"github.com/lockerhub/lockerhub/fleet/bus"
	"github.com/lockerhub/lockerhub/fleet/commands"
	lhhttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/telemetry"
	"github.com/lockerhub/lockerhub/telemetry/spool"
)

// everyoneOnline stands in for the broker: every unit is connected and just heard from, and
// takes every command.
type everyoneOnline struct{ nobodyOnline }

func (everyoneOnline) Presence(id string) (fleet.Presence, bool) {
	now := time.Now()
	return fleet.Presence{DeviceID: id, Online: true, ConnectedSince: now, LastSeen: now}, true
}

// pointStore stands in for InfluxDB: points tagged with a device id only, as the hub writes
// them, answered from the later of the query's From and Since, as the real adapter does
// (telemetry/influx tests that against InfluxDB).
type pointStore struct {
	mu     sync.Mutex
	points map[string][]fleet.HistoryPoint
}

func (s *pointStore) add(id string, p fleet.HistoryPoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.points[id] = append(s.points[id], p)
}

func (s *pointStore) History(_ context.Context, q fleet.HistoryQuery) ([]fleet.HistoryPoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []fleet.HistoryPoint
	for _, p := range s.points[q.DeviceID] {
		if !p.T.Before(q.From) && !p.T.Before(q.Since) && p.T.Before(q.To) {
			out = append(out, p)
		}
	}
	return out, nil
}

// A device id removed and registered again at another site is another unit: the new site's
// tokens see nothing the hub recorded of the unit before it (its commands with their actors and
// reasons, its alerts, its telemetry history and live state), and the old site's tokens see
// nothing of the id any more. Reads are right at once, before the hub has followed the registry
// change, and after it has, the old unit's open alert is resolved and does not keep the new
// unit's from firing.
func TestReusedDeviceID(t *testing.T) {
	ctx := context.Background()
	reg := openRegistry(t)
	online := everyoneOnline{}
	cmds, err := commands.New(sqldb.NewCommandStore(reg.db), reg.devices, online, online, commands.Options{})
	if err != nil {
		t.Fatal(err)
	}
	alertStore := sqldb.NewAlertStore(reg.db)
	health, err := alerts.New(alerts.DefaultConfig(), alertStore, reg.devices, online, alerts.Options{Audit: reg.audit})
	if err != nil {
		t.Fatal(err)
	}
	if err := health.Start(ctx); err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	events := bus.New()
	events.Subscribe(health)
	pipeline, err := telemetry.NewPipeline(sp, reg.devices, telemetry.Options{Events: events})
	if err != nil {
		t.Fatal(err)
	}
	history := &pointStore{points: map[string][]fleet.HistoryPoint{}}
	addr := reg.serve(t, lhhttp.Services{Presence: online, Live: pipeline, History: history, Commands: cmds, Alerts: health})

	admin := reg.token(t, "admin", fleet.RoleAdmin)
	oakOps, oakView := reg.token(t, "oak ops", fleet.RoleOperator, "oak"), reg.token(t, "oak wall", fleet.RoleTechnician, "oak")
	elmOps, elmView := reg.token(t, "elm ops", fleet.RoleOperator, "elm"), reg.token(t, "elm wall", fleet.RoleTechnician, "elm")

	call := func(tok, method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	register := func(site string) time.Time {
		t.Helper()
		code, body := call(admin, "POST", "/api/v1/devices", `{"id":"x-1","kind":"locker-bank","site":"`+site+`","doors":2}`)
		var res struct{ Device fleet.Device }
		if code != 201 || json.Unmarshal([]byte(body), &res) != nil {
			t.Fatalf("register x-1 at %s: %d %s", site, code, body)
		}
		return res.Device.CreatedAt
	}
	// unit sends what a unit with a forced door 1 sends: an opening without a cause, then an
	// ambient reading, which the history store keeps.
	unit := func(seq uint64, at time.Time) {
		t.Helper()
		if err := pipeline.Apply(ctx, "x-1", wire.ChannelEvents, wire.Event{V: wire.Version, Seq: seq, TS: at.UnixMilli(),
			Kind: wire.EventDoor, Door: 1, Open: true}); err != nil {
			t.Fatal(err)
		}
		history.add("x-1", fleet.HistoryPoint{T: at, V: float64(seq)})
		health.Evaluate(ctx)
	}
	unlock := func(tok, reason string) string {
		t.Helper()
		code, body := call(tok, "POST", "/api/v1/devices/x-1/doors/2/unlock?wait=false", `{"reason":"`+reason+`"}`)
		var res struct{ Command fleet.Command }
		if code != 202 || json.Unmarshal([]byte(body), &res) != nil {
			t.Fatalf("unlock: %d %s", code, body)
		}
		return res.Command.ID
	}
	alertIDs := func(tok, query string) []int64 {
		t.Helper()
		code, body := call(tok, "GET", "/api/v1/alerts?"+query, "")
		var res struct{ Alerts []fleet.Alert }
		if code != 200 || json.Unmarshal([]byte(body), &res) != nil {
			t.Fatalf("GET alerts?%s: %d %s", query, code, body)
		}
		var ids []int64
		for _, a := range res.Alerts {
			ids = append(ids, a.ID)
		}
		return ids
	}

	// The first unit, at oak: a forced door, telemetry, an unlock with a reason.
	oakSince := register("oak")
	unit(1, oakSince)
	oakCommand := unlock(oakOps, "tenant of flat 3 locked out")
	oakAlerts := alertIDs(oakView, "device=x-1")
	if len(oakAlerts) != 1 {
		t.Fatalf("the oak unit's alerts: %v, want its forced door", oakAlerts)
	}
	for time.Since(oakSince) < 2*time.Millisecond {
		time.Sleep(time.Millisecond) // a registration time of its own for the next unit
	}

	// Removed, and the id registered at elm by another unit.
	if code, body := call(admin, "DELETE", "/api/v1/devices/x-1", ""); code != 204 {
		t.Fatalf("remove: %d %s", code, body)
	}
	register("elm")

	hidden := func(when string) {
		t.Helper()
		window := url.Values{"field": {"ambient_c"}, "from": {oakSince.Add(-time.Hour).Format(time.RFC3339)},
			"to": {time.Now().Add(time.Hour).Format(time.RFC3339)}}.Encode()
		for _, tc := range []struct {
			tok, method, path string
			code              int
			not               []string // nothing of the oak unit in the answer
		}{
			{elmView, "GET", "/api/v1/devices/x-1", 200, []string{`"live"`, `"critical"`}},
			{elmView, "GET", "/api/v1/devices/x-1/telemetry?" + window, 200, []string{`"v":1`}},
			{elmView, "GET", "/api/v1/commands?device=x-1", 200, []string{oakCommand, "flat 3"}},
			{elmView, "GET", "/api/v1/commands", 200, []string{oakCommand, "flat 3"}},
			{elmView, "GET", "/api/v1/commands/" + oakCommand, 404, []string{"flat 3"}},
			{elmView, "GET", fmt.Sprint("/api/v1/alerts/", oakAlerts[0]), 404, []string{"forced"}},
			{elmView, "POST", fmt.Sprint("/api/v1/alerts/", oakAlerts[0], "/resolve"), 404, nil},
			{oakView, "GET", "/api/v1/devices/x-1", 404, nil},
			{oakView, "GET", "/api/v1/devices/x-1/telemetry?" + window, 404, nil},
			{oakView, "GET", "/api/v1/commands", 200, []string{oakCommand}},
			{oakView, "GET", "/api/v1/commands/" + oakCommand, 404, nil},
			{oakView, "GET", fmt.Sprint("/api/v1/alerts/", oakAlerts[0]), 404, nil},
			{admin, "GET", "/api/v1/commands/" + oakCommand, 404, nil},
		} {
			code, body := call(tc.tok, tc.method, tc.path, "")
			if code != tc.code {
				t.Errorf("%s: %s %s: %d %s, want %d", when, tc.method, tc.path, code, body, tc.code)
			}
			for _, s := range tc.not {
				if strings.Contains(body, s) {
					t.Errorf("%s: %s %s shows %q of the unit removed: %s", when, tc.method, tc.path, s, body)
				}
			}
		}
		for _, tok := range []string{elmView, oakView, admin} {
			for _, q := range []string{"", "device=x-1", "state=resolved"} {
				if ids := alertIDs(tok, q); len(ids) != 0 {
					t.Errorf("%s: GET alerts?%s lists %v of the unit removed", when, q, ids)
				}
			}
		}
	}
	hidden("before the hub followed the registry")

	// What the hub does on every registry change: the oak unit's open alert is resolved by the
	// hub, and it keeps nothing of it.
	if err := pipeline.InvalidateDevices(ctx); err != nil {
		t.Fatal(err)
	}
	if err := health.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if a, err := alertStore.FindAlertByID(ctx, oakAlerts[0]); err != nil || a.State != fleet.AlertResolved || a.ResolvedBy != fleet.ActorHub {
		t.Fatalf("the oak unit's alert after the registry change: %+v %v, want resolved by the hub", a, err)
	}
	hidden("after the hub followed the registry")

	// The elm unit's own: its forced door is an alert of its own, and its commands and history
	// are shown to elm.
	elmSince := time.Now()
	unit(1, elmSince) // sequence numbers start over with a new unit
	elmCommand := unlock(elmOps, "courier delivery")
	if ids := alertIDs(elmView, "device=x-1"); len(ids) != 1 || ids[0] == oakAlerts[0] {
		t.Errorf("the elm unit's alerts: %v, want its own forced door", ids)
	}
	if code, body := call(elmView, "GET", "/api/v1/commands?device=x-1", ""); code != 200 ||
		!strings.Contains(body, elmCommand) || strings.Contains(body, oakCommand) {
		t.Errorf("the elm unit's commands: %d %s", code, body)
	}
	if code, body := call(elmView, "GET", "/api/v1/devices/x-1", ""); code != 200 || !strings.Contains(body, `"live"`) {
		t.Errorf("the elm unit's live state: %d %s", code, body)
	}
	if code, _ := call(oakView, "GET", "/api/v1/commands/"+elmCommand, ""); code != 404 {
		t.Errorf("oak reads the elm unit's command: %d", code)
	}
}
