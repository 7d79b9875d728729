package main

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/lockerhub/lockerhub/broker"
	"github.com/lockerhub/lockerhub/broker/external"
	"github.com/lockerhub/lockerhub/fleet/alerts"
	"github.com/lockerhub/lockerhub/fleet/commands"
	lhhttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/fleet/notify"
	"github.com/lockerhub/lockerhub/fleet/parcels"
	"github.com/lockerhub/lockerhub/internal/cliconf"
	"github.com/lockerhub/lockerhub/internal/memlimit"
	"github.com/lockerhub/lockerhub/telemetry/influx"
)

// Config is the hub's whole configuration. Every key is documented, with its default, in
// configs/lockerhub.yaml; a test keeps the two in step.
type Config struct {
	DataDir  string            `mapstructure:"data_dir"`
	Store    StoreConfig       `mapstructure:"store"`
	Log      cliconf.LogConfig `mapstructure:"log"`
	MQTT     MQTTConfig        `mapstructure:"mqtt"`
	HTTP     HTTPConfig        `mapstructure:"http"`
	Registry RegistryConfig    `mapstructure:"registry"`
	Influx   influx.Config     `mapstructure:"influx"`
	Spool    SpoolConfig       `mapstructure:"spool"`
	Commands commands.Limits   `mapstructure:"commands"`
	Parcels  parcels.Config    `mapstructure:"parcels"`
	Audit    AuditConfig       `mapstructure:"audit"`
	// AlertsFile is the health rules and notification settings (configs/alerts.yaml); empty
	// for the built-in defaults, which that file documents.
	AlertsFile string `mapstructure:"alerts_file"`
	// Telemetry shapes what the hub stores of each snapshot.
	Telemetry TelemetryConfig `mapstructure:"telemetry"`
	// MemoryLimit is the runtime's soft memory limit (internal/memlimit); empty for none.
	MemoryLimit string `mapstructure:"memory_limit"`
}

// MQTTConfig is the embedded broker's listeners, or the external broker the hub connects to
// instead (docs/deployment.md).
type MQTTConfig struct {
	broker.Config `mapstructure:",squash"`
	External      external.Config `mapstructure:"external"`
}

// StoreConfig says where the registry, tokens, commands, alerts and the audit trail live.
type StoreConfig struct {
	// URL is empty for SQLite in the data directory, or postgres://user:pass@host:port/db?...
	// for PostgreSQL, which every hub of a cluster shares.
	URL string `mapstructure:"url"`
}

// SpoolConfig bounds the durable telemetry spool between the broker and InfluxDB.
type SpoolConfig struct {
	MaxBytes      int64         `mapstructure:"max_bytes"`
	IngestTimeout time.Duration `mapstructure:"ingest_timeout"`
}

// TelemetryConfig shapes what the hub stores of each snapshot.
type TelemetryConfig struct {
	// DoorKeyframeInterval is how often a unit's snapshot stores every door's state; in
	// between, only changed doors are stored. 0 stores every door of every snapshot. A cluster
	// always uses 0 (see telemetry.Options).
	DoorKeyframeInterval time.Duration `mapstructure:"door_keyframe_interval"`
}

// HTTPConfig is the HTTP server's listener and its bounds.
type HTTPConfig struct {
	Addr  string `mapstructure:"addr"`
	Pprof bool   `mapstructure:"pprof"` // serve /debug/pprof/: off, it shows the hub's internals
	// MaxConnections bounds the connections the server holds, idle ones included; past it a
	// connection is closed as soon as it is accepted.
	MaxConnections int `mapstructure:"max_connections"`
	// MaxStreamsPerToken bounds the event streams (GET /api/v1/stream) one token holds open.
	MaxStreamsPerToken int `mapstructure:"max_streams_per_token"`
	// BrokerAuthSecret, when set, serves /broker/ for EMQX and VerneMQ to authenticate devices
	// and check their ACL (docs/brokers.md); the brokers present it.
	BrokerAuthSecret string `mapstructure:"broker_auth_secret"`
}

// AuditConfig is the audit trail's settings: how the hub witnesses its head.
type AuditConfig struct {
	Witness notify.WitnessConfig `mapstructure:"witness"`
}

// RegistryConfig tunes how the hub follows registry changes made by other processes.
type RegistryConfig struct {
	WatchInterval time.Duration `mapstructure:"watch_interval"`
}

// DefaultConfig returns the configuration used when nothing overrides it.
func DefaultConfig() Config {
	return Config{
		DataDir: "./var/lockerhub",
		Log:     cliconf.DefaultLog,
		MQTT: MQTTConfig{Config: broker.Config{Addr: ":1883", MaxConnections: broker.DefaultMaxConnections,
			MaxPending: broker.DefaultMaxPending, MaxPendingPerSource: broker.DefaultMaxPendingPerSource}, External: external.DefaultConfig()},
		HTTP:     HTTPConfig{Addr: ":8080", MaxConnections: lhhttp.DefaultMaxConnections, MaxStreamsPerToken: lhhttp.DefaultMaxStreamsPerToken},
		Registry: RegistryConfig{WatchInterval: 500 * time.Millisecond},
		Influx: influx.Config{URL: "http://127.0.0.1:8086", Bucket: "lockerhub/autogen",
			BatchSize: 5000, Writers: 4, Timeout: 10 * time.Second},
		Spool:    SpoolConfig{MaxBytes: 1 << 30, IngestTimeout: 30 * time.Second},
		Commands: commands.Limits{PerTokenPerMinute: 60, PerDevicePerMinute: 20},
		Parcels:  parcels.Config{}.WithDefaults(),
		Audit:    AuditConfig{Witness: notify.DefaultWitnessConfig()},
		Telemetry: TelemetryConfig{
			DoorKeyframeInterval: 5 * time.Minute},
	}
}

