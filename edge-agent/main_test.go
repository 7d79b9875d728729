package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/hardware"
	"github.com/lockerhub/lockerhub/edge-agent/simctl"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/testhub"
)

func TestDocumentedDefaults(t *testing.T) {
	got, err := LoadConfig(filepath.Join("..", "configs", "edge-agent.yaml"))
	if err == nil {
		t.Fatal("the documented defaults have no device id and must not validate")
	}
	var c Config
	t.Setenv("EDGE_AGENT_DEVICE_ID", "bank-1")
	t.Setenv("EDGE_AGENT_SECRET", "s")
	if got, err = LoadConfig(filepath.Join("..", "configs", "edge-agent.yaml")); err != nil {
		t.Fatal(err)
	}
	c = DefaultConfig()
	c.Agent.DeviceID, c.Agent.Secret = "bank-1", "s"
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("configs/edge-agent.yaml = %+v\ncode defaults          = %+v", got, c)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"EDGE_AGENT_DEVICE_ID=Bank_1", "device_id"},
		{"EDGE_AGENT_HUBS=http://x:1", "hubs"},
		{"EDGE_AGENT_TELEMETRY_INTERVAL=1ms", "telemetry_interval"},
		{"EDGE_AGENT_OUTBOX_MAX_BYTES=10", "outbox.max_bytes"},
		{"EDGE_AGENT_HARDWARE=gpio", "hardware"},
		{"EDGE_AGENT_SECRET=", "secret"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Setenv("EDGE_AGENT_DEVICE_ID", "bank-1")
			t.Setenv("EDGE_AGENT_SECRET", "s")
			k, v, _ := strings.Cut(tc.env, "=")
			t.Setenv(k, v)
			if _, err := LoadConfig(""); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want one naming %s", err, tc.want)
			}
		})
	}
}

// The agent binary stays small: none of the hub's heavy dependencies may reach it.
func TestNoHubDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, banned := range []string{"mochi-mqtt", "modernc.org/sqlite", "influxdb-client-go", "lockerhub/broker", "lockerhub/fleet/sqldb", "prometheus"} {
		if strings.Contains(string(out), banned) {
			t.Errorf("edge-agent depends on %s", banned)
		}
	}
}

