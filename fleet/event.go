package fleet

import "github.com/lockerhub/lockerhub/fleet/wire"

// Event is something that happened in the hub, told to whoever follows it (the health rules,
// the dashboards' event stream, the alert notifiers) through an EventPublisher. Each kind sets
// its own payload fields and leaves the others zero.
type Event struct {
	Kind EventKind

	// Device is the registration a device message belongs to (EventTelemetryStored,
	// EventDoorChanged, EventKeypadEntered, EventResultReceived).
	Device *Device
	// Message is the device's message: a wire.Telemetry, wire.Event (of kind door for
	// EventDoorChanged, keypad for EventKeypadEntered) or wire.Result.
	Message wire.Message
	// Lost is how many of the unit's sequence numbers the message showed to be lost.
	Lost uint64

	// Command is the command as it is now (EventCommandChanged), or as its device receives it
	// (EventCommandSeen: only its id, device, type and door are known).
	Command Command

	// Presence is a device's presence as it changed (EventPresenceChanged).
	Presence Presence

	// Parcel is the parcel as it is after its change (EventParcelChanged).
	Parcel *Parcel

	// Alert is the alert's lifecycle change (EventAlertChanged).
	Alert AlertEvent
	// Mirrored marks an alert change another hub of the cluster made, which this hub learned
	// from the shared store: the hub that made it notifies it, the others only show it.
	Mirrored bool
}

// EventKind names what happened.
type EventKind string

// Kinds of events.
const (
	// EventTelemetryStored is a telemetry snapshot the hub stores: with the embedded broker,
	// once it is durable; in a cluster, as it passes on the whole stream, while the hub the
	// broker gave it to stores it.
	EventTelemetryStored EventKind = "telemetry.stored"
	// EventDoorChanged is a door event (opened, closed, locked...), stored as above.
	EventDoorChanged EventKind = "door.changed"
	// EventKeypadEntered is a code entered at a unit's keypad and what the unit did with it
	// (a wire.Event of kind keypad), stored as above.
	EventKeypadEntered EventKind = "keypad.entered"
	// EventResultReceived is a command result as the hub delivers it: not stored with the
	// telemetry, but numbered in the same sequence, so it counts for the lost messages.
	EventResultReceived EventKind = "result.received"
	// EventCommandChanged is a command of this hub's commands service as it is created, sent
	// and completed.
	EventCommandChanged EventKind = "command.changed"
	// EventCommandSeen is a command as the external broker of a cluster delivers it to its
	// device, whichever hub sent it (this one included).
	EventCommandSeen EventKind = "command.seen"
	// EventPresenceChanged is a device that connected or disconnected, as the embedded broker
	// saw it or, in a cluster, as the external broker's status documents say.
	EventPresenceChanged EventKind = "presence.changed"
	// EventParcelChanged is a parcel delivered, dropped off, picked up, retrieved, expired or
	// cancelled, as the parcel service recorded it.
	EventParcelChanged EventKind = "parcel.changed"
	// EventAlertChanged is an alert fired, acknowledged or resolved.
	EventAlertChanged EventKind = "alert.changed"
)

// EventPublisher tells the hub's followers what happened. Publish runs the followers in the
// caller's goroutine, before it returns: a publisher may rely on them having seen the event
// (the telemetry pipeline publishes a message before the device's acknowledgement).
type EventPublisher interface {
	Publish(ev Event)
}

// EventHandler follows what happens in the hub. HandleEvent runs in the publisher's goroutine,
// on paths such as a device's message acknowledgement or an API call: it must be quick and
// must never block; slow work belongs on a queue of its own.
type EventHandler interface {
	HandleEvent(ev Event)
}
