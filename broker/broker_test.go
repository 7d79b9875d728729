package broker_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/broker"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/testhub"
)

// hub is a real broker on 127.0.0.1 with a real SQLite registry holding devices "a" and "b".
type hub struct {
	*broker.Broker
	t       testing.TB
	reg     *prometheus.Registry
	db      *sqldb.DB
	devices *sqldb.DeviceService
	secrets map[string]string
	caPool  *x509.CertPool
}

func newHub(t testing.TB) *hub { return newHubOn(t, nil) }

// newHubOn is newHub with the broker reading credentials through wrap(registry), when wrap is
// not nil.
func newHubOn(t testing.TB, wrap func(broker.CredentialStore) broker.CredentialStore) *hub {
	t.Helper()
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	db, err := sqldb.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := &hub{t: t, reg: prometheus.NewRegistry(), db: db, devices: sqldb.NewDeviceService(db), secrets: map[string]string{}}
	for _, id := range []string{"a", "b"} {
		secret, err := h.devices.CreateDevice(ctx, &fleet.Device{ID: id, Kind: fleet.KindLockerBank, Site: "test", Doors: 4})
		if err != nil {
			t.Fatal(err)
		}
		h.secrets[id] = secret
	}
	certFile, keyFile, pool := testhub.SelfSignedCert(t)
	h.caPool = pool
	var store broker.CredentialStore = h.devices
	if wrap != nil {
		store = wrap(store)
	}
	h.Broker, err = broker.New(broker.Config{
		Addr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0", TLSCert: certFile, TLSKey: keyFile, WSAddr: "127.0.0.1:0",
	}, store, broker.Options{Registerer: h.reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func (h *hub) url(listener string) string {
	scheme := map[string]string{broker.ListenerTCP: "tcp", broker.ListenerTLS: "ssl", broker.ListenerWS: "ws"}[listener]
	return scheme + "://" + h.Addr(listener).String()
}

// options returns paho options for a device with the given credentials on the TCP listener.
func (h *hub) options(clientID, username, password string) *paho.ClientOptions {
	return paho.NewClientOptions().AddBroker(h.url(broker.ListenerTCP)).
		SetClientID(clientID).SetUsername(username).SetPassword(password).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).
		SetTLSConfig(&tls.Config{RootCAs: h.caPool})
}

// startBroker starts a second broker on the hub's registry with cfg and opts, for the
// tests that need other options than newHub's; it is closed when the test ends.
func (h *hub) startBroker(cfg broker.Config, opts broker.Options) *broker.Broker {
	h.t.Helper()
	b, err := broker.New(cfg, h.devices, opts)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { b.Close() })
	return b
}

// at points o at b's TCP listener.
func at(o *paho.ClientOptions, b *broker.Broker) *paho.ClientOptions {
	o.Servers = nil
	return o.AddBroker("tcp://" + b.Addr(broker.ListenerTCP).String())
}

// connect connects device id with its own secret and fails the test if refused.
func (h *hub) connect(id string) paho.Client {
	h.t.Helper()
	c, err := dial(h.options(id, id, h.secrets[id]))
	if err != nil {
		h.t.Fatalf("connect %s: %v", id, err)
	}
	h.t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func dial(o *paho.ClientOptions) (paho.Client, error) {
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	return c, tok.Error()
}

func (h *hub) counter(name string, labels ...string) float64 {
	h.t.Helper()
	return counterIn(h.t, h.reg, name, labels...)
}

// counterIn returns the value of the counter or gauge name with the given label pairs in g.
func counterIn(t testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
				}
				if !found {
					continue metrics
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return 0
}

// recorder collects what the hub itself receives through an inline subscription.
type recorder struct {
	mu   sync.Mutex
	msgs []string // "topic payload"
}

func (h *hub) record(filter string) *recorder {
	r := &recorder{}
	if err := h.Subscribe(filter, func(topic string, payload []byte) {
		r.mu.Lock()
		r.msgs = append(r.msgs, topic+" "+string(payload))
		r.mu.Unlock()
	}); err != nil {
		h.t.Fatal(err)
	}
	return r
}

// data returns what was recorded apart from the hub's own presence documents.
func (r *recorder) data() []string {
	var out []string
	for _, m := range r.all() {
		if topic, _, _ := strings.Cut(m, " "); !strings.HasSuffix(topic, "/"+string(wire.ChannelStatus)) {
			out = append(out, m)
		}
	}
	return out
}

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testhub.WaitFor(t, 10*time.Second, what, cond)
}

func telemetry(seq uint64) []byte {
	b, err := wire.Marshal(wire.Telemetry{V: wire.Version, Seq: seq, TS: time.Now().UnixMilli(),
		Doors: []wire.DoorState{{Door: 1, Locked: true}}})
	if err != nil {
		panic(err)
	}
	return b
}

func publish(t *testing.T, c paho.Client, topic string, qos byte, payload []byte) error {
	t.Helper()
	tok := c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("publish to %s timed out", topic)
	}
	return tok.Error()
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	if _, err := h.devices.SetEnabled(fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"}), "b", false); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name                 string
		clientID, user, pass string
		listener             string
		wantOK               bool
		wantReason           string
	}{
		{name: "right secret", clientID: "a", user: "a", pass: h.secrets["a"], wantOK: true},
		{name: "right secret over tls", clientID: "a", user: "a", pass: h.secrets["a"], listener: broker.ListenerTLS, wantOK: true},
		{name: "right secret over websocket", clientID: "a", user: "a", pass: h.secrets["a"], listener: broker.ListenerWS, wantOK: true},
		{name: "wrong secret", clientID: "a", user: "a", pass: h.secrets["b"], wantReason: "bad_secret"},
		{name: "empty secret", clientID: "a", user: "a", pass: "", wantReason: "bad_secret"},
		{name: "unknown device", clientID: "zz", user: "zz", pass: h.secrets["a"], wantReason: "unknown_device"},
		{name: "anonymous", clientID: "a", wantReason: "unknown_device"},
		{name: "the broker's own inline client id", clientID: "inline", user: "inline", pass: "x", wantReason: "unknown_device"},
		{name: "client id differs from username", clientID: "b", user: "a", pass: h.secrets["a"], wantReason: "client_id_mismatch"},
		{name: "disabled device", clientID: "b", user: "b", pass: h.secrets["b"], wantReason: "disabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.counter("lockerhub_mqtt_auth_failures_total", "reason", tc.wantReason)
			o := h.options(tc.clientID, tc.user, tc.pass)
			if tc.listener != "" {
				o.Servers = nil
				o.AddBroker(h.url(tc.listener))
			}
			c, err := dial(o)
			if tc.wantOK {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				c.Disconnect(0)
				return
			}
			if err == nil {
				c.Disconnect(0)
				t.Fatal("connect accepted")
			}
			if after := h.counter("lockerhub_mqtt_auth_failures_total", "reason", tc.wantReason); after != before+1 {
				t.Fatalf("auth failures{reason=%s}: %v -> %v", tc.wantReason, before, after)
			}
		})
	}
}

