package parcels_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lockerhub/lockerhub/broker"
	"github.com/lockerhub/lockerhub/edge-agent/agent"
	"github.com/lockerhub/lockerhub/edge-agent/hardware"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/bus"
	"github.com/lockerhub/lockerhub/fleet/commands"
	"github.com/lockerhub/lockerhub/fleet/parcels"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/testhub"
)

// harness is the parcel service with real parts: the embedded broker, the SQLite store, the
// commands service and the event bus, with units registered at the site "oak".
type harness struct {
	hub     *testhub.Hub
	bus     *bus.Bus
	store   *sqldb.ParcelStore
	audit   *sqldb.AuditService
	svc     *parcels.Service
	secrets map[string]string
	ctx     context.Context // an operator's
}

func newHarness(t *testing.T, devices ...*fleet.Device) *harness {
	t.Helper()
	h := &harness{hub: testhub.Open(t), bus: bus.New(), secrets: map[string]string{},
		ctx: fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "token:op", Name: "desk"})}
	h.hub.Options.Events = h.bus
	h.hub.Restart("")
	cli := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	for _, d := range devices {
		secret, err := h.hub.Devices.CreateDevice(cli, d)
		if err != nil {
			t.Fatal(err)
		}
		h.secrets[d.ID] = secret
	}
	h.store, h.audit = sqldb.NewParcelStore(h.hub.DB), sqldb.NewAuditService(h.hub.DB)
	cmds, err := commands.New(sqldb.NewCommandStore(h.hub.DB), h.hub.Devices, h.hub.Broker, h.hub.Broker, commands.Options{Audit: h.audit})
	if err != nil {
		t.Fatal(err)
	}
	if err := cmds.TakeResults(h.hub.Broker); err != nil {
		t.Fatal(err)
	}
	h.svc, err = parcels.New(h.store, h.hub.Devices, h.hub.Broker, cmds, h.hub.Broker,
		parcels.Config{ResendAfter: 200 * time.Millisecond}, parcels.Options{Events: h.bus, Audit: h.audit})
	if err != nil {
		t.Fatal(err)
	}
	h.bus.Subscribe(h.svc)
	h.svc.Start()
	t.Cleanup(h.svc.Close)
	return h
}

func bank(id string, doors int, labels map[string]string) *fleet.Device {
	return &fleet.Device{ID: id, Kind: fleet.KindLockerBank, Site: "oak", Doors: doors, Labels: labels}
}

func (h *harness) deliver(t *testing.T, d fleet.Delivery) (*fleet.Parcel, string) {
	t.Helper()
	p, code, err := h.svc.Deliver(h.ctx, d)
	if err != nil {
		t.Fatalf("Deliver(%+v): %v", d, err)
	}
	return p, code
}

