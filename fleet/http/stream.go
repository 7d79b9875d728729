package http

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// Stream fans the hub's live events out to the clients of GET /api/v1/stream: alert changes to
// everyone whose scope covers the alert's site, one device's telemetry, door events and commands
// to those following that device, and the fleet overview's changes (overview.go) to those
// watching the whole fleet. It follows the hub's events (HandleEvent) and never blocks on a
// client: a client that does not keep up loses events (its queue holds subscriberQueue), and is
// told so.
//
// Each token may hold a bounded number of streams open at once: a stream costs a goroutine and
// a queue, and a leaked token must not be able to take them without limit.
type Stream struct {
	maxPerToken int

	mu        sync.Mutex
	subs      map[*subscriber]struct{}
	perToken  map[string]int // open streams by token id
	following atomic.Int32   // subscribers that follow one device; 0 keeps ingest free of this
	watching  atomic.Int32   // subscribers that watch the whole fleet; 0 keeps ingest free of marks

	marksMu sync.Mutex
	marks   marks // for the overview's producer
}

// DefaultMaxStreamsPerToken is NewStream's bound when given none: a few browser tabs and a
// `lockerhub tail` or two.
const DefaultMaxStreamsPerToken = 8

// subscriberQueue is how many events a client may lag behind before it loses some.
const subscriberQueue = 256

type subscriber struct {
	tok    atomic.Pointer[fleet.Token] // as last read: its sites may change while the stream is open
	device string                      // "" for the whole fleet in the token's scope
	events chan streamEvent
	lost   atomic.Int64
}

type streamEvent struct {
	name  string
	data  []byte
	batch *overviewBatch // instead of name and data: the fleet overview's changes
}

// NewStream returns a stream with no clients that lets each token open maxPerToken streams at
// once (DefaultMaxStreamsPerToken when 0).
func NewStream(maxPerToken int) *Stream {
	if maxPerToken <= 0 {
		maxPerToken = DefaultMaxStreamsPerToken
	}
	return &Stream{maxPerToken: maxPerToken, subs: make(map[*subscriber]struct{}), perToken: make(map[string]int),
		marks: marks{units: make(map[string]struct{})}}
}

// RegistryChanged tells the stream that devices were registered, removed or changed, so that
// the overview's clients learn of them.
func (s *Stream) RegistryChanged() {
	s.marksMu.Lock()
	s.marks.registry = true
	s.marksMu.Unlock()
}

// mark notes that a unit's view may have changed, while some client watches the fleet.
func (s *Stream) mark(id string, alert bool) {
	if s.watching.Load() == 0 {
		return
	}
	s.marksMu.Lock()
	s.marks.units[id] = struct{}{}
	s.marks.alerts = s.marks.alerts || alert
	s.marksMu.Unlock()
}

// takeMarks returns the marks made since the last call, and starts afresh.
func (s *Stream) takeMarks() marks {
	s.marksMu.Lock()
	defer s.marksMu.Unlock()
	m := s.marks
	s.marks = marks{units: make(map[string]struct{}, len(m.units))}
	return m
}

// broadcast queues the overview's changes for every client watching the whole fleet.
func (s *Stream) broadcast(b *overviewBatch) {
	if b.sites == nil && len(b.changed) == 0 && len(b.removed) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub := range s.subs {
		if sub.device != "" {
			continue
		}
		select {
		case sub.events <- streamEvent{batch: b}:
		default:
			sub.lost.Add(1)
		}
	}
}

// subscribe adds a client, or returns an ERATELIMITED error if tok has all its streams open.
func (s *Stream) subscribe(tok *fleet.Token, device string) (*subscriber, error) {
	sub := &subscriber{device: device, events: make(chan streamEvent, subscriberQueue)}
	sub.tok.Store(tok)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perToken[tok.ID] >= s.maxPerToken {
		return nil, fleet.Errorf(fleet.ERATELIMITED, "this token already has %d event streams open, as many as it may: close one (a dashboard tab, a lockerhub tail) first", s.maxPerToken)
	}
	s.perToken[tok.ID]++
	s.subs[sub] = struct{}{}
	if device != "" {
		s.following.Add(1)
	} else {
		s.watching.Add(1)
	}
	return sub, nil
}

func (s *Stream) unsubscribe(sub *subscriber) {
	id := sub.tok.Load().ID
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.subs, sub)
	if s.perToken[id]--; s.perToken[id] == 0 {
		delete(s.perToken, id)
	}
	if sub.device != "" {
		s.following.Add(-1)
	} else {
		s.watching.Add(-1)
	}
}

// publish sends an event to the subscribers that want it; data is encoded once, and only if
// somebody does.
func (s *Stream) publish(name string, v any, wants func(*subscriber) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var data []byte
	for sub := range s.subs {
		if !wants(sub) {
			continue
		}
		if data == nil {
			var err error
			if data, err = json.Marshal(v); err != nil {
				return
			}
		}
		select {
		case sub.events <- streamEvent{name: name, data: data}:
		default:
			sub.lost.Add(1)
		}
	}
}