func TestWillOutsideOwnTopicsRefused(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	o := h.options("a", "a", h.secrets["a"]).SetWill(wire.Topic("b", wire.ChannelCommand), "{}", 1, false)
	if c, err := dial(o); err == nil {
		c.Disconnect(0)
		t.Fatal("a will on another device's command topic was accepted")
	}
	if got := h.counter("lockerhub_mqtt_auth_failures_total", "reason", "will_topic_denied"); got != 1 {
		t.Fatalf("will_topic_denied = %v", got)
	}
	// A will on the device's own status topic is fine.
	o = h.options("a", "a", h.secrets["a"]).SetWill(wire.Topic("a", wire.ChannelStatus), `{"v":1,"ts":1,"online":false}`, 1, true)
	c, err := dial(o)
	if err != nil {
		t.Fatal(err)
	}
	c.Disconnect(0)
}

func TestSubscribeACL(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	a := h.connect("a")
	for _, tc := range []struct {
		filter string
		ok     bool
	}{
		{"lockers/a/cmd/#", true},
		{"lockers/a/cmd/request", true},
		{"lockers/b/cmd/#", false},
		{"lockers/b/telemetry", false},
		{"lockers/a/telemetry", false},
		{"lockers/a/#", false},
		{"lockers/+/cmd/#", false},
		{"lockers/+/telemetry", false},
		{"+/a/cmd/#", false},
		{"#", false},
		{"$SYS/#", false},
		{"$share/g/lockers/b/cmd/#", false},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			tok := a.Subscribe(tc.filter, 1, func(paho.Client, paho.Message) {})
			if !tok.WaitTimeout(5 * time.Second) {
				t.Fatal("subscribe timed out")
			}
			// One filter per SUBSCRIBE; paho keys the result by the filter without "$share/g/".
			var code byte
			for _, c := range tok.(*paho.SubscribeToken).Result() {
				code = c
			}
			if granted := code < 0x80; granted != tc.ok {
				t.Fatalf("SUBACK code %#x, want granted=%v", code, tc.ok)
			}
		})
	}
	if got := h.counter("lockerhub_mqtt_acl_denied_total", "action", "subscribe"); got != 10 {
		t.Fatalf("acl denied subscribe = %v, want 10", got)
	}
}

