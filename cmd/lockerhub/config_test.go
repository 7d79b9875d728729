package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/agent"
	"github.com/lockerhub/lockerhub/fleet/commands"
)

// The documented defaults in configs/lockerhub.yaml must be the defaults in code.
func TestDocumentedDefaults(t *testing.T) {
	got, err := LoadConfig(filepath.Join("..", "..", "configs", "lockerhub.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := DefaultConfig(); got != want {
		t.Fatalf("configs/lockerhub.yaml = %+v\ncode defaults     = %+v", got, want)
	}
}

// The agent's and the hub's command defaults agree: an unlock's verdict (opened or jammed, at the
// latest when the agent's confirm window ends) reaches the hub before the command's default
// expiry, with room for the command and the result to cross a slow cellular link, so that an
// operator waiting for it gets it. And the window covers the whole default pulse, during which a
// person may still open the door. edge-agent's TestDocumentedDefaults ties the agent's defaults
// to configs/edge-agent.yaml.
func TestCommandDefaultsAgree(t *testing.T) {
	const delivery = 3 * time.Second // command to the unit plus result back, on a poor link
	unlock := agent.DefaultConfig().Unlock
	if unlock.ConfirmWindow+delivery > commands.DefaultTimeout {
		t.Errorf("unlock.confirm_window %s + %s for delivery ends after the hub's default command expiry %s",
			unlock.ConfirmWindow, delivery, commands.DefaultTimeout)
	}
	if unlock.ConfirmWindow < unlock.Pulse {
		t.Errorf("unlock.confirm_window %s ends before unlock.pulse %s", unlock.ConfirmWindow, unlock.Pulse)
	}
}

// The documented defaults in configs/alerts.yaml must be the defaults in code too.
func TestDocumentedAlertDefaults(t *testing.T) {
	got, err := LoadAlertsConfig(filepath.Join("..", "..", "configs", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := DefaultAlertsConfig(); !reflect.DeepEqual(got, want) {
		t.Fatalf("configs/alerts.yaml = %+v\ncode defaults   = %+v", got, want)
	}
}

func TestLoadConfig(t *testing.T) {
	file := func(body string) string {
		p := filepath.Join(t.TempDir(), "hub.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("file and environment", func(t *testing.T) {
		t.Setenv("LOCKERHUB_MQTT_ADDR", "127.0.0.1:2883")
		t.Setenv("LOCKERHUB_DATA_DIR", "/srv/hub")
		t.Setenv("LOCKERHUB_MEMORY_LIMIT", "1536MiB")
		c, err := LoadConfig(file("memory_limit: 2GiB\nmqtt:\n  addr: ':9999'\n  ws_addr: ':9001'\nregistry:\n  watch_interval: 2s\n"))
		if err != nil {
			t.Fatal(err)
		}
		if c.MQTT.Addr != "127.0.0.1:2883" || c.DataDir != "/srv/hub" || c.MQTT.WSAddr != ":9001" || c.MemoryLimit != "1536MiB" ||
			c.Registry.WatchInterval != 2*time.Second || c.HTTP.Addr != ":8080" {
			t.Fatalf("got %+v", c)
		}
	})
	for _, tc := range []struct {
		name, yaml, env, wantErr string
	}{
		{name: "unknown key", yaml: "mqtt:\n  adr: ':1'\n", wantErr: "adr"},
		{name: "bad mqtt address", yaml: "mqtt:\n  addr: '1883'\n", wantErr: "mqtt.addr"},
		{name: "bad http address from env", env: "LOCKERHUB_HTTP_ADDR=nope", wantErr: "http.addr"},
		{name: "tls without cert", yaml: "mqtt:\n  tls_addr: ':8883'\n", wantErr: "mqtt.tls_cert"},
		{name: "bad level", yaml: "log:\n  level: loud\n", wantErr: "log.level"},
		{name: "bad format", yaml: "log:\n  format: xml\n", wantErr: "log.format"},
		{name: "bad duration", yaml: "registry:\n  watch_interval: soon\n", wantErr: "watch_interval"},
		{name: "interval out of range", yaml: "registry:\n  watch_interval: 1h\n", wantErr: "registry.watch_interval"},
		{name: "empty data dir", env: "LOCKERHUB_DATA_DIR=", wantErr: "data_dir"},
		{name: "witness url without secret", yaml: "audit:\n  witness:\n    url: https://witness.example.com/\n", wantErr: "audit.witness.secret"},
		{name: "too few http connections", yaml: "http:\n  max_connections: 0\n", wantErr: "http.max_connections: 0 out of range 16..1000000"},
		{name: "no streams per token", env: "LOCKERHUB_HTTP_MAX_STREAMS_PER_TOKEN=0", wantErr: "http.max_streams_per_token: 0 out of range 1..1000"},
		{name: "not yaml", yaml: "mqtt: [\n", wantErr: "config file"},
		{name: "memory limit in decimal units", yaml: "memory_limit: 2GB\n", wantErr: `memory_limit: "2GB" is not a size`},
		{name: "memory limit too small from env", env: "LOCKERHUB_MEMORY_LIMIT=1MiB", wantErr: "memory_limit: \"1MiB\" is below the minimum of 64 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				k, v, _ := strings.Cut(tc.env, "=")
				t.Setenv(k, v)
			}
			path := ""
			if tc.yaml != "" {
				path = file(tc.yaml)
			}
			_, err := LoadConfig(path)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got error %v, want one naming %q", err, tc.wantErr)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		if _, err := LoadConfig(filepath.Join(t.TempDir(), "none.yaml")); err == nil {
			t.Fatal("no error for a missing file")
		}
	})
}
