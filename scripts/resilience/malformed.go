package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

const (
	// malformedWitnesses are agents that publish all through the malformed case: the hub must
	// keep serving them.
	malformedWitnesses = 5
	// closeWithin is how long the hub may take to close an offending connection.
	closeWithin = 5 * time.Second
	// packetLimit is the hub's cap on an MQTT packet (broker.maxPacketBytes, unexported):
	// the payload limit plus 1 KiB for the topic and properties.
	packetLimit = wire.MaxPayloadBytes + 1024
	// metricRejected counts device messages the broker refused, by reason.
	metricRejected = "lockerhub_mqtt_messages_rejected_total"
)

// probeResult is what the hub did with one malformed input.
type probeResult struct {
	Name     string  `json:"name"`
	Expect   string  `json:"expect"` // "closed", or "rejected": acknowledged, counted, not stored
	Closed   bool    `json:"closed"`
	CloseMS  float64 `json:"close_ms,omitempty"`
	Rejected bool    `json:"rejected,omitempty"`
	Pass     bool    `json:"pass"`
	Error    string  `json:"error,omitempty"`
}

// malformedProbe is one offending input. login says whether it comes after a valid CONNECT
// (as the prober unit), so that it is judged by the connected client's read path.
type malformedProbe struct {
	name   string
	login  bool
	expect string
	bytes  func(id string) []byte
}

// validEvent is a well-formed door event, for the probes that break only the packet around it.
func validEvent(seq uint64) []byte {
	b, _ := wire.Marshal(wire.Event{V: wire.Version, Seq: seq, TS: time.Now().UnixMilli(), Kind: wire.EventDoor, Door: 1, Locked: true})
	return b
}

var malformedProbes = []malformedProbe{
	{"garbage bytes instead of CONNECT", false, "closed", func(string) []byte { return []byte("\x00\xde\xad\xbe\xefGET / HTTP/1.1\r\n\r\n") }},
	{"bad remaining length (5-byte varint)", false, "closed", func(string) []byte { return []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0} }},
	{"invalid protocol name", false, "closed", func(id string) []byte { return connectPacket("MQTX", id, id, "x") }},
	{"PUBLISH before CONNECT", false, "closed", func(id string) []byte {
		return publishPacket(wire.Topic(id, wire.ChannelEvents), 1, validEvent(1))
	}},
	{"CONNECT above the packet limit", false, "closed", func(id string) []byte {
		return connectPacket("MQTT", id, id, strings.Repeat("p", packetLimit))
	}},
	{"PUBLISH at QoS 3", true, "closed", func(id string) []byte {
		return publishPacket(wire.Topic(id, wire.ChannelEvents), 3, validEvent(1))
	}},
	{"PUBLISH with an invalid UTF-8 topic", true, "closed", func(id string) []byte {
		return publishPacket("lockers/"+id+"/\xff\xfe", 1, validEvent(1))
	}},
	{"PUBLISH above the packet limit", true, "closed", func(id string) []byte {
		return publishPacket(wire.Topic(id, wire.ChannelEvents), 1, []byte(strings.Repeat("x", packetLimit+1)))
	}},
	{"PUBLISH announcing 256 MiB", true, "closed", func(string) []byte {
		return append([]byte{0x32, 0xff, 0xff, 0xff, 0x7f}, make([]byte, 1024)...)
	}},
	// Within the packet limit but above the wire contract's payload limit: by design the hub
	// acknowledges it (resending would never make it valid), counts it and stores nothing.
	{"payload above MaxPayloadBytes, within the packet limit", true, "rejected", func(id string) []byte {
		return publishPacket(wire.Topic(id, wire.ChannelEvents), 1, []byte(`{"v":1,"pad":"`+strings.Repeat("x", wire.MaxPayloadBytes)+`"}`))
	}},
}

// malformed sends each malformed input on its own connection while witness agents publish,
// and checks that the offending connection is closed and that the hub and the witnesses carry
// on.
func (s *suite) malformed(ctx context.Context, r *caseResult) error {
	h, units, db, dir, err := s.setup(ctx, r.Name, malformedWitnesses+1)
	if err != nil {
		return err
	}
	defer h.Stop()
	prober, witnesses := units[0], units[1:]
	f, err := s.runFleet(ctx, r, h, witnesses, dir)
	if err != nil {
		return err
	}
	before, err := h.metrics()
	if err != nil {
		f.stop()
		return err
	}
	for _, p := range malformedProbes {
		if ctx.Err() != nil {
			f.stop()
			return ctx.Err()
		}
		res := s.runProbe(h, prober, p)
		r.Probes = append(r.Probes, res)
		detail := fmt.Sprintf("closed: %v", res.Closed)
		if res.Closed {
			detail += fmt.Sprintf(" after %.0f ms", res.CloseMS)
		}
		if p.expect == "rejected" {
			detail += fmt.Sprintf(", counted as rejected: %v", res.Rejected)
		}
		if res.Error != "" {
			detail += "; " + res.Error
		}
		r.check(p.name, res.Pass, "expected %s; %s", p.expect, detail)
	}
	// Let the witnesses publish a while after the last probe, then judge them.
	if err := sleepCtx(ctx, s.o.lead); err != nil {
		f.stop()
		return err
	}
	after, err := h.metrics()
	if err != nil {
		f.stop()
		return err
	}
	const ingested = "lockerhub_telemetry_messages_ingested_total"
	r.check("other units kept working", f.online() == len(witnesses) && after[ingested] > before[ingested],
		"%d of %d witnesses online; the hub stored %.0f of their messages during the probes", f.online(), len(witnesses), after[ingested]-before[ingested])
	hubAliveCheck(r, h)
	return s.finishFleet(ctx, r, h, f, db)
}

// runProbe sends one malformed input and watches what the hub does with the connection.
func (s *suite) runProbe(h *hub, prober testbed.Unit, p malformedProbe) probeResult {
	res := probeResult{Name: p.name, Expect: p.expect}
	rejectedBefore := s.rejected(h)
	var c net.Conn
	var err error
	if p.login {
		c, err = rawConnect(h.MQTT, prober.ID, prober.Secret)
	} else {
		c, err = net.DialTimeout("tcp", h.MQTT, 5*time.Second)
	}
	if err != nil {
		res.Error = "connect: " + err.Error()
		return res
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(closeWithin))
	if _, err := c.Write(p.bytes(prober.ID)); err != nil && !closedByPeer(err) {
		// The hub may close before reading everything: a reset while writing is a close.
		res.Error = "write: " + err.Error()
	}
	closed, took := waitClosed(c, closeWithin)
	res.Closed = closed
	if closed {
		res.CloseMS = ms(took)
	}
	switch p.expect {
	case "closed":
		res.Pass = closed
	case "rejected":
		res.Rejected = s.rejected(h) > rejectedBefore
		res.Pass = res.Rejected
	}
	return res
}

// rejected is the hub's count of refused device messages, all reasons; 0 if the scrape fails,
// which makes a "rejected" probe fail rather than pass unseen.
func (s *suite) rejected(h *hub) float64 {
	m, _ := testbed.Metrics(h.HTTP, metricRejected)
	return m[metricRejected]
}