func TestPublishACL(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	seen := h.record("#")
	a := h.connect("a")
	for _, topic := range []string{
		"lockers/b/telemetry",   // another device's data
		"lockers/b/cmd/request", // another device's commands
		"lockers/a/cmd/request", // its own commands: only the hub sends those
		"lockers/a/unknown",
		"lockers/a/telemetry/x",
		"elsewhere",
	} {
		if err := publish(t, a, topic, 0, telemetry(1)); err != nil {
			t.Fatalf("publish %s: %v", topic, err)
		}
	}
	// A client's packets are handled in order, so once this one arrives the ones before it
	// have been decided.
	if err := publish(t, a, "lockers/a/telemetry", 1, telemetry(2)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "own telemetry", func() bool { return len(seen.data()) > 0 })
	got := seen.data()
	if len(got) != 1 || !strings.HasPrefix(got[0], "lockers/a/telemetry ") {
		t.Fatalf("hub received %q, want only a's own telemetry", got)
	}
	if n := h.counter("lockerhub_mqtt_acl_denied_total", "action", "publish"); n != 6 {
		t.Fatalf("acl denied publish = %v, want 6", n)
	}

	// MQTT 3.1.1 has no negative PUBACK, so a QoS 1 publish outside the ACL ends the connection.
	lost := make(chan error, 1)
	o := h.options("b", "b", h.secrets["b"]).SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	b, err := dial(o)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Disconnect(0)
	b.Publish("lockers/a/telemetry", 1, false, telemetry(1))
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("device publishing QoS 1 to another device's topic was not disconnected")
	}
	if got := seen.data(); len(got) != 1 {
		t.Fatalf("hub received %q after b's forbidden publish", got)
	}
}

func TestHubCommandReachesOnlyItsDevice(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	got := map[string]chan string{"a": make(chan string, 4), "b": make(chan string, 4)}
	for id, ch := range got {
		c := h.connect(id)
		tok := c.Subscribe(wire.CommandFilter(id), 1, func(_ paho.Client, m paho.Message) { ch <- m.Topic() })
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", id, tok.Error())
		}
	}
	if err := h.Publish(wire.Topic("b", wire.ChannelCommand), []byte(`{}`), false, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case topic := <-got["b"]:
		if topic != "lockers/b/cmd/request" {
			t.Fatalf("b got %s", topic)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b did not receive its command")
	}
	select {
	case topic := <-got["a"]:
		t.Fatalf("a received %s", topic)
	default:
	}
}