// An agent killed with SIGKILL while its hub is unreachable loses nothing: after a restart
// everything it had queued reaches the hub.
func TestKilledAgentLosesNothing(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "edge-agent")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	hub := testhub.Start(t, "")
	secret := hub.AddDevice("bank-9", fleet.KindLockerBank, 12)
	addr := hub.Addr("tcp").String()
	hub.Close()

	dataDir := t.TempDir()
	env := append(os.Environ(),
		"EDGE_AGENT_HUBS=tcp://"+addr, "EDGE_AGENT_DEVICE_ID=bank-9", "EDGE_AGENT_SECRET="+secret,
		"EDGE_AGENT_DATA_DIR="+dataDir, "EDGE_AGENT_TELEMETRY_INTERVAL=100ms", "EDGE_AGENT_RECONNECT_MAX=1s")
	start := func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				t.Logf("agent log:\n%s", stderr.String())
			}
		})
		return cmd
	}
	queued := func() int {
		entries, _ := os.ReadDir(filepath.Join(dataDir, "outbox", "telemetry"))
		return len(entries)
	}

	first := start()
	testhub.WaitFor(t, 15*time.Second, "snapshots queued", func() bool { return queued() >= 10 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	k := queued()

	hub.Restart(addr)
	rec := hub.Record("lockers/bank-9/telemetry")
	start()
	seen := map[uint64]bool{}
	testhub.WaitFor(t, 20*time.Second, "every queued snapshot", func() bool {
		for _, m := range rec.Messages("") {
			tel, err := wire.DecodeTelemetry(m.Payload)
			if err != nil {
				t.Fatal(err)
			}
			seen[tel.Seq] = true
		}
		for seq := uint64(1); seq <= uint64(k); seq++ {
			if !seen[seq] {
				return false
			}
		}
		return seen[uint64(k)+1] // and the restarted agent numbers on, never reusing a seq
	})
}

// The edge-agent binary's sim driver takes faults on demand through its control surface, the
// same API `lockerhub sim` drives in a fleet simulator.
func TestSimControlSurface(t *testing.T) {
	hub := testhub.Start(t, "")
	rec := hub.Record("lockers/bank-7/+")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	for k, v := range map[string]string{"EDGE_AGENT_HUBS": hub.URL(), "EDGE_AGENT_DEVICE_ID": "bank-7",
		"EDGE_AGENT_SECRET": hub.AddDevice("bank-7", fleet.KindLockerBank, 12), "EDGE_AGENT_DATA_DIR": t.TempDir(),
		"EDGE_AGENT_TELEMETRY_INTERVAL": "100ms", "EDGE_AGENT_SIM_CONTROL": addr} {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, io.Discard) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	c := &simctl.Client{Addr: addr}
	testhub.WaitFor(t, 15*time.Second, "bank-7 online through its control surface", func() bool {
		l, err := c.List(ctx)
		return err == nil && len(l.Units) == 1 && l.Units[0].Online
	})
	// A door that opens before the agent's first poll is only in its first snapshot.
	testhub.WaitFor(t, 5*time.Second, "a first snapshot", func() bool { return len(rec.Messages("/telemetry")) > 0 })
	if _, err := c.SetFault(ctx, simctl.FaultRequest{Unit: "bank-7", Fault: hardware.FaultForced, Door: 3, On: true}); err != nil {
		t.Fatal(err)
	}
	testhub.WaitFor(t, 5*time.Second, "door 3 forced open, with no cause", func() bool {
		for _, m := range rec.Messages("/events") {
			if ev, err := wire.DecodeEvent(m.Payload); err == nil && ev.Door == 3 && ev.Open && ev.Cause == wire.CauseNone {
				return true
			}
		}
		return false
	})
	// A resident's pickup code typed through the control surface opens its door.
	hub.SendCodes("bank-7", 1, testhub.Pickup{Parcel: "p-e2e", Door: 5, Code: "24681357"})
	testhub.WaitFor(t, 5*time.Second, "code set 1 applied", func() bool {
		msgs := rec.Messages("/telemetry")
		tel, err := wire.DecodeTelemetry(msgs[len(msgs)-1].Payload)
		return err == nil && tel.Codes == 1
	})
	if _, err := c.EnterCode(ctx, "bank-7", "24681357"); err != nil {
		t.Fatal(err)
	}
	testhub.WaitFor(t, 10*time.Second, "door 5 opened by the code", func() bool {
		for _, m := range rec.Messages("/events") {
			if ev, err := wire.DecodeEvent(m.Payload); err == nil && ev.Door == 5 && ev.Open && ev.Cause == wire.CauseCode && ev.Parcel == "p-e2e" {
				return true
			}
		}
		return false
	})
	var apiErr *simctl.Error
	if _, err := c.EnterCode(ctx, "bank-8", "24681357"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Errorf("code at an unknown unit: %v, want a 404", err)
	}
	if err := c.SetPeople(ctx, true); err == nil || !strings.Contains(err.Error(), "no simulated people") {
		t.Errorf("people on a lone agent: %v", err)
	}
	if _, err := c.SetNetwork(ctx, simctl.NetworkRequest{Unit: "bank-7", Up: false}); err != nil {
		t.Fatal(err)
	}
	testhub.WaitFor(t, 5*time.Second, "bank-7 offline", func() bool {
		l, err := c.List(ctx)
		return err == nil && !l.Units[0].Online && slices.Contains(l.Units[0].Faults, "network")
	})
}

func TestSimControlLoopbackOnly(t *testing.T) {
	for k, v := range map[string]string{"EDGE_AGENT_DEVICE_ID": "bank-8", "EDGE_AGENT_SECRET": "x", "EDGE_AGENT_DATA_DIR": t.TempDir(),
		"EDGE_AGENT_SIM_CONTROL": "0.0.0.0:0"} {
		t.Setenv(k, v)
	}
	if err := run(context.Background(), nil, io.Discard); err == nil || !strings.Contains(err.Error(), "sim.control") || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("run with a control surface on every interface: %v", err)
	}
}
