package telemetry_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/testhub"
	"github.com/lockerhub/lockerhub/internal/testinflux"
	"github.com/lockerhub/lockerhub/internal/testproxy"
	"github.com/lockerhub/lockerhub/telemetry"
	"github.com/lockerhub/lockerhub/telemetry/influx"
	"github.com/lockerhub/lockerhub/telemetry/spool"
)

// rig is the telemetry path with real parts: MQTT publishers -> broker -> pipeline -> spool
// (fsync) -> shipper -> InfluxDB, optionally through a proxy that can cut InfluxDB off.
type rig struct {
	t        testing.TB
	hub      *testhub.Hub
	influx   *testinflux.Server
	pipeline *telemetry.Pipeline
	reg      *prometheus.Registry
	mqttReg  *prometheus.Registry // the broker's
	secrets  map[string]string
	dataDir  string
	proxy    *testproxy.Proxy
}

func newRig(t testing.TB, devices int, viaProxy bool) *rig {
	t.Helper()
	r := &rig{t: t, hub: testhub.Open(t), influx: testinflux.Require(t), reg: prometheus.NewRegistry(),
		secrets: map[string]string{}, dataDir: t.TempDir()}
	for i := range devices {
		id := fmt.Sprintf("unit-%d", i)
		r.secrets[id] = r.hub.AddDevice(id, fleet.KindFridge, 2)
	}
	sp, err := spool.Open(filepath.Join(r.dataDir, "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	if r.pipeline, err = telemetry.NewPipeline(sp, r.hub.Devices, telemetry.Options{Registerer: r.reg, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	url := r.influx.URL
	if viaProxy {
		r.proxy = testproxy.New(t, r.influx.URL[len("http://"):])
		url = "http://" + r.proxy.Addr
	}
	client := influx.New(influx.Config{URL: url, Bucket: r.influx.Bucket, BatchSize: 5000, Timeout: 5 * time.Second})
	t.Cleanup(client.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.pipeline.NewShipper(client, 5000, 2, r.dataDir).Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	r.hub.Options.Ingester = r.pipeline
	r.mqttReg = prometheus.NewRegistry()
	r.hub.Options.Registerer = r.mqttReg
	r.hub.Restart("")
	return r
}

// connect returns a paho client for device id.
func (r *rig) connect(id string) paho.Client {
	r.t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(r.hub.URL()).SetClientID(id).SetUsername(id).
		SetPassword(r.secrets[id]).SetProtocolVersion(4).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		r.t.Fatalf("connect %s: %v", id, tok.Error())
	}
	r.t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// reading is the snapshot the tests publish: its values follow from device, seq and time, so
// what InfluxDB holds can be checked exactly.
func reading(device int, seq uint64, ts time.Time) wire.Telemetry {
	c := float64(device) + float64(seq)/100
	amb := 20.5
	return wire.Telemetry{V: wire.Version, Seq: seq, TS: ts.UnixMilli(), AmbientC: &amb,
		Doors:      []wire.DoorState{{Door: 1, Locked: true, TempC: &c}, {Door: 2, Open: seq%2 == 0}},
		Compressor: &wire.Thermal{On: seq%3 == 0, SetpointC: 3, Duty: 0.25}}
}

func (r *rig) publish(c paho.Client, id string, t wire.Telemetry) {
	r.t.Helper()
	b, err := wire.Marshal(t)
	if err != nil {
		r.t.Fatal(err)
	}
	tok := c.Publish(wire.Topic(id, wire.ChannelTelemetry), 1, false, b)
	if !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
		r.t.Fatalf("publish: %v", tok.Error())
	}
}

// Per snapshot of reading: 2 door points, 2 temperatures (compartment 1, ambient), 1 thermal,
// 1 unit.
const temperaturesPerReading = 2

func (r *rig) waitForTemperatures(want int) {
	r.t.Helper()
	testhub.WaitFor(r.t, 120*time.Second, fmt.Sprintf("%d temperature points in InfluxDB", want), func() bool {
		return r.influx.Count(r.t, "temperature") >= want
	})
	if got := r.influx.Count(r.t, "temperature"); got != want {
		r.t.Fatalf("InfluxDB holds %d temperature points, want exactly %d", got, want)
	}
}

func TestKnownReadingsArriveExactlyOnce(t *testing.T) {
	t.Parallel()
	const devices, perDevice = 6, 50
	r := newRig(t, devices, false)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	var wg sync.WaitGroup
	for d := range devices {
		id := fmt.Sprintf("unit-%d", d)
		c := r.connect(id)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := uint64(1); seq <= perDevice; seq++ {
				r.publish(c, id, reading(d, seq, base.Add(time.Duration(seq)*time.Second)))
			}
			// The same reading twice (a resend after a lost PUBACK) must not add a point.
			r.publish(c, id, reading(d, perDevice, base.Add(perDevice*time.Second)))
		}()
	}
	wg.Wait()
	r.waitForTemperatures(devices * perDevice * temperaturesPerReading)
	if n := r.influx.Count(t, "door"); n != devices*perDevice*2 {
		t.Fatalf("door points: %d, want %d", n, devices*perDevice*2)
	}
	// Spot checks: exact values at exact times.
	rows := r.influx.Query(t, fmt.Sprintf(`SELECT celsius FROM temperature WHERE device='unit-3' AND sensor='compartment' AND door='1' AND time = %dms`,
		base.Add(17*time.Second).UnixMilli()))
	if len(rows) != 1 || rows[0][1] != 3.17 {
		t.Fatalf("unit-3 compartment 1 at seq 17: %v, want 3.17", rows)
	}
	rows = r.influx.Query(t, fmt.Sprintf(`SELECT "open" FROM door WHERE device='unit-5' AND door='2' AND time = %dms`, base.Add(8*time.Second).UnixMilli()))
	if len(rows) != 1 || rows[0][1] != true {
		t.Fatalf("unit-5 door 2 at seq 8: %v, want open", rows)
	}
	if dup := metric(t, r.reg, "lockerhub_telemetry_duplicates_total"); dup != devices {
		t.Fatalf("duplicates counted: %v, want %d", dup, devices)
	}
	unit2, err := r.hub.Devices.FindDeviceByID(context.Background(), "unit-2")
	if err != nil {
		t.Fatal(err)
	}
	st, ok := r.pipeline.LiveState(unit2)
	if !ok || st.Snapshot == nil || st.Snapshot.Seq != perDevice || len(st.Doors) != 2 {
		t.Fatalf("live state of unit-2: %+v", st)
	}
}

// One unit with a window of messages in flight through the real spool: every message is
// acknowledged, stored exactly once, and the acknowledgements of the messages one group
// commit made durable leave together, in far fewer writes than messages.
func TestAcksOfOneCommitShareAWrite(t *testing.T) {
	t.Parallel()
	const n = 400
	r := newRig(t, 1, false)
	c := r.connect("unit-0")
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	toks := make([]paho.Token, 0, n)
	for seq := uint64(1); seq <= n; seq++ {
		p, err := wire.Marshal(reading(0, seq, base.Add(time.Duration(seq)*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, c.Publish(wire.Topic("unit-0", wire.ChannelTelemetry), 1, false, p))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
			t.Fatalf("message %d not acknowledged: %v", i+1, tok.Error())
		}
	}
	r.waitForTemperatures(n * temperaturesPerReading)
	acks, writes := metric(t, r.mqttReg, "lockerhub_mqtt_acks_total"), metric(t, r.mqttReg, "lockerhub_mqtt_ack_writes_total")
	if acks != n || writes < 1 || writes >= n/2 {
		t.Fatalf("%v acknowledgements in %v writes; want %d in well under one write per message", acks, writes, n)
	}
	t.Logf("%v acknowledgements in %v writes", acks, writes)
}

// InfluxDB unreachable for a while in the middle of a stream: the stream is accepted all along,
// and everything reaches InfluxDB once it answers again, nothing twice.
func TestInfluxOutage(t *testing.T) {
	t.Parallel()
	// Long enough for the shipper's backoff (500 ms doubling) to reach its 5 s cap and retry
	// there; a longer outage tests nothing more and cost the suite its slowest test.
	outage := 12 * time.Second
	if testing.Short() {
		outage = 3 * time.Second
	}
	r := newRig(t, 2, true)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	clients := map[string]paho.Client{"unit-0": r.connect("unit-0"), "unit-1": r.connect("unit-1")}
	seq := uint64(0)
	send := func(n int) {
		for range n {
			seq++
			for d, id := range []string{"unit-0", "unit-1"} {
				r.publish(clients[id], id, reading(d, seq, base.Add(time.Duration(seq)*time.Second)))
			}
		}
	}
	send(20)
	r.proxy.SetDown(true)
	deadline := time.Now().Add(outage)
	for time.Now().Before(deadline) {
		send(5) // acknowledged while InfluxDB is away: they are in the spool
		time.Sleep(200 * time.Millisecond)
	}
	if metric(t, r.reg, "lockerhub_telemetry_write_retries_total") == 0 {
		t.Fatal("no write was retried during the outage")
	}
	r.proxy.SetDown(false)
	send(20)
	r.waitForTemperatures(int(seq) * 2 * temperaturesPerReading)
}

// A message InfluxDB refuses as bad data (a field type conflict) is quarantined, and the
// stream behind it is stored.
func TestPoisonMessageQuarantined(t *testing.T) {
	t.Parallel()
	r := newRig(t, 1, false)
	// A point written earlier with "open" as a string makes every later boolean "open" in the
	// same shard a type conflict: InfluxDB answers 400.
	old := time.Now().Add(-21 * 24 * time.Hour).Truncate(time.Second)
	r.influx.Write(t, fmt.Sprintf(`door,device=other,door=1,kind=fridge,site=test open="stuck" %d`, old.UnixNano()))

	c := r.connect("unit-0")
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	r.publish(c, "unit-0", reading(0, 1, base))
	r.publish(c, "unit-0", reading(0, 2, old)) // the poison
	for seq := uint64(3); seq <= 12; seq++ {
		r.publish(c, "unit-0", reading(0, seq, base.Add(time.Duration(seq)*time.Second)))
	}
	testhub.WaitFor(t, 60*time.Second, "quarantine", func() bool {
		return metric(t, r.reg, "lockerhub_telemetry_quarantined_batches_total") == 1
	})
	// InfluxDB keeps the points of a partial write that do not conflict, so the poisoned
	// message's temperatures are there too; its door points are not.
	r.waitForTemperatures(12 * temperaturesPerReading)
	if n := r.influx.Count(t, "door"); n != 11*2+1 {
		t.Fatalf("door points: %d, want %d (the stream) + 1 (the older point)", n, 11*2+1)
	}
	files, _ := os.ReadDir(filepath.Join(r.dataDir, "quarantine"))
	if len(files) != 1 {
		t.Fatalf("quarantine holds %d files, want 1", len(files))
	}
}

// metric returns the sum of a counter's series in reg.
func metric(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	v := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

// testLogger logs through t, so that a failing test shows what the pipeline said.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
