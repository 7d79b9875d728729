package fleet

import (
	"context"
	"time"

	"github.com/lockerhub/lockerhub/fleet/wire"
)

// LiveState is what the hub knows right now about a device from its telemetry, kept in memory
// so that the API, the dashboard and the alert rules never wait for InfluxDB.
type LiveState struct {
	UpdatedAt  time.Time        `json:"updated_at"` // edge time of the newest message
	Snapshot   *wire.Telemetry  `json:"snapshot,omitempty"`
	Doors      []wire.DoorState `json:"doors"` // newest state per door, from snapshots and events
	LastEvent  *wire.Event      `json:"last_event,omitempty"`
	Gaps       uint64           `json:"gaps"`       // sequence numbers that never arrived
	Duplicates uint64           `json:"duplicates"` // messages received more than once
}

// PresenceService tells whether devices are connected.
type PresenceService interface {
	// Presence returns a device's presence; false if it has not connected since the hub started.
	Presence(id string) (Presence, bool)
}

// LiveStateService gives the live state of devices.
type LiveStateService interface {
	// LiveState returns a copy of the live state of d's registration; false before its first
	// message (what an earlier unit with the same id sent is never returned).
	LiveState(d *Device) (LiveState, bool)
}

// Receipt is a device message on its way into durable storage (telemetry.Pipeline.Store).
type Receipt interface {
	// Wait returns nil once the message is durable, or deliberately dropped, and the error
	// that kept it from storage otherwise. The sender must not acknowledge the message before.
	Wait(ctx context.Context) error
}
