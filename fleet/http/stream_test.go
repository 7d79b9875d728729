package http_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	lhhttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

type sse struct {
	name string
	data string
}

// openStream connects to the event stream and returns its events as they come.
func openStream(t *testing.T, addr, token, query string) (<-chan sse, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/api/v1/stream"+query, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan sse, 100)
	go func() {
		defer close(events)
		defer resp.Body.Close()
		var ev sse
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			switch line := sc.Text(); {
			case line == "":
				events <- ev
				ev = sse{}
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[len("data: "):]
			}
		}
	}()
	return events, resp
}

// next returns the next event called name, skipping others.
func next(t *testing.T, events <-chan sse, name string) sse {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("stream ended while waiting for %s", name)
			}
			if ev.name == name {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event", name)
		}
	}
}

func TestStream(t *testing.T) {
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	reg := openRegistry(t)
	for _, d := range []*fleet.Device{
		{ID: "oak-1", Kind: fleet.KindLockerBank, Site: "oak", Doors: 2},
		{ID: "elm-1", Kind: fleet.KindFridge, Site: "elm", Doors: 1},
	} {
		if _, err := reg.devices.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	stream := lhhttp.NewStream(0)
	addr := reg.serve(t, lhhttp.Services{Presence: nobodyOnline{}, Live: nobodyOnline{}, History: nobodyOnline{},
		Alerts: newAlertKeeper(t, reg), Stream: stream})
	viewer, oakViewer := reg.token(t, "v", fleet.RoleViewer), reg.token(t, "o", fleet.RoleViewer, "oak")

	// The whole fleet in scope: health first, then every device, then alerts as they change.
	fleetEvents, resp := openStream(t, addr, oakViewer, "")
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("stream answered %d %s", resp.StatusCode, ct)
	}
	var health struct{ Total fleet.SiteHealth }
	if err := json.Unmarshal([]byte(next(t, fleetEvents, "health").data), &health); err != nil || health.Total.Units != 1 {
		t.Fatalf("health for an oak token: %+v %v", health, err)
	}
	if dev := next(t, fleetEvents, "device").data; !strings.Contains(dev, `"id":"oak-1"`) {
		t.Fatalf("device event %s", dev)
	}

	// One device: its telemetry and commands too.
	oakEvents, _ := openStream(t, addr, viewer, "?device=oak-1")
	next(t, oakEvents, "device")
	snap := wire.Telemetry{V: 1, Seq: 5, TS: time.Now().UnixMilli(), Doors: []wire.DoorState{{Door: 1, Open: true}}}
	stream.HandleEvent(fleet.Event{Kind: fleet.EventTelemetryStored, Device: &fleet.Device{ID: "elm-1"}, Message: snap}) // not followed
	stream.HandleEvent(fleet.Event{Kind: fleet.EventTelemetryStored, Device: &fleet.Device{ID: "oak-1"}, Message: snap})
	stream.HandleEvent(fleet.Event{Kind: fleet.EventDoorChanged, Device: &fleet.Device{ID: "oak-1"}, Message: wire.Event{V: 1, Seq: 6, Kind: wire.EventDoor, Door: 2, Open: true}})
	stream.HandleEvent(fleet.Event{Kind: fleet.EventKeypadEntered, Device: &fleet.Device{ID: "oak-1"}, Message: wire.Event{V: 1, Seq: 7, Kind: wire.EventKeypad, Keypad: wire.KeypadWrong, Failures: 2}})
	stream.HandleEvent(fleet.Event{Kind: fleet.EventCommandChanged, Command: fleet.Command{ID: "c1", DeviceID: "oak-1", Type: wire.CommandUnlock, Door: 2, Status: fleet.CommandSent}})
	if got := next(t, oakEvents, "telemetry").data; !strings.Contains(got, `"seq":5`) {
		t.Fatalf("telemetry event %s", got)
	}
	if got := next(t, oakEvents, "door").data; !strings.Contains(got, `"door":2`) {
		t.Fatalf("door event %s", got)
	}
	if got := next(t, oakEvents, "keypad").data; !strings.Contains(got, `"keypad":"wrong"`) {
		t.Fatalf("keypad event %s", got)
	}
	if got := next(t, oakEvents, "command").data; !strings.Contains(got, `"id":"c1"`) {
		t.Fatalf("command event %s", got)
	}

	// Alerts reach the streams whose scope covers them.
	stream.HandleEvent(fleet.Event{Kind: fleet.EventAlertChanged, Alert: fleet.AlertEvent{Kind: fleet.AlertEventFired, Alert: fleet.Alert{ID: 1, Rule: "forced-entry", DeviceID: "elm-1", Site: "elm"}}})
	stream.HandleEvent(fleet.Event{Kind: fleet.EventAlertChanged, Alert: fleet.AlertEvent{Kind: fleet.AlertEventFired, Alert: fleet.Alert{ID: 2, Rule: "forced-entry", DeviceID: "oak-1", Site: "oak"}}})
	if got := next(t, fleetEvents, "alert").data; !strings.Contains(got, `"id":2`) {
		t.Fatalf("the oak token's stream got %s first, want alert 2 (alert 1 is at elm)", got)
	}
	if got := next(t, oakEvents, "alert").data; !strings.Contains(got, `"id":2`) {
		t.Fatalf("the oak-1 stream got %s, want alert 2", got)
	}

	// So do parcels' changes, without their codes.
	for _, p := range []*fleet.Parcel{
		{ID: "p-elm", DeviceID: "elm-1", Site: "elm", Door: 1, Status: fleet.ParcelInLocker, CodeSalt: []byte("salt"), CodeHash: []byte("hash")},
		{ID: "p-oak", DeviceID: "oak-1", Site: "oak", Door: 2, Status: fleet.ParcelInLocker, CodeSalt: []byte("salt"), CodeHash: []byte("hash")},
	} {
		stream.HandleEvent(fleet.Event{Kind: fleet.EventParcelChanged, Parcel: p})
	}
	for what, events := range map[string]<-chan sse{"the oak token's": fleetEvents, "the oak-1": oakEvents} {
		if got := next(t, events, "parcel").data; !strings.Contains(got, `"id":"p-oak"`) || strings.Contains(got, "c2FsdA") || strings.Contains(got, "aGFzaA") {
			t.Fatalf("%s stream got the parcel %s, want p-oak without its code's salt and hash (p-elm is at elm)", what, got)
		}
	}

	// Outside the scope, a device does not exist.
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/stream?device=elm-1", nil)
	req.Header.Set("Authorization", "Bearer "+oakViewer)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 404 {
		t.Fatalf("stream of a device outside the scope: %v %v", resp.StatusCode, err)
	}
}

