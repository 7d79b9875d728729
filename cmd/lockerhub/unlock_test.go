package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/agent"
	"github.com/lockerhub/lockerhub/edge-agent/hardware"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/testhub"
)

// What the door did is what a technician is told, through the real hub, the real agent on a
// simulated locker bank, the CLI and the alert rules: an unlock of a door someone still holds
// open is a success and no alert, and a door that never opens is jammed even when the agent's
// verdict comes after the command's expiry.
func TestUnlockVerdicts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rules := filepath.Join(dir, "alerts.yaml")
	if err := os.WriteFile(rules, []byte(fastAlertRules+"  - {name: unlock-not-opened, kind: unlock_failed, severity: warning, count: 1, window: 1h}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	environ := env(filepath.Join(dir, "hub"), "LOCKERHUB_INFLUX_URL=http://127.0.0.1:"+freePort(t), "LOCKERHUB_ALERTS_FILE="+rules)
	out, errOut, code := run(t, environ, "device", "add", "--id", "bank-1", "--kind", "locker-bank", "--site", "oak", "--doors", "4", "--json")
	var added struct{ Secret string }
	if code != 0 || json.Unmarshal([]byte(out), &added) != nil {
		t.Fatalf("device add: %s", errOut)
	}
	hub := startHub(t, environ)
	operator := createToken(t, environ, "--name", "ops", "--role", "operator").Token
	// The person let in by an unlock holds the door open for a minute.
	hw, err := hardware.NewSimulator(hardware.SimConfig{Kind: hardware.KindLockerBank, Doors: 4, Seed: 1,
		OpenDelay: 100 * time.Millisecond, HoldOpen: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// A confirm window longer than the 1 s lifetime of the commands below.
	runUnit(t, hub.mqtt, "bank-1", added.Secret, filepath.Join(dir, "bank-1"), hw, func(c *agent.Config) {
		c.Unlock.Pulse, c.Unlock.ConfirmWindow = time.Second, 2*time.Second
	})
	unlock := func(door string) (string, string, int) {
		return run(t, environ, "unlock", "--hub", "http://"+hub.http, "--token", operator, "--device", "bank-1",
			"--door", door, "--reason", "pickup", "--timeout", "1s")
	}
	command := func(status fleet.CommandStatus) *fleet.Command {
		_, body := hub.getAs(t, operator, "/api/v1/commands?device=bank-1&status="+string(status))
		var res struct{ Commands []*fleet.Command }
		if json.Unmarshal([]byte(body), &res) != nil || len(res.Commands) == 0 {
			return nil
		}
		return res.Commands[0]
	}

	t.Run("a second unlock while the door is held open", func(t *testing.T) {
		if out, errOut, code := unlock("1"); code != 0 || !strings.Contains(out, "opened in") {
			t.Fatalf("first unlock: exit %d\n%s%s", code, out, errOut)
		}
		out, errOut, code := unlock("1")
		if code != 0 || !strings.Contains(out, "already-open in") || !strings.Contains(out, "door 1 was already open") {
			t.Fatalf("second unlock: exit %d\n%s%s", code, out, errOut)
		}
		if c := command(fleet.CommandSucceeded); c == nil || c.Outcome != wire.OutcomeAlreadyOpen {
			t.Fatalf("newest succeeded command: %+v", c)
		}
		time.Sleep(time.Second) // ten evaluations
		if code, body := hub.getAs(t, operator, "/api/v1/alerts?state=open&device=bank-1"); code != 200 || strings.Contains(body, "unlock-not-opened") {
			t.Fatalf("alerts after unlocking an open door: %d %s", code, body)
		}
	})

	t.Run("a door that never opens, judged after the expiry", func(t *testing.T) {
		if err := hw.SetFault(hardware.FaultJammed, 2, true); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := unlock("2")
		if code != 5 || !strings.Contains(errOut, "HTTP 504") {
			t.Fatalf("unlock of a jammed door with a 1 s lifetime: exit %d, want 5 (device failure)\n%s%s", code, out, errOut)
		}
		var c *fleet.Command
		testhub.WaitFor(t, 10*time.Second, "the jammed verdict on record", func() bool {
			c = command(fleet.CommandFailed)
			return c != nil && c.Door == 2
		})
		if c.Outcome != wire.OutcomeJammed || !c.CompletedAt.After(c.ExpiresAt) {
			t.Fatalf("command: %+v; want jammed, completed after its expiry", c)
		}
	})

	for len(hub.logs) > 0 {
		if rec := <-hub.logs; rec["level"] == "ERROR" {
			t.Errorf("hub logged an error: %v", rec)
		}
	}
}
