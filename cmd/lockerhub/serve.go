package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/lockerhub/lockerhub/broker"
	"github.com/lockerhub/lockerhub/broker/external"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/alerts"
	"github.com/lockerhub/lockerhub/fleet/bus"
	"github.com/lockerhub/lockerhub/fleet/commands"
	lhhttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/fleet/notify"
	"github.com/lockerhub/lockerhub/fleet/parcels"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/internal/memlimit"
	"github.com/lockerhub/lockerhub/internal/supervise"
	"github.com/lockerhub/lockerhub/telemetry"
	"github.com/lockerhub/lockerhub/telemetry/influx"
	"github.com/lockerhub/lockerhub/telemetry/spool"
)

func (c *cli) serveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the hub: MQTT broker for edge agents, HTTP health and metrics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, acfg, err := c.hubConfig()
			if err != nil {
				return err
			}
			m := NewMain(cfg, acfg, cfg.Log.NewLogger(c.stderr))
			if err := m.Run(cmd.Context()); err != nil {
				m.Close()
				return err
			}
			<-cmd.Context().Done()
			m.log.Info("shutting down")
			return m.Close()
		},
	}
}

// Main is the running hub: it owns every long-lived component and closes them in reverse order.
type Main struct {
	Config Config
	Alerts AlertsConfig
	log    *slog.Logger

	DB       *sqldb.DB
	Spool    *spool.Spool
	Influx   *influx.Client
	Pipeline *telemetry.Pipeline
	Broker   *broker.Broker // the embedded broker; nil in a cluster
	Link     *external.Link // the external broker of a cluster; nil with the embedded one
	Health   *alerts.Engine
	Parcels  *parcels.Service
	HTTP     *lhhttp.Server
	// Addons are parts a program adds to the dashboard and the API before Run, such as the
	// demo's panel; a hub that serves has none.
	Addons []lhhttp.Addon

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewMain returns a hub that will run with cfg and the alert configuration acfg.
func NewMain(cfg Config, acfg AlertsConfig, log *slog.Logger) *Main {
	return &Main{Config: cfg, Alerts: acfg, log: log}
}

// Run opens the database and the telemetry spool, starts shipping telemetry to InfluxDB, starts
// the broker, the health rules and the HTTP server, and follows registry changes.
// It returns once everything is listening; Close stops it.
func (m *Main) Run(ctx context.Context) error {
	ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	limit, err := memlimit.Parse(m.Config.MemoryLimit)
	if err != nil {
		return fmt.Errorf("memory_limit: %w", err)
	}
	memlimit.Apply(limit, m.log)
	if m.DB, err = sqldb.Open(ctx, m.Config.Store.URL, m.Config.DataDir); err != nil {
		return err
	}
	devices := sqldb.NewDeviceService(m.DB)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// What happened, for whoever follows it: the services publish on the bus, and the health
	// rules, the alert notifiers and the dashboards' stream subscribe once everything is built.
	events := bus.New()
	audit := sqldb.NewAuditService(m.DB)
	alertStore := sqldb.NewAlertStore(m.DB)
	notifier, err := notify.New(m.Alerts.Notify.Config, notify.Options{Logger: m.log, Registerer: reg, ExternalURL: m.Alerts.Notify.ExternalURL,
		OpenAlerts: func(ctx context.Context) ([]*fleet.Alert, error) {
			return alertStore.FindAlerts(ctx, fleet.AlertFilter{Open: true, Limit: 1000})
		}})
	if err != nil {
		return fmt.Errorf("alerts_file: %w", err)
	}
	m.goRun(func() { notifier.Run(ctx) })
	witness, err := notify.NewWitness(m.Config.Audit.Witness, audit, notify.WitnessOptions{Logger: m.log, Registerer: reg})
	if err != nil {
		return err
	}
	m.goRun(func() { witness.Run(ctx) })
	stream := lhhttp.NewStream(m.Config.HTTP.MaxStreamsPerToken) // live events for the dashboard and `lockerhub tail`
	cluster := m.Config.MQTT.External.Enabled()
	var leading func() bool // only the leader of a cluster evaluates the health rules
	checks := map[string]lhhttp.Check{"database": func(ctx context.Context) error { return m.DB.Ping(ctx) }}
	if cluster {
		leading, checks["leadership"] = m.lead(ctx, reg)
	}

	// Telemetry: broker -> pipeline -> spool -> shipper -> InfluxDB, and -> events -> health rules.
	if m.Spool, err = spool.Open(filepath.Join(m.Config.DataDir, "spool"), spool.Options{MaxBytes: m.Config.Spool.MaxBytes}); err != nil {
		return fmt.Errorf("open telemetry spool: %w", err)
	}
	m.Influx = influx.New(m.Config.Influx)
	keyframes := m.Config.Telemetry.DoorKeyframeInterval
	if cluster {
		keyframes = 0 // the shared subscription splits a unit's snapshots between the hubs
	}
	if m.Pipeline, err = telemetry.NewPipeline(m.Spool, devices, telemetry.Options{Logger: m.log, Registerer: reg, Events: events,
		DoorKeyframeInterval: keyframes}); err != nil {
		return err
	}
	// One read of the registry instead of one query per unit when the fleet reconnects at once.
	if err := m.Pipeline.InvalidateDevices(ctx); err != nil {
		return err
	}
	shipper := m.Pipeline.NewShipper(m.Influx, m.Config.Influx.BatchSize, m.Config.Influx.Writers, m.Config.DataDir)
	checks["shipper"] = m.superviseRun(ctx, "telemetry shipper", shipper.Run)
	m.goRun(func() { m.checkInflux(ctx) })
	// Without InfluxDB, or behind it, the hub loses history queries, not telemetry: the spool
	// keeps it until it is nearly full.
	checks["influxdb"] = func(ctx context.Context) error {
		if err := m.Influx.Ping(ctx); err != nil {
			return lhhttp.Degraded(fmt.Errorf("influxdb unreachable, telemetry is spooled until it answers: %w", err))
		}
		return nil
	}
	checks["spool"] = func(ctx context.Context) error {
		err := m.Spool.Check(ctx)
		if errors.Is(err, spool.ErrBacklog) {
			return lhhttp.Degraded(err)
		}
		return err
	}

	// MQTT: the embedded broker, or the external broker the hubs of a cluster share. It starts
	// once the health rules follow the events it causes.
	mq, err := m.newMQTT(reg, devices, audit, events)
	if err != nil {
		return err
	}

	// Health: the live stream and commands (events) and presence (MQTT) -> rules -> alerts; the
	// parcels inside, read from the store at start, for the overdue rules.
	parcelStore := sqldb.NewParcelStore(m.DB)
	if m.Health, err = alerts.New(m.Alerts.Config, alertStore, devices, mq,
		alerts.Options{Logger: m.log, Registerer: reg, Audit: audit, Events: events, Leading: leading, Parcels: parcelStore}); err != nil {
		return err
	}
	// In this order: the rules see a message before the dashboards, and an alert is notified
	// before the dashboards show it.
	events.Subscribe(m.Health)
	events.Subscribe(notifier)
	events.Subscribe(stream)
	if err := m.Health.Start(ctx); err != nil {
		return err
	}
	if err := m.startMQTT(); err != nil {
		return err
	}
	if m.Broker != nil {
		for name, check := range m.Broker.Checks() {
			checks[name] = check
		}
	}
	if cluster {
		checks["mqtt"] = m.Link.Ready
	}
	m.goRun(func() { m.Health.Run(ctx) })

	// Commands: API -> commands service -> broker -> device -> result -> commands service.
	cmds, err := commands.New(sqldb.NewCommandStore(m.DB), devices, mq, mq,
		commands.Options{Logger: m.log, Registerer: reg, Limits: m.Config.Commands, Audit: audit, Events: events})
	if err != nil {
		return err
	}
	if err := cmds.TakeResults(mq); err != nil {
		return fmt.Errorf("subscribe to command results: %w", err)
	}
	m.goRun(func() { cmds.RunExpiry(ctx, overdueInterval) })

	// Parcels: API -> parcels service -> store (+ audit) -> code sets -> broker -> units; and
	// units' pickups, keypad attempts and code set versions -> bus -> parcels service.
	if m.Parcels, err = parcels.New(parcelStore, devices, mq, cmds, mq, m.Config.Parcels,
		parcels.Options{Logger: m.log, Registerer: reg, Events: events, Audit: audit, Shared: cluster}); err != nil {
		return err
	}
	events.Subscribe(m.Parcels)
	m.Parcels.Start()

	registryChanged := func() {
		// Revoked units first: every other step only tidies up after them.
		if m.Broker != nil { // an external broker authenticates devices itself (lockerhub device export-acl)
			if err := m.Broker.Revalidate(ctx); err != nil {
				m.log.Error("revalidate sessions", "error", err)
			}
		}
		if err := m.Pipeline.InvalidateDevices(ctx); err != nil {
			m.log.Error("telemetry: live state of removed devices not dropped", "error", err)
		}
		if err := m.Health.Sync(ctx); err != nil {
			m.log.Error("health rules: registry not reloaded", "error", err)
		}
		stream.RegistryChanged()
	}
	restarted := false
	checks["registry_watch"] = m.superviseRun(ctx, "registry watch", func(ctx context.Context) error {
		if restarted {
			// Whatever changed while the watch was down is unknown: a device revoked then
			// must be disconnected all the same.
			registryChanged()
		}
		restarted = true
		return m.DB.WatchRegistry(ctx, m.Config.Registry.WatchInterval, registryChanged)
	})

	m.HTTP = lhhttp.NewServer(reg, checks, lhhttp.Options{Logger: m.log, Registerer: reg, MaxConnections: m.Config.HTTP.MaxConnections, Addons: m.Addons})
	m.HTTP.Handle(lhhttp.Services{Devices: devices, Presence: mq, Live: m.Pipeline,
		History: m.Influx, Tokens: sqldb.NewTokenService(m.DB), Commands: cmds, Parcels: m.Parcels, Audit: audit, Alerts: m.Health,
		ColdChain: m.Influx, Thresholds: m.coldHoldingThreshold,
		StuckSensorAfter: m.Alerts.StuckSensorAfter(), DwellLimits: m.Alerts.DwellLimits(), Stream: stream, TokenRecheck: m.Config.Registry.WatchInterval}, m.log)
	if m.Config.HTTP.Pprof {
		m.HTTP.EnablePprof()
	}
	if secret := m.Config.HTTP.BrokerAuthSecret; secret != "" {
		m.HTTP.ServeBrokerAuth(external.NewAuthHandler(devices, external.AuthOptions{Secret: secret, Logger: m.log, Registerer: reg}))
	}
	if err := m.HTTP.Open(m.Config.HTTP.Addr); err != nil {
		return fmt.Errorf("http.addr: %w", err)
	}

	attrs := []any{"http", m.HTTP.Addr().String(), "data_dir", m.Config.DataDir}
	if cluster {
		attrs = append(attrs, "mqtt_external", m.Config.MQTT.External.URL, "hub", m.Config.MQTT.External.Username)
	} else {
		attrs = append(attrs, "mqtt", m.Broker.Addr(broker.ListenerTCP).String())
		for _, name := range []string{broker.ListenerTLS, broker.ListenerWS} {
			if a := m.Broker.Addr(name); a != nil {
				attrs = append(attrs, "mqtt_"+name, a.String())
			}
		}
	}
	m.log.Info("lockerhub serving", attrs...)
	return nil
}

// Close stops accepting work, lets in-flight requests finish, and closes the stores. It is safe
// to call after a failed Run.
func (m *Main) Close() error {
	var errs []error
	if m.HTTP != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, m.HTTP.Close(ctx))
		cancel()
	}
	if m.Broker != nil {
		errs = append(errs, m.Broker.Close())
	}
	if m.Link != nil {
		errs = append(errs, m.Link.Close())
	}
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	if m.Parcels != nil {
		m.Parcels.Close()
	}
	if m.Spool != nil {
		errs = append(errs, m.Spool.Close())
	}
	if m.Influx != nil {
		m.Influx.Close()
	}
	if m.DB != nil {
		errs = append(errs, m.DB.Close())
	}
	return errors.Join(errs...)
}

