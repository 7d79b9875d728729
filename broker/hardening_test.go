package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/broker"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// from makes o connect from the loopback address src (127.0.0.2, ...), another source to the
// broker than the tests' usual 127.0.0.1.
func from(o *paho.ClientOptions, src string) *paho.ClientOptions {
	return o.SetDialer(&net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}})
}

// result is a valid command result with sequence number seq.
func result(seq uint64) []byte {
	b, err := wire.Marshal(wire.Result{V: wire.Version, ID: fmt.Sprint("c", seq), Seq: seq, TS: time.Now().UnixMilli(), Outcome: wire.OutcomeOpened})
	if err != nil {
		panic(err)
	}
	return b
}

// liveConn is a device connection of a concurrent-connect test: whether the broker still
// accepts its publishes.
type liveConn struct {
	c    paho.Client
	lost atomic.Bool
}

// connectConcurrently connects n clients as device id at once, each with its own persistent
// session flag as given, and returns those the broker accepted.
func (h *hub) connectConcurrently(id string, n int, clean bool) []*liveConn {
	h.t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []*liveConn
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			lc := &liveConn{}
			o := h.options(id, id, h.secrets[id]).SetCleanSession(clean).
				SetConnectionLostHandler(func(paho.Client, error) { lc.lost.Store(true) })
			<-start
			c, err := dial(o)
			if err != nil {
				return
			}
			lc.c = c
			h.t.Cleanup(func() { c.Disconnect(0) })
			mu.Lock()
			conns = append(conns, lc)
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return conns
}

// alive returns the connections over which the broker still takes a QoS 1 publish: a stale
// connection is closed at its next packet at the latest, so its publish is never acknowledged.
func alive(t *testing.T, id string, conns []*liveConn) []*liveConn {
	t.Helper()
	var live []*liveConn
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, lc := range conns {
		wg.Go(func() {
			if lc.lost.Load() || !lc.c.IsConnectionOpen() {
				return
			}
			tok := lc.c.Publish(wire.Topic(id, wire.ChannelResult), 1, false, result(1))
			if tok.WaitTimeout(3*time.Second) && tok.Error() == nil && !lc.lost.Load() && lc.c.IsConnectionOpen() {
				mu.Lock()
				live = append(live, lc)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return live
}

// At most one connection per device id is live, however many connect at once, and revoking the
// device's credential closes it: none keeps publishing as the unit, not even into a new unit
// registered later under the same id.
func TestConcurrentConnectsOneLiveConnection(t *testing.T) {
	t.Parallel()
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	for _, tc := range []struct {
		name   string
		revoke func(h *hub) error
	}{
		{"disabled", func(h *hub) error { _, err := h.devices.SetEnabled(ctx, "a", false); return err }},
		{"secret rotated", func(h *hub) error { _, err := h.devices.RotateSecret(ctx, "a"); return err }},
		{"removed and registered again", func(h *hub) error {
			if err := h.devices.DeleteDevice(ctx, "a"); err != nil {
				return err
			}
			_, err := h.devices.CreateDevice(ctx, &fleet.Device{ID: "a", Kind: fleet.KindLockerBank, Site: "other", Doors: 2})
			return err
		}},
	} {
		for _, clean := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/clean=%v", tc.name, clean), func(t *testing.T) {
				h := newHub(t)
				rec := h.record("lockers/a/result")
				conns := h.connectConcurrently("a", 16, clean)
				if len(conns) == 0 {
					t.Fatal("no connect accepted")
				}
				live := alive(t, "a", conns)
				if len(live) != 1 {
					t.Fatalf("%d of %d accepted connections of one device are live, want 1", len(live), len(conns))
				}
				waitFor(t, "the live connection's result delivered", func() bool { return len(rec.all()) == 1 })
				if p, ok := h.Presence("a"); !ok || !p.Online {
					t.Fatalf("presence after concurrent connects: %+v", p)
				}
				// The live one receives its commands.
				got := make(chan struct{}, 1)
				live[0].c.Subscribe("lockers/a/cmd/#", 1, func(paho.Client, paho.Message) { got <- struct{}{} }).WaitTimeout(5 * time.Second)
				if err := h.Publish("lockers/a/cmd/request", []byte(`{}`), false, 1); err != nil {
					t.Fatal(err)
				}
				select {
				case <-got:
				case <-time.After(5 * time.Second):
					t.Fatal("the live connection does not receive its commands")
				}

				if err := tc.revoke(h); err != nil {
					t.Fatal(err)
				}
				if err := h.Revalidate(ctx); err != nil {
					t.Fatal(err)
				}
				before := len(rec.all())
				if live := alive(t, "a", conns); len(live) != 0 {
					t.Fatalf("%d connections still publish as the unit after its credential was revoked", len(live))
				}
				if n := len(rec.all()); n != before {
					t.Fatalf("%d messages delivered from revoked connections", n-before)
				}
				waitFor(t, "device offline", func() bool { p, _ := h.Presence("a"); return !p.Online })
			})
		}
	}
}

// A connection that lost its device id to a newer one is refused at its next packet even when
// closing it did not reach it (a stale generation), and the newest connection stays.
func TestTakeOverKeepsNewest(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	first := h.connect("a")
	second := h.connect("a")
	if tok := second.Publish("lockers/a/result", 1, false, result(1)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("newest connection refused: %v", tok.Error())
	}
	waitFor(t, "first connection closed", func() bool { return !first.IsConnectionOpen() })
	if n := h.counter("lockerhub_mqtt_session_takeovers_total"); n != 1 {
		t.Fatalf("takeovers counted: %v", n)
	}
}

// A stranger's wrong secrets for a unit's id, from one address, never keep the unit out when it
// connects from another: the throttle is keyed by source.
func TestWrongSecretFloodDoesNotLockOutTheUnit(t *testing.T) {
	t.Parallel()
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy hash=%v", legacy), func(t *testing.T) {
			h := newHub(t)
			if legacy {
				h = newHubOn(t, func(s broker.CredentialStore) broker.CredentialStore { return legacyStore{s} })
				h.secrets["a"] = legacySecret
			}
			const attempts = 60
			var wg sync.WaitGroup
			for i := range attempts {
				wg.Go(func() {
					if c, err := dial(from(h.options("a", "a", fmt.Sprintf("guess-%d", i)), "127.0.0.2")); err == nil {
						c.Disconnect(0)
						t.Error("wrong secret accepted")
					}
				})
			}
			wg.Wait()
			if h.counter("lockerhub_mqtt_auth_failures_total", "reason", "throttled") == 0 {
				t.Fatal("the flooding source was not throttled")
			}
			// The stranger's source stays locked out for the unit's id...
			if c, err := dial(from(h.options("a", "a", "guess-more"), "127.0.0.2")); err == nil {
				c.Disconnect(0)
				t.Fatal("wrong secret accepted")
			}
			// ...and the unit, from its own address, gets in at once, every time.
			for range 5 {
				h.connect("a").Disconnect(0)
			}
		})
	}
}

