package main_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	_ "modernc.org/sqlite" // to give a device a hash from before $7$

	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/internal/syncbuf"
	"github.com/lockerhub/lockerhub/internal/testhub"
	"github.com/lockerhub/lockerhub/internal/testmosquitto"
)

// exportFixture is a registry with enabled devices bank-1, bank-2 and bank-5, disabled bank-3,
// and bank-4 whose secret hash predates $7$.
type exportFixture struct {
	dir     string
	environ []string
	secrets map[string]string
	pw, acl string // the export's output files
}

func newExportFixture(t *testing.T) *exportFixture {
	t.Helper()
	f := &exportFixture{dir: t.TempDir(), secrets: map[string]string{}}
	f.environ = env(filepath.Join(f.dir, "data"))
	f.pw, f.acl = filepath.Join(f.dir, "lockerhub.passwd"), filepath.Join(f.dir, "lockerhub.acl")
	for _, id := range []string{"bank-1", "bank-2", "bank-3", "bank-4", "bank-5"} {
		out, errOut, code := run(t, f.environ, "device", "add", "--id", id, "--kind", "locker-bank", "--site", "elm", "--doors", "4", "--json")
		var got struct{ Secret string }
		if code != 0 || json.Unmarshal([]byte(out), &got) != nil {
			t.Fatalf("device add %s: exit %d %s", id, code, errOut)
		}
		f.secrets[id] = got.Secret
	}
	if _, errOut, code := run(t, f.environ, "device", "disable", "--id", "bank-3"); code != 0 {
		t.Fatalf("device disable: %s", errOut)
	}
	db, err := sql.Open("sqlite", filepath.Join(f.dir, "data", sqldb.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// A SHA-256 hash, as the hub wrote them before $7$ (of another secret: bank-4 is never
	// meant to connect).
	if _, err := db.Exec(`UPDATE devices SET secret_hash = '$sha256$n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg' WHERE id = 'bank-4'`); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *exportFixture) export(t *testing.T, extraEnv []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	args = append([]string{"device", "export-acl", "--password-file", f.pw, "--acl-file", f.acl}, args...)
	return run(t, append(f.environ, extraEnv...), args...)
}

// passwordUsers returns the users of a password file, in order.
func passwordUsers(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, line := range strings.Split(string(b), "\n") {
		if u, hash, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			if !strings.HasPrefix(hash, "$7$") {
				t.Fatalf("%s: entry %q is not a $7$ hash", path, line)
			}
			users = append(users, u)
		}
	}
	return users
}

func TestExportACL(t *testing.T) {
	t.Parallel()
	f := newExportFixture(t)
	hubEnv := []string{"LOCKERHUB_MQTT_EXTERNAL_PASSWORD=hub-secret"}

	for _, tc := range []struct {
		name    string
		env     []string
		args    []string
		wantErr string
	}{
		{"no hub password", []string{"LOCKERHUB_MQTT_EXTERNAL_PASSWORD="}, []string{"--hub-user", "hub_1"}, "set LOCKERHUB_MQTT_EXTERNAL_PASSWORD"},
		{"two hubs from the environment", hubEnv, []string{"--hub-user", "hub_1", "--hub-user", "hub_2"}, "--hub-password-file"},
		{"hub user is a device", hubEnv, []string{"--hub-user", "bank-1"}, `hub user "bank-1" could be a device ID`},
		{"hub user could be a device", hubEnv, []string{"--hub-user", "hub-1"}, `hub user "hub-1" could be a device ID`},
		{"hub user with a colon", hubEnv, []string{"--hub-user", "hub:1"}, "invalid hub user"},
		{"no hub user", hubEnv, nil, `"hub-user" not set`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := f.export(t, tc.env, tc.args...)
			if code == 0 || !strings.Contains(errOut, tc.wantErr) {
				t.Fatalf("exit %d, stderr %q; want a failure with %q", code, errOut, tc.wantErr)
			}
			if _, err := os.Stat(f.pw); err == nil {
				t.Fatal("a refused export wrote the password file")
			}
		})
	}

	// The legacy device is named with the command that fixes it; the files are written all the
	// same (so that a disabled device never stays in), and the exit code says something is off.
	out, errOut, code := f.export(t, hubEnv, "--hub-user", "hub_1")
	if code == 0 || !strings.Contains(errOut, "lockerhub device rotate-secret --id bank-4") {
		t.Fatalf("with a legacy device: exit %d, stderr %q", code, errOut)
	}
	if got := strings.Join(passwordUsers(t, f.pw), ","); got != "hub_1,bank-1,bank-2,bank-5" {
		t.Fatalf("password file users %s; want hub_1,bank-1,bank-2,bank-5", got)
	}
	for _, p := range []string{f.pw, f.acl} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, %v; want mode 0600", p, fi.Mode(), err)
		}
	}
	out, errOut, code = f.export(t, hubEnv, "--hub-user", "hub_1", "--skip-legacy")
	for _, want := range []string{"3 devices", "1 hub users", "1 disabled", "1 with hashes older", "systemctl reload mosquitto", "kill -HUP"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("--skip-legacy: exit %d, stdout %q, stderr %q; want %q", code, out, errOut, want)
		}
	}

	// Hub users from a mosquitto_passwd file: each named user must have an entry, others are
	// not copied.
	hubFile := filepath.Join(f.dir, "hubs.passwd")
	os.WriteFile(hubFile, []byte("# hubs\nhub_1:$7$101$TaDhyGCPwGsfJwjI$DYjyWCPwEUwJrzEe55Oc6cZrOSmPAejiopBPoCTs1+u5Y8C7yyy/Wsuv+evcHK8c8kqWBTcdIp/0Olq30dV7zA==\n"+
		"stray:$7$101$TaDhyGCPwGsfJwjI$DYjyWCPwEUwJrzEe55Oc6cZrOSmPAejiopBPoCTs1+u5Y8C7yyy/Wsuv+evcHK8c8kqWBTcdIp/0Olq30dV7zA==\n"), 0o600)
	if _, errOut, code := f.export(t, nil, "--hub-user", "hub_1", "--hub-user", "hub_2", "--hub-password-file", hubFile, "--skip-legacy"); code == 0 || !strings.Contains(errOut, `no entry for hub user "hub_2"`) {
		t.Fatalf("missing hub entry: exit %d, stderr %q", code, errOut)
	}
	os.WriteFile(filepath.Join(f.dir, "plain.passwd"), []byte("hub_1:plaintext\n"), 0o600)
	if _, errOut, code := f.export(t, nil, "--hub-user", "hub_1", "--hub-password-file", filepath.Join(f.dir, "plain.passwd")); code == 0 || !strings.Contains(errOut, "plain.passwd:1") {
		t.Fatalf("plaintext hub entry: exit %d, stderr %q", code, errOut)
	}
	if _, errOut, code := f.export(t, nil, "--hub-user", "hub_1", "--hub-password-file", hubFile, "--skip-legacy"); code != 0 {
		t.Fatalf("hub password file: %s", errOut)
	}
	if got := strings.Join(passwordUsers(t, f.pw), ","); got != "hub_1,bank-1,bank-2,bank-5" {
		t.Fatalf("password file users %s; want hub_1,bank-1,bank-2,bank-5", got)
	}

	// What the ACL file grants is checked in broker/external; here, that it is the one of hub_1.
	if b, err := os.ReadFile(f.acl); err != nil || !strings.Contains(string(b), "\nuser hub_1\n") {
		t.Fatalf("ACL file: %v, want the rules of hub_1:\n%s", err, b)
	}
}