// HandleEvent passes a device's stored telemetry snapshots, door and keypad events and command
// changes to the clients following it, and an alert's or a parcel's change to the clients whose
// scope covers it (following the fleet, or its device), and marks the unit for the overview's
// producer; it implements fleet.EventHandler. A command result is told by its command's
// change. A parcel goes as the API shows it, without its code, which the hub does not hold.
func (s *Stream) HandleEvent(ev fleet.Event) {
	switch ev.Kind {
	case fleet.EventTelemetryStored:
		s.mark(ev.Device.ID, false)
		s.device("telemetry", ev.Device.ID, ev.Message)
	case fleet.EventDoorChanged:
		s.mark(ev.Device.ID, false)
		s.device("door", ev.Device.ID, ev.Message)
	case fleet.EventKeypadEntered:
		s.device("keypad", ev.Device.ID, ev.Message) // no door changed: the unit's view stays
	case fleet.EventPresenceChanged:
		s.mark(ev.Presence.DeviceID, false)
	case fleet.EventCommandChanged:
		s.device("command", ev.Command.DeviceID, ev.Command)
	case fleet.EventAlertChanged:
		a := ev.Alert.Alert
		s.mark(a.DeviceID, true)
		s.publish("alert", ev.Alert, func(sub *subscriber) bool {
			return sub.tok.Load().InScope(a.Site) && (sub.device == "" || sub.device == a.DeviceID)
		})
	case fleet.EventParcelChanged:
		p := ev.Parcel
		s.publish("parcel", p, func(sub *subscriber) bool {
			return sub.tok.Load().InScope(p.Site) && (sub.device == "" || sub.device == p.DeviceID)
		})
	}
}

// device passes one device's event to the clients following that device.
func (s *Stream) device(name, id string, v any) {
	if s.following.Load() == 0 {
		return
	}
	s.publish(name, v, func(sub *subscriber) bool { return sub.device == id })
}

// Timing of the stream: how often the overview's changes, and the view of a device followed,
// are worked out, how often an idle stream says it is alive (proxies drop silent connections),
// and how long the client may take to read what it is sent: one that stops reading would
// otherwise hold the stream, and the token it was opened with, for good.
const (
	streamRefresh      = time.Second
	streamKeepalive    = 15 * time.Second
	streamWriteTimeout = 15 * time.Second
)

// streamRole is the role a stream needs, when it opens and for as long as it stays open.
const streamRole = fleet.RoleViewer

// handleStream serves GET /api/v1/stream[?device=ID] as server-sent events. For the whole
// fleet: at once the health of the sites in the token's scope, the units that need attention
// and the first page of units; then, once a second, the changed health counts, the units whose
// view changed ("device") and those removed ("removed"). With ?device=: that device's view at
// once and whenever it changes, its telemetry, door and keypad events and commands. Alert and
// parcel changes as they happen, in both.
//
// The token is read again every Services.TokenRecheck: the stream ends once it is revoked (or
// removed, or its role no longer allows streams), and follows a change of its sites: a fleet
// stream gets the removed events of the sites it lost and a snapshot of its new scope; a
// device stream ends if the device is no longer in them.
func (a *api) handleStream(w http.ResponseWriter, r *http.Request, tok *fleet.Token) {
	device := r.URL.Query().Get("device")
	if device != "" {
		if _, err := a.device(r, tok, device); err != nil {
			writeError(w, err)
			return
		}
	}
	flusher, ok := w.(http.Flusher)
	if !ok || a.svc.Stream == nil {
		writeError(w, fleet.Errorf(fleet.EUNAVAILABLE, "the event stream is not available on this hub"))
		return
	}
	sub, err := a.svc.Stream.subscribe(tok, device)
	if err != nil {
		writeError(w, err)
		return
	}
	defer a.svc.Stream.unsubscribe(sub)
	rc := http.NewResponseController(w)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	c := &streamClient{a: a, w: w, r: r, tok: tok, device: device}
	var lost int64
	refresh := func() error {
		if n := sub.lost.Load(); n > lost {
			lost = n
			fmt.Fprintf(w, "event: lost\ndata: {\"events\":%d}\n\n", n)
		}
		if device != "" {
			return c.deviceChanges()
		}
		return nil
	}
	// Whatever the stream leaves set would outlive it on a kept-alive connection.
	defer rc.SetWriteDeadline(time.Time{})
	rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	if device == "" {
		err = c.snapshot()
	} else {
		err = refresh()
	}
	if err != nil {
		return
	}
	flusher.Flush()
	tick := time.NewTicker(streamRefresh)
	defer tick.Stop()
	recheck := time.NewTicker(a.svc.TokenRecheck)
	defer recheck.Stop()
	idle := time.NewTimer(streamKeepalive)
	defer idle.Stop()
	for {
		// The select returns within streamRefresh, so what follows it has streamWriteTimeout to
		// be written.
		rc.SetWriteDeadline(time.Now().Add(streamRefresh + streamWriteTimeout))
		select {
		case <-r.Context().Done():
			return
		case <-a.stop:
			return
		case <-recheck.C:
			now, err := a.tokenNow(r, c.tok)
			if err != nil {
				a.log.Info("event stream ended", "token", c.tok.ID, "reason", err.Error())
				return
			}
			before := c.tok
			c.tok = now
			sub.tok.Store(now)
			if device != "" || slices.Equal(before.Sites, now.Sites) {
				continue
			}
			if err := c.rescope(before); err != nil {
				return
			}
		case ev := <-sub.events:
			if ev.batch != nil {
				c.overview(ev.batch)
			} else {
				fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.name, ev.data)
			}
		case <-tick.C:
			if err := refresh(); err != nil {
				return
			}
		case <-idle.C:
			fmt.Fprint(w, ": keepalive\n\n")
		}
		flusher.Flush()
		idle.Reset(streamKeepalive)
	}
}