// A device that publishes at QoS 2 gets PUBREC and then PUBCOMP, never a PUBACK, before and
// after it sent telemetry (which the hub acknowledges itself once stored). A raw client sees
// the acknowledgements themselves; paho completes a QoS 2 publish on a PUBACK too.
func TestQoS2Handshake(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	ing := &gatedIngester{release: make(chan struct{})}
	close(ing.release) // stored at once
	b := h.startBroker(broker.Config{Addr: "127.0.0.1:0"}, broker.Options{Ingester: ing})
	c, err := net.Dial("tcp", b.Addr(broker.ListenerTCP).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	send := func(pk packets.Packet) {
		t.Helper()
		var buf bytes.Buffer
		var err error
		switch pk.FixedHeader.Type {
		case packets.Connect:
			err = pk.ConnectEncode(&buf)
		case packets.Publish:
			err = pk.PublishEncode(&buf)
		case packets.Pubrel:
			err = pk.PubrelEncode(&buf)
		}
		if err == nil {
			_, err = c.Write(buf.Bytes())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(c)
	expect := func(typ byte, id uint16) {
		t.Helper()
		var fh packets.FixedHeader
		b, err := r.ReadByte()
		if err == nil {
			err = fh.Decode(b)
		}
		n, _, err2 := packets.DecodeLength(r)
		if err = errors.Join(err, err2); err != nil {
			t.Fatal(err)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatal(err)
		}
		if fh.Type != typ || (id != 0 && (len(body) < 2 || uint16(body[0])<<8|uint16(body[1]) != id)) {
			t.Fatalf("got %s (body %x), want %s for packet %d", packets.PacketNames[fh.Type], body, packets.PacketNames[typ], id)
		}
	}
	send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4, Connect: packets.ConnectParams{
		ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: "a",
		UsernameFlag: true, PasswordFlag: true, Username: []byte("a"), Password: []byte(h.secrets["a"])}})
	expect(packets.Connack, 0)
	for i, msg := range []struct {
		topic   string
		payload []byte
	}{
		{"lockers/a/result", result(1)},
		{"lockers/a/telemetry", telemetry(2)},
		{"lockers/a/result", result(3)},
		{"lockers/a/telemetry", telemetry(4)},
	} {
		id := uint16(i + 1)
		send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2}, ProtocolVersion: 4, TopicName: msg.topic, PacketID: id, Payload: msg.payload})
		expect(packets.Pubrec, id)
		send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, ProtocolVersion: 4, PacketID: id})
		expect(packets.Pubcomp, id)
	}
}

