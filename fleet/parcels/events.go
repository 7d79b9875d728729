package parcels

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// HandleEvent follows the hub's events: a unit's pickups and keypad attempts, its connecting,
// and the code set version its telemetry reports. A pickup or a keypad attempt is recorded
// before it returns, so before the unit's message is acknowledged: an acknowledged pickup is
// never lost to a hub crash, and the unit's outbox resends one that was not. That makes the
// store write part of the acknowledgement of these rare messages, and of nothing else; the
// rest is queued for the service's goroutine (see fleet.EventHandler), and a telemetry
// snapshot reporting the wanted version, the common case, costs a map lookup.
func (s *Service) HandleEvent(ev fleet.Event) {
	switch ev.Kind {
	case fleet.EventDoorChanged:
		e, ok := ev.Message.(wire.Event)
		switch {
		case !ok || ev.Device == nil || e.Kind != wire.EventDoor:
		case e.Cause == wire.CauseCode:
			s.pickup(ev, s.now())
		case !e.Open:
			s.doorClosed(ev.Device.ID, e)
		}
	case fleet.EventKeypadEntered:
		if _, ok := ev.Message.(wire.Event); ok && ev.Device != nil {
			s.keypad(ev)
		}
	case fleet.EventPresenceChanged:
		if ev.Presence.Online {
			s.enqueue(job{kind: jobSync, device: ev.Presence.DeviceID})
		}
	case fleet.EventTelemetryStored:
		t, ok := ev.Message.(wire.Telemetry)
		if !ok || ev.Device == nil {
			return
		}
		now := s.now()
		s.mu.Lock()
		u := s.unitLocked(ev.Device.ID)
		stale := u.read.IsZero() || s.shared && now.Sub(u.read) >= rereadAfter
		due := (stale || u.want != t.Codes || u.reported != t.Codes) && now.Sub(u.checked) >= s.cfg.ResendAfter
		if due {
			u.checked = now
		}
		s.mu.Unlock()
		if due {
			s.enqueue(job{kind: jobReported, device: ev.Device.ID, codes: t.Codes})
		}
	}
}

// rereadAfter is how long, in a cluster (Options.Shared), what a hub read of a unit's code set
// version stands for it: another hub may have changed the set since (and died before it sent
// it), so a unit reporting the version this hub last knew is checked against the store again
// this often. A unit first seen was never read, so its first report is checked at once.
const rereadAfter = 10 * time.Minute

// unitLocked returns what is known of a unit's code set, adding it; s.mu must be held.
func (s *Service) unitLocked(id string) *unit {
	u := s.units[id]
	if u == nil {
		u = &unit{}
		s.units[id] = u
	}
	return u
}

// enqueue hands j to the service's goroutine without blocking. The queue is unbounded: what
// comes in is a pickup, a keypad attempt or a unit's change of state, each of which must be
// recorded, and their rate is bounded by the units' own.
func (s *Service) enqueue(j job) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.queue = append(s.queue, j)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Service) run() {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			return
		case <-s.wake:
		}
		for {
			s.mu.Lock()
			q := s.queue
			s.queue = nil
			s.mu.Unlock()
			if len(q) == 0 {
				break
			}
			for _, j := range q {
				select {
				case <-s.stop:
					return
				default:
				}
				s.do(j)
			}
		}
	}
}

func (s *Service) do(j job) {
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Hub)
	switch j.kind {
	case jobSync:
		s.sync(ctx, j.device, 0, false)
	case jobReported:
		s.sync(ctx, j.device, j.codes, true)
	case jobExpire:
		s.expireDue(ctx)
	}
}

// sync sends a unit its code set if it is online and has one. With reported (the unit's
// telemetry said it holds version codes), the report is recorded and the set sent only if the
// unit holds another version than the one wanted.
func (s *Service) sync(ctx context.Context, id string, codes uint64, reported bool) {
	v, ps, err := s.store.CodeSet(ctx, id, s.now())
	if err != nil {
		s.log.Error("read code set", "device", id, "error", err)
		return
	}
	s.mu.Lock()
	u := s.unitLocked(id)
	u.want, u.read = max(u.want, v.Want), s.now()
	if reported {
		u.reported = codes
	}
	s.mu.Unlock()
	if reported && codes != v.Reported && v.Want != 0 {
		if err := s.store.SetReportedCodes(ctx, id, codes); err != nil {
			s.log.Error("record reported code set", "device", id, "error", err)
		}
	}
	if v.Want == 0 || reported && codes == v.Want {
		return // a unit that never had a code holds the right (empty) set
	}
	if p, ok := s.presence.Presence(id); !ok || !p.Online {
		return // sent when it connects
	}
	payload, err := wire.Marshal(codeSet(v.Want, ps, s.now()))
	if err == nil {
		err = s.pub.PublishRequest(wire.Topic(id, wire.ChannelCodes), payload, codeSetExpiry, "", nil)
	}
	if err != nil {
		s.log.Error("send code set", "device", id, "version", v.Want, "error", err)
		return
	}
	s.metrics.sent.Inc()
	s.log.Debug("code set sent", "device", id, "version", v.Want, "codes", len(ps))
}

