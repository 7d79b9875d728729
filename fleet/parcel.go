package fleet

import (
	"context"
	"time"
)

// Parcel custody: a carrier drops a parcel into a compartment (a door of a unit), the recipient
// gets a one-time pickup code, and the code opens exactly that door once. The unit's agent
// checks codes itself against the hashes the hub syncs to it (wire.CodeSet), so a pickup works
// while the unit is offline; its door event (wire.CauseCode) completes the record when it
// arrives, even days later.
//
// A parcel's lifecycle:
//
//	awaiting-dropoff --dropoff--> in-locker --code at the unit--> picked-up
//	       |                         |  \--staff retrieve------> retrieved
//	       |                         |  \--code expiry---------> expired --retrieve--> retrieved
//	       \--cancel--> cancelled    \--cancel--> cancelled --retrieve--> retrieved
//
// A parcel occupies its compartment from its drop-off until it is picked up or retrieved
// (Occupies), whatever became of its code; a reservation holds the compartment for the carrier.

// ParcelStatus is where a parcel is in its lifecycle.
type ParcelStatus string

// Parcel statuses.
const (
	ParcelAwaitingDropoff ParcelStatus = "awaiting-dropoff" // reserved; the code is not live yet
	ParcelInLocker        ParcelStatus = "in-locker"        // dropped off; the code is live
	ParcelPickedUp        ParcelStatus = "picked-up"        // its code opened the door (sensor-confirmed)
	ParcelRetrieved       ParcelStatus = "retrieved"        // staff took it out, with a reason
	ParcelExpired         ParcelStatus = "expired"          // the code expired with the parcel inside
	ParcelCancelled       ParcelStatus = "cancelled"        // the delivery was called off; the code is dead
)

// ParcelStatuses lists every ParcelStatus in lifecycle order.
var ParcelStatuses = []ParcelStatus{ParcelAwaitingDropoff, ParcelInLocker, ParcelPickedUp, ParcelRetrieved, ParcelExpired, ParcelCancelled}

// CompartmentKind is the kind of compartment a parcel needs: dry (a locker bank's door), fridge
// (a chilled fridge unit's door) or freezer (a fridge unit of ClassFreezer).
type CompartmentKind string

// Compartment kinds.
const (
	CompartmentDry     CompartmentKind = "dry"
	CompartmentFridge  CompartmentKind = "fridge"
	CompartmentFreezer CompartmentKind = "freezer"
)

// CompartmentKinds lists every CompartmentKind.
var CompartmentKinds = []CompartmentKind{CompartmentDry, CompartmentFridge, CompartmentFreezer}

// CompartmentOf returns the kind of compartment every door of d is.
func CompartmentOf(d *Device) CompartmentKind {
	switch {
	case d.Kind != KindFridge:
		return CompartmentDry
	case ClassOf(d) == ClassFreezer:
		return CompartmentFreezer
	}
	return CompartmentFridge
}

// Size is a compartment's size. A door's size is its device's label "size.<door>" (for
// example size.3=large); a door without one is SizeMedium. A parcel fits a door of its size or
// larger.
type Size string

// Sizes, smallest first.
const (
	SizeSmall  Size = "small"
	SizeMedium Size = "medium"
	SizeLarge  Size = "large"
)

// Sizes lists every Size, smallest first.
var Sizes = []Size{SizeSmall, SizeMedium, SizeLarge}

// Parcel is one delivery into a compartment and what became of it: the chain of custody.
// The pickup code is never part of it; the hub keeps only the code's salt and hash.
type Parcel struct {
	ID          string          `json:"id"`
	DeviceID    string          `json:"device"`
	Site        string          `json:"site"`
	Door        int             `json:"door"`
	Compartment CompartmentKind `json:"compartment"`
	Size        Size            `json:"size,omitempty"` // as asked for; "" when the delivery named its door
	Perishable  bool            `json:"perishable,omitempty"`
	Recipient   string          `json:"recipient,omitempty"` // an opaque reference (flat, resident id), never a code
	Carrier     string          `json:"carrier,omitempty"`
	Status      ParcelStatus    `json:"status"`

	CreatedAt   time.Time  `json:"created_at"`
	DroppedAt   *time.Time `json:"dropped_at,omitempty"`   // when it went in (in-locker)
	ExpiresAt   time.Time  `json:"expires_at"`             // when its code stops opening the door
	PickedUpAt  *time.Time `json:"picked_up_at,omitempty"` // the unit's own time of the door's opening
	ClosedAt    *time.Time `json:"closed_at,omitempty"`    // when it reached a final status, as the hub recorded it
	ClosedBy    string     `json:"closed_by,omitempty"`    // actor id: "device:<id>" for a pickup, "hub" for an expiry
	CloseReason string     `json:"close_reason,omitempty"` // retrieve and cancel: why
	// Offline marks a pickup the hub learned of at least OfflinePickupAfter after it happened:
	// the unit checked the code while it could not reach the hub.
	Offline bool `json:"offline,omitempty"`

	Actor     string `json:"actor"`                // who delivered it: "token:<id>"
	ActorName string `json:"actor_name,omitempty"` // the token's name then

	CodeSalt     []byte `json:"-"` // wire.CodeSaltBytes
	CodeHash     []byte `json:"-"` // wire.HashCode(code, CodeSalt)
	Registration string `json:"-"` // the device's registration it was delivered to
}

