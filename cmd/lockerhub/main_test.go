package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/syncbuf"
	"github.com/lockerhub/lockerhub/internal/testhub"
	"github.com/lockerhub/lockerhub/internal/testinflux"
)

// These tests run the real lockerhub binary, built once for the package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lockerhub-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "lockerhub")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build lockerhub: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is the environment shared by the hub and the CLI in one test.
func env(dataDir string, extra ...string) []string {
	return append(append(os.Environ(),
		"LOCKERHUB_DATA_DIR="+dataDir,
		"LOCKERHUB_MQTT_ADDR=127.0.0.1:0",
		"LOCKERHUB_HTTP_ADDR=127.0.0.1:0",
		"LOCKERHUB_LOG_FORMAT=json",
	), extra...)
}

// run runs a lockerhub CLI command to completion.
func run(t *testing.T, environ []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = environ
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), 0
}

type serving struct {
	cmd        *exec.Cmd
	mqtt, http string
	logs       chan map[string]any
	exited     chan error
}

// startHub starts `lockerhub serve` and waits for it to report its addresses.
func startHub(t *testing.T, environ []string) *serving {
	t.Helper()
	s := &serving{cmd: exec.Command(binary, "serve"), logs: make(chan map[string]any, 1000), exited: make(chan error, 1)}
	s.cmd.Env = environ
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				select {
				case s.logs <- rec:
				default:
				}
			}
		}
		s.exited <- s.cmd.Wait()
	}()
	t.Cleanup(func() { s.cmd.Process.Kill() })
	deadline := time.After(20 * time.Second)
	for s.http == "" {
		select {
		case rec := <-s.logs:
			if rec["msg"] == "lockerhub serving" {
				s.mqtt, _ = rec["mqtt"].(string) // none in a cluster: the hubs use an external broker
				s.http = rec["http"].(string)
			}
		case err := <-s.exited:
			t.Fatalf("hub exited before serving: %v", err)
		case <-deadline:
			t.Fatal("hub did not report serving")
		}
	}
	return s
}

func (s *serving) get(t *testing.T, path string) (int, string) {
	t.Helper()
	return s.getAs(t, "", path)
}

// getAs sends a GET with the bearer token (none if empty).
func (s *serving) getAs(t *testing.T, token, path string) (int, string) {
	t.Helper()
	return s.send(t, "GET", token, path, "")
}

// send sends a request with the bearer token (none if empty) and a JSON body (none if empty).
func (s *serving) send(t *testing.T, method, token, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+s.http+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	environ := env(t.TempDir())
	hub := startHub(t, environ)

	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := hub.get(t, path); code != 200 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
	}
	// Readiness names every part that can stop serving.
	if _, body := hub.get(t, "/readyz"); !containsAll(body, `"database"`, `"mqtt_tcp"`, `"shipper"`, `"registry_watch"`) {
		t.Fatalf("/readyz does not report each check: %s", body)
	}
	_, metrics := hub.get(t, "/metrics")
	for _, name := range []string{"lockerhub_devices_connected 0", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	// The CLI provisions a device while the hub runs; the device connects with the secret.
	out, errOut, code := run(t, environ, "device", "add", "--id", "bank-7", "--kind", "locker-bank", "--site", "elm-street", "--doors", "16", "--json")
	if code != 0 {
		t.Fatalf("device add: exit %d: %s", code, errOut)
	}
	var added struct{ ID, Secret string }
	if err := json.Unmarshal([]byte(out), &added); err != nil || added.ID != "bank-7" || len(added.Secret) < 32 {
		t.Fatalf("device add --json printed %q", out)
	}
	lost := make(chan struct{})
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + hub.mqtt).
		SetClientID("bank-7").SetUsername("bank-7").SetPassword(added.Secret).
		SetProtocolVersion(4).SetAutoReconnect(false).
		SetConnectionLostHandler(func(paho.Client, error) { close(lost) }))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	if _, m := hub.get(t, "/metrics"); !strings.Contains(m, "lockerhub_devices_connected 1") {
		t.Fatal("connected device not counted in /metrics")
	}

	// Disabling it with the CLI disconnects it at once.
	if _, errOut, code := run(t, environ, "device", "disable", "--id", "bank-7"); code != 0 {
		t.Fatalf("device disable: exit %d: %s", code, errOut)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("disabled device still connected")
	}

	// SIGTERM: a clean shutdown with exit status 0.
	if err := hub.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-hub.exited:
		if err != nil {
			t.Fatalf("hub exited with %v after SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("hub did not exit after SIGTERM")
	}
}

func TestServeRefusesBadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"bad mqtt address", []string{"LOCKERHUB_MQTT_ADDR=1883"}, "mqtt.addr"},
		{"bad log level", []string{"LOCKERHUB_LOG_LEVEL=chatty"}, "log.level"},
		{"negative keyframe interval", []string{"LOCKERHUB_TELEMETRY_DOOR_KEYFRAME_INTERVAL=-5m"}, "telemetry.door_keyframe_interval"},
		{"missing config file", nil, "config file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"serve"}
			if tc.extra == nil {
				args = append(args, "--config", filepath.Join(dir, "missing.yaml"))
			}
			_, errOut, code := run(t, env(dir, tc.extra...), args...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want a failure naming %s", code, errOut, tc.want)
			}
		})
	}
}

func TestDeviceCLI(t *testing.T) {
	t.Parallel()
	environ := env(t.TempDir())
	for _, tc := range []struct {
		args       []string
		wantCode   int
		wantOut    string // substring of stdout
		wantErrOut string // substring of stderr
	}{
		{args: []string{"device", "add", "--id", "fridge-1", "--kind", "fridge", "--site", "oak", "--doors", "6", "--label", "zone=cold"}, wantOut: "secret: "},
		{args: []string{"device", "add", "--id", "fridge-1", "--kind", "fridge", "--site", "oak", "--doors", "6"}, wantCode: 4, wantErrOut: `device "fridge-1" already exists`},
		{args: []string{"device", "add", "--id", "oven-1", "--kind", "oven", "--site", "oak", "--doors", "6"}, wantCode: 2, wantErrOut: `unknown kind "oven"`},
		{args: []string{"device", "add", "--id", "Fridge_2", "--kind", "fridge", "--site", "oak", "--doors", "6"}, wantCode: 2, wantErrOut: `invalid device id "Fridge_2"`},
		{args: []string{"device", "add", "--id", "fridge-2", "--kind", "fridge", "--site", "oak"}, wantCode: 2, wantErrOut: `"doors"`},
		{args: []string{"device", "add", "--id", "bank-1", "--kind", "locker-bank", "--site", "elm", "--doors", "24"}, wantOut: "added device bank-1"},
		{args: []string{"device", "list"}, wantOut: "fridge-1  fridge"},
		{args: []string{"device", "list", "--kind", "toaster"}, wantCode: 2, wantErrOut: "unknown kind"},
		{args: []string{"device", "rotate-secret", "--id", "bank-1", "--json"}, wantOut: `"secret":`},
		{args: []string{"device", "disable", "--id", "bank-1"}, wantOut: "device bank-1 disabled"},
		{args: []string{"device", "enable", "--id", "bank-1"}, wantOut: "device bank-1 enabled"},
		{args: []string{"device", "remove", "--id", "bank-1"}, wantOut: "device bank-1 removed"},
		{args: []string{"device", "remove", "--id", "bank-1"}, wantCode: 3, wantErrOut: `device "bank-1" not found`},
		{args: []string{"device", "rotate-secret", "--id", "ghost"}, wantCode: 3, wantErrOut: `device "ghost" not found`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := run(t, environ, tc.args...)
			if code != tc.wantCode || !strings.Contains(out, tc.wantOut) || !strings.Contains(errOut, tc.wantErrOut) {
				t.Fatalf("exit %d\nstdout %q\nstderr %q\nwant exit %d, stdout ~ %q, stderr ~ %q",
					code, out, errOut, tc.wantCode, tc.wantOut, tc.wantErrOut)
			}
		})
	}
	out, _, _ := run(t, environ, "device", "list", "--json")
	var devices []struct {
		ID      string
		Kind    string
		Site    string
		Doors   int
		Enabled bool
		Labels  map[string]string
	}
	if err := json.Unmarshal([]byte(out), &devices); err != nil {
		t.Fatal(err)
	}
	if len(devices) != 1 || devices[0].ID != "fridge-1" || devices[0].Kind != "fridge" || devices[0].Doors != 6 ||
		devices[0].Site != "oak" || !devices[0].Enabled || devices[0].Labels["zone"] != "cold" {
		t.Fatalf("device list --json: %s", out)
	}
	// Every change is in the audit trail, which verifies.
	out, _, _ = run(t, environ, "audit", "export")
	for _, action := range []string{"device.create", "device.rotate_secret", "device.disable", "device.enable", "device.remove"} {
		if !strings.Contains(out, `"action":"`+action+`"`) {
			t.Errorf("audit export lacks %s:\n%s", action, out)
		}
	}
	if out, errOut, code := run(t, environ, "audit", "verify"); code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("audit verify: exit %d %s %s", code, out, errOut)
	}
}

