package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/lockerhub/lockerhub/edge-agent/agent"
	"github.com/lockerhub/lockerhub/edge-agent/hardware"
	"github.com/lockerhub/lockerhub/edge-agent/simctl"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/internal/privdir"
)

// simOptions are the simulate command's flags.
type simOptions struct {
	units       int
	sites       int
	fridgeShare float64
	hub         string
	dir         string
	provision   bool
	interval    time.Duration
	faults      simctl.FaultRate // random faults; none at a zero PerUnitHour
	seed        uint64
	commission  map[string]bool // fridges being commissioned: they start at room temperature
	observe     func(simctl.FaultEvent)
	control     string         // loopback address of the control surface; "" for none
	controlSet  bool           // control was given explicitly, so failing to listen on it is an error
	people      bool           // simulated carriers and residents come from the start
	parcels     simctl.Parcels // how they come; Deliver is set from api when the fleet runs
	api         hubAPI         // the hub's HTTP API and a carrier token, for the deliveries
	// registry opens the device registry that provisioning writes to: the data directory's
	// (cli.withDevices) for simulate, the running hub's own database for the demo.
	registry func(context.Context, func(context.Context, fleet.DeviceService) error) error
}

func (c *cli) simulateCmd() *cobra.Command {
	o := simOptions{faults: simctl.DefaultFaultRate}
	cmd := &cobra.Command{
		Use:   "simulate --units N",
		Short: "Run N simulated units (locker banks and fridges) against a hub, each with the real agent code",
		Long: `simulate runs N edge agents in one process. Each has simulated hardware, its own MQTT
connection and its own credentials. With --provision the units are registered in the hub's
data directory (or given new secrets) first; their secrets are kept in --dir so that later runs
reuse them. Faults (jammed doors, doors left ajar or forced, compressor and heater failures,
stuck or dead sensors, network loss) start at random at --fault-rate per unit and hour and
clear after a few minutes.

With --people, simulated carriers deliver parcels into random units through the hub's API
(--api and --token, a carrier token) at --delivery-rate per unit and hour, and each parcel's
resident types its code at the unit's keypad after a random wait (--pickup-wait on average):
some mistype it first (--wrong-share), some come after it expired (--late-share), some never
come (--never-share), and some find the unit's network down (--offline-share: it goes down for
--outage, and the unit checks the code alone). The codes are kept in memory only.

The control surface (--control, loopback only, default ` + simctl.DefaultAddr + `; "" turns it off)
takes faults, outside temperatures, network outages and people on demand: see
` + "`lockerhub sim`" + ` and docs/simulator.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.units < 1 || o.sites < 1 || o.fridgeShare < 0 || o.fridgeShare > 1 || o.faults.PerUnitHour < 0 {
				return errors.New("--units and --sites must be >= 1, --fridge-share in 0..1, --fault-rate >= 0")
			}
			if err := o.checkPeople(); err != nil {
				return err
			}
			o.controlSet = cmd.Flags().Changed("control")
			cfg, err := c.config()
			if err != nil {
				return err
			}
			if o.dir == "" {
				o.dir = filepath.Join(cfg.DataDir, "sim")
			}
			o.registry = c.creating().withDevices // used by --provision only
			return c.simulate(cmd.Context(), o, cfg.Log.NewLogger(c.stderr))
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.units, "units", 10, "number of simulated units")
	f.IntVar(&o.sites, "sites", 3, "number of sites the units are spread over")
	f.Float64Var(&o.fridgeShare, "fridge-share", 0.3, "share of units that are fridges; the rest are locker banks")
	f.StringVar(&o.hub, "hub", "tcp://127.0.0.1:1883", "hub MQTT URL")
	f.StringVar(&o.dir, "dir", "", "directory for the units' secrets, outboxes and state (default <data_dir>/sim)")
	f.BoolVar(&o.provision, "provision", false, "register the units in the hub's data directory first")
	f.DurationVar(&o.interval, "interval", 10*time.Second, "telemetry interval of every unit")
	f.Float64Var(&o.faults.PerUnitHour, "fault-rate", 0, "random faults per unit and hour")
	f.Uint64Var(&o.seed, "seed", 1, "seed for the fleet's layout, people and faults")
	o.controlFlags(f, false)
	f.StringVar(&o.api.url, "api", "", "the hub's HTTP address, for the carriers' deliveries (default $"+envHub+", else "+defaultHubURL+")")
	f.StringVar(&o.api.token, "token", "", "API token of the carriers' deliveries, carrier role or above (default $"+envToken+")")
	return cmd
}

// controlFlags registers the flags simulate and demo share: the control surface and the people.
// The demo's people are on from the start and busier (demoDeliveryRate).
func (o *simOptions) controlFlags(f *pflag.FlagSet, demo bool) {
	people, rate := demo, 6.0
	if demo {
		rate = demoDeliveryRate
	}
	f.StringVar(&o.control, "control", simctl.DefaultAddr, `loopback address of the simulator's control surface for "lockerhub sim" ("" turns it off)`)
	f.BoolVar(&o.people, "people", people, "simulated carriers and residents come from the start (lockerhub sim people on|off switches them)")
	p := &o.parcels
	f.Float64Var(&p.PerUnitHour, "delivery-rate", rate, "parcels delivered per unit and hour while people are on")
	f.DurationVar(&p.MeanWait, "pickup-wait", time.Minute, "how long after a delivery its resident comes, on average")
	f.Float64Var(&p.WrongShare, "wrong-share", 0.15, "share of residents who first type a wrong code")
	f.Float64Var(&p.LateShare, "late-share", 0.1, "share of residents who come after their code expired")
	f.Float64Var(&p.NeverShare, "never-share", 0.1, "share of residents who never come, so that their parcel goes overdue")
	f.Float64Var(&p.OfflineShare, "offline-share", 0.1, "share of residents who find the unit's network down (for --outage)")
	f.DurationVar(&p.Outage, "outage", 2*time.Minute, "how long a unit's network is down around an offline pickup")
}

func (o simOptions) checkPeople() error {
	if err := o.parcels.Validate(); err != nil {
		return fmt.Errorf("--delivery-rate, --pickup-wait, --*-share, --outage: %w", err)
	}
	return nil
}

// plan lays out the fleet deterministically: unit i sits at site i mod sites, and the first
// fridgeShare of each site's units are fridges.
func (o simOptions) plan() []fleet.Device {
	devices := make([]fleet.Device, o.units)
	for i := range devices {
		site := fmt.Sprintf("site-%d", i%o.sites+1)
		kind, doors := fleet.KindLockerBank, 12+4*(i%3)
		if float64(i/o.sites%10) < o.fridgeShare*10 {
			kind, doors = fleet.KindFridge, 4+2*(i%2)
		}
		devices[i] = fleet.Device{ID: fmt.Sprintf("sim-%s-%04d", kind, i+1), Kind: kind, Site: site, Doors: doors}
	}
	return devices
}

func (c *cli) simulate(ctx context.Context, o simOptions, log *slog.Logger) error {
	f, err := c.newSimFleet(ctx, o, o.plan(), log)
	if err != nil {
		return err
	}
	return c.runSimFleet(ctx, f, o, log)
}

// simFleet is a simulated fleet, provisioned and ready to run.
type simFleet struct {
	units   []*simctl.Unit
	devices map[string]fleet.Device // by id: what a carrier delivering into a unit needs
	rng     *rand.Rand              // seeded with simOptions.seed; once the units' hardware is seeded, it draws the faults and people
}

// freezerSetpointC is the compressor setpoint of simulated units labelled class=freezer, which
// would otherwise hold a chilled unit's 3 °C and break every freezer rule. They start at it, as
// a freezer in service would.
const freezerSetpointC = -18.0

// newSimFleet gives each of devices simulated hardware and an agent with its credentials (see
// simSecrets) and its own directory under o.dir.
func (c *cli) newSimFleet(ctx context.Context, o simOptions, devices []fleet.Device, log *slog.Logger) (*simFleet, error) {
	secrets, err := c.simSecrets(ctx, o, devices)
	if err != nil {
		return nil, err
	}
	f := &simFleet{units: make([]*simctl.Unit, len(devices)), devices: make(map[string]fleet.Device, len(devices)),
		rng: rand.New(rand.NewPCG(o.seed, 0))}
	agentLog := log.With("component", "agent")
	for i, d := range devices {
		freezer := d.Kind == fleet.KindFridge && fleet.ClassOf(&d) == fleet.ClassFreezer
		var start *float64 // a chilled fridge's setpoint
		switch {
		case o.commission[d.ID]:
			start = new(hardware.RoomC)
		case freezer:
			start = new(freezerSetpointC)
		}
		hw, err := hardware.NewSimulator(hardware.SimConfig{Kind: hardware.Kind(d.Kind), Doors: d.Doors, Seed: int64(f.rng.Uint64()), StartC: start})
		if err != nil {
			return nil, err
		}
		cfg := agent.DefaultConfig()
		cfg.Hubs, cfg.DeviceID, cfg.Secret = []string{o.hub}, d.ID, secrets[d.ID]
		cfg.DataDir = filepath.Join(o.dir, d.ID)
		cfg.TelemetryInterval = o.interval
		// Simulated units share one disk; an fsync per message from each would measure the
		// disk, not the hub. A kill of the simulator still loses nothing (page cache).
		cfg.Outbox.Fsync = false
		if freezer {
			cfg.Thermostat.CompressorSetpointC = freezerSetpointC
		}
		a, err := agent.New(cfg, hw, agent.Options{Logger: agentLog, Version: "sim"})
		if err != nil {
			return nil, fmt.Errorf("unit %s: %w", d.ID, err)
		}
		f.units[i] = &simctl.Unit{ID: d.ID, Site: d.Site, HW: hw, Agent: a}
		f.devices[d.ID] = d
	}
	return f, nil
}

// runSimFleet runs every unit's agent, reports their progress, serves the control surface,
// injects random faults and sends the people as o says until ctx is done; it returns once every
// agent has stopped. Only a control address given explicitly must be free: the default one may
// be taken by another simulator, and this one then runs without. People need the hub's API
// and a token for the carriers' deliveries.
func (c *cli) runSimFleet(ctx context.Context, f *simFleet, o simOptions, log *slog.Logger) error {
	deliver, err := o.deliver(f.devices)
	if err != nil && o.people {
		return fmt.Errorf("--people: the carriers deliver through the hub's API: %w", err)
	}
	o.parcels.Deliver = deliver
	ctl := simctl.NewFleet(f.units, deliver != nil && o.parcels.PerUnitHour > 0, log.With("component", "sim"))
	if o.observe != nil {
		ctl.Observe(o.observe)
	}
	var listener net.Listener
	if o.control != "" {
		var err error
		if listener, err = simctl.Listen(o.control); err != nil {
			if o.controlSet {
				return fmt.Errorf("--control: %w", err)
			}
			log.Warn("no control surface", "error", err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, u := range f.units {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := u.Agent.Run(ctx); err != nil {
				log.Error("unit stopped", "device", u.ID, "error", err)
			}
		}()
	}
	if listener != nil {
		// Printed before the units connect, so a script can find a port it let the system pick.
		fmt.Fprintf(c.stderr, "control surface on %s (lockerhub sim --control %s ...)\n", listener.Addr(), listener.Addr())
		wg.Go(func() { simctl.Serve(ctx, listener, simctl.NewHandler(ctl), log) })
	}
	c.simProgress(ctx, f.units)
	// Both loops draw from f.rng, which is not safe for concurrent use: each gets its own.
	if o.faults.PerUnitHour > 0 {
		go ctl.RandomFaults(ctx, o.faults, rand.New(rand.NewPCG(f.rng.Uint64(), 1)))
	}
	if o.people {
		ctl.SetPeople(true)
	}
	go ctl.RunParcels(ctx, o.parcels, rand.New(rand.NewPCG(f.rng.Uint64(), 2)))
	<-ctx.Done()
	wg.Wait()
	return nil
}

// deliver returns how a simulated carrier delivers a parcel into a unit, as a carrier's
// handheld would: through the hub's API, into a free compartment of the kind the unit has (a
// perishable parcel into a fridge, a frozen one into a freezer). It fails without a token.
func (o simOptions) deliver(devices map[string]fleet.Device) (func(context.Context, string) (simctl.Delivery, error), error) {
	hub, err := o.api.client()
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, id string) (simctl.Delivery, error) {
		d := devices[id]
		req := fleet.Delivery{DeviceID: id, Carrier: "simulated carrier", Recipient: "simulated resident"}
		switch fleet.CompartmentOf(&d) {
		case fleet.CompartmentFridge:
			req.Perishable = true
		case fleet.CompartmentFreezer:
			req.Frozen = true
		}
		res, _, err := hub.Deliver(ctx, req)
		if err != nil {
			return simctl.Delivery{}, err
		}
		return simctl.Delivery{Parcel: res.Parcel.ID, Door: res.Parcel.Door, Code: res.Code, Expires: res.Parcel.ExpiresAt}, nil
	}, nil
}

// simProgress reports connection progress until every unit is online, then a status line every
// 10 seconds.
func (c *cli) simProgress(ctx context.Context, units []*simctl.Unit) {
	start := time.Now()
	count := func() (online, pending, faults int) {
		for _, u := range units {
			if u.Agent.Online() {
				online++
			}
			pending += u.Agent.Pending()
			faults += len(simctl.Faults(u))
		}
		return online, pending, faults
	}
	tick := time.NewTicker(500 * time.Millisecond)
	for {
		select {
		case <-ctx.Done():
			tick.Stop()
			return
		case <-tick.C:
		}
		online, _, _ := count()
		fmt.Fprintf(c.stderr, "\rconnecting: %d/%d units online (%s)", online, len(units), time.Since(start).Round(100*time.Millisecond))
		if online == len(units) {
			fmt.Fprintf(c.stderr, "\nall %d units online after %s\n", len(units), time.Since(start).Round(time.Millisecond))
			break
		}
	}
	tick.Reset(10 * time.Second)
	go func() {
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				online, pending, faults := count()
				fmt.Fprintf(c.stderr, "%s: %d/%d units online, %d messages waiting in outboxes, %d hardware faults active\n",
					time.Now().Format(time.TimeOnly), online, len(units), pending, faults)
			}
		}
	}()
}

