package broker

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"runtime"
	"sync"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/credential"
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
)

// Throttle settings: after freeFailures wrong secrets in a row a device id is locked out for a
// backoff that doubles with each further failure, up to maxLockout; failures older than
// forgetAfter no longer count.
const (
	freeFailures = 5
	baseLockout  = time.Second
	maxLockout   = time.Minute
	forgetAfter  = 15 * time.Minute
)

// authenticator checks device secrets. A throttle locks out a device id after repeated wrong
// secrets, so that a flood of bad logins for one unit is refused without even a lookup of its
// hash. Secrets hashed with SHA-256 (all since the hub stopped writing argon2id) cost well under a
// microsecond to check; for the argon2id hashes written before (see package credential), a
// cache remembers, per device, an HMAC (under a key that never leaves the process) of the last
// secret that verified against the current stored hash, so that reconnects cost one SHA-256,
// and the slow checks run on at most GOMAXPROCS goroutines at once, which keeps a flood from
// starving the rest of the hub of CPU and memory (each uses several MiB).
type authenticator struct {
	store  CredentialStore
	verify func(hash, secret string) (bool, error)
	now    func() time.Time
	key    []byte
	slots  chan struct{}

	mu       sync.Mutex
	verified map[string]verifiedSecret
	failures map[string]*failureState
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
		failures: make(map[string]*failureState),
	}
}

// authenticate checks id and secret. It returns "" and the stored hash the secret matched, or
// the reason for refusal. hashed reports whether a slow (argon2id) hash was computed.
func (a *authenticator) authenticate(ctx context.Context, id, secret string) (hash, reason string, hashed bool, err error) {
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
		select {
		case a.slots <- struct{}{}:
			defer func() { <-a.slots }()
		case <-ctx.Done():
			return "", reasonStoreError, false, ctx.Err()
		}
	}
	// For slow hashes the throttle is checked only once a slot is held: attempts queued behind
	// a flood then see the failures recorded while they waited, and a flood costs at most
	// freeFailures hashes plus one per slot.
	a.mu.Lock()
	throttled := a.throttledLocked(id)
	a.mu.Unlock()
	if throttled {
		return "", reasonThrottled, false, nil
	}
	ok, err := a.verify(cred.SecretHash, secret)
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case err != nil:
		return "", reasonStoreError, slow, err
	case !ok:
		a.recordFailureLocked(id)
		return "", reasonBadSecret, slow, nil
	}
	delete(a.failures, id)
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

func (a *authenticator) throttledLocked(id string) bool {
	f := a.failures[id]
	return f != nil && a.now().Before(f.until)
}

func (a *authenticator) recordFailureLocked(id string) {
	now := a.now()
	f := a.failures[id]
	if f == nil || now.Sub(f.last) > forgetAfter {
		f = &failureState{}
		a.failures[id] = f
	}
	f.count++
	f.last = now
	if f.count >= freeFailures {
		lockout := baseLockout << min(f.count-freeFailures, 16)
		f.until = now.Add(min(lockout, maxLockout))
	}
}
