package credential

import (
	"errors"
	"strings"
	"testing"
)

func TestHashVerify(t *testing.T) {
	secret := NewSecret()
	if len(secret) != 43 {
		t.Fatalf("secret %q has %d characters, want 43", secret, len(secret))
	}
	h := Hash(secret)
	if strings.Contains(h, secret) {
		t.Fatal("hash contains the secret")
	}
	if h2 := Hash(secret); h2 == h {
		t.Fatal("two hashes of one secret are equal: salt is not random")
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
		t.Run(tc.name, func(t *testing.T) {
			ok, err := Verify(h, tc.secret)
			if err != nil || ok != tc.want {
				t.Fatalf("Verify = %v, %v; want %v, nil", ok, err, tc.want)
			}
		})
	}
}

func TestVerifyMalformed(t *testing.T) {
	good := Hash("s")
	for _, h := range []string{
		"",
		"plaintext",
		strings.Replace(good, "argon2id", "argon2i", 1),
		strings.Replace(good, "v=19", "v=16", 1),
		strings.Replace(good, "m=8192", "m=0", 1),
		good[:strings.LastIndex(good, "$")] + "$!!!",
		good[:strings.LastIndex(good, "$")] + "$",
	} {
		if ok, err := Verify(h, "s"); ok || !errors.Is(err, ErrMalformedHash) {
			t.Errorf("Verify(%q) = %v, %v; want false, ErrMalformedHash", h, ok, err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	h := Hash("secret")
	for b.Loop() {
		if _, err := Verify(h, "secret"); err != nil {
			b.Fatal(err)
		}
	}
}
