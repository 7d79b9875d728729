package credential

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

// sha256Hash is how hashes were written before the Mosquitto format.
func sha256Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "$sha256$" + base64.RawStdEncoding.EncodeToString(sum[:])
}

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
	if h := Hash(secret); !IsMosquitto(h) || h == Hash(secret) {
		t.Fatalf("Hash = %q; want a salted $7$ hash, different each time", h)
	}
	for _, h := range []string{Hash(secret), sha256Hash(secret), legacyHash(secret)} {
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

// mosquittoPasswdSecret was hashed by Debian's mosquitto_passwd 2.0.11 (`mosquitto_passwd -c -b
// pw alice secret`); this is the line it wrote, so Verify is checked against Mosquitto's own
// output even where mosquitto_passwd is not installed.
const mosquittoPasswdSecret = "$7$101$TaDhyGCPwGsfJwjI$DYjyWCPwEUwJrzEe55Oc6cZrOSmPAejiopBPoCTs1+u5Y8C7yyy/Wsuv+evcHK8c8kqWBTcdIp/0Olq30dV7zA=="

func TestVerifyMosquittoPasswd(t *testing.T) {
	hashes := map[string]string{"secret": mosquittoPasswdSecret}
	if path, err := exec.LookPath("mosquitto_passwd"); err == nil {
		secret := NewSecret()
		file := filepath.Join(t.TempDir(), "pw")
		if out, err := exec.Command(path, "-c", "-b", file, "unit", secret).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v: %s", err, out)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		hashes[secret] = strings.TrimSpace(strings.TrimPrefix(string(b), "unit:"))
	} else if os.Getenv("CI") != "" {
		t.Fatal("mosquitto_passwd not installed; scripts/test.sh installs mosquitto")
	}
	for secret, h := range hashes {
		// What mosquitto_passwd writes is what Hash writes: same iterations, salt and key
		// sizes, same base64.
		if got, mine := strings.Split(h, "$"), strings.Split(Hash(secret), "$"); len(got) != 5 || got[2] != mine[2] ||
			len(got[3]) != len(mine[3]) || len(got[4]) != len(mine[4]) {
			t.Errorf("mosquitto_passwd wrote %q, Hash writes %q", h, Hash(secret))
		}
		for _, tc := range []struct {
			secret string
			want   bool
		}{{secret, true}, {secret + "x", false}, {"", false}} {
			if ok, err := Verify(h, tc.secret); err != nil || ok != tc.want {
				t.Errorf("Verify(%q, %q) = %v, %v; want %v", h, tc.secret, ok, err, tc.want)
			}
		}
	}
}

func TestIsSlow(t *testing.T) {
	if IsSlow(Hash("s")) || IsSlow(sha256Hash("s")) {
		t.Error("a new hash is reported slow")
	}
	if !IsSlow(legacyHash("s")) {
		t.Error("an argon2id hash is not reported slow")
	}
}

func TestVerifyMalformed(t *testing.T) {
	good, mosq, legacy := sha256Hash("s"), Hash("s"), legacyHash("s")
	for _, h := range []string{
		"",
		"plaintext",
		"$sha256$",
		good + "$",
		good[:len(good)-2],
		strings.Replace(good, "sha256", "sha512", 1),
		"$7$",
		mosq + "$",
		mosq[:len(mosq)-4],                       // a short key
		strings.Replace(mosq, "$101$", "$0$", 1), // no iterations
		strings.Replace(mosq, "$101$", "$-1$", 1),            // negative
		strings.Replace(mosq, "$101$", "$0101$", 1),          // not how a number is written
		strings.Replace(mosq, "$101$", "$1000000000$", 1),    // minutes of work for one check
		strings.Replace(mosq, "==", "", 1),                   // unpadded, which Mosquitto never writes
		mosq[:strings.LastIndex(mosq, "$")] + "$!!!",         // not base64
		strings.Replace(mosq, "$7$101$", "$7$101$$", 1),      // empty salt, extra field
		"$6$" + strings.TrimPrefix(mosq, "$7$101$"),          // Mosquitto 1.x SHA-512, not verified
		strings.Replace(mosq, "$7$101$", "$7$101$x", 1)[:20], // cut short
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
	for _, tc := range []struct{ name, hash string }{
		{"mosquitto", Hash("secret")}, {"sha256", sha256Hash("secret")}, {"argon2id", legacyHash("secret")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := Verify(tc.hash, "secret"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
