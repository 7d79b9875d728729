// Package logs holds what every component does with the logger it is given. It imports only
// the standard library, so that the edge agent can use it too.
package logs

import "log/slog"

// OrDiscard returns log, or a logger that drops everything when log is nil: a component built
// without a logger (in a test, a tool) stays quiet rather than write to the process's stderr.
func OrDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
