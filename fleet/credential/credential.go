// Package credential makes and checks device secrets. A secret is 32 random bytes, shown to the
// operator once as base64url; the registry keeps only a hash of it, in the PHC string format.
//
// New hashes are SHA-256: "$sha256$" followed by the base64 digest. A slow password hash
// protects guessable secrets; these carry 256 bits of entropy, so inverting even a fast hash
// is out of reach and the cost of a slow one buys nothing (NIST SP 800-63B asks for a slow hash
// only for memorized secrets). What it did cost was real: at 6–9 ms of argon2id per check on
// two cores, 10,000 units reconnecting after a hub restart waited half a minute, and every
// wrong password in a flood burned 8 MiB and a core for that long. A SHA-256 check takes well
// under a microsecond.
//
// Hashes written before that change are argon2id ("$argon2id$v=19$m=…,t=…,p=…$salt$key") and
// keep verifying with the parameters they carry; rotating a unit's secret moves it to SHA-256.
// IsSlow tells them apart, so that callers can bound how many slow checks run at once.
package credential

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// secretLen is the number of random bytes in a secret.
const secretLen = 32

// Hash identifiers in the PHC strings.
const (
	idSHA256   = "sha256"
	idArgon2id = "argon2id" // verified, no longer written
)

// ErrMalformedHash is returned by Verify for a stored hash it cannot parse.
var ErrMalformedHash = errors.New("credential: malformed hash")

// NewSecret returns a fresh random secret in URL-safe base64 (43 characters).
func NewSecret() string {
	b := make([]byte, secretLen)
	rand.Read(b) // never fails: crypto/rand crashes the program rather than return short reads
	return base64.RawURLEncoding.EncodeToString(b)
}

// Hash returns the PHC-encoded SHA-256 hash of secret.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "$" + idSHA256 + "$" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// IsSlow reports whether checking a secret against hash is expensive: an argon2id hash from
// before SHA-256 was used, which costs milliseconds of CPU and megabytes of memory.
func IsSlow(hash string) bool { return strings.HasPrefix(hash, "$"+idArgon2id+"$") }

// Verify reports whether secret matches the PHC-encoded hash, using the parameters stored in
// the hash. It returns ErrMalformedHash if the hash cannot be parsed.
func Verify(hash, secret string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) < 3 || parts[0] != "" {
		return false, ErrMalformedHash
	}
	switch {
	case parts[1] == idSHA256 && len(parts) == 3:
		want, err := base64.RawStdEncoding.DecodeString(parts[2])
		if err != nil || len(want) != sha256.Size {
			return false, ErrMalformedHash
		}
		got := sha256.Sum256([]byte(secret))
		return subtle.ConstantTimeCompare(got[:], want) == 1, nil
	case parts[1] == idArgon2id && len(parts) == 6:
		return verifyArgon2id(parts, secret)
	}
	return false, ErrMalformedHash
}

// verifyArgon2id checks secret against the fields of an argon2id PHC string.
func verifyArgon2id(parts []string, secret string) (bool, error) {
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
