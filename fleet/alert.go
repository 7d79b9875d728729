package fleet

import (
	"context"
	"time"
)

// Severity says how urgently an alert needs a person. Critical and major alerts make a unit
// critical in the fleet health summary; minor and warning alerts make it a warning.
type Severity string

// Severities, most urgent first.
const (
	SeverityCritical Severity = "critical"
	SeverityMajor    Severity = "major"
	SeverityMinor    Severity = "minor"
	SeverityWarning  Severity = "warning"
)

// Severities lists every Severity, most urgent first.
var Severities = []Severity{SeverityCritical, SeverityMajor, SeverityMinor, SeverityWarning}

// Validate returns an EINVALID *Error unless s is one of Severities.
func (s Severity) Validate() error {
	if s.Rank() < 0 {
		return Errorf(EINVALID, "unknown severity %q: must be one of critical, major, minor, warning", s)
	}
	return nil
}

// Rank is 0 for critical up to 3 for warning, and -1 for an unknown severity.
func (s Severity) Rank() int {
	for i, v := range Severities {
		if s == v {
			return i
		}
	}
	return -1
}

// Scope is what an alert is about: a whole unit, one door, or one refrigerated compartment
// (which is behind a door and carries its number).
type Scope string

// Scopes of alert rules.
const (
	ScopeDevice      Scope = "device"
	ScopeDoor        Scope = "door"
	ScopeCompartment Scope = "compartment"
)

// AlertState is where an alert is in its lifecycle: firing -> acknowledged -> resolved, or
// firing -> resolved.
type AlertState string

// Alert states.
const (
	AlertFiring       AlertState = "firing"
	AlertAcknowledged AlertState = "acknowledged"
	AlertResolved     AlertState = "resolved"
)

// Validate returns an EINVALID *Error unless s is a known state.
func (s AlertState) Validate() error {
	switch s {
	case AlertFiring, AlertAcknowledged, AlertResolved:
		return nil
	}
	return Errorf(EINVALID, "unknown alert state %q: must be firing, acknowledged or resolved", s)
}

// Open reports whether an alert in state s still needs attention.
func (s AlertState) Open() bool { return s == AlertFiring || s == AlertAcknowledged }

// ActorHub is the actor of what the hub does by itself, such as resolving an alert whose clear
// condition holds.
const ActorHub = "hub"

// Hub is ActorHub as an Actor: the hub has no name beyond its id.
var Hub = Actor{ID: ActorHub}

// MaxAlertNoteLen bounds the note a technician gives when acknowledging or resolving.
const MaxAlertNoteLen = 1024

// Alert is one occurrence of a rule's condition on one device (and door, for door and
// compartment rules). There is at most one open alert per (Rule, DeviceID, Door): a condition
// that lasts is one alert, not one per message.
type Alert struct {
	ID          int64      `json:"id"`
	Rule        string     `json:"rule"`
	Severity    Severity   `json:"severity"`
	Scope       Scope      `json:"scope"`
	DeviceID    string     `json:"device"`
	Site        string     `json:"site"`
	Door        int        `json:"door,omitempty"` // 0 for device-scoped rules
	State       AlertState `json:"state"`
	Summary     string     `json:"summary"`         // what was seen when it fired, for people
	Value       *float64   `json:"value,omitempty"` // the reading that made it fire, when there is one
	FiredAt     time.Time  `json:"fired_at"`
	AckedAt     time.Time  `json:"acked_at,omitzero"`
	AckedBy     string     `json:"acked_by,omitempty"`
	AckedByName string     `json:"acked_by_name,omitempty"` // the token's name then (Actor.Name)
	AckNote     string     `json:"ack_note,omitempty"`
	ResolvedAt  time.Time  `json:"resolved_at,omitzero"`
	ResolvedBy  string     `json:"resolved_by,omitempty"` // ActorHub when its clear condition held
	// ResolvedByName is the token's name then (Actor.Name); "" for the hub.
	ResolvedByName string `json:"resolved_by_name,omitempty"`
	ResolveNote    string `json:"resolve_note,omitempty"`
	// Registration is the device's registration the alert is about (Device.Registration).
	Registration string `json:"-"`
}

// AlertKey identifies the condition an alert is about: that of one registration of the device,
// since a unit registered again under the same id starts with no alert.
type AlertKey struct {
	Rule         string
	DeviceID     string
	Registration string
	Door         int
}

// Key returns the key of a.
func (a *Alert) Key() AlertKey {
	return AlertKey{Rule: a.Rule, DeviceID: a.DeviceID, Registration: a.Registration, Door: a.Door}
}

