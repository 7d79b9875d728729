package broker

import (
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/lockerhub/lockerhub/fleet"
)

// session is the hub's view of one device's connection, kept across reconnects so that the
// presence of a device that went offline can still be reported.
type session struct {
	pending    *mqtt.Client // authenticated, session not yet established; may be taking over current
	current    *mqtt.Client // the established connection, nil when offline
	secretHash string       // stored hash current authenticated against
	presence   fleet.Presence
	lastSeen   atomic.Int64 // Unix ms of the last packet from current
}

// sessions tracks presence per device. Takeover is the subtle case: mochi lets a new connection
// with the same client id authenticate before it disconnects the old one, and the old one's
// disconnect may be reported after the new one is established. Only the newest connection may
// change a device's presence, so every event is checked against the client it concerns.
type sessions struct {
	mu     sync.RWMutex
	byID   map[string]*session
	online int
	now    func() time.Time
}

func newSessions() *sessions {
	return &sessions{byID: make(map[string]*session), now: time.Now}
}

// authenticated records that cl passed authentication with the given stored hash.
func (s *sessions) authenticated(cl *mqtt.Client, secretHash string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.byID[cl.ID]
	if ss == nil {
		ss = &session{presence: fleet.Presence{DeviceID: cl.ID}}
		s.byID[cl.ID] = ss
	}
	ss.pending = cl
	ss.secretHash = secretHash
}

// established marks cl as the device's live connection and returns the new presence, or false
// if a newer connection has already replaced cl.
func (s *sessions) established(cl *mqtt.Client) (fleet.Presence, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.byID[cl.ID]
	if ss == nil || ss.pending != cl {
		return fleet.Presence{}, false
	}
	now := s.now().UTC()
	if ss.current == nil {
		s.online++
	}
	ss.pending, ss.current = nil, cl
	ss.lastSeen.Store(now.UnixMilli())
	ss.presence = fleet.Presence{DeviceID: cl.ID, Online: true, ConnectedSince: now, LastSeen: now, Remote: cl.Net.Remote}
	return ss.presence, true
}

// ended records that cl disconnected and returns the new presence, or false when cl was not
// the device's live connection (it was taken over, or never got established).
func (s *sessions) ended(cl *mqtt.Client) (fleet.Presence, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.byID[cl.ID]
	if ss == nil {
		return fleet.Presence{}, false
	}
	if ss.pending == cl {
		ss.pending = nil
		return fleet.Presence{}, false
	}
	if ss.current != cl || ss.pending != nil {
		return fleet.Presence{}, false
	}
	ss.current = nil
	s.online--
	ss.presence.Online = false
	ss.presence.DisconnectedAt = s.now().UTC()
	ss.presence.LastSeen = time.UnixMilli(ss.lastSeen.Load()).UTC()
	return ss.presence, true
}

// seen notes traffic from cl. It runs for every packet, so it takes only the read lock.
func (s *sessions) seen(cl *mqtt.Client) {
	s.mu.RLock()
	ss := s.byID[cl.ID]
	s.mu.RUnlock()
	if ss != nil {
		ss.lastSeen.Store(s.now().UnixMilli())
	}
}

// get returns the presence of one device.
func (s *sessions) get(id string) (fleet.Presence, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ss := s.byID[id]
	if ss == nil {
		return fleet.Presence{}, false
	}
	return ss.snapshot(), true
}

// secretHash returns the stored hash cl authenticated against, if cl is its device's live
// connection.
func (s *sessions) secretHash(cl *mqtt.Client) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ss := s.byID[cl.ID]
	if ss == nil || ss.current != cl {
		return "", false
	}
	return ss.secretHash, true
}

func (s *sessions) onlineCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.online
}

func (ss *session) snapshot() fleet.Presence {
	p := ss.presence
	if p.Online {
		p.LastSeen = time.UnixMilli(ss.lastSeen.Load()).UTC()
	}
	return p
}