// The fleet simulator provisions its units in the hub's registry and connects every one of them
// with its own credentials; a second run reuses the stored secrets.
func TestSimulateFleet(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	environ := env(dataDir)
	hub := startHub(t, environ)
	for run, args := range [][]string{
		{"--provision"}, // registers the units and stores their secrets
		{},              // reuses them
	} {
		cmd := exec.Command(binary, append([]string{"simulate", "--units", "24", "--sites", "3", "--interval", "1s", "--hub", "tcp://" + hub.mqtt, "--control", ""}, args...)...)
		cmd.Env = environ
		var stderr syncbuf.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for !strings.Contains(stderr.String(), "all 24 units online") {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("run %d: units did not come online:\n%s", run, stderr.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
		if _, m := hub.get(t, "/metrics"); !strings.Contains(m, "lockerhub_devices_connected 24") {
			t.Fatalf("run %d: hub does not count 24 connected units", run)
		}
		cmd.Process.Signal(syscall.SIGINT)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("run %d: simulate exited with %v:\n%s", run, err, stderr.String())
		}
	}
	out, _, _ := run(t, environ, "device", "list", "--json")
	var devices []struct{ Kind, Site string }
	if err := json.Unmarshal([]byte(out), &devices); err != nil {
		t.Fatal(err)
	}
	kinds, sites := map[string]int{}, map[string]int{}
	for _, d := range devices {
		kinds[d.Kind]++
		sites[d.Site]++
	}
	if len(devices) != 24 || kinds["fridge"] == 0 || kinds["locker-bank"] == 0 || len(sites) != 3 {
		t.Fatalf("provisioned fleet: %d devices, kinds %v, sites %v", len(devices), kinds, sites)
	}
}

// The hub killed with SIGKILL in the middle of a stream and started again on the same data
// directory: every reading it acknowledged before the kill reaches InfluxDB. InfluxDB is out of
// reach while the first hub runs, so everything acknowledged is still in the spool when the
// hub dies. Then the history API serves the stream.
func TestTelemetrySurvivesHubKill(t *testing.T) {
	t.Parallel()
	inf := testinflux.Require(t)
	dataDir := t.TempDir()
	mqttPort := freePort(t)
	environ := env(dataDir, "LOCKERHUB_MQTT_ADDR=127.0.0.1:"+mqttPort, "LOCKERHUB_INFLUX_URL="+inf.URL, "LOCKERHUB_INFLUX_BUCKET="+inf.Bucket)
	out, _, code := run(t, environ, "device", "add", "--id", "fridge-1", "--kind", "fridge", "--site", "oak", "--doors", "2", "--json")
	if code != 0 {
		t.Fatal(out)
	}
	var added struct{ Secret string }
	json.Unmarshal([]byte(out), &added)

	// The first hub's InfluxDB is a port nothing listens on.
	hub := startHub(t, append(environ, "LOCKERHUB_INFLUX_URL=http://127.0.0.1:"+freePort(t)))
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + hub.mqtt).SetClientID("fridge-1").SetUsername("fridge-1").
		SetPassword(added.Secret).SetProtocolVersion(4).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	// From the second after the unit was registered: its history starts at its registration.
	base := time.Now().Truncate(time.Second).Add(time.Second)
	acked := 0
	killed := false
	for seq := uint64(1); seq <= 400 && !killed; seq++ {
		c5 := 4.0 + float64(seq%10)/10
		b, _ := wire.Marshal(wire.Telemetry{V: wire.Version, Seq: seq, TS: base.Add(time.Duration(seq) * time.Second).UnixMilli(),
			Doors: []wire.DoorState{{Door: 1, Locked: true, TempC: &c5}, {Door: 2, Locked: true}}})
		tok := c.Publish("lockers/fridge-1/telemetry", 1, false, b)
		if seq == 200 {
			hub.cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
		if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
			acked++
		}
	}
	<-hub.exited
	if acked < 190 {
		t.Fatalf("only %d readings acknowledged before the kill", acked)
	}
	if n := inf.Count(t, "temperature"); n != 0 {
		t.Fatalf("%d points reached InfluxDB although it was out of reach", n)
	}

	hub = startHub(t, environ)
	testhub.WaitFor(t, 60*time.Second, fmt.Sprintf("%d acknowledged readings in InfluxDB", acked), func() bool {
		return inf.Count(t, "temperature") >= acked
	})
	// The doors never changed, in less edge time than the default door keyframe interval:
	// the first snapshot stored them, the others only their temperatures.
	if n := inf.Count(t, "door"); n != 2 {
		t.Fatalf("%d door points in InfluxDB, want 2: one keyframe of the 2 unchanged doors", n)
	}

	// History: the compartment temperature over the stream, in windows of a minute.
	viewer := createToken(t, environ, "--name", "dashboard", "--role", "viewer")
	from, to := base.Format(time.RFC3339), base.Add(10*time.Minute).Format(time.RFC3339)
	code, body := hub.getAs(t, viewer.Token, "/api/v1/devices/fridge-1/telemetry?field=compartment_c&door=1&every=1m&from="+from+"&to="+to)
	var hist struct {
		Points []struct {
			T time.Time
			V float64
		}
	}
	if err := json.Unmarshal([]byte(body), &hist); code != 200 || err != nil || len(hist.Points) < 3 {
		t.Fatalf("history: %d %s", code, body)
	}
	for _, p := range hist.Points {
		if p.V < 4 || p.V > 4.9 {
			t.Fatalf("history point %v outside the published range 4.0..4.9", p)
		}
	}
	for _, tc := range []struct {
		query string
		code  int
		want  string
	}{
		{"/api/v1/devices/fridge-1/telemetry?field=humidity", 400, `"field: \"humidity\" is not one of`},
		{"/api/v1/devices/fridge-1/telemetry?field=compartment_c", 400, `"door:`},
		{"/api/v1/devices/fridge-1/telemetry?field=ambient_c&from=yesterday", 400, `"from:`},
		{"/api/v1/devices/fridge-1/telemetry?field=ambient_c&every=1ms", 400, `"every:`},
		{"/api/v1/devices/fridge-1/telemetry?field=ambient_c&from=2026-01-01T00:00:00Z&to=2025-01-01T00:00:00Z", 400, `"from..to:`},
		{"/api/v1/devices/nobody/telemetry?field=ambient_c", 404, `"code":"not_found"`},
	} {
		if code, body := hub.getAs(t, viewer.Token, tc.query); code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s; want %d with %s", tc.query, code, body, tc.code, tc.want)
		}
	}

	// Tokens: none, garbage, scoped to another site, revoked.
	const query = "/api/v1/devices/fridge-1/telemetry?field=ambient_c"
	elsewhere := createToken(t, environ, "--name", "pine manager", "--role", "operator", "--sites", "pine")
	for _, tc := range []struct {
		name, token string
		code        int
	}{
		{"no token", "", 401},
		{"garbage", "lh_0123456789abcdef_nope", 401},
		{"other site", elsewhere.Token, 404},
	} {
		if code, body := hub.getAs(t, tc.token, query); code != tc.code {
			t.Errorf("%s: %d %s; want %d", tc.name, code, body, tc.code)
		}
	}
	if _, errOut, code := run(t, environ, "token", "revoke", "--id", viewer.ID); code != 0 {
		t.Fatal(errOut)
	}
	if code, body := hub.getAs(t, viewer.Token, query); code != 401 {
		t.Errorf("revoked token: %d %s; want 401 at once", code, body)
	}
	if _, m := hub.get(t, "/metrics"); !strings.Contains(m, "lockerhub_telemetry_spool_messages") || !strings.Contains(m, "lockerhub_telemetry_points_written_total") {
		t.Error("/metrics lacks the telemetry metrics")
	}
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

