package broker

import (
	"context"
	"log/slog"
)

// mochiLogger returns the logger handed to mochi. mochi logs every refused packet at warning
// level with a dump of the whole packet; the hook already logs those events once, rate
// limited and with our keys, so mochi is held to errors unless the hub runs at debug level.
func mochiLogger(log *slog.Logger) *slog.Logger {
	h := log.With("component", "mochi").Handler()
	if h.Enabled(context.Background(), slog.LevelDebug) {
		return slog.New(h)
	}
	return slog.New(minLevel{Handler: h, min: slog.LevelError})
}

// minLevel drops records below min.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{Handler: m.Handler.WithAttrs(attrs), min: m.min}
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: m.Handler.WithGroup(name), min: m.min}
}
