package broker_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
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
