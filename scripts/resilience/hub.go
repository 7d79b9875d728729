package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

// hub is one case's lockerhub process, which a case may kill and start again on the same data
// directory and ports.
type hub struct {
	*testbed.Server
	bin, dir string
	starts   int
}

// startHub provisions units and starts a fresh hub in dir, run by wrapper if any (see
// testbed.StartHubUnder).
func startHub(ctx context.Context, wrapper []string, bin, dir, influxURL, db string, units int) (*hub, []testbed.Unit, error) {
	s, us, err := testbed.StartHubUnder(ctx, wrapper, bin, dir, influxURL, db, units)
	if err != nil {
		return nil, nil, err
	}
	return &hub{Server: s, bin: bin, dir: dir, starts: 1}, us, nil
}

// pid is the running hub process's id.
func (h *hub) pid() int { return h.Cmd.Process.Pid }

// alive reports whether the hub process is still running.
func (h *hub) alive() bool {
	select {
	case <-h.Exited:
		return false
	default:
		return true
	}
}

// kill stops the hub with SIGKILL: no shutdown code runs, as in a crash or an OOM kill.
func (h *hub) kill() {
	h.Cmd.Process.Signal(syscall.SIGKILL)
	h.Stop() // reaps the process and closes its log
}

// restart starts the hub again with the same command line (a wrapper included) and
// environment: data directory, ports, InfluxDB.
func (h *hub) restart(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, h.Cmd.Path, h.Cmd.Args[1:]...)
	cmd.Env = h.Cmd.Env
	h.starts++
	s, err := testbed.Start(ctx, "lockerhub", cmd, h.logPath(), h.MQTT, h.HTTP)
	if err != nil {
		return err
	}
	h.Server = s
	return nil
}

// logPath is the log of the running hub process (see testbed.StartHubUnder and restart).
func (h *hub) logPath() string {
	if h.starts == 1 {
		return filepath.Join(h.dir, "lockerhub.log")
	}
	return filepath.Join(h.dir, fmt.Sprintf("lockerhub-%d.log", h.starts))
}

// metrics scrapes the hub's own series worth reporting with a case, plus names.
func (h *hub) metrics(names ...string) (map[string]float64, error) {
	return testbed.Metrics(h.HTTP, append(names, testbed.HubMetricNames...)...)
}

// Series the cases watch besides testbed.HubMetricNames.
const (
	metricSpoolMessages = "lockerhub_telemetry_spool_messages"
	metricGoroutines    = "go_goroutines"
	metricOpenFDs       = "process_open_fds"
	metricAuthFailures  = "lockerhub_mqtt_auth_failures_total" // by reason
	// The broker's admission (broker/listen.go): connections reset at accept by reason, those
	// held, those of them not yet authenticated, and failed accepts by listener.
	metricRefused       = "lockerhub_mqtt_connections_refused_total"
	metricConnections   = "lockerhub_mqtt_connections"
	metricPending       = "lockerhub_mqtt_connections_pending"
	metricAcceptErrors  = "lockerhub_mqtt_accept_errors_total"
	metricDevicesOnline = "lockerhub_devices_connected"
)

// scrape reads the hub's /metrics once, to read several series or one per label.
func (h *hub) scrape() (testbed.Exposition, error) { return testbed.Scrape(hubClient, h.HTTP) }

// hubClient is the suite's HTTP client for the hub's metrics and readiness.
var hubClient = &http.Client{Timeout: 10 * time.Second}

// spoolBacklog is the number of messages in the hub's spool not yet written to InfluxDB.
func (h *hub) spoolBacklog() (float64, error) {
	m, err := testbed.Metrics(h.HTTP, metricSpoolMessages)
	if err != nil {
		return 0, err
	}
	v, ok := m[metricSpoolMessages]
	if !ok {
		return 0, fmt.Errorf("the hub exports no %s", metricSpoolMessages)
	}
	return v, nil
}

// waitDrained waits until the spool has been written to InfluxDB: a backlog of zero seen on
// two scrapes in a row, since one zero may be a batch taken out and not yet written.
func (h *hub) waitDrained(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	start, zeros := time.Now(), 0
	var last float64
	err := poll(ctx, timeout, 500*time.Millisecond, func() bool {
		v, err := h.spoolBacklog()
		if err != nil || v > 0 {
			zeros, last = 0, v
			return false
		}
		zeros++
		return zeros >= 2
	})
	if err != nil {
		return time.Since(start), fmt.Errorf("spool not drained (%v messages left): %w", last, err)
	}
	return time.Since(start), nil
}

// operatorToken creates an API token with the operator role on the hub's data directory.
func (h *hub) operatorToken(ctx context.Context) (string, error) {
	out, err := h.cli(ctx, "token", "create", "--name", "resilience-"+strconv.Itoa(os.Getpid()), "--role", "operator", "--json")
	if err != nil {
		return "", err
	}
	var t struct{ Token string }
	if err := json.Unmarshal(out, &t); err != nil || t.Token == "" {
		return "", fmt.Errorf("token create printed %q", out)
	}
	return t.Token, nil
}

// cli runs the lockerhub CLI on the hub's data directory, as an operator would next to the
// running hub, and returns what it printed.
func (h *hub) cli(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, h.bin, args...)
	cmd.Env = h.Cmd.Env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("lockerhub %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
