package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

// connectionsResult is the connections scenario: units connecting all at once to a fresh hub.
type connectionsResult struct {
	Units     int `json:"units"`
	Connected int `json:"connected"`
	// Sources are the addresses the units connect from, Window the connects in flight per
	// source, and the file descriptor limits (RLIMIT_NOFILE) what the hub and the load
	// generator could hold: each caps the units of one run.
	Sources        []string `json:"sources"`
	Window         int      `json:"window_per_source"`
	HubFileLimit   int      `json:"hub_nofile"`
	BenchFileLimit int      `json:"bench_nofile"`
	// AllConnackSeconds is from the first CONNECT to the last CONNACK; AllOnlineSeconds until
	// the hub's lockerhub_devices_connected counted every connected unit.
	AllConnackSeconds float64 `json:"all_connack_seconds"`
	AllOnlineSeconds  float64 `json:"all_online_seconds"`
	Connect           latency `json:"connect_to_connack"`
	// Hub memory with no unit and with every unit connected and idle, each after a forced GC,
	// and the difference per connected unit.
	Before        hubMemory `json:"hub_memory_before"`
	After         hubMemory `json:"hub_memory_after"`
	PerUnit       hubMemory `json:"hub_memory_per_unit_kib"`
	HubPeakRSSMiB float64   `json:"hub_peak_rss_mib"`
	HubCPUSeconds float64   `json:"hub_cpu_seconds"` // CPU the hub used until every unit was online
	// HubIdleCores is the hub's CPU, in cores, while it holds every unit connected and idle
	// for IdleSeconds.
	HubIdleCores       float64            `json:"hub_idle_cores"`
	IdleSeconds        float64            `json:"idle_seconds"`
	CPUCores           map[string]float64 `json:"cpu_cores"` // average, from the first CONNECT until all online
	HashVerifications  float64            `json:"hash_verifications"`
	FailedConnectFirst string             `json:"failed_connect_first,omitempty"`
	Errors             []string           `json:"errors,omitempty"`
}

// connections connects units to a fresh hub at once, as after a power cut at a site or a hub
// restart, and measures how long until the hub has them all, each one's CONNECT-to-CONNACK
// time, and what each connected unit costs the hub in memory and, idle, in CPU.
//
// The units connect from several loopback addresses, round-robin: one source address to one
// hub address and port has only the ephemeral ports (about 28,000 here) to tell its
// connections apart. Each address keeps at most the window of connects in flight, so that the
// hub's bound on pending connections per source (mqtt.max_pending_per_source) never refuses
// one: real units connect from as many addresses as there are sites.
func (b *bench) connections(ctx context.Context, units int) (*connectionsResult, error) {
	fmt.Fprintf(b.log, "connections: %d units connecting at once to a fresh hub from %d addresses\n", units, len(b.o.connSources))
	r := &connectionsResult{Units: units, Window: b.o.connWindow, BenchFileLimit: fileLimit(os.Getpid())}
	for _, a := range b.o.connSources {
		r.Sources = append(r.Sources, a.String())
	}
	if units > r.BenchFileLimit-benchFileReserve {
		return r, fmt.Errorf("%d units need as many sockets, but this process may open %d files (ulimit -Hn): run fewer units or raise the hard limit", units, r.BenchFileLimit)
	}
	ctx, cancel := context.WithTimeout(ctx, b.o.phaseTimeout)
	defer cancel()
	// The hub's own default bound is for 10,000 units; it lowers the bound itself to what its
	// file descriptor limit allows, and says so in its log.
	hub, err := b.startHub(ctx, "connections", units, fmt.Sprintf("LOCKERHUB_MQTT_MAX_CONNECTIONS=%d", units+units/10))
	if err != nil {
		return r, err
	}
	defer hub.close()
	creds, pid := hub.units, hub.Cmd.Process.Pid
	r.HubFileLimit = fileLimit(pid)
	if units > r.HubFileLimit-hubFileReserve {
		fmt.Fprintf(b.log, "  the hub may open %d files, fewer than %d units and its reserve of %d: expect refusals\n", r.HubFileLimit, units, hubFileReserve)
	}

	var errs []error
	if r.Before, err = settledMemory(hub); err != nil {
		errs = append(errs, err)
	}
	cpuBefore, _ := testbed.CPUSeconds(pid)
	cpu := testbed.NewCPUMeter(map[string]int{"lockerhub": pid, "bench": os.Getpid()})
	online := make(chan time.Time, 1)
	onlineCtx, stopWaiting := context.WithCancel(ctx)
	defer stopWaiting()
	go func() { online <- waitOnline(onlineCtx, hub.HTTP, units) }()
	c := connectUnitsIn(ctx, creds, len(b.o.connSources), b.o.connWindow, func(g int, u testbed.Unit) (*paho.ClientOptions, error) {
		o, err := unitOptions("tcp://"+hub.MQTT, u, b.o.phaseTimeout, nil)
		if err != nil {
			return nil, err
		}
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: b.o.connSources[g].AsSlice()}, Timeout: b.o.phaseTimeout}
		return o.SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", u.Host)
		}), nil
	}, b.log)
	defer c.disconnect()
	r.Connected = units - c.failures()
	if err := c.firstErr(creds); err != nil {
		r.FailedConnectFirst = err.Error()
		errs = append(errs, fmt.Errorf("%d of %d units did not connect; first: %w", units-r.Connected, units, err))
	}
	if r.Connected < units {
		// The hub will never count them all: wait for the ones that did connect instead.
		stopWaiting()
		<-online
		waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		go func() { online <- waitOnline(waitCtx, hub.HTTP, r.Connected) }()
	}
	allOnline := <-online
	r.CPUCores = cpu.Usage()
	if cpuAfter, err := testbed.CPUSeconds(pid); err == nil {
		r.HubCPUSeconds = testbed.Round(cpuAfter-cpuBefore, 2)
	}
	r.Connect = summarize(c.latencies)
	r.AllConnackSeconds = testbed.Round(c.lastAck.Sub(c.start).Seconds(), 3)
	if allOnline.IsZero() {
		errs = append(errs, fmt.Errorf("the hub never counted the %d connected units online", r.Connected))
	} else {
		r.AllOnlineSeconds = testbed.Round(allOnline.Sub(c.start).Seconds(), 3)
	}
	fmt.Fprintf(b.log, "  %d/%d connected; last CONNACK after %.1f s, all online after %.1f s; connect p50 %.0f ms, p99 %.0f ms\n",
		r.Connected, units, r.AllConnackSeconds, r.AllOnlineSeconds, r.Connect.P50Ms, r.Connect.P99Ms)

	// The units' subscriptions follow their CONNACKs: give them and the hub's presence updates a
	// moment before measuring what an idle connected unit costs.
	time.Sleep(5 * time.Second)
	if r.After, err = settledMemory(hub); err != nil {
		errs = append(errs, err)
	}
	if r.Connected > 0 && r.Before.RSS > 0 && r.After.RSS > 0 {
		r.PerUnit = r.After.perUnitKiB(r.Before, r.Connected)
	}
	r.HubPeakRSSMiB = testbed.Round(float64(testbed.PeakRSS(pid))/(1<<20), 1)
	if r.Connected > 0 {
		idle := testbed.NewCPUMeter(map[string]int{"lockerhub": pid})
		time.Sleep(b.o.connIdle)
		r.HubIdleCores = idle.Usage()["lockerhub"]
		r.IdleSeconds = b.o.connIdle.Seconds()
	}
	if m, err := testbed.Metrics(hub.HTTP, "lockerhub_mqtt_auth_hash_verifications_total"); err == nil {
		r.HashVerifications = m["lockerhub_mqtt_auth_hash_verifications_total"]
	}
	fmt.Fprintf(b.log, "  hub RSS %.0f -> %.0f MiB: %.1f KiB per unit, of which Go heap %.1f KiB and goroutine stacks %.1f KiB; idle CPU %.1f%% of a core\n",
		r.Before.RSS, r.After.RSS, r.PerUnit.RSS, r.PerUnit.Heap, r.PerUnit.Stacks, 100*r.HubIdleCores)
	for _, err := range errs {
		r.Errors = append(r.Errors, err.Error())
	}
	return r, nil
}

