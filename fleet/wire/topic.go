package wire

import "strings"

// TopicRoot is the first level of every lockerhub topic.
const TopicRoot = "lockers"

// maxDeviceIDLen keeps a device ID a valid DNS label as well as a topic level.
const maxDeviceIDLen = 63

// Channel is the part of a topic after the device ID. It selects the schema
// of the payload.
type Channel string

const (
	// ChannelTelemetry carries periodic Telemetry snapshots from device to
	// hub, QoS 1, not retained.
	ChannelTelemetry Channel = "telemetry"
	// ChannelEvents carries an Event from device to hub as soon as a door
	// changes, QoS 1, not retained.
	ChannelEvents Channel = "events"
	// ChannelStatus carries the retained Status (presence) of a device. A
	// device sets an offline Status as its MQTT will and may publish an online
	// one; the hub's embedded broker owns the topic instead and publishes the
	// authoritative document itself.
	ChannelStatus Channel = "status"
	// ChannelResult carries the Result of a command from device to hub, QoS 1,
	// not retained.
	ChannelResult Channel = "result"
	// ChannelCommand carries Commands from hub to device, QoS 1. Commands are
	// never retained: a retained unlock would run again on every reconnect.
	ChannelCommand Channel = "cmd/request"
)

// ValidDeviceID reports whether id is a valid device ID: 1 to 63 lower-case
// ASCII letters, digits and '-', not starting with '-'. Such an ID is a single
// topic level free of wildcards. It avoids regexp because the broker runs it
// on every connect.
func ValidDeviceID(id string) bool {
	if len(id) == 0 || len(id) > maxDeviceIDLen || id[0] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Topic returns the topic of channel ch of device deviceID, which must be a
// valid device ID.
func Topic(deviceID string, ch Channel) string {
	return TopicRoot + "/" + deviceID + "/" + string(ch)
}

// ParseTopic splits a topic built by [Topic]. It accepts only a valid device
// ID and one of the six channels, matched exactly: extra levels, other roots
// and wildcards are refused, so that its result can drive access control.
func ParseTopic(topic string) (deviceID string, ch Channel, ok bool) {
	rest, ok := strings.CutPrefix(topic, TopicRoot+"/")
	if !ok {
		return "", "", false
	}
	id, c, ok := strings.Cut(rest, "/")
	ch = Channel(c)
	if !ok || !ValidDeviceID(id) || !(ch == ChannelCommand || ch == ChannelCodes || DevicePublishes(ch)) {
		return "", "", false
	}
	return id, ch, true
}

// CommandFilter returns the filter a device subscribes to for its commands.
// It covers all of cmd/ so that command channels added later reach agents
// without a new subscription; an agent ignores those it does not know.
func CommandFilter(deviceID string) string {
	return TopicRoot + "/" + deviceID + "/cmd/#"
}

// DevicePublishes reports whether devices publish on ch: true for telemetry,
// events, status and result. Devices never publish under cmd/.
func DevicePublishes(ch Channel) bool {
	switch ch {
	case ChannelTelemetry, ChannelEvents, ChannelStatus, ChannelResult:
		return true
	}
	return false
}
