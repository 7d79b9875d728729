package wire

import "strconv"

// fastTelemetry decodes the plain JSON that agents write for a snapshot (Marshal's output and
// anything like it) without encoding/json's reflection, which took a third of the hub's CPU
// under load. It gives up, returning false, on anything outside that plain subset: unknown,
// repeated, escaped or differently cased keys, null, strings as values, oversized payloads,
// numbers that do not fit. The caller then decodes with encoding/json, so the fast path never
// has the last word on a payload it does not fully understand; FuzzFastTelemetry checks that
// whatever it accepts, encoding/json decodes to the same value.
func fastTelemetry(b []byte) (t Telemetry, ok bool) {
	if len(b) > MaxPayloadBytes {
		return t, false
	}
	s := scanner{b: b}
	ok = s.object(func(key []byte) (field int, ok bool) {
		switch string(key) {
		case "v":
			return 0, s.int(&t.V)
		case "seq":
			return 1, s.uint64(&t.Seq)
		case "ts":
			return 2, s.int64(&t.TS)
		case "doors":
			return 3, s.doors(&t.Doors)
		case "ambient_c":
			return 4, s.floatPtr(&t.AmbientC)
		case "enclosure_c":
			return 5, s.floatPtr(&t.EnclosureC)
		case "heater":
			return 6, s.thermal(&t.Heater)
		case "compressor":
			return 7, s.thermal(&t.Compressor)
		case "dropped":
			return 8, s.uint64(&t.Dropped)
		case "codes":
			return 9, s.uint64(&t.Codes)
		}
		return 0, false
	})
	s.space()
	return t, ok && s.i == len(s.b)
}

// scanner reads the plain JSON subset of fastTelemetry; every method returns false where that
// subset ends.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next skips white space and consumes c if it comes next.
func (s *scanner) next(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// object reads an object whose keys are lowercase ASCII letters, digits and underscores,
// calling field with each key once the colon is read; field reads the value and says which
// field of the object it was (0..31), so that object can refuse a repeated one.
func (s *scanner) object(field func(key []byte) (int, bool)) bool {
	if !s.next('{') {
		return false
	}
	if s.next('}') {
		return true
	}
	var seen uint32
	for {
		if !s.next('"') {
			return false
		}
		start := s.i
		for s.i < len(s.b) && (s.b[s.i] >= 'a' && s.b[s.i] <= 'z' || s.b[s.i] >= '0' && s.b[s.i] <= '9' || s.b[s.i] == '_') {
			s.i++
		}
		key := s.b[start:s.i]
		if s.i == len(s.b) || s.b[s.i] != '"' { // not next('"'): white space is part of a key
			return false
		}
		s.i++
		if !s.next(':') {
			return false
		}
		n, ok := field(key)
		if !ok || seen&(1<<n) != 0 {
			return false
		}
		seen |= 1 << n
		if !s.next(',') {
			return s.next('}')
		}
	}
}

// number returns the next JSON number literal, and whether it is an integer (no fraction,
// no exponent).
func (s *scanner) number() (lit []byte, integer, ok bool) {
	s.space()
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.digits() == 0:
		return nil, false, false
	}
	integer = true
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return nil, false, false
		}
		integer = false
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return nil, false, false
		}
		integer = false
	}
	return s.b[start:s.i], integer, true
}

func (s *scanner) digits() int {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i - start
}

// The number readers convert like encoding/json does (strconv on the literal) and give up
// where it would report an error.

// integer returns the next number literal, if it is one of an integer.
func (s *scanner) integer() (string, bool) {
	lit, integer, ok := s.number()
	return string(lit), ok && integer
}

func (s *scanner) int64(v *int64) bool {
	lit, ok := s.integer()
	n, err := strconv.ParseInt(lit, 10, 64)
	*v = n
	return ok && err == nil
}

func (s *scanner) int(v *int) bool {
	var n int64
	ok := s.int64(&n) && int64(int(n)) == n
	*v = int(n)
	return ok
}

func (s *scanner) uint64(v *uint64) bool {
	lit, ok := s.integer()
	n, err := strconv.ParseUint(lit, 10, 64)
	*v = n
	return ok && err == nil
}

func (s *scanner) float(v *float64) bool {
	lit, _, ok := s.number()
	if !ok {
		return false
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	*v = f
	return err == nil
}

func (s *scanner) floatPtr(v **float64) bool {
	f := new(float64)
	*v = f
	return s.float(f)
}

func (s *scanner) bool(v *bool) bool {
	s.space()
	for _, lit := range [...]string{"false", "true"} {
		if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
			s.i += len(lit)
			*v = lit == "true"
			return true
		}
	}
	return false
}

func (s *scanner) doors(v *[]DoorState) bool {
	if !s.next('[') {
		return false
	}
	doors := make([]DoorState, 0, 16)
	if !s.next(']') {
		for {
			var d DoorState
			ok := s.object(func(key []byte) (int, bool) {
				switch string(key) {
				case "door":
					return 0, s.int(&d.Door)
				case "open":
					return 1, s.bool(&d.Open)
				case "locked":
					return 2, s.bool(&d.Locked)
				case "temp_c":
					return 3, s.floatPtr(&d.TempC)
				}
				return 0, false
			})
			if !ok {
				return false
			}
			doors = append(doors, d)
			if !s.next(',') {
				break
			}
		}
		if !s.next(']') {
			return false
		}
	}
	*v = doors
	return true
}

func (s *scanner) thermal(v **Thermal) bool {
	th := new(Thermal)
	*v = th
	return s.object(func(key []byte) (int, bool) {
		switch string(key) {
		case "on":
			return 0, s.bool(&th.On)
		case "setpoint_c":
			return 1, s.float(&th.SetpointC)
		case "duty":
			return 2, s.float(&th.Duty)
		}
		return 0, false
	})
}
