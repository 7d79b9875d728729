package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/metrics"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/broker"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// BenchmarkConnect measures a known device's connect and disconnect over TCP with paho, alone
// and while other goroutines flood the hub with wrong secrets for another device and with
// unknown ids. The flood must not make legitimate connects slower by more than the CPU it
// takes; compare the two results.
func BenchmarkConnect(b *testing.B) {
	for _, flood := range []bool{false, true} {
		b.Run(fmt.Sprintf("flood=%v", flood), func(b *testing.B) {
			h := newHub(b)
			h.connect("b").Disconnect(0) // warm the verified-secret cache, as a reconnect would
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			if flood {
				for w := range 8 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; ctx.Err() == nil; i++ {
							id := "a"
							if i%2 == 1 {
								id = fmt.Sprintf("ghost-%d", w)
							}
							if c, err := dial(h.options(id, id, "wrong")); err == nil {
								c.Disconnect(0)
							}
						}
					}()
				}
			}
			b.ResetTimer()
			for b.Loop() {
				c, err := dial(h.options("b", "b", h.secrets["b"]))
				if err != nil {
					b.Fatal(err)
				}
				c.Disconnect(0)
			}
			b.StopTimer()
			cancel()
			wg.Wait()
			b.ReportMetric(h.counter("lockerhub_mqtt_auth_failures_total", "reason", "throttled")+
				h.counter("lockerhub_mqtt_auth_failures_total", "reason", "bad_secret")+
				h.counter("lockerhub_mqtt_auth_failures_total", "reason", "unknown_device"), "refused")
			b.ReportMetric(h.counter("lockerhub_mqtt_auth_hash_verifications_total"), "hashes")
		})
	}
}

// BenchmarkIdleConnection measures what one connected, idle unit costs the broker: each
// operation connects one unit the way the edge agent does (MQTT 3.1.1, persistent session,
// credentials, then a subscription to its commands) over a raw TCP connection, which costs the
// test process no goroutine, and leaves it connected; with published, the unit then sends one
// 16-door snapshot, which the broker validates on the unit's read goroutine. Once all are
// connected, the Go heap and the goroutine stacks in use are compared with before, after
// forced collections, and divided by the units: the stacks are mostly the broker's two
// goroutines per connection. Run with a fixed count, e.g. -benchtime=2000x.
func BenchmarkIdleConnection(b *testing.B) {
	for _, published := range []bool{false, true} {
		b.Run(fmt.Sprintf("published=%v", published), func(b *testing.B) { benchmarkIdleConnection(b, published) })
	}
}

func benchmarkIdleConnection(b *testing.B, published bool) {
	h := newHub(b)
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	devs := make([]*fleet.Device, b.N)
	for i := range devs {
		devs[i] = &fleet.Device{ID: fmt.Sprintf("idle-%d", i), Kind: fleet.KindLockerBank, Site: "test", Doors: 16}
	}
	secrets, err := h.devices.CreateDevices(ctx, devs)
	if err != nil {
		b.Fatal(err)
	}
	addr := h.Addr(broker.ListenerTCP).String()
	before := settledMemory()
	conns := make([]net.Conn, 0, b.N)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	b.ResetTimer()
	for i := range b.N {
		c, err := rawConnect(addr, devs[i].ID, secrets[i], published)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
	}
	b.StopTimer()
	waitFor(b, "every unit online", func() bool { return h.counter("lockerhub_devices_connected") == float64(len(conns)) })
	after := settledMemory()
	n := float64(len(conns))
	b.ReportMetric(float64(after.StackInuse-before.StackInuse)/n, "stack-B/unit")
	b.ReportMetric((float64(after.HeapInuse)-float64(before.HeapInuse))/n, "heap-B/unit")
	b.ReportMetric(float64(startingStackSize()), "start-stack-B")
}

// settledMemory is the process's memory statistics after collections that leave only what is
// live and give the runtime the chance to shrink goroutine stacks (it halves a stack that uses
// less than a quarter of it, once per collection).
func settledMemory() runtime.MemStats {
	for range 4 {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// startingStackSize is the stack a new goroutine starts with, which the runtime adapts to the
// average stack in use.
func startingStackSize() uint64 {
	s := []metrics.Sample{{Name: "/gc/stack/starting-size:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// rawConnect connects unit id with secret like the edge agent does and returns once its
// subscription to its commands is acknowledged and, with publish, once a snapshot it then
// publishes is.
func rawConnect(addr, id, secret string, publish bool) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	packet := func(header byte, body []byte) []byte {
		out := []byte{header}
		for n := len(body); ; {
			b := byte(n % 128)
			if n /= 128; n > 0 {
				b |= 0x80
			}
			out = append(out, b)
			if n == 0 {
				break
			}
		}
		return append(out, body...)
	}
	// CONNECT: protocol "MQTT" level 4, flags username+password (a persistent session),
	// keepalive 60 s; CONNACK; SUBSCRIBE packet 1 at QoS 1; SUBACK.
	connect := slices.Concat(str("MQTT"), []byte{4, 0xC0, 0, 60}, str(id), str(id), str(secret))
	subscribe := slices.Concat([]byte{0, 1}, str(wire.CommandFilter(id)), []byte{1})
	steps := []struct {
		send []byte
		want []byte
	}{
		{packet(0x10, connect), []byte{0x20, 2, 0, 0}},
		{packet(0x82, subscribe), []byte{0x90, 3, 0, 1, 1}},
	}
	if publish {
		doors := make([]wire.DoorState, 16)
		for i := range doors {
			doors[i] = wire.DoorState{Door: i + 1, Locked: true}
		}
		snapshot, err := wire.Marshal(wire.Telemetry{V: wire.Version, Seq: 1, TS: time.Now().UnixMilli(), Doors: doors})
		if err != nil {
			c.Close()
			return nil, err
		}
		// PUBLISH at QoS 1, packet 2; PUBACK.
		body := slices.Concat(str(wire.Topic(id, wire.ChannelTelemetry)), []byte{0, 2}, snapshot)
		steps = append(steps, struct{ send, want []byte }{packet(0x32, body), []byte{0x40, 2, 0, 2}})
	}
	for _, step := range steps {
		if _, err := c.Write(step.send); err != nil {
			c.Close()
			return nil, err
		}
		got := make([]byte, len(step.want))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, step.want) {
			c.Close()
			return nil, fmt.Errorf("connect %s: got % x, want % x (%v)", id, got, step.want, err)
		}
	}
	c.SetReadDeadline(time.Time{})
	return c, nil
}
