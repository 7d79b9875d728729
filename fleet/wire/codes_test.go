package wire

import (
	"encoding/base64"
	"encoding/hex"
	"testing"
)

// The hash is PBKDF2-HMAC-SHA256 as docs/protocol.md specifies it, so that firmware written
// against the document agrees with the hub. The expected values were computed once with
// Python's hashlib, independently of this package:
//
//	hashlib.pbkdf2_hmac('sha256', b'12345678', bytes(range(16)), 10000, 32).hex()
//	hashlib.pbkdf2_hmac('sha256', b'00000000', b'lockerhub-salt-!', 10000, 32).hex()
func TestHashCodeKnownAnswer(t *testing.T) {
	for _, tc := range []struct {
		code string
		salt []byte
		want string
	}{
		{"12345678", []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, "81c5273881679d938f0829f377eb158bb1213f09d59a81a140d342a164d0efb4"},
		{"00000000", []byte("lockerhub-salt-!"), "ed90005c34e2537ca2528eba4f90056dd5d2478dff151338d4baa45d99603e9b"},
	} {
		if got := hex.EncodeToString(HashCode(tc.code, tc.salt)); got != tc.want {
			t.Errorf("HashCode(%q, %x) = %s, want %s", tc.code, tc.salt, got, tc.want)
		}
	}
	if base64.StdEncoding.EncodeToString(HashCode("12345678", mustBase64(t, codeSalt))) != codeHash {
		t.Error("codeHash is not the hash of 12345678 under codeSalt")
	}
}

func mustBase64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCodeMatches(t *testing.T) {
	c := Code{Parcel: "p-1", Door: 3, Salt: codeSalt, Hash: codeHash, Expires: 1}
	for _, tc := range []struct {
		entry string
		want  bool
	}{
		{"12345678", true},
		{"12345679", false},
		{"87654321", false},
		{"1234567", false},   // 7 digits
		{"123456789", false}, // 9 digits
		{"1234567a", false},
		{"1234567\x00", false},
		{"１2345678", false}, // a fullwidth digit is not an ASCII digit
		{" 12345678", false},
		{"", false},
	} {
		if got := c.Matches(tc.entry); got != tc.want {
			t.Errorf("Matches(%q) = %v, want %v", tc.entry, got, tc.want)
		}
	}
	// A code that fails Validate matches nothing, not even its own digits.
	for name, bad := range map[string]Code{
		"salt not base64": {Salt: "!!" + codeSalt[2:], Hash: codeHash},
		"hash not base64": {Salt: codeSalt, Hash: "!!" + codeHash[2:]},
		"hash empty":      {Salt: codeSalt},
		"other salt":      {Salt: codeHashOther, Hash: codeHash},
	} {
		if bad.Matches("12345678") {
			t.Errorf("%s: a broken code matches its digits", name)
		}
	}
}

func TestValidCode(t *testing.T) {
	for code, want := range map[string]bool{"00000000": true, "99999999": true, "0000000": false, "000000000": false, "0000000/": false, "0000000:": false} {
		if got := ValidCode(code); got != want {
			t.Errorf("ValidCode(%q) = %v, want %v", code, got, want)
		}
	}
}
