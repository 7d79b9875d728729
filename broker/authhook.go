package broker

import (
	"context"
	"net"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/loginaudit"
)

// authTimeout bounds one connect's registry lookup and hash check, and its wait for another
// connect of the same device id to be attached (see sessions.claim).
const authTimeout = 10 * time.Second

// authHook authenticates devices and confines each to its own topics.
type authHook struct {
	mqtt.HookBase
	b *Broker
}

var _ mqtt.Hook = (*authHook)(nil)

func (h *authHook) ID() string { return "lockerhub-auth" }

func (h *authHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

// OnConnectAuthenticate accepts a device whose username is its id, whose client id equals the
// username, whose password is its current secret and whose will (if any) stays in its own topics.
func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	id, secret := string(pk.Connect.Username), string(pk.Connect.Password)
	reason, err := h.checkConnect(cl, id, secret)
	if reason != "" {
		h.b.metrics.authFailures.WithLabelValues(reason).Inc()
		h.b.logins.Failed(loginaudit.Failure{Reason: reason, Device: id, Remote: cl.Net.Remote, Time: h.b.now()})
		attrs := []any{"device", id, "client", cl.ID, "remote", cl.Net.Remote, "reason", reason}
		if err != nil {
			attrs = append(attrs, "error", err)
		}
		h.b.failLog.Warn(reason, "mqtt connect refused", attrs...)
		return false
	}
	return true
}

func (h *authHook) checkConnect(cl *mqtt.Client, id, secret string) (reason string, err error) {
	if !wire.ValidDeviceID(id) || id == mqtt.InlineClientId {
		// The inline client's id is never a device's: connecting with it would take over the
		// hub's own session.
		return reasonUnknownDevice, nil
	}
	if cl.ID != id {
		return reasonClientID, nil
	}
	if atomic.LoadUint32(&cl.Properties.Will.Flag) == 1 && !wire.DeviceMayPublish(id, cl.Properties.Will.TopicName) {
		// mochi publishes a will without an ACL check, so a will aimed elsewhere would let a
		// device write to another device's topics by disconnecting.
		return reasonWillTopic, nil
	}
	ctx, cancel := context.WithTimeout(h.b.ctx, authTimeout)
	defer cancel()
	epoch := h.b.revalidations.Load()
	hash, reason, hashed, err := h.b.auth.authenticate(ctx, id, secret, sourceOf(remoteAddr(cl)))
	if hashed {
		h.b.metrics.hashChecks.Inc()
	}
	if reason != "" {
		return reason, err
	}
	deadline, _ := ctx.Deadline()
	old, ok := h.b.sessions.claim(cl, hash, deadline)
	if !ok {
		return reasonBusy, nil
	}
	if old != nil && !old.Closed() {
		h.b.metrics.takeovers.Inc()
		h.b.log.Info("device connected again; closing its previous connection", "device", id, "remote", cl.Net.Remote, "previous", old.Net.Remote)
		h.b.disconnect(old, packets.ErrSessionTakenOver)
	}
	if h.b.revalidations.Load() != epoch {
		// A revalidation began after the credential was read, and may have looked for this
		// device's connections before this one claimed the id: read the credential again, so
		// that a revocation racing the connect cannot miss it.
		if reason, err := h.b.stillValid(ctx, id, hash); reason != "" {
			if p, ok := h.b.sessions.release(cl); ok {
				h.b.publishPresence(p.DeviceID)
			}
			return reason, err
		}
	}
	if c := admittedOf(cl.Net.Conn); c != nil {
		c.authenticated()
	}
	// In the embedded broker the hub publishes presence itself, so the device's will (its
	// offline status) is redundant; dropping it keeps one author for the status topic.
	atomic.StoreUint32(&cl.Properties.Will.Flag, 0)
	return "", nil
}

// remoteAddr is the client's remote address; mochi keeps it only as a string.
func remoteAddr(cl *mqtt.Client) net.Addr {
	if cl.Net.Conn != nil {
		return cl.Net.Conn.RemoteAddr()
	}
	return nil
}

// OnACLCheck lets a device publish only to its own device-to-hub channels and subscribe only
// inside its own command subtree. Deliveries to a device are checked with the same rule.
func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if write {
		if wire.DeviceMayPublish(cl.ID, topic) {
			return true
		}
		h.b.metrics.aclDenied.WithLabelValues("publish").Inc()
		h.b.failLog.Warn("publish", "mqtt publish denied", "device", cl.ID, "topic", topic)
		return false
	}
	if wire.DeviceMaySubscribe(cl.ID, topic) {
		return true
	}
	h.b.metrics.aclDenied.WithLabelValues("subscribe").Inc()
	h.b.failLog.Warn("subscribe", "mqtt subscribe denied", "device", cl.ID, "topic", topic)
	return false
}
