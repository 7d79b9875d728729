package broker

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/credential"
	"github.com/lockerhub/lockerhub/internal/backoff"
)

// CredentialStore looks up what a device needs to present to connect.
type CredentialStore interface {
	// DeviceCredential returns the device's credential, or an error with code
	// fleet.ENOTFOUND for an unknown device.
	DeviceCredential(ctx context.Context, id string) (fleet.Credential, error)
}

// Reasons a connect is refused; they label lockerhub_mqtt_auth_failures_total.
const (
	reasonUnknownDevice = "unknown_device"
	reasonDisabled      = "disabled"
	reasonBadSecret     = "bad_secret"
	reasonThrottled     = "throttled"
	reasonClientID      = "client_id_mismatch"
	reasonWillTopic     = "will_topic_denied"
	reasonStoreError    = "store_error"
	reasonBusy          = "connect_in_progress"
)

// Throttle settings. Wrong secrets are counted per source address (an IPv4 host or an IPv6
// /64, see sourceOf) and per source and device id: after freeSourceFailures wrong secrets in a
// row from one source, or freeFailures for one id from one source, that source (for that id) is
// locked out for a lockout backoff that doubles with each further failure; failures older
// than forgetAfter no longer count. The lockout never reaches a unit from another address:
// knowing a unit's id is not enough to keep it offline.
const (
	freeFailures       = 5
	freeSourceFailures = 20
	forgetAfter        = 15 * time.Minute
	// maxThrottleKeys bounds the throttle's memory against a flood from many sources; past it,
	// expired entries are dropped, and new sources are not tracked until there is room.
	maxThrottleKeys = 1 << 16
)

// lockout is how long a source is locked out once past its free failures: a second, doubling
// with each further failure, up to a minute. Not jittered: it is a penalty, not a retry.
var lockout = backoff.Policy{Min: time.Second, Max: time.Minute}

// authenticator checks device secrets. Fast hashes (Mosquitto's PBKDF2, which the hub writes,
// and SHA-256) cost microseconds to check and are always checked: a correct secret always gets
// in. For argon2id hashes, which older registries still hold (see package credential), a
// cache remembers, per device, an HMAC (under a key that never leaves the process) of the last
// secret that verified against the current stored hash, so that reconnects cost one SHA-256;
// the slow checks run on at most GOMAXPROCS goroutines at once, which keeps a flood from
// starving the rest of the hub of CPU and memory (each uses several MiB), and a source that is
// locked out gets no slow check at all.
type authenticator struct {
	store  CredentialStore
	verify func(hash, secret string) (bool, error)
	now    func() time.Time
	key    []byte
	slots  chan struct{}

	mu       sync.Mutex
	verified map[string]verifiedSecret
	failures map[throttleKey]*failureState
	pruned   time.Time // the last pruneLocked scan
}

// throttleKey is a source address, with a device id or "" for all of them.
type throttleKey struct {
	src netip.Prefix
	id  string
}

type verifiedSecret struct {
	hash string // the stored hash the secret was verified against
	mac  []byte // HMAC-SHA256(key, secret)
}

type failureState struct {
	count int
	last  time.Time
	until time.Time
}

func newAuthenticator(store CredentialStore) *authenticator {
	key := make([]byte, 32)
	rand.Read(key)
	return &authenticator{
		store:    store,
		verify:   credential.Verify,
		now:      time.Now,
		key:      key,
		slots:    make(chan struct{}, runtime.GOMAXPROCS(0)),
		verified: make(map[string]verifiedSecret),
		failures: make(map[throttleKey]*failureState),
	}
}

// authenticate checks id and secret, presented from src. It returns "" and the stored hash the
// secret matched, or the reason for refusal. hashed reports whether a slow (argon2id) hash was
// computed.
func (a *authenticator) authenticate(ctx context.Context, id, secret string, src netip.Prefix) (hash, reason string, hashed bool, err error) {
	cred, err := a.store.DeviceCredential(ctx, id)
	switch {
	case fleet.ErrorCode(err) == fleet.ENOTFOUND:
		// No hash is computed for unknown ids: ids are printed on the units, not secrets, and
		// hashing here would hand an attacker a cheap way to burn our CPU.
		return "", reasonUnknownDevice, false, nil
	case err != nil:
		return "", reasonStoreError, false, err
	case !cred.Enabled:
		return "", reasonDisabled, false, nil
	}
	keys := [2]throttleKey{{src, ""}, {src, id}}

	slow := credential.IsSlow(cred.SecretHash)
	var mac []byte
	if slow {
		mac = a.mac(secret)
		a.mu.Lock()
		v, cached := a.verified[id]
		a.mu.Unlock()
		if cached && v.hash == cred.SecretHash && hmac.Equal(v.mac, mac) {
			return cred.SecretHash, "", false, nil
		}
		// A locked-out source gets no slow check. It is checked again once a slot is held:
		// attempts queued behind a flood then see the failures recorded while they waited,
		// and a flood costs at most freeFailures hashes plus one per slot.
		if a.throttled(keys) {
			return "", reasonThrottled, false, nil
		}
		select {
		case a.slots <- struct{}{}:
			defer func() { <-a.slots }()
		case <-ctx.Done():
			return "", reasonStoreError, false, ctx.Err()
		}
		if a.throttled(keys) {
			return "", reasonThrottled, false, nil
		}
	}
	ok, err := a.verify(cred.SecretHash, secret)
	switch {
	case err != nil:
		return "", reasonStoreError, slow, err
	case !ok:
		throttled := a.throttled(keys)
		a.recordFailure(keys)
		if throttled {
			return "", reasonThrottled, slow, nil
		}
		return "", reasonBadSecret, slow, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.failures, keys[1])
	if slow {
		a.verified[id] = verifiedSecret{hash: cred.SecretHash, mac: mac}
	}
	return cred.SecretHash, "", slow, nil
}

func (a *authenticator) mac(secret string) []byte {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// throttled reports whether any of keys is locked out.
func (a *authenticator) throttled(keys [2]throttleKey) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for _, k := range keys {
		if f := a.failures[k]; f != nil && now.Before(f.until) {
			return true
		}
	}
	return false
}

// recordFailure counts a wrong secret against the source and against the source and id.
func (a *authenticator) recordFailure(keys [2]throttleKey) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for i, k := range keys {
		f := a.failures[k]
		if f == nil || now.Sub(f.last) > forgetAfter {
			if f == nil && len(a.failures) >= maxThrottleKeys && !a.pruneLocked(now) {
				continue
			}
			f = &failureState{}
			a.failures[k] = f
		}
		f.count++
		f.last = now
		free := freeSourceFailures
		if i == 1 {
			free = freeFailures
		}
		if f.count >= free {
			f.until = now.Add(lockout.Delay(f.count - free + 1))
		}
	}
}

// pruneLocked drops the failures that no longer count, at most once a second (a full table of
// fresh entries must not cost a scan per attempt), and reports whether there is room.
func (a *authenticator) pruneLocked(now time.Time) bool {
	if now.Sub(a.pruned) < time.Second {
		return false
	}
	a.pruned = now
	for k, f := range a.failures {
		if now.Sub(f.last) > forgetAfter {
			delete(a.failures, k)
		}
	}
	return len(a.failures) < maxThrottleKeys
}
