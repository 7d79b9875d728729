package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// AuditEntry is one security-relevant event in the audit trail: a command and its outcome, a
// failed API or MQTT login, a change to a token or a device, an acknowledged alert.
//
// The trail is a hash chain: each entry's Hash covers its own fields and the Hash of the entry
// before it, so an entry edited, removed, inserted or moved after the fact no longer matches its
// neighbours and AuditService.Verify names it. That makes quiet edits evident; it is not a
// signature. Whoever can write the store can also rewrite every entry after the one they
// changed, consistently, or cut entries off the end and rewind the head: the chain that is left
// verifies. The remedy is a witness: the head (AuditHead, which `lockerhub audit head` prints
// and the hub exports) kept somewhere the attacker cannot reach, such as an operator's log, a
// ticket or another system. A trail rewritten or cut before the witnessed entry no longer
// contains it, and AuditService.Verify given that head says so.
//
// # Canonical encoding
//
// Hash is the lowercase hex SHA-256 of the entry's canonical encoding: the output of Go's
// json.Marshal (no whitespace, no trailing newline; '<', '>', '&', U+2028 and U+2029 escaped as
// \u003c, \u003e, \u0026, \u2028, \u2029) of an object with exactly these members, in this
// order:
//
//   - seq: Seq as a JSON integer.
//   - time: Time in UTC formatted with time.RFC3339Nano; it has millisecond precision, and
//     RFC3339Nano drops trailing zeros of the fraction (and the fraction itself when it is 0).
//   - actor: as it is.
//   - actor_name: ActorName, only when it is not "": entries written before the hub recorded
//     names have none, and encode (and verify) exactly as they always did; in an entry that
//     has one, the hash covers it like any other field.
//   - action, device: as they are; device is "" when there is none, never left out.
//   - detail: the canonical encoding of Detail (see EncodeAuditDetail), {} when there is none.
//   - prev_hash: PrevHash, "" for the first entry.
//
// For example (prev_hash shortened):
//
//	{"seq":5,"time":"2026-03-01T12:00:00.12Z","actor":"token:9f2c","actor_name":"night desk","action":"command.unlock","device":"bank-1","detail":{"door":3,"reason":"stuck"},"prev_hash":"3a7b…"}
//
// Hash itself is not part of the encoding.
type AuditEntry struct {
	Seq   int64     `json:"seq"`   // 1, 2, 3... assigned by Append
	Time  time.Time `json:"time"`  // UTC, millisecond precision, assigned by Append
	Actor string    `json:"actor"` // "token:<id>", "device:<id>", "cli", "hub"
	// ActorName is the token's name at the time (Actor.Name), "" for the hub's own actors.
	ActorName string         `json:"actor_name,omitempty"`
	Action    AuditAction    `json:"action"`
	Device    string         `json:"device,omitempty"`
	Detail    map[string]any `json:"detail,omitempty"`
	PrevHash  string         `json:"prev_hash"` // Hash of the entry before, "" for the first
	Hash      string         `json:"hash"`      // see the canonical encoding above
}

// AuditAction is what an audit entry records. The chain's hashes cover it, so an action's
// string never changes once entries carry it: trails written with it must still verify.
type AuditAction string

// The actions of the audit trail.
const (
	AuditDeviceCreate       AuditAction = "device.create"
	AuditDeviceRotateSecret AuditAction = "device.rotate_secret"
	AuditDeviceEnable       AuditAction = "device.enable"
	AuditDeviceDisable      AuditAction = "device.disable"
	AuditDeviceRemove       AuditAction = "device.remove"

	AuditTokenCreate AuditAction = "token.create"
	AuditTokenRevoke AuditAction = "token.revoke"

	AuditCommandUnlock   AuditAction = "command.unlock"   // an unlock sent to the device
	AuditCommandLock     AuditAction = "command.lock"     // a lock sent to the device
	AuditCommandSetpoint AuditAction = "command.setpoint" // a setpoint sent to the device
	AuditCommandRefused  AuditAction = "command.refused"  // a command the hub could not send
	AuditCommandResult   AuditAction = "command.result"   // the device's answer
	AuditCommandExpired  AuditAction = "command.expired"  // no answer before the expiry

	AuditAlertAck     AuditAction = "alert.ack"
	AuditAlertResolve AuditAction = "alert.resolve" // by a person; the hub's own are not recorded

	AuditLoginFailed AuditAction = "login.failed" // failed logins, aggregated (internal/loginaudit)

	// Parcel custody (fleet.Parcel). No entry ever holds a pickup code.
	AuditParcelDeliver  AuditAction = "parcel.deliver"  // a parcel delivered, or a compartment reserved
	AuditParcelDropOff  AuditAction = "parcel.dropoff"  // a reservation's parcel put in
	AuditParcelPickup   AuditAction = "parcel.pickup"   // the unit opened the door for the parcel's code
	AuditParcelKeypad   AuditAction = "parcel.keypad"   // a code entered at a unit's keypad, each attempt
	AuditParcelCancel   AuditAction = "parcel.cancel"   // a delivery called off
	AuditParcelRetrieve AuditAction = "parcel.retrieve" // staff took the parcel out
	AuditParcelExpire   AuditAction = "parcel.expire"   // the code expired with the parcel inside
)

