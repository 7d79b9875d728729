package fleet

import (
	"context"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lockerhub/lockerhub/fleet/wire"
)

// Kind is the type of a unit. It decides which hardware the agent drives and which health rules
// apply: locker banks keep their electronics warm with a heater, fridges hold food cold.
type Kind string

// The kinds of unit lockerhub manages.
const (
	KindLockerBank Kind = "locker-bank"
	KindFridge     Kind = "fridge"
)

// Classes of refrigerated units, which decide their food-safety limits. A fridge unit is a
// freezer when its label "class" says "freezer", and chilled otherwise.
const (
	ClassChilled = "chilled"
	ClassFreezer = "freezer"
)

// ClassOf returns the class of a fridge unit: ClassFreezer when labelled so, else ClassChilled.
func ClassOf(d *Device) string {
	if d.Labels["class"] == ClassFreezer {
		return ClassFreezer
	}
	return ClassChilled
}

// Kinds lists every valid Kind, for help texts and validation messages.
var Kinds = []Kind{KindLockerBank, KindFridge}

// Limits on device attributes; labels end up as InfluxDB tags and in URLs, so they stay small.
const (
	MaxLabels        = 32
	MaxLabelKeyLen   = 63
	MaxLabelValueLen = 256
)

// reservedIDs cannot be device ids: "inline" is the client id of the broker's own inline client,
// and a device by that name would take over the hub's internal session.
var reservedIDs = map[string]bool{"inline": true}

// Device is one edge unit registered with the hub: a locker bank or a refrigerated unit.
//
// Registration and CreatedAt identify this registration of the id (see the package doc): a unit
// removed and registered again under the same id is another unit, with a new Registration, and
// its CreatedAt is when its telemetry history starts. Registration is the store's and is not
// shown in the API, where created_at tells registrations apart.
type Device struct {
	ID           string            `json:"id"`
	Kind         Kind              `json:"kind"`
	Site         string            `json:"site"`
	Doors        int               `json:"doors"`
	Labels       map[string]string `json:"labels"`
	Enabled      bool              `json:"enabled"`
	CreatedAt    time.Time         `json:"created_at"`
	UpdatedAt    time.Time         `json:"updated_at"`
	Registration string            `json:"-"`
}

// Validate reports the first attribute of d that breaks a rule, as an EINVALID *Error.
func (d *Device) Validate() error {
	if !wire.ValidDeviceID(d.ID) {
		return Errorf(EINVALID, "invalid device id %q: must match ^[a-z0-9][a-z0-9-]{0,62}$", d.ID)
	}
	if reservedIDs[d.ID] {
		return Errorf(EINVALID, "device id %q is reserved", d.ID)
	}
	if err := d.Kind.Validate(); err != nil {
		return err
	}
	if !validSite(d.Site) {
		return Errorf(EINVALID, "invalid site %q: must match ^[a-z0-9][a-z0-9-]{0,62}$", d.Site)
	}
	if d.Doors < 1 || d.Doors > wire.MaxDoors {
		return Errorf(EINVALID, "invalid number of doors %d: must be 1..%d", d.Doors, wire.MaxDoors)
	}
	return ValidateLabels(d.Labels)
}

// Validate returns an EINVALID *Error unless k is one of Kinds.
func (k Kind) Validate() error {
	for _, v := range Kinds {
		if k == v {
			return nil
		}
	}
	return Errorf(EINVALID, "unknown kind %q: must be one of %s", k, kindList())
}

func kindList() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// ValidateLabels checks label keys (lowercase letters, digits, '-', '_', '.') and value sizes.
func ValidateLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return Errorf(EINVALID, "too many labels: %d, at most %d", len(labels), MaxLabels)
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys) // report the same first offender every time
	for _, k := range keys {
		if !validLabelKey(k) {
			return Errorf(EINVALID, "invalid label key %q: 1..%d of a-z 0-9 - _ .", k, MaxLabelKeyLen)
		}
		if v := labels[k]; len(v) > MaxLabelValueLen || !utf8.ValidString(v) {
			return Errorf(EINVALID, "invalid value for label %q: at most %d bytes of UTF-8", k, MaxLabelValueLen)
		}
	}
	return nil
}

func validLabelKey(k string) bool {
	if k == "" || len(k) > MaxLabelKeyLen {
		return false
	}
	for _, c := range []byte(k) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// ParseLabels turns "key=value" strings, as given on the command line, into a label map.
func ParseLabels(pairs []string) (map[string]string, error) {
	labels := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return nil, Errorf(EINVALID, "invalid label %q: want key=value", p)
		}
		if _, dup := labels[k]; dup {
			return nil, Errorf(EINVALID, "label %q given twice", k)
		}
		labels[k] = v
	}
	return labels, ValidateLabels(labels)
}

// DeviceFilter selects devices in FindDevices; zero fields match everything.
type DeviceFilter struct {
	Site    string
	Kind    Kind
	Enabled *bool
}

// Credential is what the broker needs to authenticate a device: whether it may connect and the
// salted hash of its secret. The hash changes whenever the secret is rotated, which is how live
// sessions authenticated with an old secret are recognised.
type Credential struct {
	DeviceID   string
	Enabled    bool
	SecretHash string
}

// DeviceService manages the device registry. Every change is recorded in the audit trail for the
// actor in the context (NewContextWithActor) in the same transaction as the change: a change
// that cannot be recorded is not made. Errors carry the codes of this package: EINVALID for bad
// attributes, ENOTFOUND for an unknown id, ECONFLICT for a duplicate id, EINTERNAL for a change
// without an actor in its context.
type DeviceService interface {
	// FindDeviceByID returns the device with the given id.
	FindDeviceByID(ctx context.Context, id string) (*Device, error)
	// FindDevices returns the devices matching f, ordered by id; EINVALID for an unknown kind.
	FindDevices(ctx context.Context, f DeviceFilter) ([]*Device, error)
	// CreateDevice registers d (enabled, with a new Registration) and returns its new secret,
	// which is never stored in the clear and cannot be shown again.
	CreateDevice(ctx context.Context, d *Device) (secret string, err error)
	// CreateDevices registers every one of ds (enabled) in one transaction and returns their
	// new secrets in the same order: either all are stored or, on any error, none is:
	// EINVALID for the first invalid device, ECONFLICT naming an id already taken.
	CreateDevices(ctx context.Context, ds []*Device) (secrets []string, err error)
	// RotateSecret replaces the device's secret and returns the new one; sessions that
	// authenticated with the old one are disconnected by the hub.
	RotateSecret(ctx context.Context, id string) (secret string, err error)
	// SetEnabled enables or disables a device; a disabled device cannot connect.
	SetEnabled(ctx context.Context, id string, enabled bool) (*Device, error)
	// DeleteDevice removes a device from the registry, which ends its registration: what the
	// hub recorded of it is no longer shown for its id.
	DeleteDevice(ctx context.Context, id string) error
	// DeviceCredential returns the credential the broker checks on connect.
	DeviceCredential(ctx context.Context, id string) (Credential, error)
}

// validSite reports whether s is a valid site name. Sites become InfluxDB tags and path
// segments, so they follow the same rule as device ids.
func validSite(s string) bool { return wire.ValidDeviceID(s) }
