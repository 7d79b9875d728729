// Package parcels runs parcel custody in the hub (fleet.ParcelService): it picks a free
// compartment for a delivery, makes its one-time pickup code (shown once, kept only as a salted
// hash), records every change with its audit entry in one transaction, keeps each unit's code
// set in step with its parcels, and completes the record from what the units report.
//
// The unit checks a code itself, against the hashes the hub sent it (wire.CodeSet), so a pickup
// works while it is offline. The hub sends a unit its set when the set changes, when the unit
// connects, and when its telemetry reports holding another version than the one wanted (at most
// every ResendAfter): cost follows change, and no loop ever visits every unit. A code's expiry
// is a deadline: one timer waits for the earliest in the store (read again at least every
// minute, for the deadlines other hubs of a cluster set), and at it the parcel becomes expired. The pickup itself comes back as a door event (wire.CauseCode with the parcel's id);
// its time is the unit's, so a pickup made offline is recorded when it happened.
//
// Every hub of a cluster runs the same: the store decides each transition (a compare-and-set
// on the parcel's status), so an event handled by two hubs, or a pickup racing an expiry,
// applies once.
package parcels

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/commands"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/logs"
	"github.com/lockerhub/lockerhub/internal/promreg"
)

// Config is the service's settings.
type Config struct {
	// CodeTTL is how long a pickup code opens its door, from the drop-off, unless the
	// delivery asks for another life (fleet.Delivery.ExpiresIn).
	CodeTTL time.Duration `mapstructure:"code_ttl"`
	// ResendAfter is the least time between two code sets sent to a unit whose telemetry
	// reports another version than the one wanted.
	ResendAfter time.Duration `mapstructure:"resend_after"`
	// OfflineAfter is how late a pickup's door event must reach the hub for the pickup to be
	// marked made offline (fleet.Parcel.Offline). A test shortens it, to take a unit's network
	// down for seconds rather than minutes.
	OfflineAfter time.Duration `mapstructure:"offline_after"`
}

// Limits on requests.
const (
	DefaultCodeTTL     = 168 * time.Hour
	DefaultResendAfter = 5 * time.Second
	MinCodeTTL         = time.Minute
	MaxCodeTTL         = 90 * 24 * time.Hour
	maxTextBytes       = 128 // recipient, carrier
	maxReasonBytes     = 400 // a command's reason holds it with the parcel's id
)

// WithDefaults returns c with its zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	if c.CodeTTL == 0 {
		c.CodeTTL = DefaultCodeTTL
	}
	if c.ResendAfter == 0 {
		c.ResendAfter = DefaultResendAfter
	}
	if c.OfflineAfter == 0 {
		c.OfflineAfter = fleet.OfflinePickupAfter
	}
	return c
}

// Validate reports the first setting out of its range.
func (c Config) Validate() error {
	if c.CodeTTL < MinCodeTTL || c.CodeTTL > MaxCodeTTL {
		return fmt.Errorf("parcels.code_ttl %s: want %s..%s", c.CodeTTL, MinCodeTTL, MaxCodeTTL)
	}
	if c.ResendAfter < 100*time.Millisecond || c.ResendAfter > time.Hour {
		return fmt.Errorf("parcels.resend_after %s: want 100ms..1h", c.ResendAfter)
	}
	// Below a second, clock skew between unit and hub and an ordinary network delay would mark
	// pickups made online as offline.
	if c.OfflineAfter < time.Second || c.OfflineAfter > 24*time.Hour {
		return fmt.Errorf("parcels.offline_after %s: want 1s..24h", c.OfflineAfter)
	}
	return nil
}

