package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/simctl"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/http/hubclient"
	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

// bench is one part's hub, its API tokens, the simulator running against it and its control
// surface.
type bench struct {
	hub   *testbed.Server
	api   *hubAPI // admin token: reads alerts, commands and live state, resolves, unlocks
	sim   *simProc
	ctl   *simctl.Client
	db    *testbed.Influx
	units []simctl.UnitStatus
}

// simArgs are the simulator's own flags for a part; startBench adds the hub, the control
// surface, the data and the API.
type simArgs struct {
	units, sites int
	fridgeShare  float64
	people       bool
	deliveryRate float64
}

// startBench starts a fresh hub in dir with the rules of alertsFile (empty: the built-in
// defaults) and extraEnv, then `lockerhub simulate` against it with sa, and waits until every
// unit is online.
func (t *trial) startBench(ctx context.Context, name, alertsFile string, sa simArgs, extraEnv ...string) (*bench, error) {
	dir, err := filepath.Abs(filepath.Join(t.o.out, name))
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	dbName := "field_" + name + "_" + t.stamp
	b := &bench{db: testbed.NewInflux(t.influx.URL(), dbName)}
	if _, err := b.db.Query("CREATE DATABASE " + dbName); err != nil {
		return nil, err
	}
	if alertsFile != "" {
		extraEnv = append(extraEnv, "LOCKERHUB_ALERTS_FILE="+alertsFile)
	}
	t.logf("%s: starting the hub", name)
	if b.hub, _, err = testbed.StartHub(ctx, t.o.hubBin, dir, t.influx.URL(), dbName, 0, extraEnv...); err != nil {
		return nil, err
	}
	admin, err := testbed.CreateToken(ctx, t.o.hubBin, b.hub.Env, "field-admin", "admin")
	if err == nil {
		b.api = &hubAPI{&hubclient.Client{URL: "http://" + b.hub.HTTP, Token: admin, HTTP: &http.Client{Timeout: 30 * time.Second}}}
	}
	var carrier string
	if err == nil {
		carrier, err = testbed.CreateToken(ctx, t.o.hubBin, b.hub.Env, "field-carriers", "carrier")
	}
	if err != nil {
		b.stop()
		return nil, err
	}
	args := []string{"simulate", "--units", strconv.Itoa(sa.units), "--sites", strconv.Itoa(sa.sites),
		"--fridge-share", strconv.FormatFloat(sa.fridgeShare, 'g', -1, 64), "--hub", "tcp://" + b.hub.MQTT, "--provision",
		"--dir", filepath.Join(dir, "sim"), "--interval", t.o.interval.String(), "--fault-rate", "0",
		"--seed", strconv.FormatUint(t.o.seed, 10), "--control", "127.0.0.1:0",
		// No offline pickups: their outages are faults, and this fleet is to have none.
		"--people=" + strconv.FormatBool(sa.people), "--delivery-rate", strconv.FormatFloat(sa.deliveryRate, 'g', -1, 64),
		"--offline-share", "0", "--api", "http://" + b.hub.HTTP, "--token", carrier}
	t.logf("%s: starting %d simulated units", name, sa.units)
	if b.sim, err = startSim(ctx, t.o.hubBin, b.hub.Env, args, filepath.Join(dir, "simulate.log")); err != nil {
		b.stop()
		return nil, err
	}
	b.ctl = &simctl.Client{Addr: b.sim.control, HTTP: &http.Client{Timeout: 30 * time.Second}}
	if err := b.waitOnline(ctx, sa.units, 2*time.Minute); err != nil {
		b.stop()
		return nil, err
	}
	t.logf("%s: %d units online (control surface %s)", name, len(b.units), b.sim.control)
	return b, nil
}

// waitOnline waits until the simulator reports n units online and the hub has every one of
// them connected.
func (b *bench) waitOnline(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		l, err := b.ctl.List(ctx)
		online := 0
		if err == nil {
			for _, u := range l.Units {
				if u.Online {
					online++
				}
			}
		}
		if err == nil && online == n {
			b.units = l.Units
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d units online after %s (%v)", online, n, timeout, err)
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

// stop stops the simulator, then the hub.
func (b *bench) stop() {
	if b.sim != nil {
		b.sim.stop()
	}
	if b.hub != nil {
		b.hub.Stop()
	}
}

// simProc is a running `lockerhub simulate`.
type simProc struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	control string // host:port of its control surface
	log     *os.File
}

// controlLine is what simulate prints once its control surface listens.
var controlLine = regexp.MustCompile(`control surface on (\S+) `)

// startSim starts the simulator with its output in logPath and waits until it names its
// control surface.
func startSim(ctx context.Context, bin string, env, args []string, logPath string) (*simProc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = f, io.MultiWriter(f, pw)
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start simulate: %w", err)
	}
	p := &simProc{cmd: cmd, exited: make(chan struct{}), log: f}
	go func() { cmd.Wait(); pw.Close(); close(p.exited) }()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			if m := controlLine.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m[1]
				sent = true
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case p.control = <-found:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("simulate exited before serving its control surface; see %s", logPath)
	case <-time.After(2 * time.Minute):
	case <-ctx.Done():
	}
	p.stop()
	return nil, fmt.Errorf("simulate named no control surface within 2 min; see %s", logPath)
}

// stop sends SIGTERM and, after 15 s, SIGKILL.
func (p *simProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
	p.log.Close()
}

// hubAPI is the hub's API client with the questions the trial asks it.
type hubAPI struct{ *hubclient.Client }

// alerts returns the alerts of device (every device when empty), every state, newest first.
func (a *hubAPI) alerts(ctx context.Context, device string) ([]fleet.Alert, error) {
	q := url.Values{"limit": {"1000"}}
	if device != "" {
		q.Set("device", device)
	}
	return a.Alerts(ctx, q)
}

// live returns the hub's live state of device.
func (a *hubAPI) live(ctx context.Context, device string) (*fleet.LiveState, error) {
	d, _, err := a.Device(ctx, device)
	if err != nil {
		return nil, err
	}
	return d.Live, nil
}

// unlock unlocks a door as a person and returns the command once the unit answered.
func (a *hubAPI) unlock(ctx context.Context, device string, door int, reason string) (*fleet.Command, error) {
	res, err := a.Door(ctx, hubclient.DoorRequest{Verb: "unlock", Device: device, Door: door, Reason: reason})
	if err != nil {
		return nil, err
	}
	return res.Command, nil
}

// resolve resolves an alert as a person.
func (a *hubAPI) resolve(ctx context.Context, id int64, note string) error {
	_, _, err := a.AlertAction(ctx, id, "resolve", note)
	return err
}

// machineInfo is where a run was measured.
type machineInfo struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	Memory string `json:"memory"`
	Go     string `json:"go"`
	OS     string `json:"os"`
}

func machine() machineInfo {
	m := machineInfo{Cores: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
				m.Memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	return m
}