// Validate reports the first bad setting, naming its key.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("data_dir: must not be empty")
	}
	if err := c.Log.Validate(); err != nil {
		return err
	}
	if _, err := memlimit.Parse(c.MemoryLimit); err != nil {
		return fmt.Errorf("memory_limit: %w", err)
	}
	if err := cmp.Or(c.MQTT.Validate(), c.MQTT.External.Validate()); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Addr); err != nil {
		return fmt.Errorf("http.addr: invalid address %q: want host:port, e.g. :8080", c.HTTP.Addr)
	}
	if c.HTTP.MaxConnections < 16 || c.HTTP.MaxConnections > 1_000_000 {
		return fmt.Errorf("http.max_connections: %d out of range 16..1000000", c.HTTP.MaxConnections)
	}
	if c.HTTP.MaxStreamsPerToken < 1 || c.HTTP.MaxStreamsPerToken > 1000 {
		return fmt.Errorf("http.max_streams_per_token: %d out of range 1..1000", c.HTTP.MaxStreamsPerToken)
	}
	if c.HTTP.BrokerAuthSecret != "" {
		if err := (external.AuthOptions{Secret: c.HTTP.BrokerAuthSecret}).Validate(); err != nil {
			return fmt.Errorf("http.broker_auth_secret: %w", err)
		}
	}
	if c.Registry.WatchInterval < 10*time.Millisecond || c.Registry.WatchInterval > time.Minute {
		return fmt.Errorf("registry.watch_interval: %s out of range 10ms..1m", c.Registry.WatchInterval)
	}
	if err := c.Influx.Validate(); err != nil {
		return err
	}
	if err := c.Audit.Witness.Validate(); err != nil {
		return err
	}
	if c.Spool.MaxBytes < 1<<20 {
		return fmt.Errorf("spool.max_bytes: %d is below the minimum 1048576", c.Spool.MaxBytes)
	}
	if c.Commands.PerTokenPerMinute < 0 || c.Commands.PerDevicePerMinute < 0 {
		return errors.New("commands.per_token_per_minute, commands.per_device_per_minute: must not be negative (0 disables)")
	}
	if err := c.Parcels.Validate(); err != nil {
		return err
	}
	if c.Spool.IngestTimeout < time.Second {
		return fmt.Errorf("spool.ingest_timeout: %s is below the minimum 1s", c.Spool.IngestTimeout)
	}
	if k := c.Telemetry.DoorKeyframeInterval; k < 0 || k > 24*time.Hour {
		return fmt.Errorf("telemetry.door_keyframe_interval: %s out of range 0..24h (0 stores every door of every snapshot)", k)
	}
	return nil
}

// AlertsConfig is the alert configuration file: the health rules and where notifications go.
type AlertsConfig struct {
	alerts.Config `mapstructure:",squash"`
	Notify        NotifyConfig `mapstructure:"notify"`
}

// NotifyConfig is where alert notifications go, and the hub's URL for links in them.
type NotifyConfig struct {
	notify.Config `mapstructure:",squash"`
	ExternalURL   string `mapstructure:"external_url"`
}

// DefaultAlertsConfig returns the alert configuration used without a file; configs/alerts.yaml
// documents it and a test keeps the two in step.
func DefaultAlertsConfig() AlertsConfig {
	return AlertsConfig{Config: alerts.DefaultConfig(),
		Notify: NotifyConfig{Config: notify.Config{Webhooks: []notify.WebhookConfig{}, Alertmanager: []notify.AlertmanagerConfig{}}}}
}

// LoadAlertsConfig reads the defaults, then file (if not empty), then the LOCKERHUB_ALERTS_*
// environment, and validates the result.
func LoadAlertsConfig(file string) (AlertsConfig, error) {
	var c AlertsConfig
	if err := cliconf.Load(&c, DefaultAlertsConfig(), file, envPrefix+"_ALERTS"); err != nil {
		return AlertsConfig{}, fmt.Errorf("alerts_file: %w", err)
	}
	if err := cmp.Or(c.Config.Validate(), c.Notify.Validate()); err != nil {
		return AlertsConfig{}, fmt.Errorf("alerts_file %s: %w", cmp.Or(file, "(defaults)"), err)
	}
	return c, nil
}

// envPrefix is the prefix of environment overrides: LOCKERHUB_MQTT_ADDR sets mqtt.addr.
const envPrefix = "LOCKERHUB"

// LoadConfig reads the defaults, then file (if not empty), then the LOCKERHUB_* environment,
// and validates the result.
func LoadConfig(file string) (Config, error) {
	var c Config
	if err := cliconf.Load(&c, DefaultConfig(), file, envPrefix); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return c, nil
}