// OfflinePickupAfter is how late a pickup's event must reach the hub for the pickup to count
// as made while the unit was offline (Parcel.Offline).
const OfflinePickupAfter = time.Minute

// Occupies reports whether p is physically in its compartment: dropped off and neither picked
// up nor retrieved.
func (p *Parcel) Occupies() bool {
	return p.DroppedAt != nil && p.Status != ParcelPickedUp && p.Status != ParcelRetrieved
}

// CodeLive reports whether p's code opens its door at now: in-locker and not expired.
func (p *Parcel) CodeLive(now time.Time) bool {
	return p.Status == ParcelInLocker && now.Before(p.ExpiresAt)
}

// Holds reports whether p keeps its compartment from another delivery: a reservation or a
// parcel inside.
func (p *Parcel) Holds() bool { return p.Status == ParcelAwaitingDropoff || p.Occupies() }

// Delivery is a carrier's or operator's request to put a parcel into a locker. It names a unit
// (DeviceID), and optionally its door; or a site, where the hub picks the unit. Without a door,
// the hub picks a free door of the right compartment (Perishable: fridge, Frozen: freezer,
// else dry) and at least Size, smallest first.
type Delivery struct {
	DeviceID   string        `json:"device,omitempty"`
	Site       string        `json:"site,omitempty"`
	Door       int           `json:"door,omitempty"`
	Size       Size          `json:"size,omitempty"`
	Perishable bool          `json:"perishable,omitempty"`
	Frozen     bool          `json:"frozen,omitempty"` // implies Perishable
	Recipient  string        `json:"recipient,omitempty"`
	Carrier    string        `json:"carrier,omitempty"`
	Reserve    bool          `json:"reserve,omitempty"`    // awaiting-dropoff until DropOff
	ExpiresIn  time.Duration `json:"expires_in,omitempty"` // the code's life from drop-off; 0 = the service's default
}

// ParcelFilter selects parcels; zero fields match everything. Sites limits them to those sites
// (a scoped token's). Limit caps the result (1..1000, 100 when zero); newest first.
type ParcelFilter struct {
	DeviceID string
	Site     string
	Sites    []string
	Status   []ParcelStatus
	Occupies bool   // only parcels inside a compartment
	Actor    string // only parcels this actor delivered (a carrier sees its own)
	// Current leaves out the parcels of ended registrations, as CommandFilter.Current does.
	Current  bool
	From, To time.Time // created in [From, To) where set
	Limit    int
}

// ParcelService runs parcel custody. Every change is recorded in the audit trail with the
// actor in the context, in the same transaction, and published as an EventParcelChanged.
// Codes go to the units through CodeSetFor (see the code sync).
type ParcelService interface {
	// Deliver records a parcel and returns it with its pickup code, which is shown this once
	// and never stored: EINVALID for a bad request, ENOTFOUND for an unknown or out-of-scope
	// unit or site, ECONFLICT when the door is taken or no free compartment fits.
	Deliver(ctx context.Context, d Delivery) (p *Parcel, code string, err error)
	// DropOff turns a reservation into a parcel in the locker, making its code live;
	// ECONFLICT unless it is awaiting-dropoff.
	DropOff(ctx context.Context, id string) (*Parcel, error)
	// Cancel calls a delivery off and kills its code; a parcel already inside still occupies
	// its compartment until it is retrieved. ECONFLICT unless awaiting-dropoff or in-locker.
	Cancel(ctx context.Context, id, reason string) (*Parcel, error)
	// Retrieve has staff take a parcel out: it unlocks the parcel's door (a command recorded
	// with the parcel's id) and marks the parcel retrieved once the door opened. ECONFLICT
	// unless the parcel occupies its compartment.
	Retrieve(ctx context.Context, id, reason string) (*Parcel, *Command, error)
	// FindParcelByID returns a parcel, or ENOTFOUND.
	FindParcelByID(ctx context.Context, id string) (*Parcel, error)
	// FindParcels returns the parcels matching f, newest first.
	FindParcels(ctx context.Context, f ParcelFilter) ([]*Parcel, error)
}

// CodeSetVersion is what the hub knows of a unit's codes: the version of the set it wants the
// unit to hold, and the version the unit last reported (wire.Telemetry.Codes).
type CodeSetVersion struct {
	DeviceID string
	Want     uint64
	Reported uint64
}
