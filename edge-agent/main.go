// Command edge-agent runs on one locker bank or refrigerated unit: it drives the hardware (a real
// driver or the simulator), keeps the unit's temperature, and talks to the lockerhub hub over
// MQTT. See configs/edge-agent.yaml for every setting.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/lockerhub/lockerhub/edge-agent/agent"
	"github.com/lockerhub/lockerhub/edge-agent/hardware"
	"github.com/lockerhub/lockerhub/edge-agent/simctl"
	"github.com/lockerhub/lockerhub/internal/cliconf"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Config is the edge-agent binary's configuration: the agent's own settings at the top level,
// plus the hardware driver and logging.
type Config struct {
	Agent    agent.Config      `mapstructure:",squash"`
	Hardware string            `mapstructure:"hardware"`
	Sim      SimConfig         `mapstructure:"sim"`
	Log      cliconf.LogConfig `mapstructure:"log"`
}

// SimConfig describes the simulated unit when hardware is "sim".
type SimConfig struct {
	Kind  string `mapstructure:"kind"`
	Doors int    `mapstructure:"doors"`
	Seed  int64  `mapstructure:"seed"`
	// Control is the loopback host:port of the simulator's control surface, the one
	// `lockerhub sim` drives (docs/simulator.md); empty: none.
	Control string `mapstructure:"control"`
}

// DefaultConfig returns the defaults documented in configs/edge-agent.yaml.
func DefaultConfig() Config {
	return Config{
		Agent:    agent.DefaultConfig(),
		Hardware: "sim",
		Sim:      SimConfig{Kind: string(hardware.KindLockerBank), Doors: 12, Seed: 1},
		Log:      cliconf.DefaultLog,
	}
}

// LoadConfig reads defaults, file and the EDGE_AGENT_* environment, and validates the result.
func LoadConfig(file string) (Config, error) {
	var c Config
	if err := cliconf.Load(&c, DefaultConfig(), file, "EDGE_AGENT"); err != nil {
		return Config{}, err
	}
	if err := c.Log.Validate(); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if c.Hardware != "sim" {
		return Config{}, fmt.Errorf("config: hardware: unknown driver %q: this build has sim", c.Hardware)
	}
	if err := c.Agent.Validate(); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "edge-agent:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("edge-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "configuration file (YAML); see configs/edge-agent.yaml")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Fprintln(stderr, "edge-agent", version)
		return nil
	}
	cfg, err := LoadConfig(*configFile)
	if err != nil {
		return err
	}
	log := cfg.Log.NewLogger(stderr)
	hw, err := hardware.NewSimulator(hardware.SimConfig{Kind: hardware.Kind(cfg.Sim.Kind), Doors: cfg.Sim.Doors, Seed: cfg.Sim.Seed})
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	var control net.Listener
	if cfg.Sim.Control != "" {
		if control, err = simctl.Listen(cfg.Sim.Control); err != nil {
			return fmt.Errorf("sim.control: %w", err)
		}
		defer control.Close()
	}
	a, err := agent.New(cfg.Agent, hw, agent.Options{Logger: log, Version: version})
	if err != nil {
		return err
	}
	log.Info("edge-agent running", "device", cfg.Agent.DeviceID, "hubs", cfg.Agent.Hubs, "kind", cfg.Sim.Kind, "doors", cfg.Sim.Doors, "version", version)
	if control == nil {
		return a.Run(ctx)
	}
	log.Info("sim control surface listening", "addr", control.Addr().String())
	ctl := simctl.NewFleet([]*simctl.Unit{{ID: cfg.Agent.DeviceID, HW: hw, Agent: a}}, false, log)
	done := make(chan struct{})
	go func() {
		defer close(done)
		simctl.Serve(ctx, control, simctl.NewHandler(ctl), log)
	}()
	err = a.Run(ctx)
	<-done
	return err
}