// File descriptors the hub keeps for itself below its limit (broker/listen.go's fileReserve),
// and those the load generator needs besides the units' sockets.
const (
	hubFileReserve   = 1024
	benchFileReserve = 64
)

// fileLimit is process pid's soft limit on open files (Max open files in /proc/PID/limits), or
// 0 when it cannot be read. Go raises its own soft limit to the hard one as it starts, so for
// the hub and this process it is the hard limit, the most they can hold.
func fileLimit(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				n, _ := strconv.Atoi(f[0])
				return n
			}
		}
	}
	return 0
}

// waitOnline polls the hub's count of connected devices until it reaches n and returns when
// it first saw it, or the zero time if ctx ended first.
func waitOnline(ctx context.Context, httpAddr string, n int) time.Time {
	for {
		m, err := testbed.Metrics(httpAddr, "lockerhub_devices_connected")
		if err == nil && m["lockerhub_devices_connected"] >= float64(n) {
			return time.Now()
		}
		select {
		case <-ctx.Done():
			return time.Time{}
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// hubMemory is the hub's memory, in MiB (or KiB per unit): resident (VmRSS), Go heap in use
// and goroutine stacks in use (each connection has a few goroutines).
type hubMemory struct {
	RSS    float64 `json:"rss"`
	Heap   float64 `json:"heap_inuse"`
	Stacks float64 `json:"stack_inuse"`
}

// perUnitKiB is the growth from before to m, in KiB per unit, m and before in MiB.
func (m hubMemory) perUnitKiB(before hubMemory, units int) hubMemory {
	per := func(after, before float64) float64 { return testbed.Round((after-before)*1024/float64(units), 1) }
	return hubMemory{RSS: per(m.RSS, before.RSS), Heap: per(m.Heap, before.Heap), Stacks: per(m.Stacks, before.Stacks)}
}

// settledMemory forces a garbage collection in the hub (its profiler's heap endpoint does, with
// gc=1; see startHub), waits a moment and reads its memory. Without the collection the heap in
// use would include whatever garbage the last cycle left; VmRSS still holds pages freed but
// not yet returned to the kernel, so it is the upper bound of what connections cost.
func settledMemory(hub *freshHub) (hubMemory, error) {
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get("http://" + hub.HTTP + "/debug/pprof/heap?gc=1")
	if err != nil {
		return hubMemory{}, fmt.Errorf("forcing a GC in the hub: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return hubMemory{}, fmt.Errorf("forcing a GC in the hub: /debug/pprof/heap: HTTP %d", resp.StatusCode)
	}
	time.Sleep(2 * time.Second)
	rss, err := testbed.RSS(hub.Cmd.Process.Pid)
	if err != nil {
		return hubMemory{}, err
	}
	m, err := testbed.Metrics(hub.HTTP, "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes")
	if err != nil {
		return hubMemory{}, err
	}
	mib := func(b float64) float64 { return testbed.Round(b/(1<<20), 1) }
	return hubMemory{RSS: mib(float64(rss)), Heap: mib(m["go_memstats_heap_inuse_bytes"]), Stacks: mib(m["go_memstats_stack_inuse_bytes"])}, nil
}