// ended waits for the stream to end, skipping its events.
func ended(t *testing.T, events <-chan sse, within time.Duration, what string) {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatalf("%s: the stream is still open after %s", what, within)
		}
	}
}

// A stream ends soon after its token is revoked, rather than serving it for good.
func TestStreamEndsOnRevocation(t *testing.T) {
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	reg := openRegistry(t)
	if _, err := reg.devices.CreateDevice(ctx, &fleet.Device{ID: "oak-1", Kind: fleet.KindLockerBank, Site: "oak", Doors: 2}); err != nil {
		t.Fatal(err)
	}
	const recheck = 100 * time.Millisecond
	addr := reg.serve(t, lhhttp.Services{Presence: nobodyOnline{}, Live: nobodyOnline{}, History: nobodyOnline{},
		Stream: lhhttp.NewStream(0), TokenRecheck: recheck})
	secret := reg.token(t, "v", fleet.RoleViewer)
	tok, err := reg.tokens.Authenticate(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	fleetEvents, _ := openStream(t, addr, secret, "")
	deviceEvents, _ := openStream(t, addr, secret, "?device=oak-1")
	next(t, fleetEvents, "device")
	next(t, deviceEvents, "device")

	if err := reg.tokens.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	// Within the recheck interval, give or take a loaded machine; far less than a keepalive.
	ended(t, fleetEvents, 3*time.Second, "fleet stream of a revoked token")
	ended(t, deviceEvents, 3*time.Second, "device stream of a revoked token")
	if _, resp := openStream(t, addr, secret, ""); resp.StatusCode != 401 {
		t.Fatalf("a revoked token opened a stream: %d", resp.StatusCode)
	}
}

// changingTokens is the token store with the role and sites of tokens changed behind it, as an
// administrator editing a token in the database would; the API offers no such change yet.
type changingTokens struct {
	*sqldb.TokenService
	mu      sync.Mutex
	changes map[string]func(*fleet.Token)
}

func (c *changingTokens) change(id string, fn func(*fleet.Token)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changes[id] = fn
}

func (c *changingTokens) FindTokenByID(ctx context.Context, id string) (*fleet.Token, error) {
	t, err := c.TokenService.FindTokenByID(ctx, id)
	c.mu.Lock()
	defer c.mu.Unlock()
	if fn := c.changes[id]; err == nil && fn != nil {
		fn(t)
	}
	return t, err
}

// A stream follows its token's sites as they change, and ends when its role no longer allows
// it.
func TestStreamFollowsTokenChanges(t *testing.T) {
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	reg := openRegistry(t)
	for _, d := range []*fleet.Device{
		{ID: "oak-1", Kind: fleet.KindLockerBank, Site: "oak", Doors: 2},
		{ID: "elm-1", Kind: fleet.KindFridge, Site: "elm", Doors: 1},
	} {
		if _, err := reg.devices.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	tokens := &changingTokens{TokenService: reg.tokens, changes: map[string]func(*fleet.Token){}}
	stream := lhhttp.NewStream(0)
	addr := reg.serve(t, lhhttp.Services{Presence: nobodyOnline{}, Live: nobodyOnline{}, History: nobodyOnline{},
		Tokens: tokens, Stream: stream, TokenRecheck: 50 * time.Millisecond})
	secret := reg.token(t, "oak viewer", fleet.RoleViewer, "oak")
	tok, err := reg.tokens.Authenticate(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	fleetEvents, _ := openStream(t, addr, secret, "")
	oakEvents, _ := openStream(t, addr, secret, "?device=oak-1")
	if dev := next(t, fleetEvents, "device").data; !strings.Contains(dev, `"id":"oak-1"`) {
		t.Fatalf("device event %s", dev)
	}
	next(t, oakEvents, "device")

	// Moved from oak to elm: elm's devices and alerts come, oak's no longer do, and the stream
	// following an oak unit ends.
	tokens.change(tok.ID, func(t *fleet.Token) { t.Sites = []string{"elm"} })
	ended(t, oakEvents, 3*time.Second, "stream of a device outside the new scope")
	if dev := next(t, fleetEvents, "device").data; !strings.Contains(dev, `"id":"elm-1"`) {
		t.Fatalf("after the move to elm, device event %s", dev)
	}
	stream.HandleEvent(fleet.Event{Kind: fleet.EventAlertChanged, Alert: fleet.AlertEvent{Kind: fleet.AlertEventFired, Alert: fleet.Alert{ID: 1, Rule: "forced-entry", DeviceID: "oak-1", Site: "oak"}}})
	stream.HandleEvent(fleet.Event{Kind: fleet.EventAlertChanged, Alert: fleet.AlertEvent{Kind: fleet.AlertEventFired, Alert: fleet.Alert{ID: 2, Rule: "forced-entry", DeviceID: "elm-1", Site: "elm"}}})
	if got := next(t, fleetEvents, "alert").data; !strings.Contains(got, `"id":2`) {
		t.Fatalf("after the move to elm, the stream got %s first, want alert 2 (alert 1 is at oak)", got)
	}

	// A role that no longer allows streams ends it.
	tokens.change(tok.ID, func(t *fleet.Token) { t.Sites, t.Role = []string{"elm"}, "" })
	ended(t, fleetEvents, 3*time.Second, "stream of a token without a role")
}

// A token holds a bounded number of streams open; one more is refused until one closes.
func TestStreamsPerToken(t *testing.T) {
	reg := openRegistry(t)
	addr := reg.serve(t, lhhttp.Services{Presence: nobodyOnline{}, Live: nobodyOnline{}, History: nobodyOnline{}, Stream: lhhttp.NewStream(2)})
	busy, other := reg.token(t, "busy", fleet.RoleViewer), reg.token(t, "other", fleet.RoleViewer)
	_, first := openStream(t, addr, busy, "")
	_, second := openStream(t, addr, busy, "")
	if first.StatusCode != 200 || second.StatusCode != 200 {
		t.Fatalf("streams within the bound: %d %d", first.StatusCode, second.StatusCode)
	}
	a := call(t, "GET", "http://"+addr+"/api/v1/stream", busy, "")
	if a.code != 429 || a.errorCode() != fleet.ERATELIMITED || !strings.Contains(a.body, "2 event streams open") {
		t.Fatalf("a third stream: %d %s, want 429 saying how many are open", a.code, a.body)
	}
	if _, resp := openStream(t, addr, other, ""); resp.StatusCode != 200 {
		t.Fatalf("another token's stream: %d", resp.StatusCode)
	}

	first.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, resp := openStream(t, addr, busy, "")
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a stream closed, another is still refused: %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
