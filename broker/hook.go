package broker

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/loginaudit"
)

// authTimeout bounds one connect's registry lookup and hash check, and its wait for another
// connect of the same device id to be attached (see sessions.claim).
const authTimeout = 10 * time.Second

// teardownTimeout bounds how long a connect waits for mochi to finish with the connection it
// takes over (see awaitTeardown). A connection's teardown runs no I/O; it is longer only when
// its goroutine is stuck, and the new connection then proceeds all the same.
const teardownTimeout = 2 * time.Second

// hook is lockerhub's mochi hook: it authenticates devices, enforces the per-device ACL,
// validates every device payload against the wire contract, and tracks presence.
type hook struct {
	mqtt.HookBase
	b *Broker
}

func (h *hook) ID() string { return "lockerhub" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnSessionEstablish,
		mqtt.OnSessionEstablished,
		mqtt.OnDisconnect,
		mqtt.OnPacketRead,
		mqtt.OnPublish,
	}, []byte{b})
}

// OnConnectAuthenticate accepts a device whose username is its id, whose client id equals the
// username, whose password is its current secret and whose will (if any) stays in its own topics.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	id, secret := string(pk.Connect.Username), string(pk.Connect.Password)
	reason, err := h.checkConnect(cl, id, secret)
	if reason != "" {
		h.b.metrics.authFailures.WithLabelValues(reason).Inc()
		h.b.logins.Failed(loginaudit.Failure{Reason: reason, Device: id, Remote: cl.Net.Remote, Time: h.b.now()})
		attrs := []any{"device", id, "client", cl.ID, "remote", cl.Net.Remote, "reason", reason}
		if err != nil {
			attrs = append(attrs, "error", err)
		}
		h.b.failLog.Warn(reason, "mqtt connect refused", attrs...)
		return false
	}
	return true
}

func (h *hook) checkConnect(cl *mqtt.Client, id, secret string) (reason string, err error) {
	if !wire.ValidDeviceID(id) || id == mqtt.InlineClientId {
		// The inline client's id is never a device's: connecting with it would take over the
		// hub's own session.
		return reasonUnknownDevice, nil
	}
	if cl.ID != id {
		return reasonClientID, nil
	}
	if atomic.LoadUint32(&cl.Properties.Will.Flag) == 1 && !wire.DeviceMayPublish(id, cl.Properties.Will.TopicName) {
		// mochi publishes a will without an ACL check, so a will aimed elsewhere would let a
		// device write to another device's topics by disconnecting.
		return reasonWillTopic, nil
	}
	ctx, cancel := context.WithTimeout(h.b.ctx, authTimeout)
	defer cancel()
	epoch := h.b.revalidations.Load()
	hash, reason, hashed, err := h.b.auth.authenticate(ctx, id, secret, sourceOf(remoteAddr(cl)))
	if hashed {
		h.b.metrics.hashChecks.Inc()
	}
	if reason != "" {
		return reason, err
	}
	deadline, _ := ctx.Deadline()
	old, ok := h.b.sessions.claim(cl, hash, deadline)
	if !ok {
		return reasonBusy, nil
	}
	if old != nil && !old.Closed() {
		h.b.metrics.takeovers.Inc()
		h.b.log.Info("device connected again; closing its previous connection", "device", id, "remote", cl.Net.Remote, "previous", old.Net.Remote)
		h.b.disconnect(old, packets.ErrSessionTakenOver)
	}
	if h.b.revalidations.Load() != epoch {
		// A revalidation began after the credential was read, and may have looked for this
		// device's connections before this one claimed the id: read the credential again, so
		// that a revocation racing the connect cannot miss it.
		if reason, err := h.b.stillValid(ctx, id, hash); reason != "" {
			if p, ok := h.b.sessions.release(cl); ok {
				h.b.publishPresence(p)
			}
			return reason, err
		}
	}
	if c := admittedOf(cl.Net.Conn); c != nil {
		c.authenticated()
	}
	// In the embedded broker the hub publishes presence itself, so the device's will (its
	// offline status) is redundant; dropping it keeps one author for the status topic.
	atomic.StoreUint32(&cl.Properties.Will.Flag, 0)
	return "", nil
}

// remoteAddr is the client's remote address; mochi keeps it only as a string.
func remoteAddr(cl *mqtt.Client) net.Addr {
	if cl.Net.Conn != nil {
		return cl.Net.Conn.RemoteAddr()
	}
	return nil
}

// OnACLCheck lets a device publish only to its own device-to-hub channels and subscribe only
// inside its own command subtree. Deliveries to a device are checked with the same rule.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if write {
		if wire.DeviceMayPublish(cl.ID, topic) {
			return true
		}
		h.b.metrics.aclDenied.WithLabelValues("publish").Inc()
		h.b.failLog.Warn("publish", "mqtt publish denied", "device", cl.ID, "topic", topic)
		return false
	}
	if wire.DeviceMaySubscribe(cl.ID, topic) {
		return true
	}
	h.b.metrics.aclDenied.WithLabelValues("subscribe").Inc()
	h.b.failLog.Warn("subscribe", "mqtt subscribe denied", "device", cl.ID, "topic", topic)
	return false
}