// NewAuditEntry returns the entry recording action (on device, "" for none) by the actor in ctx,
// for a service to append with its change; the actor's Via is added to detail as "by". An
// EINTERNAL *Error when ctx carries no actor (see ActorRequired).
func NewAuditEntry(ctx context.Context, action AuditAction, device string, detail map[string]any) (*AuditEntry, error) {
	actor, err := ActorRequired(ctx, string(action))
	if err != nil {
		return nil, err
	}
	if actor.Via != "" {
		detail = maps.Clone(detail)
		if detail == nil {
			detail = map[string]any{}
		}
		detail["by"] = actor.Via
	}
	return &AuditEntry{Actor: actor.ID, ActorName: actor.Name, Action: action, Device: device, Detail: detail}, nil
}

// Limits on audit entries. A failed login is recorded every time, so a flood of them must only
// ever add small rows.
const (
	MaxAuditActorLen  = 128
	MaxAuditActionLen = 64
	MaxAuditDeviceLen = 128  // more than a device id: a failed login records whatever id was tried
	MaxAuditDetailLen = 4096 // bytes of Detail's canonical encoding
)

// Validate reports the first attribute of e that breaks a rule, as an EINVALID *Error. It checks
// what the caller provides; Append fills in the rest.
func (e *AuditEntry) Validate() error {
	for _, f := range []struct {
		name, value string
		min, max    int
	}{
		{"actor", e.Actor, 1, MaxAuditActorLen},
		{"actor name", e.ActorName, 0, MaxAuditActorLen},
		{"action", string(e.Action), 1, MaxAuditActionLen},
		{"device", e.Device, 0, MaxAuditDeviceLen},
	} {
		if len(f.value) < f.min || len(f.value) > f.max || !utf8.ValidString(f.value) {
			return Errorf(EINVALID, "invalid audit %s %q: %d..%d bytes of UTF-8", f.name, f.value, f.min, f.max)
		}
	}
	detail, err := EncodeAuditDetail(e.Detail)
	if err != nil {
		return err
	}
	if len(detail) > MaxAuditDetailLen {
		return Errorf(EINVALID, "audit detail too large: %d bytes encoded, at most %d", len(detail), MaxAuditDetailLen)
	}
	return nil
}

