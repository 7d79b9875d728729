package wire

import "strings"

// The device ACL lives here, beside the topics it is about, so that every broker a hub works
// with grants devices the same: the embedded broker checks it on every publish and subscribe,
// `lockerhub device export-acl` writes it out as a Mosquitto ACL file, and the HTTP auth
// endpoints for EMQX and VerneMQ (broker/external) answer with it.

// DeviceMayPublish reports whether device id may publish to topic: only the device-to-hub
// channels of its own subtree, never its command channel, never another device's topics or $SYS.
func DeviceMayPublish(id, topic string) bool {
	dev, ch, ok := ParseTopic(topic)
	return ok && dev == id && DevicePublishes(ch)
}

// DeviceMaySubscribe reports whether device id may subscribe to filter (or receive a message on
// the topic filter names). Only filters inside its own command subtree qualify, which rules out
// '#', '+/...', '$SYS/#', shared subscriptions and every other device's topics: a filter is
// accepted only when its literal prefix already pins it to lockers/{id}/cmd/.
func DeviceMaySubscribe(id, filter string) bool {
	prefix := strings.TrimSuffix(CommandFilter(id), "#")
	return len(filter) > len(prefix) && strings.HasPrefix(filter, prefix)
}
