// Command lockerhub is the fleet hub for smart package lockers: `lockerhub serve` runs the
// embedded MQTT broker and the HTTP endpoints; the other subcommands manage the hub's data.
// Every subcommand takes --config and the same LOCKERHUB_* environment as serve.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lockerhub:", err)
	}
	os.Exit(exitCode(err))
}

// cli carries what every subcommand shares: where to write, and how to load the configuration.
type cli struct {
	stdout, stderr io.Writer
	configFile     string
	createStore    bool // the command may create the store in data_dir (see checkStore)
}

func (c *cli) config() (Config, error) { return LoadConfig(c.configFile) }

// hubConfig is the configuration of a hub: the main file and the alerts file it names.
func (c *cli) hubConfig() (Config, AlertsConfig, error) {
	cfg, err := c.config()
	if err != nil {
		return Config{}, AlertsConfig{}, err
	}
	acfg, err := LoadAlertsConfig(cfg.AlertsFile)
	return cfg, acfg, err
}

// Command groups of `lockerhub --help`.
const (
	groupRegistry   = "registry"
	groupOperations = "operations"
	groupHub        = "hub"
)

// addToGroup adds cmds to root under the group id.
func addToGroup(root *cobra.Command, id string, cmds ...*cobra.Command) {
	for _, cmd := range cmds {
		cmd.GroupID = id
		root.AddCommand(cmd)
	}
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	c := &cli{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "lockerhub",
		Short: "Fleet hub for smart package lockers and refrigerated locker units",
		// Errors are printed once, by main, without the usage text that would bury them.
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	// The exit codes close the root's help only: each command's help is about its flags.
	root.SetUsageTemplate(root.UsageTemplate() + "{{if not .HasParent}}" + exitCodesHelp + "{{end}}")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&c.configFile, "config", "", "configuration file (YAML); see configs/lockerhub.yaml")
	// Grouped by who reaches for them: the registry, day-to-day operations on a running hub,
	// and running or moving the hub itself.
	root.AddGroup(
		&cobra.Group{ID: groupRegistry, Title: "Registry: units and API tokens"},
		&cobra.Group{ID: groupOperations, Title: "Operations: doors, alerts, fleet, audit, reports, simulator, parcels"},
		&cobra.Group{ID: groupHub, Title: "Hub: run, demo, simulate, move its store"},
	)
	addToGroup(root, groupRegistry, c.deviceCmd(), c.tokenCmd())
	addToGroup(root, groupOperations, c.doorCmd("unlock"), c.doorCmd("lock"), c.alertsCmd(), c.fleetCmd(), c.tailCmd(),
		c.auditCmd(), c.reportCmd(), c.simCmd(), c.deliverCmd(), c.parcelsCmd())
	addToGroup(root, groupHub, c.serveCmd(), c.demoCmd(), c.simulateCmd(), c.storeCmd())
	markRunErrors(root)
	return root
}