// ComputeHash returns the hash of e's canonical encoding, which covers every field but Hash.
func (e *AuditEntry) ComputeHash() (string, error) {
	detail, err := EncodeAuditDetail(e.Detail)
	if err != nil {
		return "", err
	}
	// The struct fixes the members and their order; json.Marshal cannot fail on strings,
	// integers and JSON that EncodeAuditDetail produced.
	b, err := json.Marshal(struct {
		Seq       int64           `json:"seq"`
		Time      string          `json:"time"`
		Actor     string          `json:"actor"`
		ActorName string          `json:"actor_name,omitempty"` // see the canonical encoding
		Action    AuditAction     `json:"action"`
		Device    string          `json:"device"`
		Detail    json.RawMessage `json:"detail"`
		PrevHash  string          `json:"prev_hash"`
	}{e.Seq, e.Time.UTC().Format(time.RFC3339Nano), e.Actor, e.ActorName, e.Action, e.Device, detail, e.PrevHash})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// EncodeAuditDetail returns the canonical encoding of an entry's detail, which the hash covers
// and stores keep: detail is encoded with json.Marshal, decoded again with numbers as
// json.Number, and encoded once more; {} when it is empty.
//
// The round trip makes the encoding a function of the JSON alone. Whatever Go values the caller
// put in (structs with their own field order, types with a MarshalJSON), an entry read back from
// a store or an export holds maps, which encoding/json writes with sorted keys, and numbers that
// keep the digits they were first written with, even integers beyond float64's precision.
func EncodeAuditDetail(detail map[string]any) ([]byte, error) {
	if len(detail) == 0 {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(detail)
	if err != nil {
		return nil, Errorf(EINVALID, "invalid audit detail: %v", err)
	}
	m, err := DecodeAuditDetail(b)
	if err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// DecodeAuditDetail decodes an entry's detail as stored or exported; nil when it is empty.
// Numbers stay json.Number so that the entry's hash can be computed again.
func DecodeAuditDetail(b []byte) (map[string]any, error) {
	var m map[string]any
	if err := decodeExact(b, &m); err != nil {
		return nil, Errorf(EINVALID, "invalid audit detail: %v", err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// UnmarshalJSON decodes an exported entry with Detail's numbers as json.Number, so that
// ComputeHash on the result checks the export without the store.
func (e *AuditEntry) UnmarshalJSON(b []byte) error {
	type plain AuditEntry // without this method, so that decoding does not recurse
	return decodeExact(b, (*plain)(e))
}

// decodeExact is json.Unmarshal keeping numbers in interfaces as the digits they were written
// with.
func decodeExact(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return Errorf(EINVALID, "unexpected data after the JSON value")
	}
	return nil
}

// AuditFilter selects entries of the audit trail; the zero value selects all of them.
type AuditFilter struct {
	Since  time.Time // only entries at or after this time (to the millisecond)
	Device string    // only entries about this device
}

// VerifyResult is what AuditService.Verify found.
type VerifyResult struct {
	Entries  int64  // entries in the trail
	OK       bool   // every entry matches its hash, its predecessor and the head
	FirstBad int64  // seq of the first entry that does not (or that is missing); 0 if OK
	Problem  string // what is wrong with it; "" if OK
	// HeadSeq and HeadHash are the last entry as the store records it apart from the entries.
	// Recorded outside the store, they let a later Verify be checked against them: see
	// AuditEntry on what the chain does not prevent.
	HeadSeq  int64
	HeadHash string
}

// AuditHead names the last entry of the audit trail at some moment by its Seq and Hash: what
// an operator keeps outside the store as a witness. Since every hash covers the one before it,
// the head stands for the whole trail up to it; the zero AuditHead is the empty trail.
type AuditHead struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// String returns the head as SEQ:HASH, the form ParseAuditHead reads.
func (h AuditHead) String() string { return strconv.FormatInt(h.Seq, 10) + ":" + h.Hash }

// Validate reports, as an EINVALID *Error, a head that no entry can have: a seq below 1 or a
// hash that is not 64 lowercase hex digits.
func (h AuditHead) Validate() error {
	if !h.valid() {
		return invalidAuditHead(h.String())
	}
	return nil
}

func (h AuditHead) valid() bool {
	return h.Seq >= 1 && len(h.Hash) == 2*sha256.Size && strings.Trim(h.Hash, "0123456789abcdef") == ""
}

// ParseAuditHead reads a head written as SEQ:HASH (see AuditHead.String), ignoring surrounding
// space and the case of the hash, since people paste it from wherever they kept it. A
// malformed head is an EINVALID *Error.
func ParseAuditHead(s string) (AuditHead, error) {
	seq, hash, ok := strings.Cut(strings.TrimSpace(s), ":")
	n, err := strconv.ParseInt(seq, 10, 64)
	h := AuditHead{Seq: n, Hash: strings.ToLower(hash)}
	if !ok || err != nil || !h.valid() {
		return AuditHead{}, invalidAuditHead(s)
	}
	return h, nil
}

func invalidAuditHead(s string) error {
	return Errorf(EINVALID, "invalid audit head %q: want SEQ:HASH, a seq of at least 1 and a hash of 64 hex digits, as `lockerhub audit head` prints it", s)
}

// AuditService keeps the audit trail. Entries are only ever appended.
type AuditService interface {
	// Append validates e, fills in its Seq, Time, PrevHash and Hash, and stores it as the new
	// last entry. Appends from every process sharing the store form one chain.
	Append(ctx context.Context, e *AuditEntry) error
	// Entries calls fn for each entry matching f, in seq order, and stops at fn's first error.
	Entries(ctx context.Context, f AuditFilter, fn func(*AuditEntry) error) error
	// Head returns the head as the store records it, the entry the next Append follows, and
	// the time that entry was appended (zero for an empty trail). It does not check the
	// chain; Verify does.
	Head(ctx context.Context) (AuditHead, time.Time, error)
	// Verify recomputes the chain and reports the first entry that breaks it, or the first
	// of the witnessed heads that the trail no longer contains: its entry missing (the tail
	// cut and the head rewound), or another entry in its place. A broken chain is a result,
	// not an error; the error is for a store that cannot be read, or an invalid witnessed
	// head (EINVALID).
	Verify(ctx context.Context, witnessed ...AuditHead) (VerifyResult, error)
}

// Auditor appends to the audit trail; it is the part of AuditService that the services which
// record events need.
type Auditor interface {
	Append(ctx context.Context, e *AuditEntry) error
}
