// Package promreg holds what every component does with the Prometheus registerer it is given.
package promreg

import "github.com/prometheus/client_golang/prometheus"

// OrPrivate returns reg, or a registry of its own when reg is nil: a component built without a
// registerer (in a test, a tool) can still register its metrics, and two of them never clash
// over the same names.
func OrPrivate(reg prometheus.Registerer) prometheus.Registerer {
	if reg == nil {
		return prometheus.NewRegistry()
	}
	return reg
}
