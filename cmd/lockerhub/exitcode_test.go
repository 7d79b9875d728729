package main_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/agent"
	"github.com/lockerhub/lockerhub/edge-agent/hardware"
)

// Every exit code that `lockerhub --help` and the README promise a script, from the real binary
// against a real hub and a real agent on a simulated locker bank.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	environ := env(filepath.Join(dir, "hub"), "LOCKERHUB_INFLUX_URL=http://127.0.0.1:"+freePort(t))
	out, errOut, code := run(t, environ, "device", "add", "--id", "bank-1", "--kind", "locker-bank", "--site", "oak", "--doors", "4", "--json")
	var added struct{ Secret string }
	if code != 0 || json.Unmarshal([]byte(out), &added) != nil {
		t.Fatalf("device add: exit %d: %s", code, errOut)
	}
	if _, errOut, code := run(t, environ, "device", "add", "--id", "bank-2", "--kind", "locker-bank", "--site", "oak", "--doors", "4"); code != 0 {
		t.Fatalf("device add: exit %d: %s", code, errOut)
	}
	hub := startHub(t, environ)
	operator := createToken(t, environ, "--name", "ops", "--role", "operator").Token
	viewer := createToken(t, environ, "--name", "eyes", "--role", "viewer").Token
	hw, err := hardware.NewSimulator(hardware.SimConfig{Kind: hardware.KindLockerBank, Doors: 4, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := hw.SetFault(hardware.FaultJammed, 2, true); err != nil {
		t.Fatal(err)
	}
	// The jammed door is judged well within the command's lifetime, so that the hub answers with
	// the failed command rather than with its expiry.
	runUnit(t, hub.mqtt, "bank-1", added.Secret, filepath.Join(dir, "bank-1"), hw, func(c *agent.Config) {
		c.Unlock.Pulse, c.Unlock.ConfirmWindow = 500*time.Millisecond, 500*time.Millisecond
	})
	unlock := func(token, device, door, reason string) []string {
		return []string{"unlock", "--hub", "http://" + hub.http, "--token", token, "--device", device, "--door", door,
			"--reason", reason, "--timeout", "10s"}
	}
	for _, tc := range []struct {
		name    string
		environ []string
		args    []string
		code    int
		want    string // in stderr
	}{
		{"ok", environ, []string{"device", "list"}, 0, ""},
		{"no store", env(filepath.Join(dir, "elsewhere")), []string{"device", "list"}, 1, "no hub data in"},
		{"unknown command", environ, []string{"devices"}, 2, `unknown command "devices"`},
		{"unknown flag", environ, []string{"device", "list", "--colour"}, 2, "unknown flag: --colour"},
		{"missing argument", environ, []string{"tail"}, 2, "accepts 1 arg(s), received 0"},
		{"required flag", environ, []string{"unlock", "--token", operator}, 2, `required flag(s) "device", "door", "reason" not set`},
		{"bad flag value", environ, []string{"audit", "verify", "--head", "3"}, 2, "invalid audit head"},
		{"refused as invalid by the hub", environ, unlock(operator, "bank-1", "1", ""), 2, "HTTP 400"},
		{"no such unit in the store", environ, []string{"device", "disable", "--id", "ghost"}, 3, "ghost"},
		{"no such unit at the hub", environ, unlock(operator, "ghost", "1", "test"), 3, "HTTP 404"},
		{"exists already", environ, []string{"device", "add", "--id", "bank-1", "--kind", "locker-bank", "--site", "oak", "--doors", "4"}, 4, "bank-1"},
		{"role refused", environ, unlock(viewer, "bank-1", "1", "test"), 4, "HTTP 403"},
		{"unit offline", environ, unlock(operator, "bank-2", "1", "test"), 4, "HTTP 409"},
		{"door jammed", environ, unlock(operator, "bank-1", "2", "test"), 5, "jammed"},
		{"hub unreachable", environ, []string{"fleet", "status", "--hub", "http://127.0.0.1:" + freePort(t), "--token", viewer}, 6, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := run(t, tc.environ, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Fatalf("lockerhub %s: exit %d, want %d with %q on stderr\n%s%s", strings.Join(tc.args, " "), code, tc.code, tc.want, out, errOut)
			}
		})
	}
}

// `lockerhub --help` lists the commands by group and ends with the exit codes.
func TestRootHelp(t *testing.T) {
	t.Parallel()
	out, errOut, code := run(t, env(t.TempDir()), "--help")
	if code != 0 {
		t.Fatalf("--help: exit %d: %s", code, errOut)
	}
	// Each command under its group's title, the groups in order.
	want := []string{"Registry:", "  device", "  token", "Operations:", "  alerts", "  audit", "  fleet", "  lock",
		"  report", "  sim ", "  tail", "  unlock", "Hub:", "  demo", "  serve", "  simulate", "  store",
		"Exit codes:", "  0  ok", "  6  hub unreachable"}
	rest := out
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("--help lacks %q after the lines before it:\n%s", w, out)
		}
		rest = rest[i+len(w):]
	}
	if out, _, _ := run(t, env(t.TempDir()), "device", "--help"); strings.Contains(out, "Exit codes:") {
		t.Errorf("device --help lists the exit codes, which only the root's help does:\n%s", out)
	}
}
