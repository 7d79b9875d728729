package bus_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/bus"
)

type handler struct {
	name string
	log  *[]string
}

func (h handler) HandleEvent(ev fleet.Event) { *h.log = append(*h.log, h.name+" "+string(ev.Kind)) }

// Subscribers are told of each event before Publish returns, in the order they subscribed, and
// only of the events published after they subscribed.
func TestPublishIsSynchronousAndOrdered(t *testing.T) {
	var log []string
	b := bus.New()
	b.Publish(fleet.Event{Kind: fleet.EventAlertChanged}) // nobody follows yet
	b.Subscribe(handler{"rules", &log})
	b.Subscribe(handler{"stream", &log})
	b.Publish(fleet.Event{Kind: fleet.EventTelemetryStored})
	b.Publish(fleet.Event{Kind: fleet.EventCommandChanged})
	want := []string{"rules telemetry.stored", "stream telemetry.stored", "rules command.changed", "stream command.changed"}
	if !slices.Equal(log, want) {
		t.Fatalf("told %q, want %q", log, want)
	}
}

type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) HandleEvent(fleet.Event) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

// Publishers on many goroutines and a late subscriber do not race (go test -race).
func TestPublishConcurrently(t *testing.T) {
	b := bus.New()
	first := &counter{}
	b.Subscribe(first)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Publish(fleet.Event{Kind: fleet.EventTelemetryStored})
			}
		})
	}
	b.Subscribe(&counter{})
	wg.Wait()
	if first.n != 800 {
		t.Fatalf("the first subscriber was told %d events, want 800", first.n)
	}
}
