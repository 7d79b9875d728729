package broker

import (
	"bytes"
	"errors"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
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
		h.b.publishPresence(p)
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
		h.b.publishPresence(p)
		h.b.presenceChanged(p)
	}
}

// publishPresence publishes p as the device's retained status document.
func (b *Broker) publishPresence(p fleet.Presence) {
	st := wire.Status{V: wire.Version, TS: b.now().UnixMilli(), Online: p.Online, Remote: p.Remote}
	if p.Online {
		st.Since = p.ConnectedSince.UnixMilli()
	} else {
		st.Since = p.DisconnectedAt.UnixMilli()
	}
	payload, err := wire.Marshal(st)
	if err == nil {
		err = b.Publish(wire.Topic(p.DeviceID, wire.ChannelStatus), payload, true, 1)
	}
	if err != nil {
		b.log.Error("publish presence", "device", p.DeviceID, "error", err)
	}
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