// codeSetExpiry is how long the broker keeps a code set for a unit that went offline before
// it arrived: the unit is sent its set again when it connects, so a stale one need not wait.
const codeSetExpiry = time.Hour

// pickup records the pickup a unit reported as a door opened by a parcel's code. The unit's
// own time of the opening is the pickup's; the parcel's code, cancelled or expired since the
// unit last heard from the hub, does not undo it: the parcel left. A pickup already recorded
// (QoS 1 redelivery, another hub) is left as it is. arrived is when the event reached the hub.
func (s *Service) pickup(ev fleet.Event, arrived time.Time) {
	e := ev.Message.(wire.Event)
	dev := ev.Device
	actor := fleet.Actor{ID: "device:" + dev.ID}
	ctx := fleet.NewContextWithActor(context.Background(), actor)
	received := arrived.UTC().Truncate(time.Millisecond)
	at := time.UnixMilli(e.TS).UTC()
	for range 3 {
		p, err := s.store.FindParcelByID(ctx, e.Parcel)
		if err != nil || p.DeviceID != dev.ID || p.Registration != dev.Registration || p.Door != e.Door || !e.Open {
			// A unit can only report its own parcels, at their doors, opened.
			s.log.Warn("pickup for no parcel of this door ignored", "device", dev.ID, "parcel", e.Parcel, "door", e.Door, "open", e.Open)
			return
		}
		switch p.Status {
		case fleet.ParcelPickedUp:
			return
		case fleet.ParcelInLocker, fleet.ParcelCancelled, fleet.ParcelExpired:
		default:
			s.log.Warn("pickup of a parcel not in the locker ignored", "device", dev.ID, "parcel", p.ID, "status", p.Status)
			return
		}
		from := p.Status
		p.Status, p.PickedUpAt, p.ClosedAt, p.ClosedBy = fleet.ParcelPickedUp, &at, &received, actor.ID
		p.Offline = received.Sub(at) >= s.cfg.OfflineAfter
		detail := parcelDetail(p, map[string]any{"open": true, "at": at.Format(time.RFC3339Nano), "was": string(from)})
		if p.Offline {
			detail["offline"] = true
		}
		entry, err := fleet.NewAuditEntry(ctx, fleet.AuditParcelPickup, dev.ID, detail)
		if err != nil {
			s.log.Error("record pickup", "parcel", p.ID, "error", err)
			return
		}
		ok, version, err := s.store.UpdateParcel(ctx, p, from, entry)
		if err != nil {
			s.log.Error("record pickup", "parcel", p.ID, "device", dev.ID, "error", err)
			return
		}
		if ok {
			s.log.Info("parcel picked up", "parcel", p.ID, "device", dev.ID, "door", p.Door, "offline", p.Offline)
			s.changed(p, version)
			return
		}
	}
	s.log.Error("pickup not recorded: the parcel kept changing", "parcel", e.Parcel, "device", dev.ID)
}

// keypad records a code entered at a unit's keypad, each attempt on its own: they are rare,
// and a run of wrong codes is what a reader of the trail looks for.
func (s *Service) keypad(ev fleet.Event) {
	if s.audit == nil {
		return
	}
	e := ev.Message.(wire.Event)
	detail := map[string]any{"result": string(e.Keypad), "at": time.UnixMilli(e.TS).UTC().Format(time.RFC3339Nano), "seq": e.Seq}
	if e.Door != 0 {
		detail["door"] = e.Door
	}
	if e.Parcel != "" {
		detail["parcel"] = e.Parcel
	}
	if e.Failures != 0 {
		detail["failures"] = e.Failures
	}
	if e.LockedUntil != 0 {
		detail["locked_until"] = time.UnixMilli(e.LockedUntil).UTC().Format(time.RFC3339Nano)
	}
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "device:" + ev.Device.ID})
	entry, err := fleet.NewAuditEntry(ctx, fleet.AuditParcelKeypad, ev.Device.ID, detail)
	if err == nil {
		err = s.audit.Append(ctx, entry)
	}
	if err != nil {
		s.log.Error("audit trail: keypad attempt not recorded", "device", ev.Device.ID, "result", e.Keypad, "error", err)
	}
}

// expireBatch is how many due codes one read of the store expires.
const expireBatch = 100