type createdToken struct{ ID, Token string }

// createToken runs `lockerhub token create ARGS --json`.
func createToken(t *testing.T, environ []string, args ...string) createdToken {
	t.Helper()
	out, errOut, code := run(t, environ, append(append([]string{"token", "create"}, args...), "--json")...)
	var tok createdToken
	if err := json.Unmarshal([]byte(out), &tok); code != 0 || err != nil || tok.Token == "" {
		t.Fatalf("token create %v: exit %d, %s %s", args, code, out, errOut)
	}
	return tok
}

// The fleet read API: presence and live state per device, filters, and site scopes.
func TestDeviceAPI(t *testing.T) {
	t.Parallel()
	environ := env(t.TempDir(), "LOCKERHUB_INFLUX_URL=http://127.0.0.1:"+freePort(t))
	secrets := map[string]string{}
	for _, d := range [][]string{{"bank-oak", "locker-bank", "oak"}, {"fridge-oak", "fridge", "oak"}, {"bank-pine", "locker-bank", "pine"}} {
		out, errOut, code := run(t, environ, "device", "add", "--id", d[0], "--kind", d[1], "--site", d[2], "--doors", "2", "--json")
		var added struct{ Secret string }
		if code != 0 || json.Unmarshal([]byte(out), &added) != nil {
			t.Fatal(errOut)
		}
		secrets[d[0]] = added.Secret
	}
	hub := startHub(t, environ)
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + hub.mqtt).SetClientID("fridge-oak").SetUsername("fridge-oak").
		SetPassword(secrets["fridge-oak"]).SetProtocolVersion(4).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	temp := 3.5
	b, _ := wire.Marshal(wire.Telemetry{V: wire.Version, Seq: 1, TS: time.Now().UnixMilli(),
		Doors: []wire.DoorState{{Door: 1, Locked: true, TempC: &temp}, {Door: 2, Open: true}}})
	if tok := c.Publish("lockers/fridge-oak/telemetry", 1, false, b); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	all := createToken(t, environ, "--name", "ops", "--role", "viewer").Token
	oak := createToken(t, environ, "--name", "oak manager", "--role", "operator", "--sites", "oak").Token
	ids := func(token, query string) string {
		t.Helper()
		code, body := hub.getAs(t, token, "/api/v1/devices"+query)
		var res struct{ Devices []struct{ ID string } }
		if code != 200 || json.Unmarshal([]byte(body), &res) != nil {
			t.Fatalf("%s: %d %s", query, code, body)
		}
		var out []string
		for _, d := range res.Devices {
			out = append(out, d.ID)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct{ token, query, want string }{
		{all, "", "bank-oak,bank-pine,fridge-oak"},
		{all, "?site=pine", "bank-pine"},
		{all, "?kind=fridge", "fridge-oak"},
		{all, "?online=true", "fridge-oak"},
		{all, "?online=false", "bank-oak,bank-pine"},
		{oak, "", "bank-oak,fridge-oak"},
		{oak, "?site=pine", ""},
	} {
		if got := ids(tc.token, tc.query); got != tc.want {
			t.Errorf("devices%s: %q, want %q", tc.query, got, tc.want)
		}
	}
	code, body := hub.getAs(t, oak, "/api/v1/devices/fridge-oak")
	var d struct {
		Site     string
		Presence fleet.Presence
		Live     fleet.LiveState
	}
	if code != 200 || json.Unmarshal([]byte(body), &d) != nil || !d.Presence.Online || d.Site != "oak" ||
		len(d.Live.Doors) != 2 || !d.Live.Doors[1].Open || d.Live.Snapshot == nil || *d.Live.Snapshot.Doors[0].TempC != 3.5 {
		t.Fatalf("device view: %d %s", code, body)
	}
	for _, tc := range []struct {
		token, path string
		code        int
	}{
		{oak, "/api/v1/devices/bank-pine", 404},
		{all, "/api/v1/devices/ghost", 404},
		{all, "/api/v1/devices?kind=toaster", 400},
		{all, "/api/v1/devices?online=maybe", 400},
		{"", "/api/v1/devices", 401},
	} {
		if code, body := hub.getAs(t, tc.token, tc.path); code != tc.code {
			t.Errorf("%s: %d %s; want %d", tc.path, code, body, tc.code)
		}
	}
}

// Remote unlock through the real binaries: the hub, a simulated unit running the real agent,
// and `lockerhub unlock` with an operator token.
func TestRemoteUnlock(t *testing.T) {
	t.Parallel()
	environ := env(t.TempDir(), "LOCKERHUB_INFLUX_URL=http://127.0.0.1:"+freePort(t))
	hub := startHub(t, environ)
	startSimulate(t, environ, 1, 60*time.Second, "--provision", "--hub", "tcp://"+hub.mqtt, "--control", "")
	out, _, _ := run(t, environ, "device", "list", "--json")
	var devices []struct{ ID string }
	json.Unmarshal([]byte(out), &devices)
	unit := devices[0].ID
	if _, errOut, code := run(t, environ, "device", "add", "--id", "bank-away", "--kind", "locker-bank", "--site", "site-1", "--doors", "4"); code != 0 {
		t.Fatal(errOut)
	}
	operator := createToken(t, environ, "--name", "ops desk", "--role", "operator").Token
	viewer := createToken(t, environ, "--name", "wall screen", "--role", "viewer").Token
	hubURL := "http://" + hub.http

	unlock := func(token string, args ...string) (string, string, int) {
		return run(t, environ, append([]string{"unlock", "--hub", hubURL, "--token", token}, args...)...)
	}
	out, errOut, code := unlock(operator, "--device", unit, "--door", "1", "--reason", "resident locked out")
	if code != 0 || !strings.Contains(out, "opened in") {
		t.Fatalf("unlock: exit %d\n%s%s", code, out, errOut)
	}
	for _, tc := range []struct {
		name, token string
		args        []string
		want        string
	}{
		{"unknown door", operator, []string{"--device", unit, "--door", "99", "--reason", "x"}, "door 99 not found"},
		{"unknown device", operator, []string{"--device", "ghost", "--door", "1", "--reason", "x"}, `device "ghost" not found`},
		{"offline device", operator, []string{"--device", "bank-away", "--door", "1", "--reason", "x"}, "offline (HTTP 409)"},
		{"role too low", viewer, []string{"--device", unit, "--door", "1", "--reason", "x"}, "HTTP 403"},
		{"no reason", operator, []string{"--device", unit, "--door", "1", "--reason", ""}, "reason: required"},
		{"no time to act", operator, []string{"--device", unit, "--door", "1", "--reason", "x", "--timeout", "0s"}, "timeout 0s: want 1s.."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := unlock(tc.token, tc.args...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want a failure saying %q", code, errOut, tc.want)
			}
		})
	}

	// The same Idempotency-Key twice: one command.
	var ids []string
	for range 2 {
		out, errOut, code := unlock(operator, "--device", unit, "--door", "2", "--reason", "courier", "--idempotency-key", "req-42", "--no-wait", "--json")
		var res struct{ Command fleet.Command }
		if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
			t.Fatalf("exit %d: %s %s", code, out, errOut)
		}
		ids = append(ids, res.Command.ID)
	}
	if ids[0] != ids[1] {
		t.Fatalf("a retried request with the same Idempotency-Key made a second command: %v", ids)
	}
	testhub.WaitFor(t, 30*time.Second, "the idempotent unlock to finish", func() bool {
		code, body := hub.getAs(t, viewer, "/api/v1/commands/"+ids[0])
		return code == 200 && strings.Contains(body, `"status":"succeeded"`) && strings.Contains(body, `"outcome":"opened"`)
	})

	code, body := hub.getAs(t, viewer, "/api/v1/commands?device="+unit)
	if code != 200 || strings.Count(body, `"reason":`) != 2 || !strings.Contains(body, `"reason":"resident locked out"`) {
		t.Errorf("command list for %s: %d %s", unit, code, body)
	}

	// The chain of custody: who asked, why, and what the door did.
	out, _, _ = run(t, environ, "audit", "export", "--device", unit)
	for _, want := range []string{`"action":"command.unlock"`, `"reason":"resident locked out"`, `"action":"command.result"`, `"outcome":"opened"`} {
		if !strings.Contains(out, want) {
			t.Errorf("audit export --device %s lacks %s", unit, want)
		}
	}
}

