package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/lockerhub/lockerhub/broker"
)

// Config is the hub's whole configuration. Every key is documented, with its default, in
// configs/lockerhub.yaml; a test keeps the two in step.
type Config struct {
	DataDir  string         `mapstructure:"data_dir"`
	Log      LogConfig      `mapstructure:"log"`
	MQTT     broker.Config  `mapstructure:"mqtt"`
	HTTP     HTTPConfig     `mapstructure:"http"`
	Registry RegistryConfig `mapstructure:"registry"`
}

// LogConfig selects the log level and format.
type LogConfig struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// HTTPConfig is the HTTP server's listener.
type HTTPConfig struct {
	Addr string `mapstructure:"addr"`
}

// RegistryConfig tunes how the hub follows registry changes made by other processes.
type RegistryConfig struct {
	WatchInterval time.Duration `mapstructure:"watch_interval"`
}

// DefaultConfig returns the configuration used when nothing overrides it.
func DefaultConfig() Config {
	return Config{
		DataDir:  "./var/lockerhub",
		Log:      LogConfig{Level: "info", Format: "text"},
		MQTT:     broker.Config{Addr: ":1883"},
		HTTP:     HTTPConfig{Addr: ":8080"},
		Registry: RegistryConfig{WatchInterval: 500 * time.Millisecond},
	}
}

// Validate reports the first bad setting, naming its key.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("data_dir: must not be empty")
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		return err
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return fmt.Errorf("log.format: unknown format %q: want text or json", c.Log.Format)
	}
	if err := c.MQTT.Validate(); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Addr); err != nil {
		return fmt.Errorf("http.addr: invalid address %q: want host:port, e.g. :8080", c.HTTP.Addr)
	}
	if c.Registry.WatchInterval < 10*time.Millisecond || c.Registry.WatchInterval > time.Minute {
		return fmt.Errorf("registry.watch_interval: %s out of range 10ms..1m", c.Registry.WatchInterval)
	}
	return nil
}

// envPrefix is the prefix of environment overrides: LOCKERHUB_MQTT_ADDR sets mqtt.addr.
const envPrefix = "LOCKERHUB"

// LoadConfig reads the defaults, then file (if not empty), then the environment, and validates
// the result. Unknown keys in the file are errors, so that a typo does not silently fall back to
// a default.
func LoadConfig(file string) (Config, error) {
	v := viper.New()
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AllowEmptyEnv(true) // LOCKERHUB_MQTT_TLS_ADDR= turns a listener off
	v.AutomaticEnv()
	setDefaults(v, "", DefaultConfig())
	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("config file %s: %w", file, err)
		}
	}
	var c Config
	if err := v.UnmarshalExact(&c); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// setDefaults registers every key of c with viper, named by the mapstructure tags; viper only
// applies environment overrides to keys it knows.
func setDefaults(v *viper.Viper, prefix string, c any) {
	rv := reflect.ValueOf(c)
	for i := range rv.NumField() {
		key := rv.Type().Field(i).Tag.Get("mapstructure")
		if prefix != "" {
			key = prefix + "." + key
		}
		if f := rv.Field(i); f.Kind() == reflect.Struct {
			setDefaults(v, key, f.Interface())
		} else {
			v.SetDefault(key, f.Interface())
		}
	}
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil || strings.ContainsAny(s, "+-") {
		return 0, fmt.Errorf("log.level: unknown level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// newLogger returns the structured logger the configuration asks for, writing to w.
func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.Level) // validated
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