// expireDue marks expired every parcel in the locker whose code is due, then arms the timer
// for the next deadline in the store.
func (s *Service) expireDue(ctx context.Context) {
	s.mu.Lock()
	s.deadline = time.Time{}
	s.mu.Unlock()
	for {
		due, err := s.store.ExpiredParcels(ctx, s.now(), expireBatch)
		if err != nil {
			s.log.Error("find expired parcels", "error", err)
			s.arm(s.now().Add(expiryRecheck)) // try again, rather than never
			return
		}
		for _, p := range due {
			if _, err := s.transition(ctx, p.ID, fleet.AuditParcelExpire, func(p *fleet.Parcel, now time.Time) error {
				if p.Status != fleet.ParcelInLocker || now.Before(p.ExpiresAt) {
					return errSkip // picked up or retrieved meanwhile
				}
				p.Status, p.ClosedAt, p.ClosedBy = fleet.ParcelExpired, &now, fleet.ActorHub
				return nil
			}, nil); err != nil && err != errSkip {
				s.log.Error("expire parcel", "parcel", p.ID, "error", err)
			}
		}
		if len(due) < expireBatch {
			break
		}
	}
	next, ok, err := s.store.NextExpiry(ctx)
	recheck := s.now().Add(expiryRecheck)
	switch {
	case err != nil:
		s.log.Error("find next parcel expiry", "error", err)
		s.arm(recheck)
	case ok && next.Before(recheck):
		s.arm(next)
	default:
		s.arm(recheck)
	}
}

// expiryRecheck is the longest the timer waits before it reads the next deadline from the
// store again: another hub of a cluster arms its own timer for the parcels it delivers, and
// if it stops for good, this hub expires them within a minute of their deadline. It costs one
// indexed read a minute, whatever the size of the fleet.
const expiryRecheck = time.Minute

// errSkip ends a transition that no longer applies, without an error to report.
var errSkip = fleet.Errorf(fleet.ECONFLICT, "no longer applies")

// arm makes the expiry timer fire at at, unless it is armed to fire sooner.
func (s *Service) arm(at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.deadline.IsZero() && !at.Before(s.deadline) {
		return
	}
	s.deadline = at
	d := max(time.Until(at), 0)
	if s.timer == nil {
		s.timer = time.AfterFunc(d, func() { s.enqueue(job{kind: jobExpire}) })
		return
	}
	s.timer.Reset(d)
}

type metrics struct {
	sent    prometheus.Counter
	changes *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lockerhub_parcels_codesets_sent_total",
			Help: "Code sets sent to units: on a change of their codes, when they connect, and when they report another version.",
		}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockerhub_parcels_changes_total",
			Help: "Parcels that reached a status, by status (in-locker counts deliveries and drop-offs).",
		}, []string{"status"}),
	}
	for _, c := range []prometheus.Collector{m.sent, m.changes} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// doorKey names a door of a unit.
type doorKey struct {
	device string
	door   int
}

// closingFor is how long after a parcel left its door's closing is still waited for at a
// hub's start: a door left open longer than that is the door-ajar rule's business, and the
// custody record then ends with the pickup or the retrieval.
const closingFor = 24 * time.Hour

// watchClosing reads the doors whose parcels left and that have not closed since, so that a hub
// restarted between a pickup and the door's closing still records it.
func (s *Service) watchClosing() {
	ps, err := s.store.DoorsClosing(context.Background(), s.now().Add(-closingFor))
	if err != nil {
		s.log.Error("read the doors still to close after a pickup", "error", err)
		return
	}
	for _, p := range ps {
		s.watchDoor(p)
	}
}

// watchDoor waits for the door of p to close if p just left it.
func (s *Service) watchDoor(p *fleet.Parcel) {
	if (p.Status != fleet.ParcelPickedUp && p.Status != fleet.ParcelRetrieved) || p.DoorClosedAt != nil {
		return
	}
	s.mu.Lock()
	s.closing[doorKey{p.DeviceID, p.Door}] = p.ID
	s.mu.Unlock()
}

// doorClosed records the closing of a door whose parcel left, the custody's last step: a map
// lookup for every other door's closing.
func (s *Service) doorClosed(device string, e wire.Event) {
	key := doorKey{device, e.Door}
	s.mu.Lock()
	id, ok := s.closing[key]
	delete(s.closing, key)
	s.mu.Unlock()
	if !ok {
		return
	}
	at := time.UnixMilli(e.TS).UTC()
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "device:" + device})
	entry, err := fleet.NewAuditEntry(ctx, fleet.AuditParcelDoorClosed, device,
		map[string]any{"parcel": id, "door": e.Door, "locked": e.Locked, "at": at.Format(time.RFC3339Nano)})
	if err == nil {
		_, err = s.store.RecordDoorClosed(ctx, id, at, entry)
	}
	if err != nil {
		s.log.Error("record the door closed after a parcel left", "parcel", id, "device", device, "door", e.Door, "error", err)
	}
}