func TestMalformedPayloads(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	seen := h.record("lockers/+/telemetry")
	a, b := h.connect("a"), h.connect("b")
	for _, tc := range []struct {
		name, reason string
		payload      []byte
	}{
		{"not json", "malformed", []byte("\x00\xffgarbage")},
		{"wrong version", "version", []byte(`{"v":99,"seq":1,"ts":1,"doors":[]}`)},
		{"door out of range", "invalid", []byte(`{"v":1,"seq":1,"ts":1,"doors":[{"door":999}]}`)},
		{"oversized", "too_large", []byte(`{"v":1,"pad":"` + strings.Repeat("x", wire.MaxPayloadBytes) + `"}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.counter("lockerhub_mqtt_messages_rejected_total", "reason", tc.reason)
			// Acknowledged (resending would not make it valid), but dropped and counted.
			if err := publish(t, a, "lockers/a/telemetry", 1, tc.payload); err != nil {
				t.Fatalf("publish: %v", err)
			}
			if after := h.counter("lockerhub_mqtt_messages_rejected_total", "reason", tc.reason); after != before+1 {
				t.Fatalf("rejected{reason=%s}: %v -> %v", tc.reason, before, after)
			}
		})
	}
	// A packet far beyond the limit is refused while it is read, before it is buffered.
	before := h.counter("lockerhub_mqtt_messages_rejected_total", "reason", "too_large")
	a.Publish("lockers/a/telemetry", 0, false, make([]byte, 1<<20))
	waitFor(t, "huge packet counted", func() bool {
		return h.counter("lockerhub_mqtt_messages_rejected_total", "reason", "too_large") == before+1
	})

	// None of it reached the hub's subscribers or disturbed another device.
	if err := publish(t, b, "lockers/b/telemetry", 1, telemetry(1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b's telemetry", func() bool { return len(seen.all()) > 0 })
	if got := seen.all(); len(got) != 1 || !strings.HasPrefix(got[0], "lockers/b/telemetry") {
		t.Fatalf("hub received %q", got)
	}
	if n := h.counter("lockerhub_mqtt_messages_received_total", "channel", "telemetry"); n != 1 {
		t.Fatalf("received telemetry = %v, want 1", n)
	}
}

// waitStatus waits until the retained status document of a device says online (or offline)
// and returns it.
func (h *hub) waitStatus(id string, online bool) wire.Status {
	h.t.Helper()
	var st wire.Status
	waitFor(h.t, fmt.Sprintf("retained status online=%v", online), func() bool {
		rec := h.record(wire.Topic(id, wire.ChannelStatus))
		got := rec.all()
		if len(got) == 0 {
			return false
		}
		_, payload, _ := strings.Cut(got[len(got)-1], " ")
		var err error
		if st, err = wire.DecodeStatus([]byte(payload)); err != nil {
			h.t.Fatalf("retained status of %s: %v", id, err)
		}
		return st.Online == online
	})
	return st
}

func TestPresence(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	if _, ok := h.Presence("a"); ok {
		t.Fatal("presence before first connect")
	}

	t.Run("clean disconnect", func(t *testing.T) {
		c, err := dial(h.options("a", "a", h.secrets["a"]).SetKeepAlive(45 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		p, ok := h.Presence("a")
		if !ok || !p.Online || p.ConnectedSince.IsZero() || !strings.HasPrefix(p.Remote, "127.0.0.1:") || p.KeepAlive != 45*time.Second {
			t.Fatalf("presence while connected: %+v", p)
		}
		if st := h.waitStatus("a", true); st.Remote != p.Remote || st.Since != p.ConnectedSince.UnixMilli() {
			t.Fatalf("retained status while connected: %+v, presence %+v", st, p)
		}
		if got := h.counter("lockerhub_devices_connected"); got != 1 {
			t.Fatalf("devices connected = %v", got)
		}
		c.Disconnect(100)
		waitFor(t, "offline", func() bool { p, _ := h.Presence("a"); return !p.Online })
		h.waitStatus("a", false)
		if got := h.counter("lockerhub_devices_connected"); got != 0 {
			t.Fatalf("devices connected = %v", got)
		}
	})

	t.Run("pings keep a silent connection seen", func(t *testing.T) {
		c, err := dial(h.options("a", "a", h.secrets["a"]).SetKeepAlive(2 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Disconnect(0)
		first, _ := h.Presence("a")
		waitFor(t, "a ping seen", func() bool { p, _ := h.Presence("a"); return p.LastSeen.Sub(first.LastSeen) >= 2*time.Second })
	})

	t.Run("connection dropped", func(t *testing.T) {
		var conn net.Conn
		o := h.options("a", "a", h.secrets["a"]).SetCustomOpenConnectionFn(
			func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
				var err error
				conn, err = net.Dial("tcp", u.Host)
				return conn, err
			})
		c, err := dial(o)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Disconnect(0)
		if p, _ := h.Presence("a"); !p.Online {
			t.Fatal("not online")
		}
		conn.Close() // no DISCONNECT packet: the network went away
		waitFor(t, "offline after dropped connection", func() bool { p, _ := h.Presence("a"); return !p.Online })
		p, _ := h.Presence("a")
		if p.DisconnectedAt.Before(p.ConnectedSince) || p.LastSeen.IsZero() {
			t.Fatalf("presence after drop: %+v", p)
		}
	})

	t.Run("takeover by same client id", func(t *testing.T) {
		lost := make(chan struct{})
		first, err := dial(h.options("a", "a", h.secrets["a"]).
			SetConnectionLostHandler(func(paho.Client, error) { close(lost) }))
		if err != nil {
			t.Fatal(err)
		}
		defer first.Disconnect(0)
		second := h.connect("a")
		select {
		case <-lost:
		case <-time.After(10 * time.Second):
			t.Fatal("first connection not closed by the takeover")
		}
		// The old connection's end must not mark the device offline.
		time.Sleep(50 * time.Millisecond)
		p, _ := h.Presence("a")
		if !p.Online || h.counter("lockerhub_devices_connected") != 1 {
			t.Fatalf("presence after takeover: %+v", p)
		}
		if st := h.waitStatus("a", true); st.Remote != p.Remote {
			t.Fatalf("retained status after takeover: %+v, presence %+v", st, p)
		}
		if !second.IsConnectionOpen() {
			t.Fatal("second connection closed")
		}
	})
}

func TestRevalidateDisconnects(t *testing.T) {
	t.Parallel()
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	for _, tc := range []struct {
		name   string
		change func(h *hub) error
	}{
		{"disabled", func(h *hub) error { _, err := h.devices.SetEnabled(ctx, "a", false); return err }},
		{"removed", func(h *hub) error { return h.devices.DeleteDevice(ctx, "a") }},
		{"secret rotated", func(h *hub) error { _, err := h.devices.RotateSecret(ctx, "a"); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHub(t)
			lost := make(chan struct{})
			a, err := dial(h.options("a", "a", h.secrets["a"]).
				SetConnectionLostHandler(func(paho.Client, error) { close(lost) }))
			if err != nil {
				t.Fatal(err)
			}
			defer a.Disconnect(0)
			b := h.connect("b")
			if err := h.Revalidate(ctx); err != nil {
				t.Fatal(err)
			}
			if !a.IsConnectionOpen() {
				t.Fatal("unchanged device disconnected")
			}
			if err := tc.change(h); err != nil {
				t.Fatal(err)
			}
			if err := h.Revalidate(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case <-lost:
			case <-time.After(10 * time.Second):
				t.Fatal("device not disconnected")
			}
			if !b.IsConnectionOpen() {
				t.Fatal("other device disconnected")
			}
			if _, err := dial(h.options("a", "a", h.secrets["a"])); err == nil {
				t.Fatal("reconnect with the old credentials accepted")
			}
		})
	}
}

// legacyStore gives the registry's device "a" an argon2id hash, as the hub wrote before it
// hashed secrets with SHA-256 (the registry itself only writes SHA-256 now).
type legacyStore struct{ broker.CredentialStore }

const (
	legacySecret = "legacy-secret-of-unit-a"
	legacyHash   = "$argon2id$v=19$m=8192,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$9DHY3c5huywDHqmcPNBFLVxO1jchS/kERypf5f7ILF4"
)

func (s legacyStore) DeviceCredential(ctx context.Context, id string) (fleet.Credential, error) {
	c, err := s.CredentialStore.DeviceCredential(ctx, id)
	if id == "a" {
		c.SecretHash = legacyHash
	}
	return c, err
}

// A flood of wrong secrets from one address against a unit whose hash is still a slow argon2id
// one costs a bounded number of slow hash checks, and units still get in meanwhile.
func TestLoginFloodIsThrottled(t *testing.T) {
	t.Parallel()
	h := newHubOn(t, func(s broker.CredentialStore) broker.CredentialStore { return legacyStore{s} })
	h.secrets["a"] = legacySecret
	h.connect("a").Disconnect(0) // a's secret is now cached
	const attempts = 100
	var wg sync.WaitGroup
	var accepted atomic.Int32
	for i := range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c, err := dial(from(h.options("a", "a", fmt.Sprintf("guess-%d", i)), "127.0.0.2")); err == nil {
				accepted.Add(1)
				c.Disconnect(0)
			}
		}()
	}
	// Legitimate devices connect while the flood runs.
	for range 5 {
		h.connect("a").Disconnect(0)
		h.connect("b").Disconnect(0)
	}
	wg.Wait()
	if accepted.Load() != 0 {
		t.Fatalf("%d wrong secrets accepted", accepted.Load())
	}
	failures := h.counter("lockerhub_mqtt_auth_failures_total", "reason", "bad_secret") +
		h.counter("lockerhub_mqtt_auth_failures_total", "reason", "throttled")
	if failures != attempts {
		t.Fatalf("counted %v failed logins, want %d", failures, attempts)
	}
	// a: 1 first connect (b's SHA-256 hash is not a slow one); the flood: 5 free failures plus
	// at most one per verification slot that was already past the throttle.
	if n := h.counter("lockerhub_mqtt_auth_hash_verifications_total"); n < 1 || n > float64(1+5+2*runtime.GOMAXPROCS(0)) {
		t.Fatalf("%v slow hash verifications for a flood of %d", n, attempts)
	}
	if h.counter("lockerhub_mqtt_auth_failures_total", "reason", "throttled") == 0 {
		t.Fatal("nothing was throttled")
	}
}

// receiptFunc is a fake ingester's receipt.
type receiptFunc func(context.Context) error

func (f receiptFunc) Wait(ctx context.Context) error { return f(ctx) }

// storeOnly is the part of a fake ingester that takes no command results.
type storeOnly struct{}

func (storeOnly) Apply(context.Context, string, wire.Channel, wire.Message) error { return nil }

// failingIngester stands in for a spool that stays full: a real one cannot be made to fail on
// cue in a broker test. The pipeline's own tests use the real spool.
type failingIngester struct {
	storeOnly
	calls atomic.Int32
}

func (f *failingIngester) Ingest(context.Context, string, wire.Channel, wire.Message) (fleet.Receipt, error) {
	f.calls.Add(1)
	return receiptFunc(func(ctx context.Context) error {
		<-ctx.Done() // the spool stays full until the ingest timeout
		return fmt.Errorf("spool full: %w", ctx.Err())
	}), nil
}

// A message the ingester cannot store is not acknowledged, nor are those sent after it, and the
// device is disconnected so that it resends them from its outbox.
func TestIngestFailureWithholdsAck(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	ing := &failingIngester{}
	b := h.startBroker(broker.Config{Addr: "127.0.0.1:0"}, broker.Options{Ingester: ing, IngestTimeout: time.Second})
	lost := make(chan struct{})
	c, err := dial(at(h.options("a", "a", h.secrets["a"]).SetConnectionLostHandler(func(paho.Client, error) { close(lost) }), b))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(0)
	toks := []paho.Token{c.Publish("lockers/a/telemetry", 1, false, telemetry(1)), c.Publish("lockers/a/telemetry", 1, false, telemetry(2))}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("device not disconnected after its message could not be stored")
	}
	for i, tok := range toks {
		if tok.WaitTimeout(100*time.Millisecond) && tok.Error() == nil {
			t.Fatalf("message %d acknowledged although it was not stored", i+1)
		}
	}
	if ing.calls.Load() != 2 {
		t.Fatalf("ingest calls %d, want 2", ing.calls.Load())
	}
}

// gatedIngester holds every message until release is closed, and records the order in which
// messages were handed over and in which their receipts were waited for.
type gatedIngester struct {
	storeOnly
	release          chan struct{}
	mu               sync.Mutex
	ingested, waited []uint64
}

func (g *gatedIngester) Ingest(_ context.Context, _ string, _ wire.Channel, msg wire.Message) (fleet.Receipt, error) {
	seq := msg.(wire.Telemetry).Seq
	g.mu.Lock()
	g.ingested = append(g.ingested, seq)
	g.mu.Unlock()
	return gatedReceipt{g, seq}, nil
}

// gatedReceipt settles, like the spool's, when its commit (release) is done.
type gatedReceipt struct {
	g   *gatedIngester
	seq uint64
}

func (r gatedReceipt) Wait(ctx context.Context) error {
	select {
	case <-r.g.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	r.g.mu.Lock()
	r.g.waited = append(r.g.waited, r.seq)
	r.g.mu.Unlock()
	return nil
}

func (r gatedReceipt) Settled() bool {
	select {
	case <-r.g.release:
		return true
	default:
		return false
	}
}

func (g *gatedIngester) counts() (ingested, waited int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.ingested), len(g.waited)
}

// A device has many messages in flight: the broker reads the next ones while earlier ones wait
// for storage, acknowledges none before it is stored, and waits for them in their order. A
// command result sent behind them is delivered at once but acknowledged after them, as MQTT
// orders acknowledgements.
func TestMessagesInFlightAreAcknowledgedWhenStored(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	ing := &gatedIngester{release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	b := h.startBroker(broker.Config{Addr: "127.0.0.1:0"}, broker.Options{Ingester: ing, Registerer: reg})
	results := make(chan string, 1)
	if err := b.Subscribe("lockers/+/result", func(topic string, _ []byte) { results <- topic }); err != nil {
		t.Fatal(err)
	}
	c, err := dial(at(h.options("a", "a", h.secrets["a"]), b))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(0)
	const n = 20
	var toks []paho.Token
	for seq := range uint64(n) {
		toks = append(toks, c.Publish("lockers/a/telemetry", 1, false, telemetry(seq+1)))
	}
	testhub.WaitFor(t, 10*time.Second, "every message handed to the ingester", func() bool {
		in, _ := ing.counts()
		return in == n
	})
	result, err := wire.Marshal(wire.Result{V: wire.Version, ID: "c1", Seq: n + 1, TS: time.Now().UnixMilli(), Outcome: wire.OutcomeOpened})
	if err != nil {
		t.Fatal(err)
	}
	resultTok := c.Publish("lockers/a/result", 1, false, result)
	select {
	case topic := <-results:
		if topic != "lockers/a/result" {
			t.Fatalf("delivered on %s", topic)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("result not delivered while the telemetry ahead of it waits for storage")
	}
	status := c.Publish("lockers/a/status", 1, false, `{"v":1,"ts":1,"online":true}`)
	if resultTok.WaitTimeout(200*time.Millisecond) || status.WaitTimeout(0) {
		t.Fatal("result or status acknowledged before the telemetry sent ahead of it")
	}
	toks = append(toks, resultTok, status)
	for i, tok := range toks {
		if tok.WaitTimeout(0) {
			t.Fatalf("message %d acknowledged before it was stored", i+1)
		}
	}
	close(ing.release)
	for i, tok := range toks {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("message %d not acknowledged once stored: %v", i+1, tok.Error())
		}
	}
	ing.mu.Lock()
	defer ing.mu.Unlock()
	if !slices.Equal(ing.waited, ing.ingested) || !slices.IsSorted(ing.waited) {
		t.Fatalf("handed over %v, waited for %v; want both in publish order", ing.ingested, ing.waited)
	}
	// Everything was made durable at once, like one spool commit: the acknowledgements leave
	// together, in one write (counted once it is made: the device may see it first).
	testhub.WaitFor(t, 10*time.Second, "the acknowledgements' write counted", func() bool {
		return counterIn(t, reg, "lockerhub_mqtt_ack_writes_total") > 0
	})
	acks, writes := counterIn(t, reg, "lockerhub_mqtt_acks_total"), counterIn(t, reg, "lockerhub_mqtt_ack_writes_total")
	if acks != n+2 || writes != 1 {
		t.Fatalf("%v acknowledgements in %v writes, want %d in 1", acks, writes, n+2)
	}
}

// A connection that never sends CONNECT is closed after the connect timeout, on every
// listener, while a device that did connect keeps its connection past that time.
func TestSilentConnectionsAreClosed(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	certFile, keyFile, pool := testhub.SelfSignedCert(t)
	b := h.startBroker(broker.Config{Addr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0", TLSCert: certFile, TLSKey: keyFile, WSAddr: "127.0.0.1:0"}, broker.Options{ConnectTimeout: time.Second})

	device, err := dial(at(h.options("a", "a", h.secrets["a"]).SetKeepAlive(30*time.Second), b))
	if err != nil {
		t.Fatal(err)
	}
	defer device.Disconnect(0)

	silent := map[string]net.Conn{}
	for _, name := range []string{broker.ListenerTCP, broker.ListenerTLS, broker.ListenerWS} {
		c, err := net.Dial("tcp", b.Addr(name).String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		switch name {
		case broker.ListenerTLS: // the handshake done, nothing more
			tc := tls.Client(c, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
			if err := tc.Handshake(); err != nil {
				t.Fatal(err)
			}
			c = tc
		case broker.ListenerWS: // upgraded, no MQTT
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("websocket upgrade: %v %v", resp, err)
			}
		}
		silent[name] = c
	}
	for name, c := range silent {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Errorf("%s: silent connection not closed by the hub: %v", name, err)
		}
	}
	if tok := device.Publish("lockers/a/status", 1, false, `{"v":1,"ts":1,"online":true}`); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil || !device.IsConnectionOpen() {
		t.Fatalf("connected device lost its connection after the connect timeout: %v", tok.Error())
	}
}

// Failed logins reach the audit trail, counted per device and reason.
func TestFailedLoginsAudited(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	audit := sqldb.NewAuditService(h.db)
	b := h.startBroker(broker.Config{Addr: "127.0.0.1:0"}, broker.Options{Audit: audit})
	for _, creds := range [][2]string{{"a", "wrong"}, {"a", "wrong"}, {"a", "wrong"}, {"zz", "x"}} {
		if c, err := dial(at(h.options(creds[0], creds[0], creds[1]), b)); err == nil {
			c.Disconnect(0)
			t.Fatal("bad login accepted")
		}
	}
	b.Close() // flushes the batch
	got := map[string]any{}
	audit.Entries(context.Background(), fleet.AuditFilter{}, func(e *fleet.AuditEntry) error {
		if e.Action == "login.failed" {
			got[e.Device+"/"+fmt.Sprint(e.Detail["reason"])] = e.Detail["count"]
		}
		return nil
	})
	if fmt.Sprint(got["a/bad_secret"]) != "3" || fmt.Sprint(got["zz/unknown_device"]) != "1" {
		t.Fatalf("audited failed logins: %v", got)
	}
}

// Presence reaches the hub's own subscribers without a retained document per unit: a subscriber
// gets every known device's current status when it subscribes, then each change, and only for
// the topics its filter matches.
func TestPresenceSubscribers(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	early := h.record(wire.Topic("+", wire.ChannelStatus))
	onlyB := h.record(wire.Topic("b", wire.ChannelStatus))
	results := h.record(wire.Topic("+", wire.ChannelResult))
	a := h.connect("a")
	waitFor(t, "a's online status", func() bool { return len(early.all()) == 1 })

	late := h.record("lockers/#")
	if got := late.all(); len(got) != 1 {
		t.Fatalf("a subscriber after the connect got %q, want a's status at once", got)
	}
	a.Disconnect(100)
	waitFor(t, "a's offline status", func() bool { return len(early.all()) == 2 && len(late.all()) == 2 })
	p, _ := h.Presence("a")
	for name, r := range map[string]*recorder{"early": early, "late": late} {
		got := r.all()
		var sts []wire.Status
		for _, m := range got {
			topic, payload, _ := strings.Cut(m, " ")
			st, err := wire.DecodeStatus([]byte(payload))
			if err != nil || topic != wire.Topic("a", wire.ChannelStatus) {
				t.Fatalf("%s: %q: %v", name, m, err)
			}
			sts = append(sts, st)
		}
		if !sts[0].Online || sts[1].Online || sts[1].Since != p.DisconnectedAt.UnixMilli() || sts[0].Remote != p.Remote {
			t.Errorf("%s subscriber got %+v, presence %+v", name, sts, p)
		}
	}
	if got := append(onlyB.all(), results.all()...); len(got) != 0 {
		t.Errorf("subscribers of other topics got %q", got)
	}
}