// A flood of silent connections from one address is cut at the per-source bound, counted, and
// leaves room for units from other addresses.
func TestAdmissionBounds(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	reg := prometheus.NewRegistry()
	b := h.startBroker(broker.Config{Addr: "127.0.0.1:0", MaxConnections: 40, MaxPending: 30, MaxPendingPerSource: 10},
		broker.Options{Registerer: reg})
	addr := b.Addr(broker.ListenerTCP).String()
	refused := func() float64 {
		return counterIn(t, reg, "lockerhub_mqtt_connections_refused_total", "reason", "max_pending_per_source") +
			counterIn(t, reg, "lockerhub_mqtt_connections_refused_total", "reason", "max_pending")
	}
	var all []net.Conn
	// silent opens n connections from src that say nothing, and returns how many the broker
	// holds once it has refused wantRefused connections in all.
	silent := func(src string, n int, wantRefused float64) (open int) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		var conns []net.Conn
		for range n {
			c, err := d.Dial("tcp", addr)
			if errors.Is(err, syscall.ECONNRESET) {
				continue // refused before the dial returned
			}
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			all = append(all, c)
		}
		waitFor(t, fmt.Sprint(wantRefused, " connections refused"), func() bool { return refused() >= wantRefused })
		return held(conns)
	}
	if n := silent("127.0.0.2", 25, 15); n != 10 {
		t.Fatalf("%d silent connections from one source held, want the bound of 10", n)
	}
	if got := counterIn(t, reg, "lockerhub_mqtt_connections_refused_total", "reason", "max_pending_per_source"); got != 15 {
		t.Fatalf("refusals counted: %v, want 15", got)
	}
	// Units from another source connect while the flood holds its pending connections.
	for range 3 {
		c, err := dial(at(h.options("a", "a", h.secrets["a"]), b))
		if err != nil {
			t.Fatalf("unit refused during a flood from another source: %v", err)
		}
		c.Disconnect(0)
	}
	// The overall pending bound holds across sources: 10 are held, 20 more fit in 30.
	if n := silent("127.0.0.3", 10, 15) + silent("127.0.0.4", 10, 15); n != 20 {
		t.Fatalf("%d more silent connections held, want 20", n)
	}
	// Once the bound is reached, a source holding fewer pending connections than the busiest
	// gets in by closing the busiest's oldest: 127.0.0.5 ends with 7, the others with 7 or 8;
	// its 8th would leave it as busy as the busiest, and is refused.
	if n := silent("127.0.0.5", 10, 18); n != 7 {
		t.Fatalf("%d silent connections from a fourth source held, want 7", n)
	}
	if got := counterIn(t, reg, "lockerhub_mqtt_connections_refused_total", "reason", "max_pending"); got != 3 {
		t.Fatalf("max_pending refusals: %v, want 3", got)
	}
	if got := counterIn(t, reg, "lockerhub_mqtt_connections_refused_total", "reason", "pending_evicted"); got != 7 {
		t.Fatalf("pending connections evicted: %v, want 7", got)
	}
	if n := held(all); n != 30 {
		t.Fatalf("%d silent connections held in all, want max_pending 30", n)
	}
	// A unit from yet another source still gets in while the bound is held.
	c, err := dial(at(h.options("a", "a", h.secrets["a"]), b))
	if err != nil {
		t.Fatalf("unit refused while the pending connections are at their bound: %v", err)
	}
	c.Disconnect(0)
	for _, c := range all {
		c.Close()
	}
	waitForIdle(t, reg)
}

// held returns how many of conns the broker holds: it resets those it refuses or evicts (a
// read fails, or ends if the reset was read before), and holds the others open waiting for
// their CONNECT (a read times out).
func held(conns []net.Conn) int {
	var n atomic.Int32
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return int(n.Load())
}

// waitForIdle waits until the broker whose metrics reg gathers holds no connection: mochi
// must not be closed while it is still setting connections up.
func waitForIdle(t *testing.T, reg prometheus.Gatherer) {
	t.Helper()
	waitFor(t, "no connection held", func() bool { return counterIn(t, reg, "lockerhub_mqtt_connections") == 0 })
}

