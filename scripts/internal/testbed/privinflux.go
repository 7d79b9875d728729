package testbed

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
)

// PrivateInflux is a run's own InfluxDB, run by scripts/influxdb.sh in its own data directory
// and on its own port: a suite may stop it (the resilience suite's InfluxDB outage), and other
// engineers' tests use the shared one on 8086 at the same time.
type PrivateInflux struct {
	script    string // scripts/influxdb.sh
	dir       string
	port, rpc int
	out       io.Writer // the script's progress lines
}

// NewPrivateInflux picks free ports for an InfluxDB in dir run by script; it starts nothing.
func NewPrivateInflux(script, dir string, out io.Writer) (*PrivateInflux, error) {
	p := &PrivateInflux{script: script, dir: dir, out: out}
	for _, port := range []*int{&p.port, &p.rpc} {
		var err error
		if *port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// URL is the instance's HTTP address.
func (p *PrivateInflux) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", p.port) }

// Run runs `scripts/influxdb.sh verb` (start, stop, reset, ...) for this instance.
func (p *PrivateInflux) Run(ctx context.Context, verb string) error {
	cmd := exec.CommandContext(ctx, p.script, verb)
	cmd.Env = append(os.Environ(),
		"LOCKERHUB_INFLUX_DIR="+p.dir,
		"LOCKERHUB_INFLUX_PORT="+strconv.Itoa(p.port),
		"LOCKERHUB_INFLUX_RPC_PORT="+strconv.Itoa(p.rpc))
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", p.script, verb, err)
	}
	return nil
}

// Start starts the instance and waits until it answers.
func (p *PrivateInflux) Start(ctx context.Context) error { return p.Run(ctx, "start") }

// Stop stops influxd even when ctx is already cancelled (Ctrl-C): it was started in its own
// session by the script, so nothing else will.
func (p *PrivateInflux) Stop() error { return p.Run(context.Background(), "stop") }
