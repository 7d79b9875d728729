package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// freePort asks the kernel for a free port on 127.0.0.1. The hub is started with fixed ports
// rather than port 0 because at log level warn it does not log the addresses it picked.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// server is a broker process started for one scenario: the hub or Mosquitto.
type server struct {
	name   string
	cmd    *exec.Cmd
	mqtt   string // host:port
	http   string // host:port of the hub's HTTP server; empty for Mosquitto
	exited chan struct{}
	log    *os.File
}

// start runs cmd with its output in logPath and waits until it accepts MQTT connections on
// mqtt (and, for the hub, answers /readyz).
func start(ctx context.Context, name string, cmd *exec.Cmd, logPath, mqtt, httpAddr string) (*server, error) {
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
	s := &server{name: name, cmd: cmd, mqtt: mqtt, http: httpAddr, exited: make(chan struct{}), log: f}
	go func() { cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := false
		if c, err := net.DialTimeout("tcp", mqtt, time.Second); err == nil {
			c.Close()
			ready = httpAddr == "" || httpOK("http://"+httpAddr+"/readyz")
		}
		if ready {
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("%s exited before serving; see %s", name, logPath)
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s not serving on %s within 30 s; see %s", name, mqtt, logPath)
		}
	}
}

func httpOK(url string) bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stop sends SIGTERM and, after 15 s, SIGKILL.
func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	s.log.Close()
}

// hubEnv is the environment of a hub (and its CLI) on dataDir, writing to database db.
func hubEnv(dataDir, influxURL, db, mqtt, httpAddr string) []string {
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

// startHub provisions n units with `lockerhub device add` in a fresh data directory, then
// starts `lockerhub serve` on it.
func startHub(ctx context.Context, bin, dir, influxURL, db string, n int) (*server, []unit, error) {
	ports := [2]int{}
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, nil, err
		}
		ports[i] = p
	}
	mqtt, httpAddr := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	dataDir := filepath.Join(dir, "data")
	env := hubEnv(dataDir, influxURL, db, mqtt, httpAddr)
	units, err := provision(ctx, bin, env, n)
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "serve")
	cmd.Env = env
	s, err := start(ctx, "lockerhub", cmd, filepath.Join(dir, "lockerhub.log"), mqtt, httpAddr)
	return s, units, err
}

// provision registers n 16-door locker banks, four `device add` processes at a time (each
// hashes its secret with argon2id; SQLite serialises the writes). The first one runs alone:
// it creates the database, and concurrent first opens race on the schema (SQLITE_BUSY).
func provision(ctx context.Context, bin string, env []string, n int) ([]unit, error) {
	units := make([]unit, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range units {
		if i == 1 {
			wg.Wait()
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			id := fmt.Sprintf("bench-%05d", i+1)
			cmd := exec.CommandContext(ctx, bin, "device", "add", "--id", id, "--kind", "locker-bank",
				"--site", fmt.Sprintf("bench-site-%d", i%10+1), "--doors", strconv.Itoa(doorsPerUnit), "--json")
			cmd.Env = env
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				errs[i] = fmt.Errorf("device add %s: %w: %s", id, err, strings.TrimSpace(stderr.String()))
				return
			}
			var added struct{ ID, Secret string }
			if err := json.Unmarshal(out, &added); err != nil || added.Secret == "" {
				errs[i] = fmt.Errorf("device add %s printed %q", id, out)
				return
			}
			units[i] = unit{ID: added.ID, Secret: added.Secret}
		})
	}
	wg.Wait()
	return units, errors.Join(errs...)
}

// startMosquitto runs Debian's Mosquitto on a free loopback port: anonymous, no persistence,
// no logging, so that it measures a plain C broker's acceptance of QoS 1 publishes.
func startMosquitto(ctx context.Context, bin, dir string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	text := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n", port)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "-c", conf)
	return start(ctx, "mosquitto", cmd, filepath.Join(dir, "mosquitto.log"), fmt.Sprintf("127.0.0.1:%d", port), "")
}

// cpuSeconds is the user and system CPU time process pid has used so far (/proc/PID/stat).
func cpuSeconds(pid int) (float64, error) {
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

// peakRSS is the process's peak resident memory in bytes (VmHWM in /proc/PID/status).
func peakRSS(pid int) int64 {
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

// cpuMeter measures the CPU that a set of processes use during a phase.
type cpuMeter struct {
	pids  map[string]int
	start map[string]float64
	at    time.Time
}

func newCPUMeter(pids map[string]int) *cpuMeter {
	m := &cpuMeter{pids: pids, start: map[string]float64{}, at: time.Now()}
	for name, pid := range pids {
		m.start[name], _ = cpuSeconds(pid)
	}
	return m
}

// usage returns, per process, the cores it used on average since newCPUMeter (1.0 = one full
// core).
func (m *cpuMeter) usage() map[string]float64 {
	wall := time.Since(m.at).Seconds()
	out := map[string]float64{}
	for name, pid := range m.pids {
		if now, err := cpuSeconds(pid); err == nil && wall > 0 {
			out[name] = round((now-m.start[name])/wall, 2)
		}
	}
	return out
}

// hubMetricNames are the hub's Prometheus series worth keeping with a result: what the
// pipeline counted and how long its InfluxDB writes took (the shipper writes one batch at a
// time, so their sum against the drain time says whether InfluxDB is the bottleneck).
var hubMetricNames = []string{
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
}

// hubMetrics scrapes the hub's /metrics and returns hubMetricNames, each summed over its labels.
func hubMetrics(httpAddr string) (map[string]float64, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for line := range strings.Lines(string(body)) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		name, _, _ = strings.Cut(name, "{")
		if slices.Contains(hubMetricNames, name) {
			v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			if err == nil {
				out[name] += v
			}
		}
	}
	return out, nil
}
