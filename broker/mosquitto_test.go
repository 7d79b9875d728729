package broker_test

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/broker"
	"github.com/lockerhub/lockerhub/internal/testmosquitto"
)

// The same authentication and ACL checks as the paho tests, made with Debian's mosquitto
// clients: an independent MQTT implementation, speaking both MQTT 3.1.1 and 5.

// mosquitto runs one of the mosquitto client tools against the hub's TCP listener.
func (h *hub) mosquitto(tool string, args ...string) (exitCode int, output string) {
	h.t.Helper()
	path := testmosquitto.Client(h.t, tool)
	host, port, _ := strings.Cut(h.Addr(broker.ListenerTCP).String(), ":")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append([]string{"-h", host, "-p", port}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		h.t.Fatalf("%s %v timed out; output: %s", tool, args, out.String())
	}
	if exit, ok := err.(*exec.ExitError); ok {
		return exit.ExitCode(), out.String()
	} else if err != nil {
		h.t.Fatal(err)
	}
	return 0, out.String()
}

func (h *hub) creds(id string) []string {
	return []string{"-i", id, "-u", id, "-P", h.secrets[id]}
}

const validTelemetry = `{"v":1,"seq":1,"ts":1764000000000,"doors":[{"door":1,"open":false,"locked":true}]}`

func TestMosquittoClientsAuth(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	seen := h.record("lockers/+/telemetry")
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"own secret", h.creds("a"), true},
		{"own secret mqtt 5", append([]string{"-V", "5"}, h.creds("a")...), true},
		{"wrong secret", []string{"-i", "a", "-u", "a", "-P", h.secrets["b"]}, false},
		{"unknown device", []string{"-i", "nobody", "-u", "nobody", "-P", h.secrets["a"]}, false},
		{"anonymous", []string{"-i", "a"}, false},
		{"client id not the device id", []string{"-i", "b", "-u", "a", "-P", h.secrets["a"]}, false},
		{"wrong secret mqtt 5", []string{"-V", "5", "-i", "a", "-u", "a", "-P", "x"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(seen.all())
			code, out := h.mosquitto("mosquitto_pub", append(tc.args, "-q", "1", "-t", "lockers/a/telemetry", "-m", validTelemetry)...)
			if tc.ok {
				if code != 0 {
					t.Fatalf("exit %d: %s", code, out)
				}
				waitFor(t, "telemetry at the hub", func() bool { return len(seen.all()) == before+1 })
				return
			}
			// MQTT 3.1.1 clients report "Connection Refused: not authorised", MQTT 5 clients
			// the reason code "Bad User Name or Password".
			lower := strings.ToLower(out)
			if code == 0 || !strings.Contains(lower, "refused") && !strings.Contains(lower, "bad user name or password") {
				t.Fatalf("exit %d, output %q; want a refused connection", code, out)
			}
		})
	}
}

func TestMosquittoClientsACL(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	seen := h.record("#")

	t.Run("publish", func(t *testing.T) {
		for _, topic := range []string{"lockers/b/telemetry", "lockers/b/cmd/request", "lockers/a/cmd/request"} {
			// MQTT 5 has a negative PUBACK: the client is told "not authorized".
			code, out := h.mosquitto("mosquitto_pub", append([]string{"-V", "5", "-q", "1", "-t", topic, "-m", validTelemetry}, h.creds("a")...)...)
			if !strings.Contains(out, "Not authorized") {
				t.Errorf("v5 publish to %s: exit %d, output %q; want not authorized", topic, code, out)
			}
			// MQTT 3.1.1 has none: the hub closes the connection.
			code, out = h.mosquitto("mosquitto_pub", append([]string{"-V", "mqttv311", "-q", "1", "-t", topic, "-m", validTelemetry}, h.creds("a")...)...)
			if code == 0 {
				t.Errorf("v3.1.1 publish to %s: exit 0, output %q; want an error", topic, out)
			}
		}
		if got := seen.data(); len(got) != 0 {
			t.Fatalf("the hub received %q", got)
		}
		if n := h.counter("lockerhub_mqtt_acl_denied_total", "action", "publish"); n != 6 {
			t.Fatalf("acl denied publish = %v, want 6", n)
		}
	})

	t.Run("subscribe", func(t *testing.T) {
		for _, filter := range []string{"#", "lockers/+/cmd/#", "lockers/b/cmd/#", "lockers/+/telemetry", "$SYS/#", "lockers/a/telemetry"} {
			for _, version := range []string{"mqttv311", "5"} {
				_, out := h.mosquitto("mosquitto_sub", append([]string{"-V", version, "-t", filter, "-W", "2"}, h.creds("a")...)...)
				if !strings.Contains(out, "denied") {
					t.Errorf("subscribe %s (%s): output %q; want denied", filter, version, out)
				}
			}
		}
	})

	t.Run("own command topic", func(t *testing.T) {
		done := make(chan string, 1)
		go func() {
			_, out := h.mosquitto("mosquitto_sub", append([]string{"-q", "1", "-t", "lockers/a/cmd/#", "-C", "1", "-W", "10"}, h.creds("a")...)...)
			done <- out
		}()
		// Publish until the subscriber is in place: a command sent before would be missed.
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case out := <-done:
				if !strings.Contains(out, `{"hello":1}`) {
					t.Fatalf("mosquitto_sub printed %q", out)
				}
				return
			case <-tick.C:
				if err := h.Publish("lockers/a/cmd/request", []byte(`{"hello":1}`), false, 1); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
