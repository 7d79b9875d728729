package wire

import (
	"cmp"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// ChannelCodes carries a CodeSet from hub to device, QoS 1, never retained.
const ChannelCodes Channel = "cmd/codes"

// Pickup codes are checked at the unit, so the agent holds the hash of every code its doors
// accept; the hub keeps the same hash and never the code. A code is CodeDigits decimal digits
// drawn at random, and its hash is PBKDF2-HMAC-SHA256 with CodeHashIterations over the code's
// ASCII digits and a salt of CodeSaltBytes random bytes of its own, giving CodeHashBytes. The
// iterations make guessing a stolen set's codes slow (10^8 codes at a few milliseconds each),
// while a keypad entry checked against a full set of MaxCodes stays well under a second.
const (
	CodeDigits         = 8
	CodeHashIterations = 10000
	CodeSaltBytes      = 16
	CodeHashBytes      = 32
	// MaxCodes is the most codes a CodeSet holds: one per door, since a door holds one parcel
	// at a time and a reservation's code is not live until its drop-off. A set of MaxCodes codes
	// with the longest fields still fits MaxPayloadBytes, as every payload must (twice as many
	// would not: about 26 KiB).
	MaxCodes = MaxDoors
)

// HashCode returns the hash of code under salt, as a CodeSet carries it (decoded). code is not
// checked; see ValidCode.
func HashCode(code string, salt []byte) []byte {
	key, err := pbkdf2.Key(sha256.New, code, salt, CodeHashIterations, CodeHashBytes)
	if err != nil { // only for parameters FIPS mode refuses; ours are fixed and allowed
		panic(fmt.Sprintf("wire: pbkdf2: %v", err))
	}
	return key
}

// ValidCode reports whether code has the form of a pickup code: exactly CodeDigits ASCII digits.
func ValidCode(code string) bool {
	if len(code) != CodeDigits {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}

// Code is one pickup code of a CodeSet: it opens Door once, until Expires.
type Code struct {
	Parcel  string `json:"parcel"`  // the parcel's id, 1..64 characters of [A-Za-z0-9_-]
	Door    int    `json:"door"`    // 1..MaxDoors
	Salt    string `json:"salt"`    // CodeSaltBytes, standard base64 with padding
	Hash    string `json:"hash"`    // HashCode(code, salt), CodeHashBytes, standard base64 with padding
	Expires int64  `json:"expires"` // ms; the code opens nothing from this instant on
}

// Matches reports whether code is c's code. It does not look at the clock or at whether c was
// used; a Code that fails Validate matches nothing.
func (c Code) Matches(code string) bool {
	salt, err1 := base64.StdEncoding.DecodeString(c.Salt)
	want, err2 := base64.StdEncoding.DecodeString(c.Hash)
	if err1 != nil || err2 != nil || !ValidCode(code) {
		return false
	}
	return hmac.Equal(HashCode(code, salt), want)
}

// CodeSet is every pickup code a unit accepts, sent by the hub on ChannelCodes whenever it
// changes and again until the unit's telemetry reports its Version (Telemetry.Codes). It
// replaces the unit's set as a whole: a code left out of it is revoked. A device keeps the set
// with the highest Version it has seen and ignores older ones, which QoS 1 or a reconnect may
// deliver late.
type CodeSet struct {
	V       int    `json:"v"`
	Version uint64 `json:"version"` // >= 1, increases with every change of the unit's set
	Issued  int64  `json:"issued"`  // ms, when the hub sent it
	Codes   []Code `json:"codes"`   // 0..MaxCodes, each parcel at most once
}

// Validate reports the first rule of the contract s breaks; see [Message].
func (s CodeSet) Validate() error {
	return verdict("codes", cmp.Or(
		checkVersion(s.V),
		checkCodeSetVersion(s.Version),
		checkTime("issued", s.Issued),
		checkCodes(s.Codes),
	))
}

func checkCodeSetVersion(v uint64) error {
	if v == 0 {
		return errors.New("version: 0 must be >= 1")
	}
	return nil
}

func checkCodes(codes []Code) error {
	if len(codes) > MaxCodes {
		return fmt.Errorf("codes: %d entries, limit %d", len(codes), MaxCodes)
	}
	seen := make(map[string]bool, len(codes))
	for i, c := range codes {
		if err := c.check(); err != nil {
			return fmt.Errorf("codes[%d].%w", i, err)
		}
		if seen[c.Parcel] {
			return fmt.Errorf("codes[%d].parcel: %q repeated", i, c.Parcel)
		}
		seen[c.Parcel] = true
	}
	return nil
}

func (c Code) check() error {
	return cmp.Or(
		checkIdent("parcel", c.Parcel),
		checkDoor(c.Door),
		checkBase64("salt", c.Salt, CodeSaltBytes),
		checkBase64("hash", c.Hash, CodeHashBytes),
		checkTime("expires", c.Expires),
	)
}

func checkBase64(field, s string, n int) error {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("%s: not standard base64", field)
	}
	if len(b) != n {
		return fmt.Errorf("%s: %d bytes, want %d", field, len(b), n)
	}
	return nil
}
