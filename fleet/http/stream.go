package http

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// Stream fans the hub's live events out to the clients of GET /api/v1/stream: alert changes to
// everyone whose scope covers the alert's site, and one device's telemetry, door events and
// commands to those following that device. It follows the hub's events (HandleEvent) and never
// blocks on a client: a client that does not keep up loses events (its queue holds
// subscriberQueue), and is told so.
//
// Each token may hold a bounded number of streams open at once: a stream costs a goroutine, a
// queue and a scan of the registry every second, and a leaked token must not be able to take
// them without limit.
type Stream struct {
	maxPerToken int

	mu        sync.Mutex
	subs      map[*subscriber]struct{}
	perToken  map[string]int // open streams by token id
	following atomic.Int32   // subscribers that follow one device; 0 keeps ingest free of this
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
	name string
	data []byte
}

// NewStream returns a stream with no clients that lets each token open maxPerToken streams at
// once (DefaultMaxStreamsPerToken when 0).
func NewStream(maxPerToken int) *Stream {
	if maxPerToken <= 0 {
		maxPerToken = DefaultMaxStreamsPerToken
	}
	return &Stream{maxPerToken: maxPerToken, subs: make(map[*subscriber]struct{}), perToken: make(map[string]int)}
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

// HandleEvent passes a device's stored telemetry snapshots, door events and command changes
// to the clients following it, and an alert's change to the clients whose scope covers it;
// it implements fleet.EventHandler. A command result is told by its command's change.
func (s *Stream) HandleEvent(ev fleet.Event) {
	switch ev.Kind {
	case fleet.EventTelemetryStored:
		s.device("telemetry", ev.Device.ID, ev.Message)
	case fleet.EventDoorChanged:
		s.device("door", ev.Device.ID, ev.Message)
	case fleet.EventCommandChanged:
		s.device("command", ev.Command.DeviceID, ev.Command)
	case fleet.EventAlertChanged:
		a := ev.Alert.Alert
		s.publish("alert", ev.Alert, func(sub *subscriber) bool {
			return sub.tok.Load().InScope(a.Site) && (sub.device == "" || sub.device == a.DeviceID)
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

// Timing of the stream: how often the health summary and device views are compared with what
// the client last got, how often an idle stream says it is alive (proxies drop silent
// connections), and how long the client may take to read what it is sent: one that stops
// reading would otherwise hold the stream, and the token it was opened with, for good.
const (
	streamRefresh      = time.Second
	streamKeepalive    = 15 * time.Second
	streamWriteTimeout = 15 * time.Second
)

// streamRole is the role a stream needs, when it opens and for as long as it stays open.
const streamRole = fleet.RoleViewer

// handleStream serves GET /api/v1/stream[?device=ID] as server-sent events: the fleet's health
// and every device view in the token's scope (or the one device) at once and whenever they
// change, alert changes as they happen, and with ?device= that device's telemetry, door events
// and commands too.
//
// The token is read again every Services.TokenRecheck: the stream ends once it is revoked (or
// removed, or its role no longer allows streams), and follows a change of its sites, ending if
// the device it follows is no longer in them.
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

	sent := make(map[string][]byte) // what the client last got, by "health" or device id
	var lost int64
	refresh := func() error {
		if n := sub.lost.Load(); n > lost {
			lost = n
			fmt.Fprintf(w, "event: lost\ndata: {\"events\":%d}\n\n", n)
		}
		return a.streamChanges(w, r, tok, device, sent)
	}
	// Whatever the stream leaves set would outlive it on a kept-alive connection.
	defer rc.SetWriteDeadline(time.Time{})
	rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	if err := refresh(); err != nil {
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
			if tok, err = a.tokenNow(r, tok); err != nil {
				a.log.Info("event stream ended", "token", tok.ID, "reason", err.Error())
				return
			}
			sub.tok.Store(tok)
			continue
		case ev := <-sub.events:
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.name, ev.data)
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

// streamChanges writes the health summary and the device views that differ from what sent
// says the client has, and records them.
func (a *api) streamChanges(w http.ResponseWriter, r *http.Request, tok *fleet.Token, device string, sent map[string][]byte) error {
	var devices []*fleet.Device
	if device != "" {
		d, err := a.device(r, tok, device)
		if err != nil {
			return err // removed while followed, or no longer in the token's scope: the stream ends
		}
		devices = []*fleet.Device{d}
	} else {
		all, err := a.svc.Devices.FindDevices(r.Context(), fleet.DeviceFilter{})
		if err != nil {
			return err
		}
		for _, d := range all {
			if tok.InScope(d.Site) {
				devices = append(devices, d)
			}
		}
	}
	emit := func(key, name string, v any) {
		data, err := json.Marshal(v)
		if err != nil || bytes.Equal(sent[key], data) {
			return
		}
		sent[key] = data
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data)
	}
	if a.svc.Alerts != nil {
		emit("", "health", a.healthSummary(tok))
	}
	for _, d := range devices {
		emit(d.ID, "device", a.view(d))
	}
	return nil
}
