package agent

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/fleet/wire"
)

// Config is the agent's configuration; configs/edge-agent.yaml documents every key and default.
type Config struct {
	Hubs              []string      `mapstructure:"hubs"`
	DeviceID          string        `mapstructure:"device_id"`
	Secret            string        `mapstructure:"secret"`
	SecretFile        string        `mapstructure:"secret_file"`
	CAFile            string        `mapstructure:"ca_file"`
	DataDir           string        `mapstructure:"data_dir"`
	TelemetryInterval time.Duration `mapstructure:"telemetry_interval"`
	KeepAlive         time.Duration `mapstructure:"keepalive"`
	ReconnectMax      time.Duration `mapstructure:"reconnect_max"`
	Outbox            OutboxConfig  `mapstructure:"outbox"`
	Unlock            UnlockConfig  `mapstructure:"unlock"`
	Thermostat        ThermoConfig  `mapstructure:"thermostat"`
}

// OutboxConfig bounds the store-and-forward outbox.
type OutboxConfig struct {
	MaxBytes int64 `mapstructure:"max_bytes"`
	Fsync    bool  `mapstructure:"fsync"`
}

// UnlockConfig tunes unlock commands.
type UnlockConfig struct {
	Pulse         time.Duration `mapstructure:"pulse"`          // when the command does not say
	ConfirmWindow time.Duration `mapstructure:"confirm_window"` // how long the door may take to open
}

// ThermoConfig holds the default setpoints; setpoint commands override them persistently.
type ThermoConfig struct {
	HeaterSetpointC     float64       `mapstructure:"heater_setpoint_c"`
	CompressorSetpointC float64       `mapstructure:"compressor_setpoint_c"`
	HysteresisC         float64       `mapstructure:"hysteresis_c"`
	Period              time.Duration `mapstructure:"period"`
}

// DefaultConfig returns the defaults. The keepalive suits cellular links: long enough not to
// spend data on pings, short enough that the hub notices a dead unit within a few minutes. The
// unlock confirm window covers the pulse, during which a person may still open the door, plus
// 2 s for a sticking door and the sensor, and ends 3 s before the hub's default command expiry
// (10 s), so that the verdict reaches an operator waiting for it.
func DefaultConfig() Config {
	return Config{
		Hubs:              []string{"tcp://127.0.0.1:1883"},
		DataDir:           "./var/edge-agent",
		TelemetryInterval: 10 * time.Second,
		KeepAlive:         60 * time.Second,
		ReconnectMax:      2 * time.Minute,
		Outbox:            OutboxConfig{MaxBytes: 16 << 20, Fsync: true},
		Unlock:            UnlockConfig{Pulse: 5 * time.Second, ConfirmWindow: 7 * time.Second},
		Thermostat:        ThermoConfig{HeaterSetpointC: 5, CompressorSetpointC: 3, HysteresisC: 1, Period: 5 * time.Second},
	}
}

// hubSchemes are the URL schemes paho dials: plain TCP, TLS and WebSocket.
var hubSchemes = map[string]bool{"tcp": true, "mqtt": true, "ssl": true, "tls": true, "mqtts": true, "ws": true, "wss": true}

// Validate reports the first bad setting, naming its key.
func (c Config) Validate() error {
	if len(c.Hubs) == 0 {
		return errors.New("hubs: at least one hub URL is required")
	}
	for _, h := range c.Hubs {
		u, err := url.Parse(h)
		if err != nil || u.Host == "" || !hubSchemes[u.Scheme] {
			return fmt.Errorf("hubs: invalid hub URL %q: want tcp://, ssl:// or ws:// with host:port", h)
		}
	}
	if !wire.ValidDeviceID(c.DeviceID) {
		return fmt.Errorf("device_id: invalid device id %q: must match ^[a-z0-9][a-z0-9-]{0,62}$", c.DeviceID)
	}
	if (c.Secret == "") == (c.SecretFile == "") {
		return errors.New("secret, secret_file: set exactly one")
	}
	checks := []struct {
		key    string
		v, min time.Duration
	}{
		{"telemetry_interval", c.TelemetryInterval, 100 * time.Millisecond},
		{"keepalive", c.KeepAlive, time.Second},
		{"reconnect_max", c.ReconnectMax, time.Second},
		{"unlock.pulse", c.Unlock.Pulse, 100 * time.Millisecond},
		{"unlock.confirm_window", c.Unlock.ConfirmWindow, 100 * time.Millisecond},
		{"thermostat.period", c.Thermostat.Period, 10 * time.Millisecond},
	}
	for _, d := range checks {
		if d.v < d.min {
			return fmt.Errorf("%s: %s is below the minimum %s", d.key, d.v, d.min)
		}
	}
	if c.Unlock.Pulse > 30*time.Second {
		return fmt.Errorf("unlock.pulse: %s is above the maximum 30s", c.Unlock.Pulse)
	}
	if c.Outbox.MaxBytes < 64<<10 {
		return fmt.Errorf("outbox.max_bytes: %d is below the minimum 65536", c.Outbox.MaxBytes)
	}
	if c.Thermostat.HysteresisC <= 0 || c.Thermostat.HysteresisC > 10 {
		return fmt.Errorf("thermostat.hysteresis_c: %v out of range (0, 10]", c.Thermostat.HysteresisC)
	}
	if c.DataDir == "" {
		return errors.New("data_dir: must not be empty")
	}
	return nil
}

// secret returns the configured secret, reading secret_file if that is how it is given.
func (c Config) secret() (string, error) {
	if c.Secret != "" {
		return c.Secret, nil
	}
	b, err := os.ReadFile(c.SecretFile)
	if err != nil {
		return "", fmt.Errorf("secret_file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("secret_file: %s is empty", c.SecretFile)
	}
	return s, nil
}