func (h *harness) parcel(t *testing.T, id string) *fleet.Parcel {
	t.Helper()
	p, err := h.svc.FindParcelByID(h.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// actions returns the audit trail's parcel actions, each with its detail's parcel and door.
func (h *harness) actions(t *testing.T) []*fleet.AuditEntry {
	t.Helper()
	var out []*fleet.AuditEntry
	if err := h.audit.Entries(context.Background(), fleet.AuditFilter{}, func(e *fleet.AuditEntry) error {
		if strings.HasPrefix(string(e.Action), "parcel.") {
			out = append(out, e)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDeliverPicksTheRightCompartment(t *testing.T) {
	t.Parallel()
	freezer := &fleet.Device{ID: "freezer-1", Kind: fleet.KindFridge, Site: "oak", Doors: 2, Labels: map[string]string{"class": fleet.ClassFreezer}}
	h := newHarness(t,
		bank("bank-1", 4, map[string]string{"size.1": "small", "size.2": "large", "size.4": "large"}),
		bank("bank-2", 3, nil),
		&fleet.Device{ID: "fridge-1", Kind: fleet.KindFridge, Site: "oak", Doors: 2},
		freezer,
		&fleet.Device{ID: "bank-9", Kind: fleet.KindLockerBank, Site: "elm", Doors: 2})

	type want struct {
		device string
		door   int
	}
	for _, tc := range []struct {
		name string
		d    fleet.Delivery
		want want
	}{
		{"at a site, the unit with the most free compartments", fleet.Delivery{Site: "oak", Size: fleet.SizeLarge}, want{"bank-1", 2}},
		{"a medium door before a large one", fleet.Delivery{DeviceID: "bank-1", Size: fleet.SizeMedium}, want{"bank-1", 3}},
		{"now the other unit has more free", fleet.Delivery{Site: "oak"}, want{"bank-2", 1}},
		{"no size: the smallest door", fleet.Delivery{DeviceID: "bank-1"}, want{"bank-1", 1}},
		{"perishable needs a fridge", fleet.Delivery{Site: "oak", Perishable: true}, want{"fridge-1", 1}},
		{"frozen needs a freezer", fleet.Delivery{Site: "oak", Frozen: true}, want{"freezer-1", 1}},
		{"a named door", fleet.Delivery{DeviceID: "fridge-1", Door: 2, Perishable: true}, want{"fridge-1", 2}},
		{"the one unit with a large door left", fleet.Delivery{Site: "oak", Size: fleet.SizeLarge}, want{"bank-1", 4}},
	} {
		p, code := h.deliver(t, tc.d)
		if (want{p.DeviceID, p.Door}) != tc.want || p.Status != fleet.ParcelInLocker || p.Site != "oak" {
			t.Fatalf("%s: got %s door %d (%s), want %+v", tc.name, p.DeviceID, p.Door, p.Status, tc.want)
		}
		if !regexp.MustCompile(`^[0-9]{8}$`).MatchString(code) {
			t.Fatalf("%s: code %q, want 8 digits", tc.name, code)
		}
		stored := h.parcel(t, p.ID)
		if !bytes.Equal(stored.CodeHash, wire.HashCode(code, stored.CodeSalt)) || len(stored.CodeSalt) != wire.CodeSaltBytes {
			t.Fatalf("%s: the stored hash is not the code's", tc.name)
		}
		if !(wire.Code{Parcel: p.ID, Door: p.Door, Salt: b64(stored.CodeSalt), Hash: b64(stored.CodeHash)}).Matches(code) {
			t.Fatalf("%s: the code does not match its code set entry", tc.name)
		}
		if j, _ := json.Marshal(p); bytes.Contains(j, []byte(code)) || bytes.Contains(j, []byte("salt")) {
			t.Fatalf("%s: the parcel's JSON shows the code or its hash: %s", tc.name, j)
		}
	}

	for _, tc := range []struct {
		name string
		d    fleet.Delivery
		code string
	}{
		{"no large door left", fleet.Delivery{Site: "oak", Size: fleet.SizeLarge}, fleet.ECONFLICT},
		{"a taken door", fleet.Delivery{DeviceID: "bank-1", Door: 1}, fleet.ECONFLICT},
		{"dry parcel into a fridge", fleet.Delivery{DeviceID: "fridge-1"}, fleet.ECONFLICT},
		{"chilled parcel into a freezer", fleet.Delivery{DeviceID: "freezer-1", Perishable: true}, fleet.ECONFLICT},
		{"no door that high", fleet.Delivery{DeviceID: "bank-2", Door: 4}, fleet.ENOTFOUND},
		{"unknown unit", fleet.Delivery{DeviceID: "bank-404"}, fleet.ENOTFOUND},
		{"unknown site", fleet.Delivery{Site: "nowhere"}, fleet.ENOTFOUND},
		{"unit and site", fleet.Delivery{DeviceID: "bank-1", Site: "oak"}, fleet.EINVALID},
		{"unknown size", fleet.Delivery{Site: "oak", Size: "huge"}, fleet.EINVALID},
		{"door with a site", fleet.Delivery{Site: "oak", Door: 1}, fleet.EINVALID},
		{"a code life too short", fleet.Delivery{Site: "elm", ExpiresIn: time.Second}, fleet.EINVALID},
	} {
		if _, code, err := h.svc.Deliver(h.ctx, tc.d); fleet.ErrorCode(err) != tc.code || code != "" {
			t.Fatalf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}

	// A delivery without an actor is refused: every change is recorded for someone.
	if _, _, err := h.svc.Deliver(context.Background(), fleet.Delivery{Site: "elm"}); fleet.ErrorCode(err) != fleet.EINTERNAL {
		t.Fatalf("Deliver without an actor: %v", err)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// The code is shown once and kept nowhere in the clear: not in the database file, its write-ahead
// log, the audit trail, or any parcel read back.
func TestCodeNeverStoredInTheClear(t *testing.T) {
	t.Parallel()
	h := newHarness(t, bank("bank-1", 8, nil))
	var codes []string
	for range 8 {
		p, code := h.deliver(t, fleet.Delivery{DeviceID: "bank-1", Recipient: "recipient-marker"})
		codes = append(codes, code)
		if _, err := h.svc.Cancel(h.ctx, p.ID, "test"); err != nil {
			t.Fatal(err)
		}
	}
	var files []byte
	for _, name := range []string{sqldb.FileName, sqldb.FileName + "-wal"} {
		b, err := os.ReadFile(filepath.Join(h.hub.DataDir, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		files = append(files, b...)
	}
	if !bytes.Contains(files, []byte("recipient-marker")) {
		t.Fatal("the database files do not hold what was stored: the search below would prove nothing")
	}
	for _, code := range codes {
		// A code's 8 digits may occur inside a longer run of hex (an id, a hash); a code stored
		// as a value of its own stands apart from its neighbours.
		for i := 0; ; {
			j := bytes.Index(files[i:], []byte(code))
			if j < 0 {
				break
			}
			at := i + j
			if !isHex(files, at-1) && !isHex(files, at+len(code)) {
				t.Fatalf("code %s stored in the clear at byte %d: %q", code, at, files[max(at-20, 0):min(at+28, len(files))])
			}
			i = at + 1
		}
	}
	for _, e := range h.actions(t) {
		j, _ := json.Marshal(e.Detail)
		for _, code := range codes {
			if bytes.Contains(j, []byte(code)) {
				t.Fatalf("audit entry %s holds a code: %s", e.Action, j)
			}
		}
	}
}

func isHex(b []byte, i int) bool {
	if i < 0 || i >= len(b) {
		return false
	}
	c := b[i]
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f'
}

func (h *harness) doorEvent(dev *fleet.Device, p *fleet.Parcel, at time.Time) {
	h.bus.Publish(fleet.Event{Kind: fleet.EventDoorChanged, Device: dev, Message: wire.Event{V: wire.Version, Seq: 7,
		TS: at.UnixMilli(), Kind: wire.EventDoor, Door: p.Door, Open: true, Cause: wire.CauseCode, Parcel: p.ID}})
}

func (h *harness) waitStatus(t *testing.T, id string, want fleet.ParcelStatus) *fleet.Parcel {
	t.Helper()
	var p *fleet.Parcel
	testhub.WaitFor(t, 5*time.Second, "parcel "+string(want), func() bool {
		p = h.parcel(t, id)
		return p.Status == want
	})
	return p
}

func TestPickupFromDoorEvent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, bank("bank-1", 4, nil), bank("bank-2", 4, nil))
	dev, _ := h.hub.Devices.FindDeviceByID(context.Background(), "bank-1")
	other, _ := h.hub.Devices.FindDeviceByID(context.Background(), "bank-2")

	// Picked up while the unit was offline: the event arrives ten minutes late.
	late, _ := h.deliver(t, fleet.Delivery{DeviceID: "bank-1"})
	openedAt := time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond).UTC()
	h.doorEvent(other, late, openedAt) // another unit cannot report it
	h.doorEvent(dev, late, openedAt)
	p := h.waitStatus(t, late.ID, fleet.ParcelPickedUp)
	if !p.PickedUpAt.Equal(openedAt) || !p.Offline || p.ClosedBy != "device:bank-1" || p.ClosedAt == nil || p.Occupies() {
		t.Fatalf("offline pickup recorded as %+v, want at %s, offline, by the unit", p, openedAt)
	}
	// Redelivered (QoS 1) or handled by a second hub: recorded once.
	h.doorEvent(dev, late, openedAt)

	// Picked up while online.
	now, _ := h.deliver(t, fleet.Delivery{DeviceID: "bank-1"})
	h.doorEvent(dev, now, time.Now())
	if p := h.waitStatus(t, now.ID, fleet.ParcelPickedUp); p.Offline {
		t.Fatalf("a pickup reported at once marked offline: %+v", p)
	}

	// Cancelled meanwhile, but the unit had not heard: the parcel left all the same.
	gone, _ := h.deliver(t, fleet.Delivery{DeviceID: "bank-1"})
	if _, err := h.svc.Cancel(h.ctx, gone.ID, "wrong address"); err != nil {
		t.Fatal(err)
	}
	h.doorEvent(dev, gone, time.Now())
	h.waitStatus(t, gone.ID, fleet.ParcelPickedUp)

	var pickups []string
	for _, e := range h.actions(t) {
		if e.Action == fleet.AuditParcelPickup {
			if e.Actor != "device:bank-1" || e.Detail["open"] != true {
				t.Fatalf("pickup entry %+v", e)
			}
			pickups = append(pickups, e.Detail["parcel"].(string))
		}
	}
	if want := []string{late.ID, now.ID, gone.ID}; !slices.Equal(pickups, want) {
		t.Fatalf("pickups in the audit trail %v, want each once: %v", pickups, want)
	}
	if p := h.parcel(t, late.ID); !p.PickedUpAt.Equal(openedAt) {
		t.Fatalf("the repeated event changed the pickup: %+v", p)
	}
}

func TestKeypadAttemptsAudited(t *testing.T) {
	t.Parallel()
	h := newHarness(t, bank("bank-1", 4, nil))
	dev, _ := h.hub.Devices.FindDeviceByID(context.Background(), "bank-1")
	at := time.Now()
	for _, e := range []wire.Event{
		{Kind: wire.EventKeypad, Keypad: wire.KeypadWrong, Failures: 1},
		{Kind: wire.EventKeypad, Keypad: wire.KeypadLockedOut, Failures: 5, LockedUntil: at.Add(time.Minute).UnixMilli()},
		{Kind: wire.EventKeypad, Keypad: wire.KeypadAccepted, Door: 2, Parcel: "p-1"},
	} {
		e.V, e.TS = wire.Version, at.UnixMilli()
		h.bus.Publish(fleet.Event{Kind: fleet.EventKeypadEntered, Device: dev, Message: e})
	}
	var got []string
	testhub.WaitFor(t, 5*time.Second, "three keypad entries", func() bool {
		got = nil
		for _, e := range h.actions(t) {
			if e.Action == fleet.AuditParcelKeypad && e.Actor == "device:bank-1" && e.Device == "bank-1" {
				j, _ := json.Marshal(e.Detail)
				got = append(got, string(j))
			}
		}
		return len(got) == 3
	})
	for i, want := range []string{`"failures":1,"result":"wrong"`, `"failures":5,"locked_until"`, `"door":2,"parcel":"p-1","result":"accepted"`} {
		if !strings.Contains(got[i], want) {
			t.Fatalf("keypad entry %d = %s, want %s", i, got[i], want)
		}
	}
}

// A code's expiry is a deadline: the parcel becomes expired at it, by the hub, and the unit's
// code set version moves on.
func TestExpiryByDeadline(t *testing.T) {
	t.Parallel()
	h := newHarness(t, bank("bank-1", 4, nil))
	p, _ := h.deliver(t, fleet.Delivery{DeviceID: "bank-1"})
	v1, _, _ := h.store.CodeSet(context.Background(), "bank-1", time.Now())

	// A second hub (the same store, a service of its own) delivers a parcel whose code dies
	// soon; this one learns of it only from the store, when it starts.
	dev, _ := h.hub.Devices.FindDeviceByID(context.Background(), "bank-1")
	soon := time.Now().Add(300 * time.Millisecond).UTC().Truncate(time.Millisecond)
	short := &fleet.Parcel{ID: "short", DeviceID: "bank-1", Registration: dev.Registration, Site: "oak", Door: 4,
		Compartment: fleet.CompartmentDry, Status: fleet.ParcelInLocker, CreatedAt: time.Now().UTC(), DroppedAt: &soon, ExpiresAt: soon,
		Actor: "token:op", CodeSalt: make([]byte, 16), CodeHash: make([]byte, 32)}
	e, _ := fleet.NewAuditEntry(h.ctx, fleet.AuditParcelDeliver, "bank-1", map[string]any{"parcel": "short"})
	if _, err := h.store.CreateParcel(h.ctx, short, e); err != nil {
		t.Fatal(err)
	}
	restarted, err := parcels.New(h.store, h.hub.Devices, h.hub.Broker, nil, h.hub.Broker, parcels.Config{}, parcels.Options{Audit: h.audit})
	if err != nil {
		t.Fatal(err)
	}
	restarted.Start()
	t.Cleanup(restarted.Close)
	got := h.waitStatus(t, "short", fleet.ParcelExpired)
	if got.ClosedBy != fleet.ActorHub || got.ClosedAt == nil || got.ClosedAt.Before(soon) || !got.Occupies() {
		t.Fatalf("expired parcel %+v: want closed by the hub at its deadline, still in its compartment", got)
	}
	if p := h.parcel(t, p.ID); p.Status != fleet.ParcelInLocker {
		t.Fatalf("a parcel with a week to go: %s", p.Status)
	}
	v2, live, _ := h.store.CodeSet(context.Background(), "bank-1", time.Now())
	if v2.Want <= v1.Want+1 || len(live) != 1 || live[0].ID != p.ID {
		t.Fatalf("code set after the expiry: version %d (was %d), codes %v", v2.Want, v1.Want, live)
	}
	n := 0
	for _, e := range h.actions(t) {
		if e.Action == fleet.AuditParcelExpire && e.Detail["parcel"] == "short" && e.Actor == fleet.ActorHub {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d expiry entries for the parcel, want 1 (two hubs' timers, one transition)", n)
	}
}

// device is a unit's MQTT session, a real paho client subscribed to its code sets.
type device struct {
	client paho.Client
	mu     sync.Mutex
	sets   []wire.CodeSet
}

func (h *harness) connect(t *testing.T, id string, d *device) *device {
	t.Helper()
	if d == nil {
		d = &device{}
	}
	// The persistent session may deliver a set before Subscribe has set its route again.
	handle := func(_ paho.Client, m paho.Message) {
		var set wire.CodeSet
		if err := json.Unmarshal(m.Payload(), &set); err != nil || set.Validate() != nil {
			t.Errorf("code set %s: %v %v", m.Payload(), err, set.Validate())
		}
		d.mu.Lock()
		d.sets = append(d.sets, set)
		d.mu.Unlock()
	}
	opts := paho.NewClientOptions().AddBroker(h.hub.URLOf(broker.ListenerTCP)).SetClientID(id).SetUsername(id).
		SetPassword(h.secrets[id]).SetProtocolVersion(4).SetAutoReconnect(false).SetCleanSession(false).
		SetConnectTimeout(5 * time.Second).SetDefaultPublishHandler(handle)
	d.client = paho.NewClient(opts)
	if tok := d.client.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	tok := d.client.Subscribe(wire.Topic(id, wire.ChannelCodes), 1, handle)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { d.client.Disconnect(0) })
	return d
}

// waitSet waits for the code set of the given version and returns it.
func (d *device) waitSet(t *testing.T, version uint64) wire.CodeSet {
	t.Helper()
	var got wire.CodeSet
	testhub.WaitFor(t, 5*time.Second, "a code set", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, s := range d.sets {
			if s.Version == version {
				got = s
				return true
			}
		}
		return false
	})
	return got
}

func (d *device) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.sets)
}

// The code set reaches the unit on a change, again when it reconnects, and again when its
// telemetry reports another version than the one wanted; a report of the right one sends nothing.
func TestCodeSetSentToTheUnit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, bank("bank-1", 4, nil))
	dev, _ := h.hub.Devices.FindDeviceByID(context.Background(), "bank-1")
	d := h.connect(t, "bank-1", nil)

	p1, code1 := h.deliver(t, fleet.Delivery{DeviceID: "bank-1"})
	set := d.waitSet(t, 1)
	if len(set.Codes) != 1 || set.Codes[0].Parcel != p1.ID || set.Codes[0].Door != p1.Door || !set.Codes[0].Matches(code1) ||
		set.Codes[0].Expires != p1.ExpiresAt.UnixMilli() {
		t.Fatalf("code set %+v, want parcel %s's code", set, p1.ID)
	}
	// A reservation is no code yet: nothing sent for it.
	r, rcode := h.deliver(t, fleet.Delivery{DeviceID: "bank-1", Reserve: true})

	// Offline, the unit misses the drop-off; it gets the set when it comes back.
	d.client.Disconnect(100)
	testhub.WaitFor(t, 5*time.Second, "the unit offline", func() bool { p, _ := h.hub.Presence("bank-1"); return !p.Online })
	if _, err := h.svc.DropOff(h.ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	h.connect(t, "bank-1", d)
	set = d.waitSet(t, 2)
	if len(set.Codes) != 2 || !slices.ContainsFunc(set.Codes, func(c wire.Code) bool { return c.Parcel == r.ID && c.Matches(rcode) }) {
		t.Fatalf("code set after the reconnect %+v, want both codes", set)
	}

	// The unit reports version 1: it is sent 2 again, and the report is recorded.
	before := d.count()
	h.bus.Publish(fleet.Event{Kind: fleet.EventTelemetryStored, Device: dev, Message: wire.Telemetry{V: wire.Version, Codes: 1}})
	testhub.WaitFor(t, 5*time.Second, "a resend", func() bool { return d.count() > before })
	if v, _, _ := h.store.CodeSet(context.Background(), "bank-1", time.Now()); v.Reported != 1 || v.Want != 2 {
		t.Fatalf("code set versions %+v, want 2 wanted, 1 reported", v)
	}
	// It reports version 2: nothing more is sent, however often it says so.
	time.Sleep(250 * time.Millisecond) // past ResendAfter, so that only the matching version holds it back
	before = d.count()
	for range 3 {
		h.bus.Publish(fleet.Event{Kind: fleet.EventTelemetryStored, Device: dev, Message: wire.Telemetry{V: wire.Version, Codes: 2}})
	}
	testhub.WaitFor(t, 5*time.Second, "the report recorded", func() bool {
		v, _, _ := h.store.CodeSet(context.Background(), "bank-1", time.Now())
		return v.Reported == 2
	})
	// Cancelling a code sends the set without it.
	if _, err := h.svc.Cancel(h.ctx, p1.ID, "recalled"); err != nil {
		t.Fatal(err)
	}
	set = d.waitSet(t, 3)
	if d.count() != before+1 || len(set.Codes) != 1 || set.Codes[0].Parcel != r.ID {
		t.Fatalf("after the cancel: %d sets (want %d), last %+v", d.count(), before+1, set)
	}
}

// Retrieve unlocks the parcel's door through the commands service and the real agent, and
// marks the parcel retrieved only once the door opened: a jammed door leaves it in place.
func TestRetrieveThroughRealAgent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, bank("bank-1", 4, nil))
	hw, err := hardware.NewSimulator(hardware.SimConfig{Kind: hardware.KindLockerBank, Doors: 4, OpenDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cfg := agent.DefaultConfig()
	cfg.Hubs, cfg.DeviceID, cfg.Secret, cfg.DataDir = []string{h.hub.URL()}, "bank-1", h.secrets["bank-1"], t.TempDir()
	cfg.ReconnectMax, cfg.Unlock.ConfirmWindow = time.Second, 2*time.Second
	a, err := agent.New(cfg, hw, agent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testhub.WaitFor(t, 15*time.Second, "unit online", a.Online)

	p, _ := h.deliver(t, fleet.Delivery{DeviceID: "bank-1"})
	if _, _, err := h.svc.Retrieve(h.ctx, p.ID, ""); fleet.ErrorCode(err) != fleet.EINVALID {
		t.Fatalf("Retrieve without a reason: %v", err)
	}
	if err := hw.SetFault(hardware.FaultJammed, p.Door, true); err != nil {
		t.Fatal(err)
	}
	var c *fleet.Command
	testhub.WaitFor(t, 10*time.Second, "the unit's command subscription", func() bool {
		_, c, err = h.svc.Retrieve(h.ctx, p.ID, "recipient moved out")
		return c != nil && c.Outcome != ""
	})
	if fleet.ErrorCode(err) != fleet.ECONFLICT || c.Outcome != wire.OutcomeJammed {
		t.Fatalf("Retrieve at a jammed door = %+v, %v; want ECONFLICT", c, err)
	}
	if got := h.parcel(t, p.ID); got.Status != fleet.ParcelInLocker {
		t.Fatalf("the parcel behind the jammed door became %s", got.Status)
	}
	if err := hw.SetFault(hardware.FaultJammed, p.Door, false); err != nil {
		t.Fatal(err)
	}
	got, c, err := h.svc.Retrieve(h.ctx, p.ID, "recipient moved out")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != fleet.ParcelRetrieved || got.ClosedBy != "token:op" || got.CloseReason != "recipient moved out" || got.Occupies() {
		t.Fatalf("retrieved parcel %+v", got)
	}
	if c.Outcome != wire.OutcomeOpened || c.Door != p.Door || !strings.Contains(c.Reason, p.ID) || hw.Unlocks(p.Door) != 2 {
		t.Fatalf("the unlock %+v, %d actuations: want door %d actuated twice (jammed, then opened), the reason naming the parcel",
			c, hw.Unlocks(p.Door), p.Door)
	}
	if _, _, err := h.svc.Retrieve(h.ctx, p.ID, "again"); fleet.ErrorCode(err) != fleet.ECONFLICT {
		t.Fatalf("a second Retrieve: %v, want ECONFLICT", err)
	}
}

// Deliveries racing for the doors of one unit, from two hubs: each gets a door of its own,
// the loser of a race picking again, until none is left.
func TestConcurrentDeliveriesShareTheDoors(t *testing.T) {
	t.Parallel()
	h := newHarness(t, bank("bank-1", 6, nil))
	other, err := parcels.New(h.store, h.hub.Devices, h.hub.Broker, nil, h.hub.Broker, parcels.Config{}, parcels.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	doors, errs := make([]int, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		svc := h.svc
		if i%2 == 1 {
			svc = other
		}
		wg.Go(func() {
			var p *fleet.Parcel
			if p, _, errs[i] = svc.Deliver(h.ctx, fleet.Delivery{DeviceID: "bank-1"}); errs[i] == nil {
				doors[i] = p.Door
			}
		})
	}
	wg.Wait()
	seen, refused := map[int]bool{}, 0
	for i, err := range errs {
		switch {
		case err == nil && !seen[doors[i]]:
			seen[doors[i]] = true
		case err == nil:
			t.Fatalf("door %d given twice", doors[i])
		case fleet.ErrorCode(err) == fleet.ECONFLICT:
			refused++
		default:
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	if len(seen) != 6 || refused != 2 {
		t.Fatalf("%d doors given, %d refused; want all 6 doors given and 2 refused", len(seen), refused)
	}
}
