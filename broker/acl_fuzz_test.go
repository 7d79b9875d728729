package broker

import (
	"strings"
	"testing"

	"github.com/lockerhub/lockerhub/fleet/wire"
)

// matches reports whether an MQTT topic filter matches a topic name (MQTT 3.1.1, 4.7), written
// here independently of the broker so that the ACL is checked against the protocol, not
// against itself.
func matches(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	f, tp := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, level := range f {
		switch {
		case level == "#":
			return true
		case i >= len(tp):
			return false
		case level != "+" && level != tp[i]:
			return false
		}
	}
	return len(f) == len(tp)
}

// FuzzACL checks the ACL against what a device could reach with it: a topic a device may
// publish is one of its own device-to-hub channels, and a filter it may subscribe to matches
// nothing outside its own command subtree, whatever wildcards it holds.
func FuzzACL(f *testing.F) {
	for _, s := range [][2]string{
		{"bank-1", "lockers/bank-1/cmd/#"}, {"bank-1", "lockers/bank-1/cmd/request"}, {"bank-1", "lockers/+/cmd/#"},
		{"bank-1", "#"}, {"bank-1", "lockers/bank-1/#"}, {"bank-1", "$share/g/lockers/bank-1/cmd/#"},
		{"bank-1", "lockers/bank-1/telemetry"}, {"bank-1", "lockers/bank-2/events"}, {"bank-1", "lockers/bank-1/cmd/+/x"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, id, topic string) {
		if !wire.ValidDeviceID(id) {
			return
		}
		if canPublish(id, topic) {
			dev, ch, ok := wire.ParseTopic(topic)
			if !ok || dev != id || !wire.DevicePublishes(ch) {
				t.Fatalf("%s may publish to %q", id, topic)
			}
		}
		if !canSubscribe(id, topic) {
			return
		}
		for _, other := range []string{
			wire.Topic(id+"x", wire.ChannelCommand), wire.Topic("x"+id, wire.ChannelCommand), wire.Topic(id, wire.ChannelTelemetry),
			wire.Topic(id, wire.ChannelResult), "$SYS/broker/clients", "lockers/" + id, "lockers",
		} {
			if matches(topic, other) {
				t.Fatalf("%s may subscribe to %q, which matches %q outside its command subtree", id, topic, other)
			}
		}
	})
}
