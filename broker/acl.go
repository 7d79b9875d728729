package broker

import (
	"strings"

	"github.com/lockerhub/lockerhub/fleet/wire"
)

// canPublish reports whether device id may publish to topic: only the device-to-hub channels of
// its own subtree, never its command channel, never another device's topics or $SYS.
func canPublish(id, topic string) bool {
	dev, ch, ok := wire.ParseTopic(topic)
	return ok && dev == id && wire.DevicePublishes(ch)
}

// canSubscribe reports whether device id may subscribe to filter (or receive a message on the
// topic filter names). Only filters inside its own command subtree qualify, which rules out '#',
// '+/...', '$SYS/#', shared subscriptions and every other device's topics: a filter is accepted
// only when its literal prefix already pins it to lockers/{id}/cmd/.
func canSubscribe(id, filter string) bool {
	prefix := strings.TrimSuffix(wire.CommandFilter(id), "#")
	return len(filter) > len(prefix) && strings.HasPrefix(filter, prefix)
}
