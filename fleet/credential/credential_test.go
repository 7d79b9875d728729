package credential

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

// legacyHash is how hashes were written before SHA-256: argon2id, 8 MiB, one pass.
func legacyHash(secret string) string {
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte(secret), salt, 1, 8*1024, 1, 32)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=8192,t=1,p=1$%s$%s", argon2.Version, b64.EncodeToString(salt), b64.EncodeToString(key))
}

func TestHashVerify(t *testing.T) {
	secret := NewSecret()
	if len(secret) != 43 {
		t.Fatalf("secret %q has %d characters, want 43", secret, len(secret))
	}
	if other := NewSecret(); other == secret {
		t.Fatal("two new secrets are equal")
	}
	for _, h := range []string{Hash(secret), legacyHash(secret)} {
		if strings.Contains(h, secret) {
			t.Fatalf("hash %q contains the secret", h)
		}
		for _, tc := range []struct {
			name   string
			secret string
			want   bool
		}{
			{"right secret", secret, true},
			{"wrong secret", NewSecret(), false},
			{"empty secret", "", false},
			{"prefix of secret", secret[:42], false},
		} {
			t.Run(strings.Split(h, "$")[1]+"/"+tc.name, func(t *testing.T) {
				ok, err := Verify(h, tc.secret)
				if err != nil || ok != tc.want {
					t.Fatalf("Verify = %v, %v; want %v, nil", ok, err, tc.want)
				}
			})
		}
	}
}

func TestIsSlow(t *testing.T) {
	if IsSlow(Hash("s")) {
		t.Error("a new hash is reported slow")
	}
	if !IsSlow(legacyHash("s")) {
		t.Error("an argon2id hash is not reported slow")
	}
}

func TestVerifyMalformed(t *testing.T) {
	good, legacy := Hash("s"), legacyHash("s")
	for _, h := range []string{
		"",
		"plaintext",
		"$sha256$",
		good + "$",
		good[:len(good)-2],
		strings.Replace(good, "sha256", "sha512", 1),
		strings.Replace(legacy, "argon2id", "argon2i", 1),
		strings.Replace(legacy, "v=19", "v=16", 1),
		strings.Replace(legacy, "m=8192", "m=0", 1),
		legacy[:strings.LastIndex(legacy, "$")] + "$!!!",
		legacy[:strings.LastIndex(legacy, "$")] + "$",
	} {
		if ok, err := Verify(h, "s"); ok || !errors.Is(err, ErrMalformedHash) {
			t.Errorf("Verify(%q) = %v, %v; want false, ErrMalformedHash", h, ok, err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, tc := range []struct{ name, hash string }{{"sha256", Hash("secret")}, {"argon2id", legacyHash("secret")}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := Verify(tc.hash, "secret"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
