package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/lockerhub/lockerhub/broker"
	"github.com/lockerhub/lockerhub/edge-agent/simctl/panel"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/alerts"
	lhhttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/fleet/parcels"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// demoOptions are the demo command's flags.
type demoOptions struct {
	dataDir            string
	units, sites       int
	faultRate          float64
	interval           time.Duration
	httpAddr, mqttAddr string
	sim                simOptions // the control surface and people flags, shared with simulate
}

// demoCmd is `lockerhub demo`: the hub and a simulated fleet in one process, for someone who
// wants to see lockerhub work before setting anything up.
func (c *cli) demoCmd() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo [--data-dir DIR] [--units N] [--sites S] [--fault-rate R] [--interval D] [--http ADDR] [--mqtt ADDR] [--control ADDR]",
		Short: "Run a hub with a simulated fleet in one command, and print how to look at it",
		Long: `demo runs the hub (embedded MQTT broker, SQLite, the API and the dashboard) together with a
simulated fleet of locker banks and fridges (some of them freezers, labelled class=freezer), each
unit running the real edge agent code. Faults (doors forced or left ajar, jammed locks, failing
compressors and heaters, dead or stuck sensors, lost network) start at random and clear after a
few minutes, so alerts come and go (the health rules wait a fifth of their usual durations,
unless alerts_file names rules). Simulated carriers deliver parcels through the hub's API with a
carrier token, and residents collect them with their codes at the units' keypads: some mistype
the code first, some come after it expired, some never come (their parcels go overdue), and
some find the unit offline, where its agent checks the code alone. Codes live 5 minutes and
parcels are overdue after 3 (unless parcels.code_ttl or alerts_file say otherwise), so every
outcome shows within minutes. It prints the dashboard's URL, an operator token and commands to
try, and runs until Ctrl-C.

"lockerhub sim" drives the fleet on demand through the control surface (--control, loopback
only): faults on and off, a site's outside temperature, a unit's network, the people.

The hub's data lives in a temporary directory removed at exit, or in --data-dir, which is kept:
a second run with the same --data-dir reuses its fleet and their secrets. Telemetry goes to
InfluxDB at influx.url (scripts/influxdb.sh start runs one); without it the demo runs on and the
history is spooled until InfluxDB answers. Everything else comes from --config and LOCKERHUB_*
as for serve; --http and --mqtt override http.addr and mqtt.addr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.units < 1 || o.sites < 1 || o.faultRate < 0 {
				return errors.New("--units and --sites must be >= 1, --fault-rate >= 0")
			}
			if err := o.sim.checkPeople(); err != nil {
				return err
			}
			o.sim.controlSet = cmd.Flags().Changed("control")
			return c.demo(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", "", "keep the hub's data and the fleet here (default: a temporary directory, removed at exit)")
	f.IntVar(&o.units, "units", 24, "number of simulated units")
	f.IntVar(&o.sites, "sites", 3, "number of sites the units are spread over")
	f.Float64Var(&o.faultRate, "fault-rate", demoFaultRate.PerUnitHour, "random faults per unit and hour (0: none)")
	f.DurationVar(&o.interval, "interval", 5*time.Second, "telemetry interval of every unit")
	f.StringVar(&o.httpAddr, "http", "", "HTTP address of the API and dashboard (default http.addr, :8080)")
	f.StringVar(&o.mqttAddr, "mqtt", "", "MQTT address of the broker (default mqtt.addr, :1883)")
	o.sim.controlFlags(f, true)
	return cmd
}

// demoSpeedup shortens the default rules' durations in the demo: a simulated fault lasts 1 to
// 10 minutes, and with the real durations (offline 5 minutes, ajar 10) most would clear before
// anything showed. An alerts file given in the configuration is taken as it is.
const demoSpeedup = 5

// The demo's parcel clock: a code lives demoCodeTTL rather than a week, and a parcel is overdue
// after demoOverdue rather than days, so that a demo of a few minutes shows expired codes and
// overdue parcels. A resident comes a minute after the delivery on average (--pickup-wait), so
// most parcels leave well before either. demoDeliveryRate, per unit and hour, brings the 24
// units of the demo 6 parcels a minute: each resident's story (a typo, late, never, offline)
// shows within a few minutes, and the parcels left behind take hours to fill the compartments.
const (
	demoDeliveryRate   = 15
	demoCodeTTL        = 5 * time.Minute
	demoOverdue        = 3 * time.Minute
	demoFreezerOverdue = 2 * time.Minute
)

func demoRules(cfg alerts.Config) alerts.Config {
	rules := slices.Clone(cfg.Rules)
	for i := range rules {
		rules[i].For /= demoSpeedup
		rules[i].ClearFor /= demoSpeedup
		switch rules[i].Kind {
		case alerts.KindParcelOverdue:
			rules[i].After = demoOverdue
		case alerts.KindPerishableOverdue:
			rules[i].Fridge, rules[i].Freezer = demoOverdue, demoFreezerOverdue
		}
	}
	cfg.Rules = rules
	return cfg
}

func (c *cli) demo(ctx context.Context, o demoOptions) (err error) {
	cfg, acfg, err := c.hubConfig()
	if err != nil {
		return err
	}
	if cfg.AlertsFile == "" {
		acfg.Config = demoRules(acfg.Config)
	}
	if cfg.Parcels.CodeTTL == parcels.DefaultCodeTTL {
		cfg.Parcels.CodeTTL = demoCodeTTL
	}
	// The configured data_dir is the real hub's: a demo fleet must not land in it unasked.
	cfg.DataDir = o.dataDir
	if cfg.DataDir == "" {
		if cfg.DataDir, err = os.MkdirTemp("", "lockerhub-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(cfg.DataDir) // deferred first, so it runs after the hub is closed
	}
	cfg.HTTP.Addr = cmp.Or(o.httpAddr, cfg.HTTP.Addr)
	cfg.MQTT.Addr = cmp.Or(o.mqttAddr, cfg.MQTT.Addr)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("--http, --mqtt: %w", err)
	}
	log := cfg.Log.NewLogger(c.stderr)

	faults := &demoFaults{w: c.stdout}
	m := NewMain(cfg, acfg, log)
	m.Addons = []lhhttp.Addon{panel.Addon(&faults.panel)}
	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	defer func() { err = errors.Join(err, m.Close()) }()

	// The fleet is provisioned in the hub's own database, which notices new units within
	// registry.watch_interval like any registry change.
	sim := o.sim
	sim.units, sim.sites, sim.fridgeShare, sim.hub = o.units, o.sites, 0.3, "tcp://"+localAddr(m.Broker.Addr(broker.ListenerTCP))
	sim.dir, sim.provision, sim.interval, sim.seed = filepath.Join(cfg.DataDir, "sim"), true, o.interval, 1
	sim.faults, sim.observe = demoFaultRate, faults.observe
	sim.faults.PerUnitHour = o.faultRate
	sim.registry = func(ctx context.Context, fn func(context.Context, fleet.DeviceService) error) error {
		return fn(ctx, sqldb.NewDeviceService(m.DB))
	}
	devices := sim.plan()
	labelFreezers(devices)
	sim.commission = commissioned(devices)
	simulated, err := c.newSimFleet(ctx, sim, devices, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil // Ctrl-C while provisioning
		}
		return err
	}
	token, err := createDemoToken(ctx, m.DB, "demo", fleet.RoleOperator)
	if err != nil {
		return err
	}
	// The simulated carriers deliver as a carrier would, in every site, under their own token.
	carrier, err := createDemoToken(ctx, m.DB, "demo-carriers", fleet.RoleCarrier)
	if err != nil {
		return err
	}
	c.printDemoBanner(o, cfg.DataDir, m, devices, token)
	c.printDemoEnv(cfg, "http://"+localAddr(m.HTTP.Addr()), token)
	faults.printIntro(sim.commission)
	sim.api = hubAPI{url: "http://" + localAddr(m.HTTP.Addr()), token: carrier}

	var wg sync.WaitGroup
	wg.Go(func() { c.watchInflux(ctx, m) })
	err = c.runSimFleet(ctx, simulated, sim, log)
	wg.Wait()
	fmt.Fprintln(c.stderr, "demo: units stopped, closing the hub")
	return err
}

// labelFreezers makes every third fridge of each site a freezer, so that the demo shows both
// classes of the cold-chain rules.
func labelFreezers(devices []fleet.Device) {
	fridges := map[string]int{}
	for i := range devices {
		d := &devices[i]
		if d.Kind != fleet.KindFridge {
			continue
		}
		if fridges[d.Site]++; fridges[d.Site]%3 == 0 {
			d.Labels = map[string]string{"class": fleet.ClassFreezer}
		}
	}
}

// createDemoToken creates a token of the demo (the operator's it prints, the simulated
// carriers'), recorded in the audit trail like one made with `token create`.
func createDemoToken(ctx context.Context, db *sqldb.DB, name string, role fleet.Role) (string, error) {
	t := fleet.Token{Name: name, Role: role}
	secret, err := sqldb.NewTokenService(db).CreateToken(asCLI(ctx, "demo"), &t)
	if err != nil {
		return "", fmt.Errorf("create the demo's %s token: %w", role, err)
	}
	return secret, nil
}

// printDemoBanner tells on stdout where everything is and what to try.
func (c *cli) printDemoBanner(o demoOptions, dataDir string, m *Main, devices []fleet.Device, token string) {
	var fridges, freezers int
	example, bank := devices[0].ID, ""
	sites := map[string]bool{}
	for _, d := range devices {
		sites[d.Site] = true
		if d.Kind == fleet.KindLockerBank && bank == "" {
			bank = d.ID
		}
		if d.Kind == fleet.KindFridge {
			if fridges == 0 {
				example = d.ID // a fridge has the more interesting readings
			}
			fridges++
			if fleet.ClassOf(&d) == fleet.ClassFreezer {
				freezers++
			}
		}
	}
	hub := "http://" + localAddr(m.HTTP.Addr())
	kept := "removed at exit; pass --data-dir to keep it"
	if o.dataDir != "" {
		kept = "kept; run the demo again with --data-dir " + dataDir + " to reuse this fleet"
	}
	self := selfCommand()
	w := c.stdout
	fmt.Fprintf(w, "\nlockerhub demo: a hub and %d simulated units at %d sites (%d locker banks, %d fridges of which %d freezers)\n\n",
		len(devices), len(sites), len(devices)-fridges, fridges, freezers)
	fmt.Fprintf(w, "  dashboard  %s/\n", hub)
	fmt.Fprintf(w, "  token      %s\n", token)
	fmt.Fprintf(w, "             (operator: for the dashboard, the API and the CLI; shown only now)\n")
	fmt.Fprintf(w, "  mqtt       tcp://%s\n", localAddr(m.Broker.Addr(broker.ListenerTCP)))
	fmt.Fprintf(w, "  data       %s (%s)\n\n", dataDir, kept)
	if o.faultRate > 0 {
		fmt.Fprintf(w, "Faults start at random, about %.1f a minute across the fleet, and clear after a few minutes;\n"+
			"alerts follow the health rules (configs/alerts.yaml; without alerts_file at a fifth of their durations).\n\n", o.faultRate*float64(len(devices))/60)
	}
	if o.sim.people {
		fmt.Fprintf(w, "Simulated carriers deliver about %.1f parcels a minute; residents collect them with their codes at the\n"+
			"keypads, some after a typo, some too late, some never, some while the unit is offline.\n\n", o.sim.parcels.PerUnitHour*float64(len(devices))/60)
	}
	// A parcel to deliver by hand: dry into the first locker bank, else chilled into the first
	// fridge, which is never a freezer (labelFreezers).
	deliver := "deliver --unit " + bank
	if bank == "" {
		bank, deliver = devices[0].ID, "deliver --perishable --unit "+devices[0].ID
	}
	fmt.Fprintf(w, "Try, in another terminal:\n")
	for _, args := range []string{"fleet status", "alerts", "device show " + example, "tail " + example,
		"parcels", "parcels --status expired", deliver} {
		fmt.Fprintf(w, "  %s %s --hub %s --token %s\n", self, args, hub, token)
	}
	fmt.Fprintf(w, "  curl -H 'Authorization: Bearer %s' %s/api/v1/health\n", token, hub)
	if o.sim.control != "" {
		fmt.Fprintf(w, "  %s sim keypad %s CODE --control %s   (the code deliver printed)\n", self, bank, o.sim.control)
		fmt.Fprintf(w, "  %s sim fault --unit %s --door 1 jammed on --control %s   (see %s sim --help)\n", self, devices[0].ID, o.sim.control, self)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Ctrl-C stops the demo.\n\n")
}

// watchInflux says on stdout whether InfluxDB answers, and again once it starts answering:
// without it the demo runs on, its history kept in the hub's spool.
func (c *cli) watchInflux(ctx context.Context, m *Main) {
	ping := func() bool {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return m.Influx.Ping(ctx) == nil
	}
	url := m.Config.Influx.URL
	if ping() {
		fmt.Fprintf(c.stdout, "InfluxDB at %s answers: telemetry history is stored there.\n", url)
		return
	}
	fmt.Fprintf(c.stdout, "InfluxDB at %s does not answer: telemetry history is spooled in %s until it answers\n"+
		"(scripts/influxdb.sh start runs one; the demo goes on meanwhile).\n", url, filepath.Join(m.Config.DataDir, "spool"))
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ping() {
			fmt.Fprintf(c.stdout, "InfluxDB at %s answers now: the spooled history is being written to it.\n", url)
			return
		}
	}
}

// localAddr is a listener's address as a client on this machine dials it: an unspecified
// host (":8080", "[::]:8080") becomes 127.0.0.1.
func localAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// selfCommand is how to run this binary again from the same shell: the path it was started
// with, or `go run ./cmd/lockerhub` when that is go run's throwaway build.
func selfCommand() string {
	if strings.Contains(os.Args[0], "go-build") {
		return "go run ./cmd/lockerhub"
	}
	return os.Args[0]
}