// coldHoldingThreshold is the food-safety limit a cold-chain report counts minutes above: the
// least urgent temperature rule for the unit's class, or the default rules' when the alerts
// file has none for it.
func (m *Main) coldHoldingThreshold(d *fleet.Device) float64 {
	if t, ok := m.Alerts.ColdHoldingThreshold(d); ok {
		return t
	}
	defaults := alerts.DefaultConfig()
	t, _ := defaults.ColdHoldingThreshold(d)
	return t
}

// lead competes for the leadership of the cluster's health rules, in the database, until ctx is
// done, and returns whether this hub holds it now (lockerhub_cluster_leader) and the readiness
// check of the election.
func (m *Main) lead(ctx context.Context, reg prometheus.Registerer) (func() bool, lhhttp.Check) {
	var lead atomic.Bool
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "lockerhub_cluster_leader",
		Help: "1 while this hub leads the cluster: it evaluates the health rules.",
	}, func() float64 {
		if lead.Load() {
			return 1
		}
		return 0
	}))
	check := m.superviseRun(ctx, "leadership election", func(ctx context.Context) error {
		return m.DB.Lead(ctx, "alerts", func(ctx context.Context) {
			lead.Store(true)
			<-ctx.Done()
			lead.Store(false)
		})
	})
	return lead.Load, check
}

