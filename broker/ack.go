package broker

import (
	"context"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/lockerhub/lockerhub/fleet/wire"
)

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

// unacked is a message waiting for the ingester.
type unacked struct {
	wait     func(context.Context) error
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
	wait, err := b.ingest.Ingest(ctx, a.cl.ID, ch, msg)
	cancel()
	if err != nil {
		<-a.slots
		a.fail(m, err)
		return
	}
	m.wait = wait
	a.push(m)
}

// acknowledge queues the acknowledgement of a message that needs no storing, behind those of
// the connection's earlier messages.
func (a *acker) acknowledge(pk packets.Packet) {
	if !a.take() {
		return
	}
	a.push(unacked{wait: stored, packetID: pk.PacketID, qos: pk.FixedHeader.Qos, topic: pk.TopicName})
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

// stored is the wait of a message that needs no storing.
func stored(context.Context) error { return nil }

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

// run waits for the queued messages in order and acknowledges each once stored, until the
// queue is empty.
func (a *acker) run() {
	for {
		a.mu.Lock()
		if len(a.queue) == 0 {
			a.running = false
			a.queue = nil // an idle connection keeps no buffer
			a.mu.Unlock()
			return
		}
		m := a.queue[0]
		a.queue = a.queue[1:]
		failed := a.failed
		a.mu.Unlock()

		ctx, cancel := context.WithTimeout(a.b.ctx, a.b.ingestTO)
		err := m.wait(ctx)
		cancel()
		switch {
		case err != nil:
			a.fail(m, err)
		case failed || m.qos == 0:
		default:
			// An error here means the connection is gone; the device resends what it
			// did not see acknowledged.
			_ = a.b.ack(a.cl, m.packetID, m.qos)
		}
		<-a.slots
	}
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
