package broker

import (
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/lockerhub/lockerhub/fleet"
)

// session is the hub's record of one device id: the one connection that owns it, and the
// device's presence, kept across reconnects so that the presence of a device that went offline
// can still be reported.
type session struct {
	// owner is the newest authenticated connection of the device, nil when there is none (the
	// device is offline, or its credential was revoked). Only the owner may send packets: any
	// other connection with the device's id is stale and is refused at its next packet (see
	// presenceHook.OnPacketRead), so the owner pointer is the session's generation.
	owner *mqtt.Client
	// attaching is set while the owner is between authentication and mochi's registration of
	// it; another connect of the same id waits until it is done (see claim).
	attaching  bool
	online     bool   // an owner is established
	secretHash string // the stored hash the owner authenticated against
	presence   fleet.Presence
	lastSeen   atomic.Int64 // Unix ms of the last packet from the owner
}

// sessions is the per-device registry that makes the broker hold at most one live connection
// per device id. mochi's own take-over (look the old client up, disconnect it, register the new
// one) is not atomic: concurrent CONNECTs with one id can each take over the same old client
// and all stay connected, with only the last one registered, so revocation would miss the
// others. Here every authenticated connect claims the id, which closes the previous owner, and
// connects of one id are serialized while one is being attached.
type sessions struct {
	mu     sync.RWMutex
	byID   map[string]*session
	online int
	now    func() time.Time
}

func newSessions() *sessions {
	return &sessions{byID: make(map[string]*session), now: time.Now}
}

// claimPoll is how often a connect waiting for another connect of its id looks again; the wait
// is as long as one attach, which involves no I/O but the CONNACK.
const claimPoll = time.Millisecond

// claim makes cl, just authenticated with the stored hash secretHash, the owner of its device
// id, and returns the previous owner, which the caller must close. While another connection of
// the id is being attached, claim waits for it, until deadline; it returns false if it is still
// attaching then.
func (s *sessions) claim(cl *mqtt.Client, secretHash string, deadline time.Time) (old *mqtt.Client, ok bool) {
	for {
		s.mu.Lock()
		ss := s.byID[cl.ID]
		if ss == nil {
			ss = &session{presence: fleet.Presence{DeviceID: cl.ID}}
			s.byID[cl.ID] = ss
		}
		if ss.owner == nil || !ss.attaching || ss.owner.Closed() {
			old = ss.owner
			ss.owner, ss.attaching, ss.secretHash = cl, true, secretHash
			s.mu.Unlock()
			return old, true
		}
		s.mu.Unlock()
		if s.now().After(deadline) {
			return nil, false
		}
		time.Sleep(claimPoll)
	}
}

// established marks cl as the device's live connection and returns the new presence, or false
// if cl no longer owns the device id.
func (s *sessions) established(cl *mqtt.Client) (fleet.Presence, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.byID[cl.ID]
	if ss == nil || ss.owner != cl {
		return fleet.Presence{}, false
	}
	now := s.now().UTC()
	if !ss.online {
		s.online++
		ss.online = true
	}
	ss.lastSeen.Store(now.UnixMilli())
	ss.presence = fleet.Presence{DeviceID: cl.ID, Online: true, ConnectedSince: now, LastSeen: now, Remote: cl.Net.Remote,
		KeepAlive: time.Duration(cl.State.Keepalive) * time.Second}
	return ss.presence, true
}

// attached records that mochi has registered cl: the next connect of its id may proceed.
func (s *sessions) attached(cl *mqtt.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss := s.byID[cl.ID]; ss != nil && ss.owner == cl {
		ss.attaching = false
	}
}

// owns reports whether cl is its device's owner, and notes its traffic. It runs for every
// packet, so it takes only the read lock.
func (s *sessions) owns(cl *mqtt.Client) bool {
	s.mu.RLock()
	ss := s.byID[cl.ID]
	owner := ss != nil && ss.owner == cl
	s.mu.RUnlock()
	if owner {
		ss.lastSeen.Store(s.now().UnixMilli())
	}
	return owner
}

// release takes the device id from cl, which disconnected or whose credential was revoked, and
// returns the new presence, or false when cl did not own its device id (it was taken over or
// revoked, or never authenticated). A revoked connection is stale from then on and refused at
// its next packet, whether or not closing it succeeds.
func (s *sessions) release(cl *mqtt.Client) (fleet.Presence, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.byID[cl.ID]
	if ss == nil || ss.owner != cl {
		return fleet.Presence{}, false
	}
	ss.owner, ss.attaching = nil, false
	if !ss.online {
		return fleet.Presence{}, false
	}
	ss.online = false
	s.online--
	ss.presence.Online = false
	ss.presence.DisconnectedAt = s.now().UTC()
	ss.presence.LastSeen = time.UnixMilli(ss.lastSeen.Load()).UTC()
	return ss.presence, true
}

// owned is one device's owner and the hash it authenticated against, for revalidation.
type owned struct {
	owner      *mqtt.Client
	secretHash string
}

// owners returns every device id's owner.
func (s *sessions) owners() map[string]owned {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]owned, len(s.byID))
	for id, ss := range s.byID {
		if ss.owner != nil {
			out[id] = owned{ss.owner, ss.secretHash}
		}
	}
	return out
}

// forget drops the record of a removed device, unless a connection owns its id again.
func (s *sessions) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss := s.byID[id]; ss != nil && ss.owner == nil {
		delete(s.byID, id)
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
	p := ss.presence
	switch {
	case p.Online && ss.owner != nil && ss.owner.Closed():
		// mochi reports no disconnect for a connection whose CONNACK could not be written;
		// its device is offline all the same.
		p.Online = false
		p.LastSeen = time.UnixMilli(ss.lastSeen.Load()).UTC()
		p.DisconnectedAt = p.LastSeen
	case p.Online:
		p.LastSeen = time.UnixMilli(ss.lastSeen.Load()).UTC()
	}
	return p, true
}

// ids returns the id of every device known since start, connected or not.
func (s *sessions) ids() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.byID))
	for id := range s.byID {
		out = append(out, id)
	}
	return out
}

func (s *sessions) onlineCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.online
}
