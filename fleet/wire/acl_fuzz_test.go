package wire

import (
	"strings"
	"testing"
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
		if !ValidDeviceID(id) {
			return
		}
		if DeviceMayPublish(id, topic) {
			dev, ch, ok := ParseTopic(topic)
			if !ok || dev != id || !DevicePublishes(ch) {
				t.Fatalf("%s may publish to %q", id, topic)
			}
		}
		if !DeviceMaySubscribe(id, topic) {
			return
		}
		for _, other := range []string{
			Topic(id+"x", ChannelCommand), Topic("x"+id, ChannelCommand), Topic(id, ChannelTelemetry),
			Topic(id, ChannelResult), "$SYS/broker/clients", "lockers/" + id, "lockers",
		} {
			if matches(topic, other) {
				t.Fatalf("%s may subscribe to %q, which matches %q outside its command subtree", id, topic, other)
			}
		}
	})
}
