package fleet

import (
	"errors"
	"fmt"
)

// Error codes shared by every service. Adapters map them to their own vocabulary in one place
// (HTTP statuses, CLI exit messages) so that a service never needs to know who called it.
const (
	EINVALID      = "invalid"      // the request is malformed or breaks a rule
	ETOOLARGE     = "too_large"    // the request's body is larger than the endpoint takes
	EKEYREUSED    = "key_reused"   // an idempotency key already used for a different request
	ENOTFOUND     = "not_found"    // the entity does not exist (or is outside the caller's scope)
	EUNAUTHORIZED = "unauthorized" // no valid credential was presented
	EFORBIDDEN    = "forbidden"    // the credential's role does not allow this
	ECONFLICT     = "conflict"     // the entity already exists, or its state does not allow this (offline)
	ERATELIMITED  = "rate_limited" // too many requests; retry later
	ETIMEOUT      = "timeout"      // the device did not answer in time
	EUNAVAILABLE  = "unavailable"  // a backing service (InfluxDB, ...) cannot answer now; try later
	EINTERNAL     = "internal"     // anything the caller cannot fix
)

// Error is a domain error with a stable, machine-readable code and a message meant for people.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for any other error,
// and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}
