// Package testbed starts and measures what the benchmark and resilience runs need: hub and
// Mosquitto processes on free loopback ports, provisioned units, per-process CPU and memory, the
// hub's own metrics, and InfluxQL counts in the development InfluxDB.
package testbed

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FreePort asks the kernel for a free port on 127.0.0.1. The hub is started with fixed ports
// rather than port 0 because at log level warn it does not log the addresses it picked.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Server is a broker process started for one scenario: the hub or Mosquitto.
type Server struct {
	Name   string
	Cmd    *exec.Cmd
	MQTT   string        // host:port
	HTTP   string        // host:port of the hub's HTTP server; empty for Mosquitto
	Env    []string      // the hub's environment, for its CLI on the same data directory; nil for Mosquitto
	Exited chan struct{} // closed once the process has exited
	log    *os.File
}

// Start runs cmd with its output in logPath and waits until it accepts MQTT connections on
// mqtt (and, for the hub, answers /readyz). A hub of a cluster serves no MQTT: with mqtt
// empty only /readyz is waited for.
func Start(ctx context.Context, name string, cmd *exec.Cmd, logPath, mqtt, httpAddr string) (*Server, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C of the bench stops it through us, not twice
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &Server{Name: name, Cmd: cmd, MQTT: mqtt, HTTP: httpAddr, Exited: make(chan struct{}), log: f}
	go func() { cmd.Wait(); close(s.Exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := false
		if mqtt == "" {
			ready = HTTPOK("http://" + httpAddr + "/readyz")
		} else if c, err := net.DialTimeout("tcp", mqtt, time.Second); err == nil {
			c.Close()
			ready = httpAddr == "" || HTTPOK("http://"+httpAddr+"/readyz")
		}
		if ready {
			return s, nil
		}
		select {
		case <-s.Exited:
			return nil, fmt.Errorf("%s exited before serving; see %s", name, logPath)
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("%s not serving on %s within 30 s; see %s", name, cmp.Or(mqtt, httpAddr), logPath)
		}
	}
}

// HTTPOK reports whether a GET of url answers 200 within 2 s.
func HTTPOK(url string) bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Stop sends SIGTERM and, after 15 s, SIGKILL.
func (s *Server) Stop() {
	s.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.Exited:
	case <-time.After(15 * time.Second):
		s.Cmd.Process.Kill()
		<-s.Exited
	}
	s.log.Close()
}

// HubEnv is the environment of a hub (and its CLI) on dataDir, writing to database db.
func HubEnv(dataDir, influxURL, db, mqtt, httpAddr string) []string {
	return append(os.Environ(),
		"LOCKERHUB_DATA_DIR="+dataDir,
		"LOCKERHUB_MQTT_ADDR="+mqtt,
		"LOCKERHUB_HTTP_ADDR="+httpAddr,
		"LOCKERHUB_LOG_LEVEL=warn",
		"LOCKERHUB_LOG_FORMAT=json",
		"LOCKERHUB_INFLUX_URL="+influxURL,
		"LOCKERHUB_INFLUX_BUCKET="+db+"/autogen",
	)
}

// StartHub provisions n units (see Provision; none when n is 0) in a fresh data directory, then starts
// `lockerhub serve` on it, with extraEnv (KEY=value) added to its environment.
func StartHub(ctx context.Context, bin, dir, influxURL, db string, n int, extraEnv ...string) (*Server, []Unit, error) {
	return StartHubUnder(ctx, nil, bin, dir, influxURL, db, n, extraEnv...)
}

// StartHubUnder is StartHub with `lockerhub serve` run by wrapper, a command line that runs
// the command after it, such as {"prlimit", "--nofile=1500:1500", "--"}: a hub started with
// limits of its own. The wrapper must exec the hub (Cmd's pid is then the hub's); the CLI that
// provisions the units runs without it.
func StartHubUnder(ctx context.Context, wrapper []string, bin, dir, influxURL, db string, n int, extraEnv ...string) (*Server, []Unit, error) {
	ports := [2]int{}
	for i := range ports {
		p, err := FreePort()
		if err != nil {
			return nil, nil, err
		}
		ports[i] = p
	}
	mqtt, httpAddr := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	dataDir := filepath.Join(dir, "data")
	env := append(HubEnv(dataDir, influxURL, db, mqtt, httpAddr), extraEnv...)
	var units []Unit
	if n > 0 { // a run whose units register themselves (lockerhub simulate --provision) asks for none
		var err error
		if units, err = Provision(ctx, bin, env, n); err != nil {
			return nil, nil, err
		}
	}
	argv := slices.Concat(wrapper, []string{bin, "serve"})
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	s, err := Start(ctx, "lockerhub", cmd, filepath.Join(dir, "lockerhub.log"), mqtt, httpAddr)
	if err != nil {
		return nil, nil, err
	}
	s.Env = env
	return s, units, nil
}

// CreateToken makes an API token with `lockerhub token create` on the hub's data directory
// and returns its secret.
func CreateToken(ctx context.Context, bin string, env []string, name, role string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, "token", "create", "--name", name, "--role", role, "--json")
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("token create %s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	var t struct{ Token string }
	if err := json.Unmarshal(out, &t); err != nil || t.Token == "" {
		return "", fmt.Errorf("token create %s printed %q", name, out)
	}
	return t.Token, nil
}

