package main_test

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/internal/syncbuf"
	"github.com/lockerhub/lockerhub/internal/testhub"
)

// `lockerhub demo` runs a hub with a simulated fleet, prints where to look and a working
// operator token, has simulated carriers deliver parcels with a carrier token of their own and
// codes that live minutes, goes on without InfluxDB, and stops cleanly on Ctrl-C.
func TestDemo(t *testing.T) {
	t.Parallel()
	// The configured data_dir must stay untouched: the demo's data goes to a temporary directory.
	dataDir := t.TempDir()
	d := startDemo(t, dataDir, "--units", "6", "--sites", "2", "--control", "", "--delivery-rate", "600")
	demo, exited, stdout, stderr := d.cmd, d.exited, d.stdout, d.stderr
	hubURL, token, tmp := d.url, d.token, d.tmp
	checkDemoEnv(t, stdout.String(), tmp)
	hub := d.hub
	for _, want := range []string{"  mqtt       tcp://127.0.0.1:", "fleet status --hub " + hubURL + " --token " + token,
		"parcels --hub " + hubURL, " deliver --perishable --unit sim-fridge-0001 --hub", "Ctrl-C stops the demo"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the banner lacks %q:\n%s", want, stdout.String())
		}
	}

	// The fleet: 6 units over 2 sites, all of them online.
	testhub.WaitFor(t, 20*time.Second, "6 units online at 2 sites", func() bool {
		code, body := hub.getAs(t, token, "/api/v1/health")
		var h struct {
			Sites []fleet.SiteHealth
			Total fleet.SiteHealth
		}
		if code != 200 || json.Unmarshal([]byte(body), &h) != nil {
			t.Fatalf("health: %d %s", code, body)
		}
		return len(h.Sites) == 2 && h.Total.Units == 6 && h.Total.Offline == 0
	})
	code, body := hub.getAs(t, token, "/api/v1/devices")
	var devices struct {
		Devices []struct {
			ID     string
			Kind   string
			Labels map[string]string
		}
	}
	if code != 200 || json.Unmarshal([]byte(body), &devices) != nil || len(devices.Devices) != 6 {
		t.Fatalf("devices: %d %s", code, body)
	}
	var freezers int
	for _, d := range devices.Devices {
		if d.Labels["class"] == "freezer" {
			freezers++
		}
	}
	if freezers == 0 {
		t.Errorf("no unit is labelled class=freezer: %s", body)
	}

	// The token is an operator's: it may send a command, and may not administer.
	req, _ := http.NewRequest("POST", hubURL+"/api/v1/devices/"+devices.Devices[0].ID+"/doors/1/lock?wait=false",
		strings.NewReader(`{"reason": "demo test"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("lock with the demo's token: %s, want 202 Accepted", resp.Status)
	}
	if code, body := hub.getAs(t, token, "/api/v1/tokens"); code != http.StatusForbidden {
		t.Errorf("token list with the demo's token: %d %s, want 403", code, body)
	}
	// Parcels, delivered by the carriers' own token (a carrier's, not the operator's printed),
	// with the demo's short code life.
	var p *fleet.Parcel
	testhub.WaitFor(t, 20*time.Second, "a parcel delivered by the simulated carriers", func() bool {
		code, body := hub.getAs(t, token, "/api/v1/parcels")
		var res struct{ Parcels []*fleet.Parcel }
		if code != 200 || json.Unmarshal([]byte(body), &res) != nil {
			t.Fatalf("parcels: %d %s", code, body)
		}
		if len(res.Parcels) > 0 {
			p = res.Parcels[len(res.Parcels)-1]
		}
		return p != nil
	})
	if p.ActorName != "demo-carriers" || p.DroppedAt == nil || p.ExpiresAt.Sub(*p.DroppedAt) != 5*time.Minute {
		t.Errorf("the first simulated delivery %+v: want by demo-carriers, its code live 5 minutes", p)
	}

	if entries, _ := os.ReadDir(dataDir); len(entries) != 0 {
		t.Errorf("the demo wrote into the configured data_dir: %v", entries)
	}

	demo.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("demo exited with %v after SIGINT:\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("demo did not exit after SIGINT")
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("the demo's temporary data directory %s is still there: %v", tmp, err)
	}
}

// demoRun is a running `lockerhub demo`.
type demoRun struct {
	cmd             *exec.Cmd
	exited          chan error
	stdout, stderr  *syncbuf.Buffer
	url, token, tmp string // the dashboard's URL, the operator token, the temporary data directory
	hub             *serving
}

// startDemo starts `lockerhub demo args...` with dataDir as the configured data_dir and no
// InfluxDB, and waits for its banner.
func startDemo(t *testing.T, dataDir string, args ...string) *demoRun {
	t.Helper()
	d := &demoRun{cmd: exec.Command(binary, append([]string{"demo"}, args...)...), exited: make(chan error, 1),
		stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}}
	d.cmd.Env = env(dataDir, "LOCKERHUB_INFLUX_URL=http://127.0.0.1:"+freePort(t))
	d.cmd.Stdout, d.cmd.Stderr = d.stdout, d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() { d.cmd.Process.Kill() })

	banner := regexp.MustCompile(`(?m)^  dashboard  (http://\S+)/\n  token      (\S+)\n(?:.*\n)*?  data       (\S+) \(removed at exit`)
	var m []string
	testhub.WaitFor(t, 20*time.Second, "the demo's banner and InfluxDB status", func() bool {
		select {
		case err := <-d.exited:
			t.Fatalf("demo exited: %v\n%s%s", err, d.stdout.String(), d.stderr.String())
		default:
		}
		m = banner.FindStringSubmatch(d.stdout.String())
		return m != nil && strings.Contains(d.stdout.String(), "telemetry history is spooled in")
	})
	d.url, d.token, d.tmp = m[1], m[2], m[3]
	d.hub = &serving{http: strings.TrimPrefix(d.url, "http://")}
	return d
}
