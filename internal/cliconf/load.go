// Package cliconf is what the lockerhub and edge-agent binaries share about configuration:
// loading a typed configuration with viper (defaults from a Go value, then an optional YAML
// file, then PREFIX_SECTION_KEY environment variables, decoded strictly so that a misspelt key
// is an error rather than a silently ignored setting) and the log settings.
package cliconf

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/spf13/viper"
)

// Load fills out (a pointer to a struct with mapstructure tags) from defaults (a value of the
// same struct), file (skipped if empty) and the environment variables starting with envPrefix.
func Load(out any, defaults any, file, envPrefix string) error {
	v := viper.New()
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AllowEmptyEnv(true) // PREFIX_MQTT_TLS_ADDR= turns a setting off
	v.AutomaticEnv()
	setDefaults(v, "", reflect.ValueOf(defaults))
	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("config file %s: %w", file, err)
		}
	}
	if err := v.UnmarshalExact(out); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// setDefaults registers every leaf key of the struct rv with viper, named by the mapstructure
// tags; viper applies environment overrides only to keys it knows.
func setDefaults(v *viper.Viper, prefix string, rv reflect.Value) {
	for i := range rv.NumField() {
		name, opts, _ := strings.Cut(rv.Type().Field(i).Tag.Get("mapstructure"), ",")
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		if opts == "squash" {
			key = prefix
		}
		if f := rv.Field(i); f.Kind() == reflect.Struct {
			setDefaults(v, key, f)
		} else {
			v.SetDefault(key, f.Interface())
		}
	}
}