// Store keeps parcels and code set versions (sqldb.ParcelStore); see there for what each
// method guarantees.
type Store interface {
	CreateParcel(ctx context.Context, p *fleet.Parcel, e *fleet.AuditEntry) (version uint64, err error)
	UpdateParcel(ctx context.Context, p *fleet.Parcel, from fleet.ParcelStatus, e *fleet.AuditEntry) (ok bool, version uint64, err error)
	FindParcelByID(ctx context.Context, id string) (*fleet.Parcel, error)
	FindParcels(ctx context.Context, f fleet.ParcelFilter) ([]*fleet.Parcel, error)
	HeldDoors(ctx context.Context, deviceID, registration string) (map[int]bool, error)
	CodeSet(ctx context.Context, deviceID string, now time.Time) (fleet.CodeSetVersion, []*fleet.Parcel, error)
	SetReportedCodes(ctx context.Context, deviceID string, version uint64) error
	ExpiredParcels(ctx context.Context, at time.Time, limit int) ([]*fleet.Parcel, error)
	NextExpiry(ctx context.Context) (time.Time, bool, error)
	RecordDoorClosed(ctx context.Context, id string, at time.Time, e *fleet.AuditEntry) (bool, error)
	DoorsClosing(ctx context.Context, since time.Time) ([]*fleet.Parcel, error)
}

// Publisher sends a message to a device through the broker, QoS 1 with an expiry
// (broker.Broker.PublishRequest, or the external broker's link in a cluster).
type Publisher interface {
	PublishRequest(topic string, payload []byte, expiry time.Duration, responseTopic string, correlation []byte) error
}

// Unlocker sends a command and waits for its outcome (the commands service).
type Unlocker interface {
	Send(ctx context.Context, req commands.Request, wait bool) (*fleet.Command, error)
}

// Options carries the service's collaborators beside its store.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Events     fleet.EventPublisher // told of every parcel change; optional
	Audit      fleet.Auditor        // where keypad attempts are recorded; optional
	// Shared says the store is shared with other hubs (a cluster), which may change a unit's
	// code set without this hub hearing of it: what this hub read of a set is then checked
	// against the store again every so often, as units report. A hub of its own makes every
	// change itself and reads each unit's set once.
	Shared bool
}

// Service runs parcel custody. Create it with New, start it with Start, stop it with Close.
type Service struct {
	store    Store
	devices  fleet.DeviceService
	presence fleet.PresenceService
	unlock   Unlocker
	pub      Publisher
	cfg      Config
	log      *slog.Logger
	events   fleet.EventPublisher
	audit    fleet.Auditor
	shared   bool
	metrics  *metrics
	now      func() time.Time

	mu       sync.Mutex
	units    map[string]*unit   // what this hub knows of each unit's code set
	closing  map[doorKey]string // doors whose parcel left, until they close: the parcel's id
	queue    []job
	wake     chan struct{} // buffered(1): the queue has work
	timer    *time.Timer   // the expiry deadline's
	deadline time.Time     // when timer fires; zero when it is not armed
	closed   bool

	stop chan struct{}
	done chan struct{}
}

var (
	_ fleet.ParcelService = (*Service)(nil)
	_ fleet.EventHandler  = (*Service)(nil)
)

// unit is a unit's code set as this hub last learnt it.
type unit struct {
	read     time.Time // when want was last read from the store; zero: never
	want     uint64    // the version wanted, as last read or bumped here
	reported uint64    // the version the unit last reported
	checked  time.Time // when its telemetry last started a check or a resend
}

// job is work for the service's goroutine.
type job struct {
	kind   jobKind
	device string
	codes  uint64 // jobReported: the version the unit reported
}

type jobKind int

const (
	jobSync     jobKind = iota // send the unit its code set if it is online
	jobReported                // the unit reported codes; compare, record, resend
	jobExpire                  // the expiry deadline fell due
)

