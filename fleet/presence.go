package fleet

import "time"

// Presence is what the hub knows about a device's connection. It lives in memory: it is rebuilt
// from connections after a restart, and the retained status topic tells MQTT subscribers the same.
type Presence struct {
	DeviceID       string    `json:"device"`
	Online         bool      `json:"online"`
	ConnectedSince time.Time `json:"connected_since,omitzero"`
	DisconnectedAt time.Time `json:"disconnected_at,omitzero"`
	LastSeen       time.Time `json:"last_seen,omitzero"`
	Remote         string    `json:"remote,omitempty"`
	// KeepAlive is the connection's MQTT keepalive, 0 when it has none or the broker does not
	// say: a connection that pings within it is alive though it sends nothing else.
	KeepAlive time.Duration `json:"-"`
}