// OnPublish validates a device's payload and hands telemetry and events to the ingester, whose
// acknowledgements the connection's acker sends once each message is stored. MQTT wants
// acknowledgements in the order of the messages (section 4.6), so once a connection has an
// acker, its other messages are acknowledged through it too, behind the telemetry ahead of
// them; they are delivered at once all the same, so that a command's result does not wait
// for the disk.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	pk, ch, msg, err := h.check(cl, pk)
	if err == nil && h.b.ingest != nil && (ch == wire.ChannelTelemetry || ch == wire.ChannelEvents) {
		// The hub is the consumer of telemetry and events: they go to the ingester, which
		// acknowledges each once stored (see acker), and to no subscriber.
		h.b.ackerOf(cl).ingest(pk, ch, msg)
		return pk, packets.ErrRejectPacket
	}
	if err == nil && h.b.watcher != nil && ch == wire.ChannelResult {
		h.b.watch(cl.ID, ch, msg)
	}
	a, ok := h.b.ackers.Load(cl)
	if !ok || pk.FixedHeader.Qos == 0 || (err != nil && !errors.Is(err, packets.CodeSuccessIgnore)) {
		return pk, err // mochi acknowledges it (or refuses it) itself
	}
	if err == nil {
		if perr := h.b.srv.Publish(pk.TopicName, pk.Payload, false, pk.FixedHeader.Qos); perr != nil {
			return pk, err // not delivered: let mochi handle it as it would have
		}
	}
	a.(*acker).acknowledge(pk)
	return pk, packets.ErrRejectPacket
}

// watch tells the watcher of a device's message. Only a registry that cannot be read makes it
// fail, and the message is delivered all the same: the command waiting for it is more urgent
// than its place in the sequence.
func (b *Broker) watch(id string, ch wire.Channel, msg wire.Message) {
	ctx, cancel := context.WithTimeout(b.ctx, b.ingestTO)
	defer cancel()
	if err := b.watcher.Observe(ctx, id, ch, msg); err != nil {
		b.failLog.Warn("watch", "device message not counted in its sequence", "device", id, "channel", ch, "error", err)
	}
}

// check validates a device's message. A malformed message is acknowledged but not delivered:
// resending it would never make it valid, and a device must not be able to stall itself, or
// anyone else, with one bad message.
func (h *hook) check(cl *mqtt.Client, pk packets.Packet) (packets.Packet, wire.Channel, wire.Message, error) {
	// The ACL saw the topic before mochi resolved a topic alias; check the final name again.
	dev, ch, ok := wire.ParseTopic(pk.TopicName)
	if !ok || dev != cl.ID || !wire.DevicePublishes(ch) {
		h.b.metrics.aclDenied.WithLabelValues("publish").Inc()
		return pk, ch, nil, packets.ErrRejectPacket
	}
	msg, err := wire.Decode(ch, pk.Payload)
	if err != nil {
		reason := string(wire.ReasonOf(err))
		h.b.metrics.rejected.WithLabelValues(reason).Inc()
		h.b.failLog.Warn("decode-"+reason, "device message rejected", "device", cl.ID, "topic", pk.TopicName, "error", err)
		return pk, ch, nil, packets.CodeSuccessIgnore
	}
	h.b.metrics.received.WithLabelValues(string(ch)).Inc()
	if ch == wire.ChannelStatus {
		return pk, ch, msg, packets.CodeSuccessIgnore // the hub is the author of presence, see checkConnect
	}
	pk.FixedHeader.Retain = false // only presence is retained; a device cannot pin messages
	return pk, ch, msg, nil
}

// OnPacketRead refuses every packet of a connection that no longer owns its device id (taken
// over, or its credential revoked), which closes it: closing it when it lost the id may not have
// taken yet. The CONNECT itself comes before the connection can own anything.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
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
func (h *hook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	h.b.awaitTeardown(cl)
	if p, ok := h.b.sessions.established(cl); ok {
		h.b.metrics.connects.Inc()
		h.b.log.Info("device connected", "device", cl.ID, "remote", cl.Net.Remote, "listener", cl.Net.Listener)
		h.b.publishPresence(p)
	}
}

// OnSessionEstablished runs once mochi has registered cl: the next connect of its id may go on.
func (h *hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.b.sessions.attached(cl)
}

func (h *hook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	if errors.Is(err, packets.ErrPacketTooLarge) {
		h.b.metrics.rejected.WithLabelValues(string(wire.ReasonTooLarge)).Inc()
	}
	h.b.ackers.Delete(cl) // messages still waiting keep their acker until stored
	if p, ok := h.b.sessions.release(cl); ok {
		h.b.log.Info("device disconnected", "device", cl.ID, "remote", cl.Net.Remote, "error", err)
		h.b.publishPresence(p)
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

var _ mqtt.Hook = (*hook)(nil)
