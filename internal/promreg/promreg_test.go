package promreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestOrPrivate(t *testing.T) {
	given := prometheus.NewRegistry()
	if OrPrivate(given) != given {
		t.Error("OrPrivate replaced the registerer it was given")
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "lockerhub_test_total", Help: "A test counter."})
	a, b := OrPrivate(nil), OrPrivate(nil)
	if a == nil || a == b {
		t.Fatal("OrPrivate(nil) does not return a registry of its own")
	}
	if err := a.Register(c); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(c); err != nil {
		t.Errorf("two private registries clash: %v", err)
	}
}
