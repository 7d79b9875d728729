// Package bus is the hub's in-memory event bus: the telemetry pipeline, the commands service
// and the alert engine publish what happened (fleet.Event), and the health rules, the
// dashboards' event stream and the alert notifiers follow it, without knowing each other.
// Services are built first and subscribed afterwards, so that none needs another at its
// construction.
//
// It is synchronous: Publish calls every subscriber in the publisher's goroutine, in the order
// they subscribed, and returns once they all have. That keeps the order of what each publisher
// does (a device's messages reach the rules in the order they were stored) and lets publishers
// promise what their callers rely on (the rules have seen a message before the device's
// acknowledgement). The price is that a subscriber must be quick and must never block.
//
// It lives under fleet, beside the other implementations of the domain's interfaces
// (fleet/sqldb, fleet/http), as WTF Dial's inmem package does; internal is for test helpers
// and utilities that know nothing of the domain.
package bus

import (
	"sync"
	"sync/atomic"

	"github.com/lockerhub/lockerhub/fleet"
)

// Bus delivers events to its subscribers. The zero value has none; it is safe for concurrent
// use.
type Bus struct {
	mu       sync.Mutex // serializes Subscribe
	handlers atomic.Pointer[[]fleet.EventHandler]
}

var _ fleet.EventPublisher = (*Bus)(nil)

// New returns a bus with no subscribers.
func New() *Bus { return &Bus{} }

// Subscribe adds h, which is told of every event published from then on, after the
// subscribers before it. h must be quick and must not block (see fleet.EventHandler).
func (b *Bus) Subscribe(h fleet.EventHandler) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var hs []fleet.EventHandler
	if old := b.handlers.Load(); old != nil {
		hs = append(hs, *old...)
	}
	hs = append(hs, h)
	b.handlers.Store(&hs)
}

// Publish tells every subscriber of ev in turn and returns once they all have. It takes no
// lock: every device message passes here, from as many goroutines as there are connections.
func (b *Bus) Publish(ev fleet.Event) {
	hs := b.handlers.Load()
	if hs == nil {
		return
	}
	for _, h := range *hs {
		h.HandleEvent(ev)
	}
}
