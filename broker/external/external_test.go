package external

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/testmosquitto"
)

// recorder stands in for the telemetry pipeline: it records what a hub stored and applied.
// Its stores wait for gate, when set, as a spool waits for the disk.
type recorder struct {
	mu       sync.Mutex
	stored   []uint64
	applied  []uint64
	commands []string
	results  int
	gate     chan struct{}
	enqueued int
	presence []bool       // presence changes told, online or not
	events   []wire.Event // device events applied
}

// receiptFunc is the recorder's receipt.
type receiptFunc func(context.Context) error

func (f receiptFunc) Wait(ctx context.Context) error { return f(ctx) }

func (r *recorder) Store(_ context.Context, _ string, _ wire.Channel, msg wire.Message) (fleet.Receipt, error) {
	r.mu.Lock()
	r.enqueued++
	gate := r.gate
	r.mu.Unlock()
	return receiptFunc(func(ctx context.Context) error {
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		r.mu.Lock()
		switch m := msg.(type) {
		case wire.Telemetry:
			r.stored = append(r.stored, m.Seq)
		case wire.Event:
			r.stored = append(r.stored, m.Seq)
		}
		r.mu.Unlock()
		return nil
	}), nil
}

func (r *recorder) Apply(_ context.Context, _ string, _ wire.Channel, msg wire.Message) error {
	r.mu.Lock()
	switch m := msg.(type) {
	case wire.Telemetry:
		r.applied = append(r.applied, m.Seq)
	case wire.Result:
		r.applied = append(r.applied, m.Seq)
	case wire.Event:
		r.applied = append(r.applied, m.Seq)
		r.events = append(r.events, m)
	}
	r.mu.Unlock()
	return nil
}

func (r *recorder) Publish(ev fleet.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch ev.Kind {
	case fleet.EventCommandSeen:
		r.commands = append(r.commands, ev.Command.DeviceID+"/"+ev.Command.ID)
	case fleet.EventPresenceChanged:
		r.presence = append(r.presence, ev.Presence.Online)
	}
}

// presenceTold returns the presence changes told so far.
func (r *recorder) presenceTold() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.presence)
}

func (r *recorder) snapshot() (stored, applied []uint64, commands []string, results, enqueued int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.stored), slices.Clone(r.applied), slices.Clone(r.commands), r.results, r.enqueued
}

