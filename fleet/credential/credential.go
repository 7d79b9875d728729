// Package credential makes and checks device secrets. A secret is 32 random bytes, shown to the
// operator once as base64url; the registry keeps only a hash of it.
//
// New hashes are in Mosquitto 2's password-file format, "$7$<iterations>$<salt>$<hash>":
// PBKDF2-HMAC-SHA512 with 101 iterations, a 12-byte salt and a 64-byte key, salt and key in
// padded standard base64, exactly what Debian's mosquitto_passwd 2.0 writes. The registry never
// holds the plaintext, so the stored hash itself has to be what an external broker checks when
// hubs run behind an operator's Mosquitto cluster (`lockerhub device export-acl` copies it into
// the password file); Verify accepts hashes made by mosquitto_passwd for the same reason.
// Iterations are 101 because that is what Mosquitto writes by default, not for strength. A slow
// password hash protects guessable secrets; these carry 256 bits of entropy, so inverting even a
// fast hash is out of reach and the cost of a slow one buys nothing (NIST SP 800-63B asks for a
// slow hash only for memorized secrets), while that cost is real: with a slow hash, 10,000 units
// reconnecting after a hub restart wait for it, and every wrong password in a flood burns
// memory and a core. A check costs tens of microseconds of one core and no memory to speak of
// (docs/PERFORMANCE.md; BenchmarkVerify), so IsSlow leaves it out, since the broker's cache and
// its bound on concurrent checks exist for argon2id's milliseconds and mebibytes, and its
// per-device throttle still stops a flood of wrong secrets after five.
//
// Older registries also hold SHA-256 hashes ("$sha256$" followed by the base64 digest) and
// argon2id ones ("$argon2id$v=19$m=…,t=…,p=…$salt$key"). Both keep verifying; rotating a unit's
// secret moves it to the Mosquitto format. IsSlow tells argon2id apart, so that callers can
// bound how many slow checks run at once.
package credential

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// secretLen is the number of random bytes in a secret.
const secretLen = 32

// Hash identifiers, the field between the first two '$'.
const (
	idMosquitto = "7"        // Mosquitto 2's PBKDF2-SHA512
	idSHA256    = "sha256"   // verified, no longer written
	idArgon2id  = "argon2id" // verified, no longer written
)

// The parameters mosquitto_passwd 2.0 uses (Debian's 2.0.11 writes "$7$101$" plus a 16-character
// salt and an 88-character key): Hash writes the same, so that the file export-acl writes reads
// like one mosquitto_passwd made.
const (
	mosquittoIterations = 101
	mosquittoSaltLen    = 12
	mosquittoKeyLen     = sha512.Size
)

// maxMosquittoIterations bounds the iteration count Verify accepts, so that a corrupt or
// hostile hash cannot make one check take minutes. Mosquitto's own default is 101; a count
// raised by hand stays far below this.
const maxMosquittoIterations = 1_000_000

// MosquittoPrefix starts every hash Hash returns: a stored hash with it can go into a
// Mosquitto password file as it is.
const MosquittoPrefix = "$" + idMosquitto + "$"

// ErrMalformedHash is returned by Verify for a stored hash it cannot parse.
var ErrMalformedHash = errors.New("credential: malformed hash")

// NewSecret returns a fresh random secret in URL-safe base64 (43 characters).
func NewSecret() string {
	b := make([]byte, secretLen)
	rand.Read(b) // never fails: crypto/rand crashes the program rather than return short reads
	return base64.RawURLEncoding.EncodeToString(b)
}

// Hash returns the hash of secret in Mosquitto 2's password-file format, with a fresh salt.
func Hash(secret string) string {
	salt := make([]byte, mosquittoSaltLen)
	rand.Read(salt)
	return hashMosquitto(secret, salt, mosquittoIterations)
}

func hashMosquitto(secret string, salt []byte, iterations int) string {
	key := pbkdf2Key(secret, salt, iterations)
	b64 := base64.StdEncoding // padded, as Mosquitto writes and reads it
	return MosquittoPrefix + strconv.Itoa(iterations) + "$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(key)
}

func pbkdf2Key(secret string, salt []byte, iterations int) []byte {
	key, err := pbkdf2.Key(sha512.New, secret, salt, iterations, mosquittoKeyLen)
	if err != nil {
		// Only FIPS 140-only mode refuses these parameters (salt and key lengths are fixed
		// here), and a hub in that mode could not serve devices with them at all.
		panic("credential: pbkdf2: " + err.Error())
	}
	return key
}

// IsMosquitto reports whether hash is in Mosquitto 2's format, which an external Mosquitto
// broker can check; older hashes need the device's secret rotated first.
func IsMosquitto(hash string) bool { return strings.HasPrefix(hash, MosquittoPrefix) }

// IsSlow reports whether checking a secret against hash is expensive: an argon2id hash from
// before SHA-256 was used, which costs milliseconds of CPU and megabytes of memory. Mosquitto
// hashes are not slow in this sense: see the package comment.
func IsSlow(hash string) bool { return strings.HasPrefix(hash, "$"+idArgon2id+"$") }

// Verify reports whether secret matches hash, using the parameters stored in the hash: a
// Mosquitto "$7$" hash (written by Hash or by mosquitto_passwd), or an older "$sha256$" or
// argon2id one. It returns ErrMalformedHash if the hash cannot be parsed.
func Verify(hash, secret string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) < 3 || parts[0] != "" {
		return false, ErrMalformedHash
	}
	switch {
	case parts[1] == idMosquitto && len(parts) == 5:
		return verifyMosquitto(parts, secret)
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

// verifyMosquitto checks secret against the fields of a "$7$iterations$salt$key" hash.
func verifyMosquitto(parts []string, secret string) (bool, error) {
	iterations, err := strconv.Atoi(parts[2])
	if err != nil || iterations < 1 || iterations > maxMosquittoIterations || parts[2] != strconv.Itoa(iterations) {
		return false, ErrMalformedHash
	}
	b64 := base64.StdEncoding.Strict()
	salt, err := b64.DecodeString(parts[3])
	if err != nil || len(salt) == 0 {
		return false, ErrMalformedHash
	}
	want, err := b64.DecodeString(parts[4])
	if err != nil || len(want) != mosquittoKeyLen {
		return false, ErrMalformedHash
	}
	return subtle.ConstantTimeCompare(pbkdf2Key(secret, salt, iterations), want) == 1, nil
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