// AlertFilter selects alerts; zero fields match everything. Rule is a rule's name. Sites, when not nil, restricts the
// result to those sites (a token's scope). Open selects firing and acknowledged alerts and
// cannot be combined with State. Current leaves out the alerts of ended registrations: of
// devices removed, or removed and registered again (see the package doc). BeforeID pages back
// through history: only alerts with a smaller id. Limit caps the result (1..1000, 100 when
// zero).
type AlertFilter struct {
	State    AlertState
	Open     bool
	Rule     string
	Severity Severity
	Site     string
	Sites    []string
	DeviceID string
	Current  bool
	BeforeID int64
	Limit    int
}

// Validate reports a filter that cannot match as asked, as an EINVALID *Error.
func (f AlertFilter) Validate() error {
	if f.State != "" {
		if err := f.State.Validate(); err != nil {
			return err
		}
		if f.Open {
			return Errorf(EINVALID, "state and open cannot be combined")
		}
	}
	if f.Severity != "" {
		if err := f.Severity.Validate(); err != nil {
			return err
		}
	}
	if f.Limit < 0 || f.Limit > 1000 {
		return Errorf(EINVALID, "limit %d out of range 1..1000", f.Limit)
	}
	return nil
}

// AlertStore persists alerts.
type AlertStore interface {
	// CreateAlert stores a new firing alert and sets its ID; ECONFLICT if an alert with the
	// same key (the same registration of the device) is still open.
	CreateAlert(ctx context.Context, a *Alert) error
	// AckAlert moves a firing alert to acknowledged; ENOTFOUND for an unknown id, ECONFLICT
	// if it is not firing.
	AckAlert(ctx context.Context, id int64, by Actor, note string, at time.Time) (*Alert, error)
	// ResolveAlert resolves an open alert; ENOTFOUND for an unknown id, ECONFLICT if it is
	// already resolved.
	ResolveAlert(ctx context.Context, id int64, by Actor, note string, at time.Time) (*Alert, error)
	// RestateAlert replaces an open alert's summary and value, for an alert about a count that
	// grew while it was open; ENOTFOUND for an unknown id, ECONFLICT if it is resolved.
	RestateAlert(ctx context.Context, id int64, summary string, value *float64) (*Alert, error)
	// FindAlertByID returns an alert, or ENOTFOUND.
	FindAlertByID(ctx context.Context, id int64) (*Alert, error)
	// FindAlerts returns the alerts matching f, newest first.
	FindAlerts(ctx context.Context, f AlertFilter) ([]*Alert, error)
}

// AlertEvent is a change in an alert's lifecycle, as notification senders see it.
type AlertEvent struct {
	Kind  AlertEventKind `json:"event"`
	Alert Alert          `json:"alert"`
}

// AlertEventKind names a lifecycle change.
type AlertEventKind string

// Lifecycle changes that are notified.
const (
	AlertEventFired        AlertEventKind = "fired"
	AlertEventAcknowledged AlertEventKind = "acknowledged"
	AlertEventResolved     AlertEventKind = "resolved"
)

// Health is a unit's condition at a glance, for the fleet summary and the dashboard.
type Health string

// Unit health, worst last. A unit is offline when it is not connected, critical with an open
// critical or major alert, warning with an open minor or warning alert, and ok otherwise.
const (
	HealthOK       Health = "ok"
	HealthWarning  Health = "warning"
	HealthCritical Health = "critical"
	HealthOffline  Health = "offline"
)

// Validate returns an EINVALID *Error unless h is a known health.
func (h Health) Validate() error {
	switch h {
	case HealthOK, HealthWarning, HealthCritical, HealthOffline:
		return nil
	}
	return Errorf(EINVALID, "unknown health %q: must be ok, warning, critical or offline", h)
}

// HealthOf returns the health of a unit that is online or not, with open alerts of the given
// severities.
func HealthOf(online bool, open []Severity) Health {
	if !online {
		return HealthOffline
	}
	h := HealthOK
	for _, s := range open {
		switch s {
		case SeverityCritical, SeverityMajor:
			return HealthCritical
		case SeverityMinor, SeverityWarning:
			h = HealthWarning
		}
	}
	return h
}

// SiteHealth counts a site's units by health.
type SiteHealth struct {
	Site     string `json:"site"`
	Units    int    `json:"units"`
	OK       int    `json:"ok"`
	Warning  int    `json:"warning"`
	Critical int    `json:"critical"`
	Offline  int    `json:"offline"`
	Open     int    `json:"alerts_open"` // firing or acknowledged alerts
}

// Add counts one unit of health h with open alerts.
func (s *SiteHealth) Add(h Health, open int) {
	s.Units++
	s.Open += open
	switch h {
	case HealthOK:
		s.OK++
	case HealthWarning:
		s.Warning++
	case HealthCritical:
		s.Critical++
	case HealthOffline:
		s.Offline++
	}
}

// Merge adds the counts of o to s.
func (s *SiteHealth) Merge(o SiteHealth) {
	s.Units += o.Units
	s.OK += o.OK
	s.Warning += o.Warning
	s.Critical += o.Critical
	s.Offline += o.Offline
	s.Open += o.Open
}