// mosquittoBroker is Debian's mosquitto with the shipped configs/mosquitto/lockerhub.conf,
// pointed at the exported files.
type mosquittoBroker struct{ *testmosquitto.Broker }

func startMosquitto(t *testing.T, pwFile, aclFile string) *mosquittoBroker {
	t.Helper()
	return &mosquittoBroker{testmosquitto.StartConfig(t, "../../configs/mosquitto/lockerhub.conf",
		map[string]string{"password_file": pwFile, "acl_file": aclFile})}
}

func lookMosquitto(t *testing.T, tool string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/" + tool); err2 == nil {
			return "/usr/sbin/" + tool
		}
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed; scripts/test.sh installs mosquitto and mosquitto-clients", tool)
		}
		t.Skipf("%s not installed (apt-get install mosquitto mosquitto-clients)", tool)
	}
	return path
}

// client is a paho client of the Mosquitto broker that records what it receives.
type client struct {
	paho.Client
	mu   sync.Mutex
	got  []string // "topic payload"
	lost chan error
}

func (m *mosquittoBroker) connect(t *testing.T, user, password string) *client {
	t.Helper()
	c := &client{lost: make(chan error, 1)}
	c.Client = paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + m.Addr).
		SetClientID(user).SetUsername(user).SetPassword(password).SetAutoReconnect(false).
		SetConnectionLostHandler(func(_ paho.Client, err error) { c.lost <- err }).
		SetDefaultPublishHandler(func(_ paho.Client, msg paho.Message) {
			c.mu.Lock()
			c.got = append(c.got, msg.Topic()+" "+string(msg.Payload()))
			c.mu.Unlock()
		}))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", user, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func (c *client) subscribe(t *testing.T, filters ...string) {
	t.Helper()
	for _, f := range filters {
		if tok := c.Subscribe(f, 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", f, tok.Error())
		}
	}
}

