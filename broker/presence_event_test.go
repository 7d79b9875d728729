package broker_test

import (
	"sync"
	"testing"

	"github.com/lockerhub/lockerhub/broker"
	"github.com/lockerhub/lockerhub/fleet"
)

// presenceEvents records the presence changes a broker tells its event bus.
type presenceEvents struct {
	mu  sync.Mutex
	got []fleet.Presence
}

func (r *presenceEvents) Publish(ev fleet.Event) {
	if ev.Kind == fleet.EventPresenceChanged {
		r.mu.Lock()
		r.got = append(r.got, ev.Presence)
		r.mu.Unlock()
	}
}

func (r *presenceEvents) list() []fleet.Presence {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]fleet.Presence(nil), r.got...)
}

// The health rules learn of a connect and a disconnect from the bus, not by asking every unit:
// each is told once, as the presence service then reports it.
func TestPresenceChangesAreTold(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	events := &presenceEvents{}
	b := h.startBroker(broker.Config{Addr: "127.0.0.1:0"}, broker.Options{Events: events})
	c, err := dial(at(h.options("a", "a", h.secrets["a"]), b))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "told online", func() bool { return len(events.list()) == 1 })
	online, _ := b.Presence("a")
	if got := events.list()[0]; !got.Online || got.DeviceID != "a" || !got.ConnectedSince.Equal(online.ConnectedSince) {
		t.Fatalf("told %+v on connect, presence %+v", got, online)
	}
	c.Disconnect(100)
	waitFor(t, "told offline", func() bool { return len(events.list()) == 2 })
	offline, _ := b.Presence("a")
	if got := events.list()[1]; got.Online || got.DeviceID != "a" || !got.DisconnectedAt.Equal(offline.DisconnectedAt) || offline.Online {
		t.Fatalf("told %+v on disconnect, presence %+v", got, offline)
	}
}