// Provision registers n 16-door locker banks, bench-00001 on, spread over 10 sites, with one
// `lockerhub device import` (10,000 units take a few seconds, where a `device add` process per
// unit took minutes), and returns their secrets in order.
func Provision(ctx context.Context, bin string, env []string, n int) ([]Unit, error) {
	var rows strings.Builder
	rows.WriteString("id,kind,site,doors\n")
	for i := range n {
		fmt.Fprintf(&rows, "bench-%05d,locker-bank,bench-site-%d,%d\n", i+1, i%10+1, DoorsPerUnit)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "device", "import", "--file", "-", "--json")
	cmd.Env, cmd.Stdin = env, strings.NewReader(rows.String())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("device import: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	units := make([]Unit, 0, n)
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var u struct{ ID, Secret string }
		if err := dec.Decode(&u); err != nil {
			return nil, fmt.Errorf("device import printed: %w", err)
		}
		units = append(units, Unit{ID: u.ID, Secret: u.Secret})
	}
	if len(units) != n {
		return nil, fmt.Errorf("device import printed %d units, want %d", len(units), n)
	}
	return units, nil
}

// StartMosquitto runs Debian's Mosquitto on a free loopback port: anonymous, no persistence,
// no logging, so that it measures a plain C broker's acceptance of QoS 1 publishes.
func StartMosquitto(ctx context.Context, bin, dir string) (*Server, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	text := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n", port)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "-c", conf)
	return Start(ctx, "mosquitto", cmd, filepath.Join(dir, "mosquitto.log"), fmt.Sprintf("127.0.0.1:%d", port), "")
}

// CPUSeconds is the user and system CPU time process pid has used so far (/proc/PID/stat).
func CPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces; count from after it.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100, nil // USER_HZ is 100 on Linux
}

// PeakRSS is the process's peak resident memory in bytes (VmHWM in /proc/PID/status).
func PeakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// CPUMeter measures the CPU that a set of processes use during a phase.
type CPUMeter struct {
	read  map[string]func() (float64, error)
	start map[string]float64
	at    time.Time
}

func NewCPUMeter(pids map[string]int) *CPUMeter {
	read := map[string]func() (float64, error){}
	for name, pid := range pids {
		read[name] = func() (float64, error) { return CPUSeconds(pid) }
	}
	return NewCPUMeterOf(read)
}

// NewCPUMeterOf measures what each function reads, CPU seconds used so far: for a server of
// several processes, such as PostgreSQL (see TreeCPUSeconds).
func NewCPUMeterOf(read map[string]func() (float64, error)) *CPUMeter {
	m := &CPUMeter{read: read, start: map[string]float64{}, at: time.Now()}
	for name, f := range read {
		m.start[name], _ = f()
	}
	return m
}

// Usage returns, per process, the cores it used on average since NewCPUMeter (1.0 = one full
// core).
func (m *CPUMeter) Usage() map[string]float64 {
	wall := time.Since(m.at).Seconds()
	out := map[string]float64{}
	for name, s := range m.Seconds() {
		if wall > 0 {
			out[name] = Round(s/wall, 2)
		}
	}
	return out
}

// Seconds returns, per process, the CPU seconds it used since NewCPUMeter.
func (m *CPUMeter) Seconds() map[string]float64 {
	out := map[string]float64{}
	for name, f := range m.read {
		if now, err := f(); err == nil {
			out[name] = now - m.start[name]
		}
	}
	return out
}

// HubMetricNames are the hub's Prometheus series worth keeping with a result: what the
// pipeline counted, how long its InfluxDB writes took (their sum against the drain time says
// whether InfluxDB is the bottleneck) and how many writes carried the PUBACKs.
var HubMetricNames = []string{
	"lockerhub_telemetry_messages_ingested_total",
	"lockerhub_telemetry_points_written_total",
	"lockerhub_telemetry_write_duration_seconds_sum",
	"lockerhub_telemetry_write_duration_seconds_count",
	"lockerhub_telemetry_write_retries_total",
	"lockerhub_telemetry_duplicates_total",
	"lockerhub_telemetry_sequence_gaps_total",
	"lockerhub_telemetry_invalid_total",
	"lockerhub_telemetry_backpressure_refusals_total",
	"lockerhub_mqtt_messages_rejected_total",
	"lockerhub_mqtt_acks_total",
	"lockerhub_mqtt_ack_writes_total",
}

// HubMetrics scrapes the hub's /metrics and returns HubMetricNames, each summed over its labels.
func HubMetrics(httpAddr string) (map[string]float64, error) {
	return Metrics(httpAddr, HubMetricNames...)
}

// Unit is one simulated unit: its MQTT identity and, on the hub, its secret.
type Unit struct {
	ID     string
	Secret string // empty against Mosquitto, which allows anonymous clients
}

// DoorsPerUnit is the size of the simulated locker bank. With the ambient and enclosure
// temperatures, the heater and the unit point, a snapshot becomes DoorsPerUnit+4 points in
// InfluxDB (see TelemetryLines in telemetry/influx/lines.go).
const DoorsPerUnit = 16

// Round rounds v to digits decimal places, for reports.
func Round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