// mqtt is what the hub needs of its MQTT side, embedded broker or external one: presence,
// publishing commands and following their results.
type mqtt interface {
	fleet.PresenceService
	commands.Publisher
	commands.Subscriber
}

// newMQTT makes the embedded broker (m.Broker) or, in a cluster, the link to the external
// broker (m.Link); startMQTT starts it.
func (m *Main) newMQTT(reg prometheus.Registerer, devices *sqldb.DeviceService, audit fleet.Auditor, events fleet.EventPublisher) (mqtt, error) {
	var err error
	if m.Config.MQTT.External.Enabled() {
		m.Link, err = external.New(m.Config.MQTT.External, external.Options{Logger: m.log, Registerer: reg,
			Ingester: m.Pipeline, Events: events})
		return m.Link, err
	}
	m.Broker, err = broker.New(m.Config.MQTT.Config, devices, broker.Options{Logger: m.log, Registerer: reg,
		Ingester: m.Pipeline, IngestTimeout: m.Config.Spool.IngestTimeout, Audit: audit, Events: events})
	return m.Broker, err
}

// startMQTT starts what newMQTT made: the broker listens, or the link connects.
func (m *Main) startMQTT() error {
	if m.Link != nil {
		return m.Link.Start()
	}
	if err := m.Broker.Start(); err != nil {
		return fmt.Errorf("start mqtt broker: %w", err)
	}
	return nil
}

// overdueInterval is how often the hub looks for commands left unanswered past their expiry by
// a hub that died (this one, before a restart, or another of a cluster).
const overdueInterval = 5 * time.Second

// superviseRun runs fn in the background until Close, again after a backoff whenever it
// returns early (see package supervise), and returns its readiness check.
func (m *Main) superviseRun(ctx context.Context, name string, fn func(context.Context) error) lhhttp.Check {
	loop := supervise.New(name, m.log)
	m.goRun(func() { loop.Run(ctx, fn) })
	return loop.Check
}

// goRun runs fn in the background until Close.
func (m *Main) goRun(fn func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		fn()
	}()
}

// checkInflux says at start-up whether InfluxDB answers, so that an operator who forgot it
// learns at once that telemetry is being spooled rather than stored.
func (m *Main) checkInflux(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := m.Influx.Ping(ctx); err != nil {
		m.log.Warn("influxdb unreachable; telemetry is spooled until it answers", "url", m.Config.Influx.URL, "error", err)
		return
	}
	m.log.Info("influxdb reachable", "url", m.Config.Influx.URL, "bucket", m.Config.Influx.Bucket)
}
