package agent

import (
	"encoding/json"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/atomicfile"
)

// The keypad's lockout policy. Five guesses per lockout, with lockouts doubling up to a quarter
// of an hour, leave an attacker a few hundred guesses a day against 10^8 codes, while a
// resident who mistypes twice loses nothing and one who mistypes five times waits 30 s.
const (
	keypadMaxWrong = 5 // wrong codes in a row that lock the keypad, and again every as many after
	lockoutFirst   = 30 * time.Second
	lockoutMax     = 15 * time.Minute
	// maxFailures is where the count of wrong codes stops, as the wire contract bounds it; the
	// lockout has reached lockoutMax long before.
	maxFailures = 1000 // a multiple of keypadMaxWrong
)

// codeStore is the unit's pickup codes: the CodeSet with the highest version the hub sent, the
// parcels whose code was used here, and the keypad's count of wrong codes and lockout. It is one
// JSON file in the data dir, replaced atomically and fsynced on every change, so a unit that
// reboots while its hub is unreachable still checks codes, still refuses a used one, and an
// attacker cannot end a lockout by cutting the power.
type codeStore struct {
	path    string
	version atomic.Uint64 // data.Set.Version, read by every snapshot without waiting for a check

	mu   sync.Mutex
	data codeData
}

type codeData struct {
	Set wire.CodeSet `json:"set"`
	// Used holds the parcels whose code opened their door here. The hub learns of a pickup only
	// when the door event leaves the outbox, so a set it sends meanwhile still carries the code;
	// a parcel stays here until a set without its code arrives.
	Used        map[string]bool `json:"used,omitempty"`
	Failures    int             `json:"failures,omitempty"`     // wrong codes in a row
	LockedUntil int64           `json:"locked_until,omitempty"` // ms; no code is taken before
}

func openCodes(dir string) (*codeStore, error) {
	s := &codeStore{path: filepath.Join(dir, "codes.json"), data: codeData{Used: map[string]bool{}}}
	if err := readJSONFile(s.path, "codes", &s.data); err != nil {
		return nil, err
	}
	if s.data.Used == nil {
		s.data.Used = map[string]bool{}
	}
	s.version.Store(s.data.Set.Version)
	return s, nil
}

// Version returns the version of the set held, 0 for none.
func (s *codeStore) Version() uint64 { return s.version.Load() }

// replace makes set the unit's codes if it is newer than the one held, and reports whether it
// was. The set is valid (wire.DecodeCodeSet checked it).
func (s *codeStore) replace(set wire.CodeSet) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if set.Version <= s.data.Set.Version {
		return false, nil
	}
	used := make(map[string]bool, len(s.data.Used))
	for _, c := range set.Codes {
		if s.data.Used[c.Parcel] {
			used[c.Parcel] = true
		}
	}
	s.data.Set, s.data.Used = set, used
	s.version.Store(set.Version)
	return true, s.saveLocked()
}

// verdict is what the keypad does with one entry.
type verdict struct {
	ignored     bool // during a lockout: no event, nothing counted
	result      wire.KeypadResult
	code        wire.Code // accepted, expired, used
	failures    int       // wrong, locked-out
	lockedUntil int64     // locked-out
}

// enter checks a code typed at the keypad at now and updates the count of wrong codes. Every
// code of the set is hashed whichever matches, so how long a check takes says nothing about
// which code an entry is near. The hashing, the slow part, runs without the lock, so that
// neither a door opening (markUsed) nor a new set waits for it; should a new set arrive
// meanwhile, the entry is checked again against it. Only the keypad loop calls enter. A save
// that fails is returned with the verdict, which holds.
func (s *codeStore) enter(entry string, now time.Time) (verdict, error) {
	ms := now.UnixMilli()
	for {
		s.mu.Lock()
		set := s.data.Set // replace swaps in a new set and never changes one
		locked := ms < s.data.LockedUntil
		s.mu.Unlock()
		if locked {
			return verdict{ignored: true}, nil
		}
		match := -1
		for i, c := range set.Codes {
			if c.Matches(entry) && match < 0 {
				match = i
			}
		}
		s.mu.Lock()
		if s.data.Set.Version == set.Version {
			defer s.mu.Unlock()
			return s.decideLocked(set.Codes, match, now)
		}
		s.mu.Unlock()
	}
}

// decideLocked turns the code that matched an entry (codes[match], none if match < 0) into the
// verdict and counts a wrong entry; the caller holds s.mu.
func (s *codeStore) decideLocked(codes []wire.Code, match int, now time.Time) (verdict, error) {
	ms := now.UnixMilli()
	if match >= 0 {
		c := codes[match]
		switch {
		case ms >= c.Expires:
			return verdict{result: wire.KeypadExpired, code: c}, nil
		case s.data.Used[c.Parcel]:
			return verdict{result: wire.KeypadUsed, code: c}, nil
		}
		// An expired or used code proves no more than a wrong one, so only an accepted code
		// ends a run of wrong ones; otherwise knowing one old code would reset the lockout.
		v := verdict{result: wire.KeypadAccepted, code: c}
		if s.data.Failures == 0 {
			return v, nil
		}
		s.data.Failures = 0
		return v, s.saveLocked()
	}
	s.data.Failures = min(s.data.Failures+1, maxFailures)
	v := verdict{result: wire.KeypadWrong, failures: s.data.Failures}
	if s.data.Failures%keypadMaxWrong == 0 { // at maxFailures too, a multiple: each further entry locks
		s.data.LockedUntil = now.Add(lockout(s.data.Failures / keypadMaxWrong)).UnixMilli()
		v.result, v.lockedUntil = wire.KeypadLockedOut, s.data.LockedUntil
	}
	return v, s.saveLocked()
}

// lockout is how long the n-th lockout in a row lasts: lockoutFirst, doubling up to lockoutMax.
func lockout(n int) time.Duration {
	d := lockoutFirst
	for i := 1; i < n && d < lockoutMax; i++ {
		d *= 2
	}
	return min(d, lockoutMax)
}

// markUsed records that parcel's code opened its door, unless the set no longer holds it.
func (s *codeStore) markUsed(parcel string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.data.Set.Codes {
		if c.Parcel == parcel {
			s.data.Used[parcel] = true
			return s.saveLocked()
		}
	}
	return nil
}

func (s *codeStore) saveLocked() error {
	b, err := json.Marshal(&s.data)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Dir(s.path), filepath.Base(s.path), b, true)
}