// A device that never answers: the command expires, the API says 504, the record says expired.
// (TestUnlockVerdicts has a device that answers after the expiry.)
func TestUnlockTimesOut(t *testing.T) {
	t.Parallel()
	environ := env(t.TempDir(), "LOCKERHUB_INFLUX_URL=http://127.0.0.1:"+freePort(t))
	out, _, _ := run(t, environ, "device", "add", "--id", "mute-1", "--kind", "locker-bank", "--site", "oak", "--doors", "2", "--json")
	var added struct{ Secret string }
	json.Unmarshal([]byte(out), &added)
	hub := startHub(t, environ)
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + hub.mqtt).SetClientID("mute-1").SetUsername("mute-1").
		SetPassword(added.Secret).SetProtocolVersion(4).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(0)
	operator := createToken(t, environ, "--name", "ops", "--role", "operator").Token
	out, errOut, code := run(t, environ, "unlock", "--hub", "http://"+hub.http, "--token", operator,
		"--device", "mute-1", "--door", "1", "--reason", "test", "--timeout", "1s")
	if code != 5 || !strings.Contains(errOut, "HTTP 504") || !strings.Contains(errOut, "refuses the command from then on") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}

// containsAll reports whether s contains every one of subs.
func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// startSimulate runs `lockerhub simulate --units units args...` until the test ends, waits up
// to within until all its units are online, and returns what it writes to stderr.
func startSimulate(t *testing.T, environ []string, units int, within time.Duration, args ...string) *syncbuf.Buffer {
	t.Helper()
	sim := exec.Command(binary, append([]string{"simulate", "--units", strconv.Itoa(units)}, args...)...)
	sim.Env = environ
	out := new(syncbuf.Buffer)
	sim.Stderr = out
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Process.Kill(); sim.Wait() })
	testhub.WaitFor(t, within, "simulated units online", func() bool {
		return strings.Contains(out.String(), fmt.Sprintf("all %d units online", units))
	})
	return out
}

// simControl returns the address of the control surface that the simulator writing simOut
// serves.
func simControl(t *testing.T, simOut *syncbuf.Buffer) string {
	t.Helper()
	m := regexp.MustCompile(`control surface on (127\.0\.0\.1:\d+)`).FindStringSubmatch(simOut.String())
	if m == nil {
		t.Fatalf("the simulator named no control surface:\n%s", simOut)
	}
	return m[1]
}

// simCLI returns a function that runs `lockerhub sim ARGS` against the control surface of the
// simulator writing simOut and returns its output; a failure ends the test, since each step
// leaves the fleet as the next one expects.
func simCLI(t *testing.T, environ []string, simOut *syncbuf.Buffer) func(args ...string) string {
	control := simControl(t, simOut)
	return func(args ...string) string {
		t.Helper()
		out, errOut, code := run(t, environ, append([]string{"sim", "--control", control}, args...)...)
		if code != 0 {
			t.Fatalf("sim %s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
}
