package wire

import (
	"testing"

	"github.com/lockerhub/lockerhub/internal/topicmatch"
)

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
			if topicmatch.Matches(topic, other) {
				t.Fatalf("%s may subscribe to %q, which matches %q outside its command subtree", id, topic, other)
			}
		}
	})
}