// startLink connects a hub named user to the broker at addr.
func startLink(t *testing.T, addr, user string, r *recorder) *Link {
	t.Helper()
	cfg := DefaultConfig()
	cfg.URL, cfg.Username = "mqtt://"+addr, user
	l, err := New(cfg, Options{Ingester: r, Events: r})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Subscribe(wire.Topic("+", wire.ChannelResult), func(string, []byte) {
		r.mu.Lock()
		r.results++
		r.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	eventually(t, 10*time.Second, func() error { return l.Ready(context.Background()) })
	return l
}

// device connects an MQTT 3.1.1 client, as the edge agent does.
func device(t *testing.T, addr, id string, onCommand func([]byte)) pahov3.Client {
	t.Helper()
	opts := pahov3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetUsername(id).SetCleanSession(true)
	c := pahov3.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	if onCommand != nil {
		tok := c.Subscribe(wire.CommandFilter(id), 1, func(_ pahov3.Client, m pahov3.Message) { onCommand(m.Payload()) })
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("device subscribe: %v", tok.Error())
		}
	}
	return c
}

func publish(t *testing.T, c pahov3.Client, topic string, retain bool, m wire.Message) {
	t.Helper()
	payload, err := wire.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if tok := c.Publish(topic, 1, retain, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func telemetry(seq uint64) wire.Telemetry {
	return wire.Telemetry{V: wire.Version, Seq: seq, TS: time.Now().UnixMilli(), Doors: []wire.DoorState{{Door: 1, Locked: true}}}
}

func eventually(t *testing.T, within time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func seqs(n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i + 1)
	}
	return out
}

func TestHubsSplitStorageAndEachSeesTheWholeStream(t *testing.T) {
	b := testmosquitto.Start(t, "allow_anonymous true")
	ra, rb := &recorder{}, &recorder{}
	startLink(t, b.Addr, "hub-a", ra)
	startLink(t, b.Addr, "hub-b", rb)
	dev := device(t, b.Addr, "bank-1", nil)
	const n = 200
	for i := range n {
		publish(t, dev, wire.Topic("bank-1", wire.ChannelTelemetry), false, telemetry(uint64(i+1)))
	}
	eventually(t, 10*time.Second, func() error {
		sa, oa, _, _, _ := ra.snapshot()
		sb, ob, _, _, _ := rb.snapshot()
		if len(oa) != n || len(ob) != n || len(sa)+len(sb) != n {
			return fmt.Errorf("applied %d and %d, stored %d+%d of %d", len(oa), len(ob), len(sa), len(sb), n)
		}
		return nil
	})
	sa, oa, _, _, _ := ra.snapshot()
	sb, ob, _, _, _ := rb.snapshot()
	if len(sa) == 0 || len(sb) == 0 {
		t.Errorf("one hub stored everything (%d and %d): the stream is not shared", len(sa), len(sb))
	}
	all := slices.Sorted(slices.Values(append(sa, sb...)))
	if !slices.Equal(all, seqs(n)) {
		t.Errorf("stored seqs are not 1..%d exactly once: %v", n, all)
	}
	if !slices.Equal(oa, seqs(n)) || !slices.Equal(ob, seqs(n)) {
		t.Errorf("a hub did not observe the whole stream in order")
	}
}

// Keypad events and the door events of pickup codes take the path of every device message:
// stored by one hub, applied by each, with what the unit said intact.
func TestKeypadAndCodeEventsReachEveryHub(t *testing.T) {
	b := testmosquitto.Start(t, "allow_anonymous true")
	ra, rb := &recorder{}, &recorder{}
	startLink(t, b.Addr, "hub-a", ra)
	startLink(t, b.Addr, "hub-b", rb)
	dev := device(t, b.Addr, "bank-1", nil)
	now := time.Now().UnixMilli()
	sent := []wire.Event{
		{V: wire.Version, Seq: 1, TS: now, Kind: wire.EventKeypad, Keypad: wire.KeypadLockedOut, Failures: 5, LockedUntil: now + 900_000},
		{V: wire.Version, Seq: 2, TS: now, Kind: wire.EventKeypad, Keypad: wire.KeypadAccepted, Door: 3, Parcel: "p-1"},
		{V: wire.Version, Seq: 3, TS: now, Kind: wire.EventDoor, Door: 3, Open: true, Cause: wire.CauseCode, Parcel: "p-1"},
	}
	for _, e := range sent {
		publish(t, dev, wire.Topic("bank-1", wire.ChannelEvents), false, e)
	}
	eventually(t, 10*time.Second, func() error {
		sa, oa, _, _, _ := ra.snapshot()
		sb, ob, _, _, _ := rb.snapshot()
		if !slices.Equal(oa, seqs(3)) || !slices.Equal(ob, seqs(3)) || len(sa)+len(sb) != 3 {
			return fmt.Errorf("applied %v and %v, stored %d+%d of 3", oa, ob, len(sa), len(sb))
		}
		return nil
	})
	for _, r := range []*recorder{ra, rb} {
		r.mu.Lock()
		got := slices.Clone(r.events)
		r.mu.Unlock()
		if !slices.EqualFunc(got, sent, func(a, b wire.Event) bool { return a == b }) {
			t.Errorf("a hub applied %+v, want %+v", got, sent)
		}
	}
}

func TestUnstoredMessagesComeBackWhenTheHubReturns(t *testing.T) {
	b := testmosquitto.Start(t, "allow_anonymous true")
	stuck := &recorder{gate: make(chan struct{})} // a spool that never commits
	l := startLink(t, b.Addr, "hub-a", stuck)
	dev := device(t, b.Addr, "bank-1", nil)
	const n = 20
	for i := range n {
		publish(t, dev, wire.Topic("bank-1", wire.ChannelTelemetry), false, telemetry(uint64(i+1)))
	}
	eventually(t, 5*time.Second, func() error {
		if _, _, _, _, e := stuck.snapshot(); e != n {
			return fmt.Errorf("%d of %d handed to the spool", e, n)
		}
		return nil
	})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Sent while the hub is away: the broker keeps them in its session.
	for i := n; i < n+5; i++ {
		publish(t, dev, wire.Topic("bank-1", wire.ChannelTelemetry), false, telemetry(uint64(i+1)))
	}
	back := &recorder{}
	startLink(t, b.Addr, "hub-a", back)
	eventually(t, 10*time.Second, func() error {
		if s, _, _, _, _ := back.snapshot(); !slices.Equal(slices.Sorted(slices.Values(s)), seqs(n+5)) {
			return fmt.Errorf("stored after the restart: %v, want 1..%d", s, n+5)
		}
		return nil
	})
}

func TestPresenceCommandsAndResults(t *testing.T) {
	b := testmosquitto.Start(t, "allow_anonymous true")
	ra, rb := &recorder{}, &recorder{}
	la := startLink(t, b.Addr, "hub-a", ra)
	lb := startLink(t, b.Addr, "hub-b", rb)
	got := make(chan []byte, 1)
	dev := device(t, b.Addr, "bank-1", func(p []byte) { got <- p })
	status := wire.Topic("bank-1", wire.ChannelStatus)
	now := time.Now().UnixMilli()
	publish(t, dev, status, true, wire.Status{V: wire.Version, TS: now, Online: true, Since: now, Agent: "test"})
	for _, l := range []*Link{la, lb} {
		eventually(t, 5*time.Second, func() error {
			if p, ok := l.Presence("bank-1"); !ok || !p.Online {
				return fmt.Errorf("presence %+v, %v: want online", p, ok)
			}
			return nil
		})
	}
	// The health rules are told, rather than left to find it by visiting every unit.
	for _, r := range []*recorder{ra, rb} {
		eventually(t, 5*time.Second, func() error {
			if got := r.presenceTold(); !slices.Equal(got, []bool{true}) {
				return fmt.Errorf("presence changes told %v, want online", got)
			}
			return nil
		})
	}

	cmd := wire.Command{V: wire.Version, ID: "c-1", Type: wire.CommandUnlock, Door: 1, Issued: now, Expires: now + 30_000}
	payload, err := wire.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := la.PublishRequest(wire.Topic("bank-1", wire.ChannelCommand), payload, 30*time.Second, wire.Topic("bank-1", wire.ChannelResult), []byte("c-1")); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if string(p) != string(payload) {
			t.Fatalf("device got %s, want %s", p, payload)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the device did not get the command")
	}
	publish(t, dev, wire.Topic("bank-1", wire.ChannelResult), false, wire.Result{V: wire.Version, ID: "c-1", Seq: 1000, TS: time.Now().UnixMilli(), Outcome: wire.OutcomeOpened})
	eventually(t, 5*time.Second, func() error {
		_, oa, ca, resA, _ := ra.snapshot()
		_, ob, cb, resB, _ := rb.snapshot()
		// Each hub sees the command and the result; the hub whose share it is also stores it.
		if !slices.Equal(ca, []string{"bank-1/c-1"}) || !slices.Equal(cb, []string{"bank-1/c-1"}) || resA+resB != 3 || resA == 0 || resB == 0 {
			return fmt.Errorf("commands seen %v and %v, results handled %d and %d: want the command on both, the result 1+2 times", ca, cb, resA, resB)
		}
		// Each hub counts the result in the unit's sequence, which it shares with telemetry.
		if !slices.Contains(oa, 1000) || !slices.Contains(ob, 1000) {
			return fmt.Errorf("applied %v and %v: want the result's seq 1000 on both", oa, ob)
		}
		return nil
	})

	publish(t, dev, status, true, wire.Status{V: wire.Version, TS: time.Now().UnixMilli(), Online: false})
	eventually(t, 5*time.Second, func() error {
		if p, _ := lb.Presence("bank-1"); p.Online || p.DisconnectedAt.IsZero() {
			return fmt.Errorf("presence %+v: want offline", p)
		}
		if got := rb.presenceTold(); !slices.Equal(got, []bool{true, false}) {
			return fmt.Errorf("presence changes told %v, want online then offline", got)
		}
		return nil
	})
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.URL, ok.Username = "mqtts://broker.example:8883", "hub-1"
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"embedded", func(c *Config) { c.URL = "" }, ""},
		{"valid", func(*Config) {}, ""},
		{"scheme", func(c *Config) { c.URL = "http://x:1883" }, "mqtt.external.url"},
		{"no host", func(c *Config) { c.URL = "mqtt://" }, "mqtt.external.url"},
		{"no user", func(c *Config) { c.Username = "" }, "mqtt.external.username"},
		{"group", func(c *Config) { c.ShareGroup = "a/b" }, "mqtt.external.share_group"},
		{"expiry", func(c *Config) { c.SessionExpiry = time.Second }, "mqtt.external.session_expiry"},
		{"inflight", func(c *Config) { c.Inflight = 0 }, "mqtt.external.inflight"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

// /readyz follows the broker connection: a load balancer stops sending API calls to a hub that
// cannot publish commands, and sends them again once it is back and subscribed.
func TestReadyFollowsTheBroker(t *testing.T) {
	b := testmosquitto.Start(t, "allow_anonymous true")
	l := startLink(t, b.Addr, "hub-a", &recorder{})
	b.Stop()
	eventually(t, 10*time.Second, func() error {
		if l.Ready(context.Background()) == nil {
			return fmt.Errorf("still ready with the broker stopped")
		}
		return nil
	})
	if err := l.PublishRequest(wire.Topic("bank-1", wire.ChannelCommand), []byte("{}"), time.Minute, "", nil); err == nil {
		t.Fatal("a command was accepted for publishing without a broker")
	}
	b.Restart()
	eventually(t, 15*time.Second, func() error { return l.Ready(context.Background()) })
}
