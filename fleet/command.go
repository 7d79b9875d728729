package fleet

import (
	"context"
	"time"

	"github.com/lockerhub/lockerhub/fleet/wire"
)

// CommandStatus is where a command is in its lifecycle: created -> sent -> succeeded | failed |
// expired.
type CommandStatus string

// Command statuses.
const (
	CommandCreated   CommandStatus = "created"
	CommandSent      CommandStatus = "sent"
	CommandSucceeded CommandStatus = "succeeded"
	CommandFailed    CommandStatus = "failed"
	CommandExpired   CommandStatus = "expired" // no result before its expiry: the device refuses it from then on; a later result of a device that started in time replaces it
)

// Command is an operator's request to a device and what became of it: the chain of custody of
// a remote unlock.
type Command struct {
	ID             string           `json:"id"`
	DeviceID       string           `json:"device"`
	Type           wire.CommandType `json:"type"`
	Door           int              `json:"door,omitempty"`
	Target         string           `json:"target,omitempty"`     // setpoint: heater or compressor
	SetpointC      *float64         `json:"setpoint_c,omitempty"` // setpoint
	Reason         string           `json:"reason"`
	Actor          string           `json:"actor"`                // "token:<id>"
	ActorName      string           `json:"actor_name,omitempty"` // the token's name when it sent the command
	IdempotencyKey string           `json:"idempotency_key,omitempty"`
	Status         CommandStatus    `json:"status"`
	Outcome        wire.Outcome     `json:"outcome,omitempty"` // as the device reported it
	Detail         string           `json:"detail,omitempty"`
	CreatedAt      time.Time        `json:"created_at"`
	ExpiresAt      time.Time        `json:"expires_at"`
	SentAt         *time.Time       `json:"sent_at,omitempty"`
	CompletedAt    *time.Time       `json:"completed_at,omitempty"`
	Registration   string           `json:"-"` // the device's registration it was sent to (Device.Registration)
}

// Done reports whether the command reached a final status.
func (c *Command) Done() bool {
	return c.Status == CommandSucceeded || c.Status == CommandFailed || c.Status == CommandExpired
}

// Latency is the time from creation to the device's result, or 0 before it.
func (c *Command) Latency() time.Duration {
	if c.CompletedAt == nil || c.Status == CommandExpired {
		return 0
	}
	return c.CompletedAt.Sub(c.CreatedAt)
}

// CommandStore persists commands.
type CommandStore interface {
	// CreateCommand stores c. If c has an idempotency key already used by the same actor, it
	// stores nothing and returns the earlier command instead.
	CreateCommand(ctx context.Context, c *Command) (earlier *Command, err error)
	// UpdateCommand stores c's status, outcome, detail and times if the stored command is
	// still in status from, and reports whether it was: a transition decided on a status that
	// another goroutine (or hub) has changed meanwhile is not applied.
	UpdateCommand(ctx context.Context, c *Command, from CommandStatus) (bool, error)
	// FindCommandByID returns a command, or ENOTFOUND.
	FindCommandByID(ctx context.Context, id string) (*Command, error)
	// FindCommands returns the commands matching f, newest first.
	FindCommands(ctx context.Context, f CommandFilter) ([]*Command, error)
	// CountCommands counts the commands created at since or later by actor, or for deviceID
	// (whichever is not empty).
	CountCommands(ctx context.Context, actor, deviceID string, since time.Time) (int, error)
}

// CommandFilter selects commands; zero fields match everything. Current leaves out the commands
// of ended registrations: of devices removed, or removed and registered again (see the package
// doc). Limit caps the result (1..1000, 100 when zero).
type CommandFilter struct {
	DeviceID string
	Status   CommandStatus
	Current  bool
	Limit    int
}