// simSecrets returns every unit's secret: from the secrets file in the simulator's directory,
// provisioning (registering, or rotating the secret of) units that have none when asked to.
func (c *cli) simSecrets(ctx context.Context, o simOptions, devices []fleet.Device) (map[string]string, error) {
	path := filepath.Join(o.dir, "secrets.json")
	secrets := map[string]string{}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &secrets); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	var missing []fleet.Device
	for _, d := range devices {
		if secrets[d.ID] == "" {
			missing = append(missing, d)
		}
	}
	if len(missing) == 0 {
		return secrets, nil
	}
	if !o.provision {
		return nil, fmt.Errorf("%d units have no credentials in %s (first %s): run with --provision", len(missing), o.dir, missing[0].ID)
	}
	err = o.registry(ctx, func(ctx context.Context, s fleet.DeviceService) error {
		ctx = asCLI(ctx, "simulate --provision")
		for i, d := range missing {
			secret, err := s.CreateDevice(ctx, &d)
			if fleet.ErrorCode(err) == fleet.ECONFLICT {
				secret, err = s.RotateSecret(ctx, d.ID)
			}
			if err != nil {
				return fmt.Errorf("provision %s: %w", d.ID, err)
			}
			secrets[d.ID] = secret
			if (i+1)%100 == 0 || i+1 == len(missing) {
				fmt.Fprintf(c.stderr, "\rprovisioned %d/%d units", i+1, len(missing))
			}
		}
		fmt.Fprintln(c.stderr)
		return nil
	})
	if err != nil {
		return nil, err
	}
	b, err = json.MarshalIndent(secrets, "", "  ")
	if err != nil {
		return nil, err
	}
	// Made only now, after provisioning: the default <data_dir>/sim would otherwise create the
	// hub's data directory as its parent, readable by others, before the store made it private.
	if err := privdir.MkdirAll(o.dir, 0o700); err != nil {
		return nil, err
	}
	return secrets, os.WriteFile(path, b, 0o600)
}
