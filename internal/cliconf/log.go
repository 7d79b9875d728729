package cliconf

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// LogConfig selects the log level and format (keys log.level and log.format).
type LogConfig struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// DefaultLog is the default log configuration: info, text.
var DefaultLog = LogConfig{Level: "info", Format: "text"}

// Validate reports a bad level or format, naming the key.
func (c LogConfig) Validate() error {
	if _, err := c.level(); err != nil {
		return err
	}
	if c.Format != "text" && c.Format != "json" {
		return fmt.Errorf("log.format: unknown format %q: want text or json", c.Format)
	}
	return nil
}

func (c LogConfig) level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.Level)); err != nil || strings.ContainsAny(c.Level, "+-") {
		return 0, fmt.Errorf("log.level: unknown level %q: want debug, info, warn or error", c.Level)
	}
	return l, nil
}

// NewLogger returns the structured logger c asks for, writing to w. c must be valid.
func (c LogConfig) NewLogger(w io.Writer) *slog.Logger {
	level, _ := c.level()
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