// New returns a parcel service. cfg's zero fields take the defaults.
func New(store Store, devices fleet.DeviceService, presence fleet.PresenceService, unlock Unlocker, pub Publisher,
	cfg Config, opts Options) (*Service, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(promreg.OrPrivate(opts.Registerer))
	if err != nil {
		return nil, fmt.Errorf("register parcel metrics: %w", err)
	}
	return &Service{store: store, devices: devices, presence: presence, unlock: unlock, pub: pub, cfg: cfg,
		log: logs.OrDiscard(opts.Logger), events: opts.Events, audit: opts.Audit, shared: opts.Shared, metrics: m, now: time.Now,
		units: map[string]*unit{}, closing: map[doorKey]string{}, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// Start starts the goroutine that handles device events, sends code sets and expires codes,
// and arms the expiry timer for the earliest code in the store.
func (s *Service) Start() {
	s.watchClosing()
	go s.run()
	s.enqueue(job{kind: jobExpire})
}

// Close stops the service's goroutine and waits for it; work still queued is dropped (the
// store and the units' telemetry bring it back). Calls after the first do nothing.
func (s *Service) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	close(s.stop)
	<-s.done
}

// Deliver records a parcel for the delivery and returns it with its pickup code; see
// fleet.ParcelService. The token's scope is the caller's to check (fleet/http).
func (s *Service) Deliver(ctx context.Context, d fleet.Delivery) (*fleet.Parcel, string, error) {
	if err := validDelivery(d); err != nil {
		return nil, "", err
	}
	actor, err := fleet.ActorRequired(ctx, "deliver parcel")
	if err != nil {
		return nil, "", err
	}
	kind := fleet.CompartmentDry
	switch {
	case d.Frozen:
		kind = fleet.CompartmentFreezer
	case d.Perishable:
		kind = fleet.CompartmentFridge
	}
	size := d.Size
	if size == "" {
		size = fleet.SizeSmall
	}
	ttl := time.Duration(d.ExpiresIn)
	if ttl == 0 {
		ttl = s.cfg.CodeTTL
	}
	code, salt := newCode(), make([]byte, wire.CodeSaltBytes)
	rand.Read(salt)
	hash := wire.HashCode(code, salt)
	// Two deliveries may pick the same free door at once; the store lets one have it, and the
	// other picks again among the doors left. Each lost race means a door was taken, so the
	// picks run out of doors (ECONFLICT) before they run out of tries.
	for attempt := 0; ; attempt++ {
		dev, door, err := s.pick(ctx, d, kind, size)
		if err != nil {
			return nil, "", err
		}
		now := s.now().UTC().Truncate(time.Millisecond)
		p := &fleet.Parcel{ID: newID(), DeviceID: dev.ID, Registration: dev.Registration, Site: dev.Site, Door: door,
			Compartment: kind, Size: d.Size, Perishable: d.Perishable || d.Frozen, Recipient: d.Recipient, Carrier: d.Carrier,
			Status: fleet.ParcelInLocker, CreatedAt: now, DroppedAt: &now, ExpiresAt: now.Add(ttl),
			Actor: actor.ID, ActorName: actor.Name, CodeSalt: salt, CodeHash: hash}
		if d.Reserve {
			// The code's life starts at the drop-off; ExpiresAt - CreatedAt carries it there.
			p.Status, p.DroppedAt = fleet.ParcelAwaitingDropoff, nil
		}
		e, err := fleet.NewAuditEntry(ctx, fleet.AuditParcelDeliver, p.DeviceID, parcelDetail(p, nil))
		if err != nil {
			return nil, "", err
		}
		version, err := s.store.CreateParcel(ctx, p, e)
		if fleet.ErrorCode(err) == fleet.ECONFLICT && d.Door == 0 && attempt < wire.MaxDoors {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		s.log.Info("parcel delivered", "parcel", p.ID, "device", p.DeviceID, "door", p.Door, "status", p.Status, "actor", p.Actor)
		s.changed(p, version)
		return p, code, nil
	}
}

// pick returns the unit and door for a delivery: the door it names, if free and fitting; else
// the smallest fitting free door, of the unit it names or, for a site, of the enabled unit of
// the right kind with the most free compartments.
func (s *Service) pick(ctx context.Context, d fleet.Delivery, kind fleet.CompartmentKind, size fleet.Size) (*fleet.Device, int, error) {
	var units []*fleet.Device
	if d.DeviceID != "" {
		dev, err := s.devices.FindDeviceByID(ctx, d.DeviceID)
		if err != nil {
			return nil, 0, err
		}
		switch {
		case !dev.Enabled:
			return nil, 0, fleet.Errorf(fleet.ECONFLICT, "unit %s is disabled", dev.ID)
		case fleet.CompartmentOf(dev) != kind:
			return nil, 0, fleet.Errorf(fleet.ECONFLICT, "unit %s has %s compartments; the parcel needs %s", dev.ID, fleet.CompartmentOf(dev), kind)
		case d.Door > dev.Doors:
			return nil, 0, fleet.Errorf(fleet.ENOTFOUND, "door %d not found: unit %s has %d doors", d.Door, dev.ID, dev.Doors)
		}
		units = []*fleet.Device{dev}
	} else {
		enabled := true
		all, err := s.devices.FindDevices(ctx, fleet.DeviceFilter{Site: d.Site, Enabled: &enabled})
		if err != nil {
			return nil, 0, err
		}
		if len(all) == 0 {
			return nil, 0, fleet.Errorf(fleet.ENOTFOUND, "site %q has no enabled unit", d.Site)
		}
		for _, u := range all {
			if fleet.CompartmentOf(u) == kind {
				units = append(units, u)
			}
		}
	}
	var best *fleet.Device
	bestDoor, bestFree := 0, -1
	for _, u := range units {
		held, err := s.store.HeldDoors(ctx, u.ID, u.Registration)
		if err != nil {
			return nil, 0, err
		}
		if d.Door != 0 {
			if held[d.Door] {
				return nil, 0, fleet.Errorf(fleet.ECONFLICT, "door %d of %s is taken", d.Door, u.ID)
			}
			if rank(DoorSize(u, d.Door)) < rank(size) {
				return nil, 0, fleet.Errorf(fleet.ECONFLICT, "door %d of %s is %s; the parcel needs %s", d.Door, u.ID, DoorSize(u, d.Door), size)
			}
			return u, d.Door, nil
		}
		door, free := 0, u.Doors-len(held)
		for n := 1; n <= u.Doors; n++ {
			if r := rank(DoorSize(u, n)); !held[n] && r >= rank(size) && (door == 0 || r < rank(DoorSize(u, door))) {
				door = n
			}
		}
		if door != 0 && free > bestFree {
			best, bestDoor, bestFree = u, door, free
		}
	}
	if best == nil {
		where := "unit " + d.DeviceID
		if d.DeviceID == "" {
			where = "site " + d.Site
		}
		return nil, 0, fleet.Errorf(fleet.ECONFLICT, "no free %s compartment of size %s or larger at %s", kind, size, where)
	}
	return best, bestDoor, nil
}

// DoorSize returns the size of a door of d: its label size.<door>, SizeMedium without one.
func DoorSize(d *fleet.Device, door int) fleet.Size {
	if v, ok := d.Labels["size."+strconv.Itoa(door)]; ok {
		return fleet.Size(v)
	}
	return fleet.SizeMedium
}

// rank orders sizes; a size label the hub does not know fits nothing.
func rank(s fleet.Size) int { return slices.Index(fleet.Sizes, s) }

// DropOff puts a reserved parcel in: its code goes live for its life from now.
func (s *Service) DropOff(ctx context.Context, id string) (*fleet.Parcel, error) {
	return s.transition(ctx, id, fleet.AuditParcelDropOff, func(p *fleet.Parcel, now time.Time) error {
		if p.Status != fleet.ParcelAwaitingDropoff {
			return fleet.Errorf(fleet.ECONFLICT, "parcel %s is %s, not awaiting drop-off", p.ID, p.Status)
		}
		p.ExpiresAt = now.Add(p.ExpiresAt.Sub(p.CreatedAt))
		p.Status, p.DroppedAt = fleet.ParcelInLocker, &now
		return nil
	}, nil)
}

// Cancel calls a delivery off and kills its code; see fleet.ParcelService.
func (s *Service) Cancel(ctx context.Context, id, reason string) (*fleet.Parcel, error) {
	if len(reason) > maxReasonBytes || !utf8.ValidString(reason) {
		return nil, fleet.Errorf(fleet.EINVALID, "reason: at most %d bytes of UTF-8", maxReasonBytes)
	}
	actor := fleet.ActorFromContext(ctx)
	return s.transition(ctx, id, fleet.AuditParcelCancel, func(p *fleet.Parcel, now time.Time) error {
		if p.Status != fleet.ParcelAwaitingDropoff && p.Status != fleet.ParcelInLocker {
			return fleet.Errorf(fleet.ECONFLICT, "parcel %s is %s: only a reservation or a parcel in the locker can be cancelled", p.ID, p.Status)
		}
		p.Status, p.ClosedAt, p.ClosedBy, p.CloseReason = fleet.ParcelCancelled, &now, actor.ID, reason
		return nil
	}, map[string]any{"reason": reason})
}

// Retrieve unlocks a parcel's door for staff and marks the parcel retrieved once the unit
// reports the door open; see fleet.ParcelService. An unlock that fails or times out leaves the
// parcel as it was and returns the command with the error.
func (s *Service) Retrieve(ctx context.Context, id, reason string) (*fleet.Parcel, *fleet.Command, error) {
	if reason == "" || len(reason) > maxReasonBytes || !utf8.ValidString(reason) {
		return nil, nil, fleet.Errorf(fleet.EINVALID, "reason: required, at most %d bytes of UTF-8", maxReasonBytes)
	}
	actor, err := fleet.ActorRequired(ctx, "retrieve parcel")
	if err != nil {
		return nil, nil, err
	}
	p, err := s.store.FindParcelByID(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if !p.Occupies() {
		return p, nil, fleet.Errorf(fleet.ECONFLICT, "parcel %s is %s: it is not in its compartment", p.ID, p.Status)
	}
	c, err := s.unlock.Send(ctx, commands.Request{DeviceID: p.DeviceID, Type: wire.CommandUnlock, Door: p.Door,
		Reason: "retrieve parcel " + p.ID + ": " + reason, Timeout: commands.DefaultTimeout}, true)
	if err != nil {
		return p, c, err
	}
	if c.Outcome != wire.OutcomeOpened && c.Outcome != wire.OutcomeAlreadyOpen {
		return p, c, fleet.Errorf(fleet.ECONFLICT, "door %d of %s did not open (%s): parcel %s stays %s", p.Door, p.DeviceID, c.Outcome, p.ID, p.Status)
	}
	p, err = s.transition(ctx, id, fleet.AuditParcelRetrieve, func(p *fleet.Parcel, now time.Time) error {
		if !p.Occupies() {
			return fleet.Errorf(fleet.ECONFLICT, "parcel %s became %s while its door was unlocked", p.ID, p.Status)
		}
		p.Status, p.ClosedAt, p.ClosedBy, p.CloseReason = fleet.ParcelRetrieved, &now, actor.ID, reason
		return nil
	}, map[string]any{"reason": reason, "command": c.ID})
	return p, c, err
}

// transition applies change to the stored parcel and stores it with its audit entry, reading
// the parcel again and deciding anew when another change got in first.
func (s *Service) transition(ctx context.Context, id string, action fleet.AuditAction, change func(p *fleet.Parcel, now time.Time) error,
	extra map[string]any) (*fleet.Parcel, error) {
	for range 3 {
		p, err := s.store.FindParcelByID(ctx, id)
		if err != nil {
			return nil, err
		}
		from, now := p.Status, s.now().UTC().Truncate(time.Millisecond)
		if err := change(p, now); err != nil {
			return nil, err
		}
		e, err := fleet.NewAuditEntry(ctx, action, p.DeviceID, parcelDetail(p, extra))
		if err != nil {
			return nil, err
		}
		ok, version, err := s.store.UpdateParcel(ctx, p, from, e)
		if err != nil {
			return nil, err
		}
		if ok {
			s.log.Info("parcel changed", "parcel", p.ID, "device", p.DeviceID, "from", from, "status", p.Status, "actor", e.Actor)
			s.changed(p, version)
			return p, nil
		}
	}
	return nil, fleet.Errorf(fleet.ECONFLICT, "parcel %s kept changing; try again", id)
}

// parcelDetail is what the audit trail keeps of a parcel's change: never its code.
func parcelDetail(p *fleet.Parcel, extra map[string]any) map[string]any {
	detail := map[string]any{"parcel": p.ID, "door": p.Door, "status": string(p.Status), "compartment": string(p.Compartment)}
	for k, v := range map[string]any{"size": string(p.Size), "recipient": p.Recipient, "carrier": p.Carrier} {
		if v != "" {
			detail[k] = v
		}
	}
	if p.Status == fleet.ParcelInLocker {
		detail["expires"] = p.ExpiresAt.Format(time.RFC3339Nano)
	}
	for k, v := range extra {
		if v != "" {
			detail[k] = v
		}
	}
	return detail
}

// changed tells the followers of p's change, and acts on it: a new code set version goes to
// the unit, and a new live code may be the next deadline.
func (s *Service) changed(p *fleet.Parcel, version uint64) {
	s.metrics.changes.WithLabelValues(string(p.Status)).Inc()
	if s.events != nil {
		cp := *p
		s.events.Publish(fleet.Event{Kind: fleet.EventParcelChanged, Parcel: &cp})
	}
	if version != 0 {
		s.mu.Lock()
		if u := s.unitLocked(p.DeviceID); version > u.want {
			u.want = version
		}
		s.mu.Unlock()
		s.enqueue(job{kind: jobSync, device: p.DeviceID})
	}
	if p.Status == fleet.ParcelInLocker {
		s.arm(p.ExpiresAt)
	}
	s.watchDoor(p)
}

// FindParcelByID returns a parcel, or ENOTFOUND.
func (s *Service) FindParcelByID(ctx context.Context, id string) (*fleet.Parcel, error) {
	return s.store.FindParcelByID(ctx, id)
}

// FindParcels returns the parcels matching f, newest first; EINVALID for a limit past 1000.
func (s *Service) FindParcels(ctx context.Context, f fleet.ParcelFilter) ([]*fleet.Parcel, error) {
	if f.Limit < 0 || f.Limit > 1000 {
		return nil, fleet.Errorf(fleet.EINVALID, "limit %d: want 1..1000", f.Limit)
	}
	for _, st := range f.Status {
		if !slices.Contains(fleet.ParcelStatuses, st) {
			return nil, fleet.Errorf(fleet.EINVALID, "status %q: want one of %v", st, fleet.ParcelStatuses)
		}
	}
	return s.store.FindParcels(ctx, f)
}

func validDelivery(d fleet.Delivery) error {
	switch {
	case (d.DeviceID == "") == (d.Site == ""):
		return fleet.Errorf(fleet.EINVALID, "name a unit (device) or a site, not both")
	case d.Door < 0 || d.Door > wire.MaxDoors:
		return fleet.Errorf(fleet.EINVALID, "door %d: want 1..%d", d.Door, wire.MaxDoors)
	case d.Door != 0 && d.DeviceID == "":
		return fleet.Errorf(fleet.EINVALID, "door: only with a unit")
	case d.Size != "" && rank(d.Size) < 0:
		return fleet.Errorf(fleet.EINVALID, "size %q: want one of %v", d.Size, fleet.Sizes)
	case len(d.Recipient) > maxTextBytes || !utf8.ValidString(d.Recipient):
		return fleet.Errorf(fleet.EINVALID, "recipient: at most %d bytes of UTF-8", maxTextBytes)
	case len(d.Carrier) > maxTextBytes || !utf8.ValidString(d.Carrier):
		return fleet.Errorf(fleet.EINVALID, "carrier: at most %d bytes of UTF-8", maxTextBytes)
	case d.ExpiresIn != 0 && (time.Duration(d.ExpiresIn) < MinCodeTTL || time.Duration(d.ExpiresIn) > MaxCodeTTL):
		return fleet.Errorf(fleet.EINVALID, "expires_in %s: want %s..%s", time.Duration(d.ExpiresIn), MinCodeTTL, MaxCodeTTL)
	}
	return nil
}

// codeSpace is the number of pickup codes: 10^CodeDigits.
var codeSpace = big.NewInt(100_000_000)

// newCode returns a pickup code drawn uniformly: crypto/rand.Int rejects the draws past the
// largest multiple of the range, so no code is likelier than another.
func newCode() string {
	n, err := rand.Int(rand.Reader, codeSpace)
	if err != nil { // crypto/rand does not fail on supported platforms
		panic(fmt.Sprintf("parcels: random code: %v", err))
	}
	return fmt.Sprintf("%0*d", wire.CodeDigits, n)
}

// newID returns a random parcel id: 16 bytes in hex, safe for the wire contract.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// codeSet returns the wire form of a unit's codes.
func codeSet(version uint64, ps []*fleet.Parcel, now time.Time) wire.CodeSet {
	set := wire.CodeSet{V: wire.Version, Version: version, Issued: now.UnixMilli(), Codes: make([]wire.Code, 0, len(ps))}
	for _, p := range ps {
		set.Codes = append(set.Codes, wire.Code{Parcel: p.ID, Door: p.Door, Salt: base64.StdEncoding.EncodeToString(p.CodeSalt),
			Hash: base64.StdEncoding.EncodeToString(p.CodeHash), Expires: p.ExpiresAt.UnixMilli()})
	}
	return set
}
