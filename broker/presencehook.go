package broker

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/topicmatch"
)

// teardownTimeout bounds how long a connect waits for mochi to finish with the connection it
// takes over (see awaitTeardown). A connection's teardown runs no I/O; it is longer only when
// its goroutine is stuck, and the new connection then proceeds all the same.
const teardownTimeout = 2 * time.Second

// presenceHook keeps the hub's sessions: one owner per device id (a stale connection is refused
// at its next packet), and presence as devices connect and disconnect.
type presenceHook struct {
	mqtt.HookBase
	b *Broker
}

var _ mqtt.Hook = (*presenceHook)(nil)

func (h *presenceHook) ID() string { return "lockerhub-presence" }

func (h *presenceHook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnSessionEstablish,
		mqtt.OnSessionEstablished,
		mqtt.OnDisconnect,
		mqtt.OnPacketRead,
	}, []byte{b})
}

// OnPacketRead refuses every packet of a connection that no longer owns its device id (taken
// over, or its credential revoked), which closes it: closing it when it lost the id may not have
// taken yet. The CONNECT itself comes before the connection can own anything.
func (h *presenceHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Connect && !h.b.sessions.owns(cl) {
		// A connection being closed (taken over, revoked) may still deliver what it had read,
		// and a client that reconnected says goodbye on its old one: neither is worth a warning.
		if !cl.Closed() && pk.FixedHeader.Type != packets.Disconnect {
			h.b.failLog.Warn("stale", "packet from a stale connection refused", "device", cl.ID, "remote", cl.Net.Remote)
		}
		return pk, packets.ErrSessionTakenOver
	}
	return pk, nil
}

// OnSessionEstablish runs after authentication and before mochi takes over an older connection
// and sends the CONNACK, so a device is online in the hub before it learns it is connected.
func (h *presenceHook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	h.b.awaitTeardown(cl)
	if p, ok := h.b.sessions.established(cl); ok {
		h.b.metrics.connects.Inc()
		h.b.log.Info("device connected", "device", cl.ID, "remote", cl.Net.Remote, "listener", cl.Net.Listener)
		h.b.publishPresence(p.DeviceID)
		h.b.presenceChanged(p)
	}
}

// OnSessionEstablished runs once mochi has registered cl: the next connect of its id may go on.
func (h *presenceHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.b.sessions.attached(cl)
}

func (h *presenceHook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	if errors.Is(err, packets.ErrPacketTooLarge) {
		h.b.metrics.rejected.WithLabelValues(string(wire.ReasonTooLarge)).Inc()
	}
	h.b.ackers.Delete(cl) // messages still waiting keep their acker until stored
	if p, ok := h.b.sessions.release(cl); ok {
		h.b.log.Info("device disconnected", "device", cl.ID, "remote", cl.Net.Remote, "error", err)
		h.b.publishPresence(p.DeviceID)
		h.b.presenceChanged(p)
	}
}

// presenceWatchers are the hub-internal subscribers to status topics (see Broker.Subscribe).
// Presence goes to them directly rather than through mochi: on the embedded broker no MQTT
// client may subscribe to a status topic (devices subscribe only to their own commands), so a
// retained document per device in mochi's topic tree would cost memory per unit for nobody.
type presenceWatchers struct {
	// mu orders deliveries: a subscriber gets every device's current status, then each change,
	// never an older status after a newer one.
	mu   sync.Mutex
	subs []presenceWatcher
}

type presenceWatcher struct {
	filter string
	fn     func(topic string, payload []byte)
}

// watchPresence adds fn as a subscriber to the status topics matching filter and gives it, at
// once, the status of every device known since start that filter matches.
func (b *Broker) watchPresence(filter string, fn func(topic string, payload []byte)) {
	w := &b.watchers
	w.mu.Lock()
	defer w.mu.Unlock()
	w.subs = append(w.subs, presenceWatcher{filter, fn})
	for _, id := range b.sessions.ids() {
		if topic := wire.Topic(id, wire.ChannelStatus); topicMatches(filter, topic) {
			b.deliverStatus(id, topic, fn)
		}
	}
}

// publishPresence gives the device's status to the subscribers of its status topic. It reads
// the presence as it is now rather than taking the change that caused the call: when changes
// of one device race, each subscriber's last document is still the device's presence.
func (b *Broker) publishPresence(id string) {
	w := &b.watchers
	w.mu.Lock()
	defer w.mu.Unlock()
	topic := wire.Topic(id, wire.ChannelStatus)
	for _, sub := range w.subs {
		if topicMatches(sub.filter, topic) {
			b.deliverStatus(id, topic, sub.fn)
		}
	}
}

// deliverStatus gives fn the status document of device id, as the hub writes it.
func (b *Broker) deliverStatus(id, topic string, fn func(topic string, payload []byte)) {
	p, ok := b.sessions.get(id)
	if !ok {
		return // forgotten: the device was removed
	}
	st := wire.Status{V: wire.Version, TS: b.now().UnixMilli(), Online: p.Online, Remote: p.Remote}
	if p.Online {
		st.Since = p.ConnectedSince.UnixMilli()
	} else {
		st.Since = p.DisconnectedAt.UnixMilli()
	}
	payload, err := wire.Marshal(st)
	if err != nil {
		b.log.Error("publish presence", "device", id, "error", err)
		return
	}
	fn(topic, payload)
}

// topicMatches reports whether the MQTT topic filter matches topic; a shared subscription
// ($share/group/filter) matches as its filter.
func topicMatches(filter, topic string) bool {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		_, filter, _ = strings.Cut(rest, "/")
	}
	return topicmatch.Matches(filter, topic)
}

// presenceChanged tells the hub's event bus that a device connected or disconnected: the health
// rules look at a unit's presence when it changes, not by visiting every unit.
func (b *Broker) presenceChanged(p fleet.Presence) {
	if b.events != nil {
		b.events.Publish(fleet.Event{Kind: fleet.EventPresenceChanged, Presence: p})
	}
}

// awaitTeardown waits until mochi is done with the connection cl takes over. mochi registers
// clients by id: the old connection, once closed, unregisters its id if its session expires,
// and if that came after cl's registration it would unregister cl, which would then receive no
// commands. mochi avoids this only for a connection it takes over itself, and not reliably (it
// marks the old one as taken over after closing it).
func (b *Broker) awaitTeardown(cl *mqtt.Client) {
	deadline := b.now().Add(teardownTimeout)
	for {
		old, ok := b.srv.Clients.Get(cl.ID)
		if !ok || old == cl || !old.Closed() || old.IsTakenOver() || !sessionExpires(old) {
			return
		}
		if b.now().After(deadline) {
			b.log.Warn("previous connection still tearing down; connecting all the same", "device", cl.ID)
			return
		}
		time.Sleep(claimPoll)
	}
}

// sessionExpires reports whether mochi drops cl's session when it disconnects, as mochi decides.
func sessionExpires(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval == 0
	}
	return cl.Properties.Clean
}

// disconnect closes cl, which no longer owns its device id, and releases what waits for it.
func (b *Broker) disconnect(cl *mqtt.Client, code packets.Code) {
	if a, ok := b.ackers.Load(cl); ok {
		a.(*acker).abandon()
	}
	_ = b.srv.DisconnectClient(cl, code)
}
