// Package testhub starts a real lockerhub broker with a real SQLite registry for tests of the
// code that talks to it (the edge agent, the fleet simulator): 127.0.0.1 with a free port, a
// temporary data directory, and a way to see what the hub receives.
package testhub

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/broker"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// Hub is a running broker and its registry.
type Hub struct {
	*broker.Broker
	Options broker.Options // used by Restart, e.g. to ingest telemetry
	DB      *sqldb.DB
	Devices *sqldb.DeviceService
	DataDir string
	CAFile  string // PEM of the certificate the TLS listener presents
	certs   [2]string
	t       testing.TB
}

// Start runs a hub on 127.0.0.1 (addr "" picks a free port) and stops it when the test ends.
func Start(t testing.TB, addr string) *Hub {
	t.Helper()
	h := Open(t)
	h.Restart(addr)
	return h
}

// Open prepares a hub's registry without starting its broker: set Options, then Restart.
func Open(t testing.TB) *Hub {
	t.Helper()
	dir := t.TempDir()
	db, err := sqldb.Open(context.Background(), "", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := &Hub{DB: db, Devices: sqldb.NewDeviceService(db), DataDir: dir, t: t}
	h.certs[0], h.certs[1], _ = SelfSignedCert(t)
	h.CAFile = h.certs[0]
	return h
}

// Restart starts a fresh broker on addr (TCP; the TLS and WebSocket listeners get free ports)
// with the same registry, as after a hub restart; the previous broker, if any, must have been
// closed.
func (h *Hub) Restart(addr string) {
	h.t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	b, err := broker.New(broker.Config{Addr: addr, TLSAddr: "127.0.0.1:0", TLSCert: h.certs[0], TLSKey: h.certs[1],
		WSAddr: "127.0.0.1:0"}, h.Devices, h.Options)
	if err != nil {
		h.t.Fatal(err)
	}
	// A port freed by the previous broker can take a moment to be reusable.
	deadline := time.Now().Add(5 * time.Second)
	for err = b.Start(); err != nil && time.Now().Before(deadline); err = b.Start() {
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		h.t.Fatal(err)
	}
	h.Broker = b
	h.t.Cleanup(func() { b.Close() })
}

// URL is the broker's MQTT URL on the plain TCP listener.
func (h *Hub) URL() string { return h.URLOf(broker.ListenerTCP) }

// URLOf is the broker's MQTT URL on the named listener (broker.ListenerTCP, ListenerTLS,
// ListenerWS), in the form paho dials.
func (h *Hub) URLOf(listener string) string {
	scheme := map[string]string{broker.ListenerTCP: "tcp", broker.ListenerTLS: "ssl", broker.ListenerWS: "ws"}[listener]
	return scheme + "://" + h.Addr(listener).String()
}

// AddDevice registers a device as `lockerhub device add` does (the actor "cli") and returns its
// secret.
func (h *Hub) AddDevice(id string, kind fleet.Kind, doors int) string {
	h.t.Helper()
	secret, err := h.Devices.CreateDevice(fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"}), &fleet.Device{ID: id, Kind: kind, Site: "test", Doors: doors})
	if err != nil {
		h.t.Fatal(err)
	}
	return secret
}

// Message is one message the hub received.
type Message struct {
	Topic   string
	Payload []byte
}

// Recorder collects the messages matching a filter, in arrival order.
type Recorder struct {
	mu   sync.Mutex
	msgs []Message
}

// Record starts recording the messages matching filter.
func (h *Hub) Record(filter string) *Recorder {
	h.t.Helper()
	r := &Recorder{}
	if err := h.Subscribe(filter, func(topic string, payload []byte) {
		r.mu.Lock()
		r.msgs = append(r.msgs, Message{Topic: topic, Payload: append([]byte(nil), payload...)})
		r.mu.Unlock()
	}); err != nil {
		h.t.Fatal(err)
	}
	return r
}

// Messages returns what was recorded so far on topics ending in suffix ("" for all).
func (r *Recorder) Messages(suffix string) []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Message
	for _, m := range r.msgs {
		if strings.HasSuffix(m.Topic, suffix) {
			out = append(out, m)
		}
	}
	return out
}

// WaitFor polls cond every few milliseconds until it holds, failing the test after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// SelfSignedCert writes a self-signed certificate for 127.0.0.1 and its key as PEM files in a
// temporary directory and returns their paths and a pool that trusts the certificate.
func SelfSignedCert(t testing.TB) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "lockerhub test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write := func(path, typ string, b []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(certFile, "CERTIFICATE", der)
	write(keyFile, "EC PRIVATE KEY", keyDER)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