// streamClient is what one stream sends, to whom.
type streamClient struct {
	a      *api
	w      http.ResponseWriter
	r      *http.Request
	tok    *fleet.Token // as last read
	device string       // "" for the whole fleet in the token's scope
	health []byte       // the health counts last sent
	view   []byte       // the followed device's view last sent
}

// snapshot writes what a client of the whole fleet starts from: the health counts, the units
// that need attention and the first page of units.
func (c *streamClient) snapshot() error {
	if c.a.svc.Alerts != nil {
		c.sendHealth(c.a.healthSummary(c.tok))
	}
	sent := map[string]bool{}
	for _, lq := range []deviceQuery{
		{attention: true, limit: snapshotAttention, health: map[fleet.Health]bool{fleet.HealthCritical: true, fleet.HealthOffline: true, fleet.HealthWarning: true}},
		{limit: snapshotPage},
	} {
		page, err := c.a.listDevices(c.r, c.tok, lq)
		if err != nil {
			return err
		}
		for _, v := range page.Devices {
			if !sent[v.ID] {
				sent[v.ID] = true
				c.event("device", v)
			}
		}
	}
	return nil
}

// rescope follows a change of the token's sites: the units of the sites it lost are removed,
// and the new scope's snapshot follows.
func (c *streamClient) rescope(before *fleet.Token) error {
	devices, err := c.a.svc.Devices.FindDevices(c.r.Context(), fleet.DeviceFilter{})
	if err != nil {
		return err
	}
	for _, d := range devices {
		if before.InScope(d.Site) && !c.tok.InScope(d.Site) {
			c.w.Write(removedFrame(d).frame)
		}
	}
	return c.snapshot()
}

// overview writes the part of the producer's changes that lies in the token's scope.
func (c *streamClient) overview(b *overviewBatch) {
	if b.sites != nil {
		c.sendHealth(summaryOf(b.sites, c.tok))
	}
	for _, list := range [][]unitFrame{b.removed, b.changed} {
		for _, u := range list {
			if c.tok.InScope(u.site) {
				c.w.Write(u.frame)
			}
		}
	}
}

// sendHealth writes the health counts if they differ from the last sent.
func (c *streamClient) sendHealth(h HealthSummary) {
	data, err := json.Marshal(h)
	if err != nil || bytes.Equal(c.health, data) {
		return
	}
	c.health = data
	fmt.Fprintf(c.w, "event: health\ndata: %s\n\n", data)
}

func (c *streamClient) event(name string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		return
	}
	fmt.Fprintf(c.w, "event: %s\ndata: %s\n\n", name, data)
}

// deviceChanges writes the health counts and the followed device's view if they differ from
// what the client last got.
func (c *streamClient) deviceChanges() error {
	d, err := c.a.device(c.r, c.tok, c.device)
	if err != nil {
		return err // removed while followed, or no longer in the token's scope: the stream ends
	}
	if c.a.svc.Alerts != nil {
		c.sendHealth(c.a.healthSummary(c.tok))
	}
	data, err := json.Marshal(c.a.view(d))
	if err != nil || bytes.Equal(c.view, data) {
		return nil
	}
	c.view = data
	fmt.Fprintf(c.w, "event: device\ndata: %s\n\n", data)
	return nil
}

// tokenNow reads tok again and returns it as it is now, or why a stream may no longer use it:
// revoked or removed (EUNAUTHORIZED), a role too low (EFORBIDDEN), or the store's error. On
// an error it returns tok unchanged.
func (a *api) tokenNow(r *http.Request, tok *fleet.Token) (*fleet.Token, error) {
	now, err := a.svc.Tokens.FindTokenByID(r.Context(), tok.ID)
	switch {
	case fleet.ErrorCode(err) == fleet.ENOTFOUND || err == nil && now.RevokedAt != nil:
		return tok, fleet.Errorf(fleet.EUNAUTHORIZED, "token revoked")
	case err != nil:
		return tok, err
	}
	return now, allows(now, streamRole)
}
