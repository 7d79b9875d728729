package broker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// ingestHook takes the device messages the hub consumes: every payload is validated against
// the wire contract, telemetry and events are stored before their acknowledgement (see acker),
// and command results are counted in their unit's sequence as they are delivered.
type ingestHook struct {
	mqtt.HookBase
	b *Broker
}

var _ mqtt.Hook = (*ingestHook)(nil)

func (h *ingestHook) ID() string { return "lockerhub-ingest" }

func (h *ingestHook) Provides(b byte) bool { return b == mqtt.OnPublish }

// OnPublish validates a device's payload and hands telemetry and events to the ingester, whose
// receipts the connection's acker waits for, in order, acknowledging each message once it is
// stored. MQTT wants acknowledgements in the order of the messages (section 4.6), so once a
// connection has an acker, its other messages are acknowledged through it too, behind the
// telemetry ahead of them; they are delivered at once all the same, so that a command's
// result does not wait for the disk.
func (h *ingestHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	pk, ch, msg, err := h.check(cl, pk)
	if err == nil && h.b.ingest != nil && (ch == wire.ChannelTelemetry || ch == wire.ChannelEvents) {
		// The hub is the consumer of telemetry and events: they go to the ingester, are
		// acknowledged once stored (see acker), and go to no subscriber.
		h.b.ackerOf(cl).ingest(pk, ch, msg)
		return pk, packets.ErrRejectPacket
	}
	if err == nil && h.b.ingest != nil && ch == wire.ChannelResult {
		h.b.apply(cl.ID, ch, msg)
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

// apply hands the ingester a device's message that is delivered rather than stored. Only a
// registry that cannot be read makes it fail, and the message is delivered all the same: the
// command waiting for it is more urgent than its place in the sequence.
func (b *Broker) apply(id string, ch wire.Channel, msg wire.Message) {
	ctx, cancel := context.WithTimeout(b.ctx, b.ingestTO)
	defer cancel()
	if err := b.ingest.Apply(ctx, id, ch, msg); err != nil {
		b.failLog.Warn("apply", "device message not counted in its sequence", "device", id, "channel", ch, "error", err)
	}
}

// check validates a device's message. A malformed message is acknowledged but not delivered:
// resending it would never make it valid, and a device must not be able to stall itself, or
// anyone else, with one bad message.
func (h *ingestHook) check(cl *mqtt.Client, pk packets.Packet) (packets.Packet, wire.Channel, wire.Message, error) {
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
	h.b.metrics.received[ch].Inc() // ch is one a device publishes on, checked above
	if ch == wire.ChannelStatus {
		return pk, ch, msg, packets.CodeSuccessIgnore // the hub is the author of presence, see checkConnect
	}
	pk.FixedHeader.Retain = false // only presence is retained; a device cannot pin messages
	return pk, ch, msg, nil
}

// maxUnacked is how many of one connection's messages may wait for the spool at once; a
// device that sends more is not read from until one is acknowledged (backpressure, not
// loss). mochi runs a publish's hooks on the connection's read goroutine and acknowledges it
// there, so waiting for the spool in the hook would let each device have one message in
// flight: the hub would take a message per connection per fsync round whatever window the
// device allowed. The hub acknowledges stored messages itself instead, from another goroutine.
// The agent sends at most 32 at once; 64 leaves room for other clients without letting one
// connection queue much: at worst 64 snapshots of a few KiB each.
const maxUnacked = 64

// acker acknowledges one connection's stored messages in the order they arrived, as MQTT
// requires, once the ingester has stored each. Its goroutine runs only while messages wait.
type acker struct {
	b     *Broker
	cl    *mqtt.Client
	slots chan struct{} // one per message not yet acknowledged
	gone  chan struct{} // closed once the connection lost its device id: wait for nothing
	once  sync.Once

	mu      sync.Mutex
	queue   []unacked
	running bool
	failed  bool // a message could not be stored: acknowledge nothing more
}

// unacked is a message waiting to be acknowledged: for its receipt, or, without one, only for
// the acknowledgements ahead of it.
type unacked struct {
	receipt  fleet.Receipt
	packetID uint16
	qos      byte
	topic    string
}

// ackerOf returns cl's acker, made on its first message.
func (b *Broker) ackerOf(cl *mqtt.Client) *acker {
	if a, ok := b.ackers.Load(cl); ok {
		return a.(*acker)
	}
	a, _ := b.ackers.LoadOrStore(cl, &acker{b: b, cl: cl, slots: make(chan struct{}, maxUnacked), gone: make(chan struct{})})
	return a.(*acker)
}

// ingest hands a device's message to the ingester and queues its acknowledgement. It blocks
// while the connection has maxUnacked messages waiting. If the message cannot even be handed
// over, the connection is closed, so that the device resends it.
func (a *acker) ingest(pk packets.Packet, ch wire.Channel, msg wire.Message) {
	if !a.take() {
		return
	}
	b := a.b
	m := unacked{packetID: pk.PacketID, qos: pk.FixedHeader.Qos, topic: pk.TopicName}
	ctx, cancel := context.WithTimeout(b.ctx, b.ingestTO)
	receipt, err := b.ingest.Ingest(ctx, a.cl.ID, ch, msg)
	cancel()
	if err != nil {
		<-a.slots
		a.fail(m, err)
		return
	}
	m.receipt = receipt
	a.push(m)
}

// acknowledge queues the acknowledgement of a message that needs no storing, behind those of
// the connection's earlier messages.
func (a *acker) acknowledge(pk packets.Packet) {
	if !a.take() {
		return
	}
	a.push(unacked{packetID: pk.PacketID, qos: pk.FixedHeader.Qos, topic: pk.TopicName})
}

// take waits for a slot for one more message; false once the broker is closing or the
// connection was abandoned.
func (a *acker) take() bool {
	select {
	case a.slots <- struct{}{}:
		return true
	case <-a.b.ctx.Done():
		return false
	case <-a.gone:
		return false
	}
}

// abandon stops the connection's reading from waiting for slots: it no longer owns its device
// id and is being closed, and its goroutine must reach mochi's teardown promptly (see
// Broker.awaitTeardown).
func (a *acker) abandon() { a.once.Do(func() { close(a.gone) }) }

// push queues m, whose slot is taken, and starts the goroutine if it is not running.
func (a *acker) push(m unacked) {
	a.mu.Lock()
	a.queue = append(a.queue, m)
	run := !a.running
	a.running = true
	a.mu.Unlock()
	if run {
		go a.run()
	}
}

// run waits for the queued messages' receipts in order and acknowledges each message once
// stored, until the queue is empty.
//
// The spool makes messages durable in group commits, so a connection's messages of one commit
// become stored together: run corks the connection while it acknowledges every message whose
// receipt is already settled and sends the acknowledgements in one write before it waits for
// the next commit (or finds the queue empty). A PUBACK still never leaves before its message
// is stored; it only waits for the others of its commit.
func (a *acker) run() {
	conn := admittedOf(a.cl.Net.Conn)
	corked := false
	flush := func() {
		if !corked {
			return
		}
		corked = false
		// An error means the connection is gone; the device resends what it did not see
		// acknowledged.
		if sent, _ := conn.uncork(); sent {
			a.b.metrics.ackWrites.Inc()
		}
	}
	for {
		a.mu.Lock()
		if len(a.queue) == 0 {
			if corked {
				// Send before letting go: a goroutine started for the next message must not
				// get its acknowledgements out ahead of these.
				a.mu.Unlock()
				flush()
				continue
			}
			a.running = false
			a.queue = nil // an idle connection keeps no buffer
			a.mu.Unlock()
			return
		}
		m := a.queue[0]
		a.queue = a.queue[1:]
		failed := a.failed
		a.mu.Unlock()

		var err error
		switch r, ok := m.receipt.(settledReceipt); {
		case m.receipt == nil:
		case ok && r.Settled():
			err = m.receipt.Wait(a.b.ctx) // returns at once: no timer to set
		default:
			flush()
			ctx, cancel := context.WithTimeout(a.b.ctx, a.b.ingestTO)
			err = m.receipt.Wait(ctx)
			cancel()
		}
		switch {
		case err != nil:
			flush() // what is stored is still acknowledged
			a.fail(m, err)
		case failed || m.qos == 0:
		default:
			switch {
			case conn == nil:
				a.b.metrics.ackWrites.Inc() // not a connection of ours: written at once
			case !corked:
				conn.cork()
				corked = true
			}
			_ = a.b.ack(a.cl, m.packetID, m.qos)
			a.b.metrics.acks.Inc()
		}
		<-a.slots
	}
}

// settledReceipt is a receipt that tells, without blocking, whether Wait would return at once
// (telemetry's do): the acker acknowledges such messages together with those ahead of them.
type settledReceipt interface {
	Settled() bool
}

// fail closes the connection after a message could not be stored, and keeps later messages of
// the connection from being acknowledged: the device sends them all again after reconnecting.
func (a *acker) fail(m unacked, err error) {
	a.mu.Lock()
	first := !a.failed
	a.failed = true
	a.mu.Unlock()
	if first {
		a.b.failLog.Warn("ingest", "message not stored; closing the connection so the device resends it", "device", a.cl.ID, "topic", m.topic, "error", err)
		_ = a.b.srv.DisconnectClient(a.cl, packets.ErrServerBusy)
	}
}

// ack acknowledges a device's message that the hub has taken: PUBACK at QoS 1; at QoS 2,
// PUBREC, kept in flight so that mochi answers the device's PUBREL with PUBCOMP (and a
// resent PUBLISH with the same id is not taken twice).
func (b *Broker) ack(cl *mqtt.Client, packetID uint16, qos byte) error {
	if qos < 2 {
		return cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: packetID})
	}
	rec := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: packetID}
	if cl.State.Inflight.Set(rec) {
		atomic.AddInt64(&b.srv.Info.Inflight, 1)
	}
	return cl.WritePacket(rec)
}
