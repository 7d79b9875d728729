package main_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/internal/syncbuf"
	"github.com/lockerhub/lockerhub/internal/testhub"
)

// startSim runs `lockerhub simulate --provision --interval 1s` with args against the hub until
// the test ends, and waits until its units are online; it returns their ids.
func startSim(t *testing.T, environ []string, hub *serving, units int, args ...string) []string {
	t.Helper()
	sim := exec.Command(binary, append([]string{"simulate", "--units", strconv.Itoa(units), "--provision",
		"--interval", "1s", "--hub", "tcp://" + hub.mqtt, "--control", ""}, args...)...)
	sim.Env = environ
	var out syncbuf.Buffer
	sim.Stderr = &out
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Process.Kill(); sim.Wait() })
	testhub.WaitFor(t, 60*time.Second, "simulated units online", func() bool {
		return strings.Contains(out.String(), "all "+strconv.Itoa(units)+" units online")
	})
	stdout, errOut, code := run(t, environ, "device", "list", "--json")
	var devices []struct{ ID string }
	if code != 0 || json.Unmarshal([]byte(stdout), &devices) != nil {
		t.Fatalf("device list: %s", errOut)
	}
	ids := make([]string, len(devices))
	for i, d := range devices {
		ids[i] = d.ID
	}
	return ids
}

// `lockerhub fleet status` and `lockerhub device show` through the API of a hub with a
// simulated fleet.
func TestFleetCLI(t *testing.T) {
	t.Parallel()
	environ := env(t.TempDir(), "LOCKERHUB_INFLUX_URL=http://127.0.0.1:"+freePort(t), "LOCKERHUB_TOKEN=")
	hub := startHub(t, environ)
	ids := startSim(t, environ, hub, 4, "--sites", "2")
	viewer := createToken(t, environ, "--name", "wall screen", "--role", "viewer").Token
	cli := func(args ...string) (string, string, int) {
		t.Helper()
		return run(t, environ, append(args, "--hub", "http://"+hub.http, "--token", viewer)...)
	}

	t.Run("fleet status", func(t *testing.T) {
		out, errOut, code := cli("fleet", "status")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		health, occupancy, _ := strings.Cut(out, "\n\n")
		lines := strings.Split(strings.TrimSpace(health), "\n")
		if len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "SITE UNITS OK WARNING CRITICAL OFFLINE ALERTS" ||
			!strings.HasPrefix(lines[1], "site-1 ") || !strings.HasPrefix(lines[2], "site-2 ") {
			t.Fatalf("fleet status:\n%s", out)
		}
		if total := strings.Fields(lines[3]); total[0] != "TOTAL" || total[1] != "4" {
			t.Fatalf("fleet status total: %q", lines[3])
		}
		// Their compartments, every one free: no parcel was delivered.
		occ := strings.Split(fieldsByLine(occupancy), "|")
		if occ[0] != "SITE COMPARTMENTS TOTAL OCCUPIED RESERVED FREE" || len(occ) < 3 {
			t.Fatalf("fleet status: compartments\n%s", occupancy)
		}
		for _, row := range occ[1:] {
			if f := strings.Fields(row); len(f) != 6 || f[3] != "0" || f[4] != "0" || f[5] != f[2] {
				t.Errorf("fleet status: compartments %q, want all free", row)
			}
		}

		out, errOut, code = cli("fleet", "status", "--json")
		var h struct {
			Sites []fleet.SiteHealth
			Total fleet.SiteHealth
		}
		if code != 0 || json.Unmarshal([]byte(out), &h) != nil || len(h.Sites) != 2 || h.Total.Units != 4 {
			t.Fatalf("fleet status --json: exit %d\n%s%s", code, out, errOut)
		}
	})

	t.Run("device show", func(t *testing.T) {
		unit := ids[0]
		var out string
		testhub.WaitFor(t, 15*time.Second, "a snapshot of "+unit, func() bool {
			var errOut string
			var code int
			out, errOut, code = cli("device", "show", unit)
			if code != 0 {
				t.Fatalf("device show: exit %d: %s", code, errOut)
			}
			return strings.Contains(out, "latest snapshot")
		})
		for _, want := range []string{unit + "  fridge at site-1  health ok  online since ", "DOOR  OPEN    LOCKED  TEMP",
			"\n1     closed  yes     ", " °C\n", "  ambient     ", "  compressor  ", "setpoint 3.0 °C, duty ", "no open alerts"} {
			if !strings.Contains(out, want) {
				t.Errorf("device show lacks %q:\n%s", want, out)
			}
		}

		out, errOut, code := cli("device", "show", unit, "--json")
		var res struct {
			Device struct {
				ID       string
				Doors    int
				Presence fleet.Presence
				Live     *fleet.LiveState
			}
			Alerts []fleet.Alert
		}
		if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Device.ID != unit || !res.Device.Presence.Online ||
			res.Device.Live == nil || len(res.Device.Live.Doors) != res.Device.Doors || res.Alerts == nil {
			t.Fatalf("device show --json: exit %d\n%s%s", code, out, errOut)
		}
	})

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown device", []string{"device", "show", "ghost", "--hub", "http://" + hub.http, "--token", viewer}, `device "ghost" not found`},
		{"no token", []string{"fleet", "status", "--hub", "http://" + hub.http}, "no API token: pass --token or set LOCKERHUB_TOKEN"},
		{"bad token", []string{"device", "show", ids[0], "--hub", "http://" + hub.http, "--token", "lh_nope"}, "HTTP 401"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := run(t, environ, tc.args...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d\n%s%s\nwant a failure saying %q", code, out, errOut, tc.want)
			}
		})
	}
}

