// Package credential makes and checks device secrets. A secret is 32 random bytes, shown to the
// operator once as base64url; the registry keeps only an argon2id hash with a random salt,
// encoded in the PHC string format so that the cost can be raised later without invalidating
// stored hashes.
//
// The cost is deliberately modest (8 MiB, one pass: about 6 ms on a 2-core build machine).
// Secrets carry 256 bits of entropy, so the hash is defence in depth for a stolen database, not
// what stops guessing; what bounds a fleet-wide reconnect after a hub restart is this cost times
// the number of units divided by the cores. The broker adds a cache of verified secrets and a
// failure throttle on top, so reconnects and login floods rarely reach the slow path.
package credential

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Default argon2id parameters for new hashes; see the package doc for the choice.
const (
	memoryKiB = 8 * 1024
	passes    = 1
	lanes     = 1
	saltLen   = 16
	keyLen    = 32
	secretLen = 32
)

// ErrMalformedHash is returned by Verify for a stored hash it cannot parse.
var ErrMalformedHash = errors.New("credential: malformed hash")

// NewSecret returns a fresh random secret in URL-safe base64 (43 characters).
func NewSecret() string {
	b := make([]byte, secretLen)
	rand.Read(b) // never fails: crypto/rand crashes the program rather than return short reads
	return base64.RawURLEncoding.EncodeToString(b)
}

// Hash returns the PHC-encoded argon2id hash of secret with a random salt.
func Hash(secret string) string {
	salt := make([]byte, saltLen)
	rand.Read(salt)
	key := argon2.IDKey([]byte(secret), salt, passes, memoryKiB, lanes, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, memoryKiB, passes, lanes, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// Verify reports whether secret matches the PHC-encoded hash, using the parameters stored in
// the hash. It returns ErrMalformedHash if the hash cannot be parsed.
func Verify(hash, secret string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return false, ErrMalformedHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, ErrMalformedHash
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 {
		return false, ErrMalformedHash
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, ErrMalformedHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, ErrMalformedHash
	}
	got := argon2.IDKey([]byte(secret), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