// The listener keeps serving after running out of file descriptors: once descriptors are free
// again, units connect, and readiness says which listener failed meanwhile.
func TestListenerSurvivesDescriptorExhaustion(t *testing.T) {
	// Not parallel: the descriptor limit it lowers is the whole process's.
	h := newHub(t)
	reg := prometheus.NewRegistry()
	// Admission bounds far above the descriptor limit: accepting itself must fail.
	b := h.startBroker(broker.Config{Addr: "127.0.0.1:0", MaxPending: 1 << 20, MaxPendingPerSource: 1 << 20}, broker.Options{Registerer: reg})
	check := b.Checks()["mqtt_tcp"]
	if err := check(context.Background()); err != nil {
		t.Fatalf("fresh listener not ready: %v", err)
	}

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	// Use up the descriptors: dial until the process can open no more, on either side.
	var held []net.Conn
	release := func() {
		for _, c := range held {
			c.Close()
		}
		held = nil
	}
	defer release()
	lowered := old
	lowered.Cur = uint64(openFiles(t) + 64)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered); err != nil {
		t.Fatal(err)
	}
	restore := func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) }
	defer restore()
	addr := b.Addr(broker.ListenerTCP).String()
	for range 200 {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		held = append(held, c)
	}
	waitFor(t, "accept errors", func() bool { return counterIn(t, reg, "lockerhub_mqtt_accept_errors_total", "listener", "tcp") > 0 })
	if err := check(context.Background()); err == nil {
		t.Fatal("readiness passes while accepting fails")
	}
	release()
	restore()
	c, err := dial(at(h.options("a", "a", h.secrets["a"]), b))
	if err != nil {
		t.Fatalf("listener did not recover after descriptor exhaustion: %v", err)
	}
	c.Disconnect(0)
	waitFor(t, "readiness back", func() bool { return check(context.Background()) == nil })
	waitForIdle(t, reg)
}

// openFiles counts the process's open file descriptors.
func openFiles(t *testing.T) int {
	t.Helper()
	n := 0
	for fd := range 1 << 16 {
		var st syscall.Stat_t
		if syscall.Fstat(fd, &st) == nil {
			n = fd + 1
		}
	}
	return n
}

// pausingStore holds the first credential lookup of device "a", after reading it, until
// resume is closed: the window in which a revocation used to race a connect.
type pausingStore struct {
	broker.CredentialStore
	read, resume chan struct{}
	once         sync.Once
}

func (s *pausingStore) DeviceCredential(ctx context.Context, id string) (fleet.Credential, error) {
	c, err := s.CredentialStore.DeviceCredential(ctx, id)
	if id == "a" {
		s.once.Do(func() {
			close(s.read)
			<-s.resume
		})
	}
	return c, err
}

// A device disabled (and revalidated) while its connect is between reading the credential
// and taking its id is refused all the same: the revocation cannot miss it.
func TestRevocationRacingAConnect(t *testing.T) {
	t.Parallel()
	store := &pausingStore{read: make(chan struct{}), resume: make(chan struct{})}
	h := newHubOn(t, func(s broker.CredentialStore) broker.CredentialStore { store.CredentialStore = s; return store })
	connected := make(chan error, 1)
	go func() {
		c, err := dial(h.options("a", "a", h.secrets["a"]))
		if err == nil {
			t.Cleanup(func() { c.Disconnect(0) })
		}
		connected <- err
	}()
	<-store.read
	if _, err := h.devices.SetEnabled(fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"}), "a", false); err != nil {
		t.Fatal(err)
	}
	if err := h.Revalidate(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(store.resume)
	if err := <-connected; err == nil {
		t.Fatal("a device disabled during its connect stayed connected")
	}
	if p, _ := h.Presence("a"); p.Online {
		t.Fatal("the refused device is online")
	}
}

// Closing the broker disconnects its units and returns, also while another unit connects and
// disconnects: mochi's own shutdown could deadlock on a client removed meanwhile.
func TestCloseWhileUnitsComeAndGo(t *testing.T) {
	t.Parallel()
	for round := range 5 {
		h := newHub(t)
		lost := make(chan struct{})
		if _, err := dial(h.options("a", "a", h.secrets["a"]).SetConnectionLostHandler(func(paho.Client, error) { close(lost) })); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		stop := make(chan struct{})
		var churn sync.WaitGroup
		churn.Go(func() {
			// A clean session's client is removed from mochi's clients as it disconnects.
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				o := h.options("b", "b", h.secrets["b"])
				o.Servers = nil
				o.AddBroker(h.url([]string{broker.ListenerTLS, broker.ListenerWS}[i%2]))
				if c, err := dial(o); err == nil {
					c.Disconnect(0)
				}
			}
		})
		time.Sleep(50 * time.Millisecond)
		closed := make(chan struct{})
		go func() {
			h.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Close did not return", round)
		}
		close(stop)
		churn.Wait()
		select {
		case <-lost:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: unit still connected after Close", round)
		}
	}
}

// A connection that has not logged in when the broker closes is closed with it. Left open, a
// unit that reconnected just as its hub shut down would wait out its whole connect timeout
// before trying the hub that replaces it.
func TestCloseEndsConnectionsNotLoggedIn(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	b := h.startBroker(broker.Config{Addr: "127.0.0.1:0"}, broker.Options{ConnectTimeout: time.Minute})
	c, err := net.Dial("tcp", b.Addr(broker.ListenerTCP).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection still open after the broker closed: %v", err)
	}
}