// `lockerhub tail` follows a simulated unit through the hub's event stream.
func TestTailCLI(t *testing.T) {
	t.Parallel()
	environ := env(t.TempDir(), "LOCKERHUB_INFLUX_URL=http://127.0.0.1:"+freePort(t), "LOCKERHUB_TOKEN=")
	hub := startHub(t, environ)
	viewer := createToken(t, environ, "--name", "tail", "--role", "viewer").Token
	if ct := streamContentType(t, hub, viewer); !strings.HasPrefix(ct, "text/event-stream") {
		t.Skipf("GET /api/v1/stream answered %q, not an event stream: the hub has no stream endpoint yet", ct)
	}
	unit := startSim(t, environ, hub, 1)[0]

	tail := exec.Command(binary, "tail", unit, "--hub", "http://"+hub.http, "--token", viewer)
	tail.Env = environ
	var out, errOut syncbuf.Buffer
	tail.Stdout, tail.Stderr = &out, &errOut
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tail.Process.Kill() })
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(out.String(), " telemetry seq ") {
		if time.Now().After(deadline) {
			t.Fatalf("no telemetry line from tail:\n%s%s", out.String(), errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(out.String(), " device online, health ") {
		t.Errorf("tail did not start with the unit's presence:\n%s", out.String())
	}
	tail.Process.Signal(syscall.SIGINT)
	if err := tail.Wait(); err != nil {
		t.Fatalf("tail exited with %v after SIGINT:\n%s", err, errOut.String())
	}

	if _, errOut, code := run(t, environ, "tail", "ghost", "--hub", "http://"+hub.http, "--token", viewer); code == 0 ||
		!strings.Contains(errOut, `device "ghost" not found`) {
		t.Fatalf("tail of an unknown device: exit %d: %s", code, errOut)
	}
}

// streamContentType is what GET /api/v1/stream answers with: its content type, or the status
// when it is an error (404 from a hub without the endpoint).
func streamContentType(t *testing.T, hub *serving, token string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // the stream does not end by itself
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+hub.http+"/api/v1/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.Status
	}
	return resp.Header.Get("Content-Type")
}