func (c *client) publish(t *testing.T, topic, payload string) {
	t.Helper()
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// waitFor waits until the client received want, and returns everything it received up to then.
func (c *client) waitFor(t *testing.T, want string) []string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		c.mu.Lock()
		for i, g := range c.got {
			if g == want {
				got := append([]string(nil), c.got[:i+1]...)
				c.got = c.got[i+1:]
				c.mu.Unlock()
				return got
			}
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t.Fatalf("did not receive %q; received %q", want, c.got)
	return nil
}

// pub runs Debian's mosquitto_pub against the broker.
func (m *mosquittoBroker) pub(t *testing.T, args ...string) (int, string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(m.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, lookMosquitto(t, "mosquitto_pub"), append([]string{"-h", host, "-p", port, "-q", "1"}, args...)...).CombinedOutput()
	if exit, ok := err.(*exec.ExitError); ok {
		return exit.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// A real Mosquitto with the shipped configuration and the exported files enforces the device
// ACL and lets hubs consume devices through shared subscriptions.
func TestExportACLMosquitto(t *testing.T) {
	t.Parallel()
	lookMosquitto(t, "mosquitto")
	lookMosquitto(t, "mosquitto_pub")
	f := newExportFixture(t)
	hubEnv := []string{"LOCKERHUB_MQTT_EXTERNAL_PASSWORD=hub-secret"}
	if _, errOut, code := f.export(t, hubEnv, "--hub-user", "hub_1", "--skip-legacy"); code != 0 {
		t.Fatalf("export: %s", errOut)
	}
	m := startMosquitto(t, f.pw, f.acl)
	creds := func(id string) []string { return []string{"-i", id, "-u", id, "-P", f.secrets[id]} }

	// bank-1 and bank-2 stay connected through paho; mosquitto_pub connects as bank-5, since
	// a second connection of bank-1 would take over (and close) the first.
	hub := m.connect(t, "hub_1", "hub-secret")
	hub.subscribe(t, "$share/lockerhub/lockers/+/telemetry", "lockers/+/events", "lockers/+/status", "lockers/+/result", "lockers/+/cmd/request")
	dev := m.connect(t, "bank-1", f.secrets["bank-1"])
	dev.subscribe(t, "lockers/bank-1/cmd/#")
	bank2 := m.connect(t, "bank-2", f.secrets["bank-2"])

	t.Run("device telemetry reaches the hub through the shared subscription", func(t *testing.T) {
		for _, v := range []string{"5", "mqttv311"} {
			if code, out := m.pub(t, append(creds("bank-5"), "-V", v, "-t", "lockers/bank-5/telemetry", "-m", "t-"+v)...); code != 0 {
				t.Fatalf("mosquitto_pub: exit %d: %s", code, out)
			}
			hub.waitFor(t, "lockers/bank-5/telemetry t-"+v)
		}
		dev.publish(t, "lockers/bank-1/telemetry", "from paho")
		hub.waitFor(t, "lockers/bank-1/telemetry from paho")
	})

	t.Run("a device cannot publish as another device, nor a command", func(t *testing.T) {
		for _, topic := range []string{"lockers/bank-1/telemetry", "lockers/bank-1/events", "lockers/bank-1/status", "lockers/bank-1/cmd/request", "lockers/bank-5/cmd/request"} {
			// MQTT 5 has a negative PUBACK; MQTT 3.1.1 has none, and Mosquitto drops the message.
			_, out := m.pub(t, append(creds("bank-5"), "-V", "5", "-t", topic, "-m", "forged")...)
			if !strings.Contains(out, "Not authorized") {
				t.Errorf("v5 publish to %s: %q; want not authorized", topic, out)
			}
			m.pub(t, append(creds("bank-5"), "-V", "mqttv311", "-t", topic, "-m", "forged")...)
		}
		dev.publish(t, "lockers/bank-1/cmd/request", "forged by bank-1") // its own command topic
		dev.publish(t, "lockers/bank-2/result", "forged by bank-1")
		// The markers come after the forged messages, through the same broker in order: had any
		// forged one been delivered, it would be in front of them.
		m.pub(t, append(creds("bank-5"), "-t", "lockers/bank-5/events", "-m", "marker")...)
		for _, g := range hub.waitFor(t, "lockers/bank-5/events marker") {
			if strings.Contains(g, "forged") {
				t.Errorf("the hub received %q", g)
			}
		}
		hub.publish(t, "lockers/bank-1/cmd/request", "marker")
		for _, g := range dev.waitFor(t, "lockers/bank-1/cmd/request marker") {
			if strings.Contains(g, "forged") {
				t.Errorf("the device received %q", g)
			}
		}
	})

	t.Run("a device receives only its own commands", func(t *testing.T) {
		// Mosquitto grants these subscriptions and filters deliveries by the ACL's read rules.
		dev.subscribe(t, "#", "lockers/bank-2/cmd/#", "lockers/+/cmd/#", "lockers/+/telemetry", "$share/g/lockers/+/cmd/#")
		hub.publish(t, "lockers/bank-2/cmd/request", "for bank-2")
		bank2.publish(t, "lockers/bank-2/telemetry", "bank-2 telemetry")
		bank2.publish(t, "lockers/bank-2/result", "bank-2 result")
		hub.waitFor(t, "lockers/bank-2/result bank-2 result")
		hub.publish(t, "lockers/bank-1/cmd/request", "for bank-1")
		for _, g := range dev.waitFor(t, "lockers/bank-1/cmd/request for bank-1") {
			if strings.Contains(g, "bank-2") {
				t.Errorf("bank-1 received %q", g)
			}
		}
	})

	t.Run("the hub publishes commands and nothing else", func(t *testing.T) {
		hub.publish(t, "lockers/bank-1/telemetry", "forged by the hub")
		hub.publish(t, "lockers/bank-1/cmd/request", "unlock")
		dev.waitFor(t, "lockers/bank-1/cmd/request unlock")
		hub.waitFor(t, "lockers/bank-1/cmd/request unlock") // as other hubs see it
		dev.publish(t, "lockers/bank-1/events", "marker 2")
		for _, g := range hub.waitFor(t, "lockers/bank-1/events marker 2") {
			if strings.Contains(g, "forged by the hub") {
				t.Errorf("the hub's own publish to telemetry was delivered: %q", g)
			}
		}
	})

	t.Run("wrong, legacy and disabled credentials are refused", func(t *testing.T) {
		for name, args := range map[string][]string{
			"wrong secret":       {"-i", "bank-5", "-u", "bank-5", "-P", f.secrets["bank-1"]},
			"disabled device":    creds("bank-3"),
			"legacy hash device": creds("bank-4"),
			"anonymous":          {"-i", "bank-5"},
			"hub password":       {"-i", "bank-5", "-u", "bank-5", "-P", "hub-secret"},
		} {
			for _, v := range []string{"5", "mqttv311"} {
				code, out := m.pub(t, append(args, "-V", v, "-t", "lockers/bank-5/telemetry", "-m", "x")...)
				if lower := strings.ToLower(out); code == 0 || !strings.Contains(lower, "not author") {
					t.Errorf("%s (%s): exit %d, %q; want the connection refused", name, v, code, out)
				}
			}
		}
	})

	t.Run("a client ID of another device does not take its session", func(t *testing.T) {
		// use_username_as_clientid: bank-5 connecting as client "bank-2" is bank-5 all the same.
		if code, out := m.pub(t, "-i", "bank-2", "-u", "bank-5", "-P", f.secrets["bank-5"], "-t", "lockers/bank-5/telemetry", "-m", "as bank-2"); code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		hub.waitFor(t, "lockers/bank-5/telemetry as bank-2")
		select {
		case err := <-bank2.lost:
			t.Fatalf("bank-2 was disconnected: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	})

	t.Run("a device disabled, exported again and reloaded is locked out", func(t *testing.T) {
		if _, errOut, code := run(t, f.environ, "device", "disable", "--id", "bank-2"); code != 0 {
			t.Fatalf("device disable: %s", errOut)
		}
		if _, errOut, code := f.export(t, hubEnv, "--hub-user", "hub_1", "--skip-legacy"); code != 0 {
			t.Fatalf("export: %s", errOut)
		}
		m.Reload()
		// Mosquitto 2 drops the connections of users the reloaded password file no longer has.
		select {
		case <-bank2.lost:
		case <-time.After(10 * time.Second):
			t.Fatal("bank-2 is still connected after the reload")
		}
		code, out := m.pub(t, append(creds("bank-2"), "-t", "lockers/bank-2/telemetry", "-m", "x")...)
		if code == 0 || !regexp.MustCompile(`(?i)not author`).MatchString(out) {
			t.Fatalf("bank-2 after the reload: exit %d, %q", code, out)
		}
		// The hub and the other devices keep their connections.
		dev.publish(t, "lockers/bank-1/telemetry", "after reload")
		hub.waitFor(t, "lockers/bank-1/telemetry after reload")
	})

	t.Run("with --watch a disabled device is locked out at once", func(t *testing.T) {
		bank5 := m.connect(t, "bank-5", f.secrets["bank-5"])
		var out syncbuf.Buffer
		watch := exec.Command(binary, "device", "export-acl", "--password-file", f.pw, "--acl-file", f.acl, "--hub-user", "hub_1",
			"--watch", "--reload", fmt.Sprintf("kill -HUP %d", m.PID()))
		watch.Env, watch.Stdout, watch.Stderr = append(f.environ, hubEnv...), &out, &out
		if err := watch.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { watch.Process.Kill(); watch.Wait() })
		testhub.WaitFor(t, 10*time.Second, "the watch running", func() bool { return strings.Contains(out.String(), "watching the registry") })
		if _, errOut, code := run(t, f.environ, "device", "disable", "--id", "bank-5"); code != 0 {
			t.Fatalf("device disable: %s", errOut)
		}
		select {
		case <-bank5.lost:
		case <-time.After(5 * time.Second):
			t.Fatalf("bank-5 is still connected 5 s after it was disabled; export-acl said:\n%s", out.String())
		}
	})
}
