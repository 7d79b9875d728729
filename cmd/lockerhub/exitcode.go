package main

import (
	"context"
	"errors"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/lockerhub/lockerhub/fleet"
)

// Exit codes, so that a script can tell what went wrong without reading the message; the
// README and `lockerhub --help` (exitCodesHelp) list them.
const (
	exitOK          = 0
	exitFailed      = 1 // any other error
	exitUsage       = 2 // bad flags or arguments, or a request the hub refused as invalid
	exitNotFound    = 3
	exitRefused     = 4 // a conflict, or refused: it exists already, the role does not allow it, the hub will not send it
	exitDevice      = 5 // the unit reported the command failed (jammed, ...) or did not answer in time
	exitUnreachable = 6 // no answer from the hub: connection refused, timeout
)

// exitCodesHelp closes `lockerhub --help`.
const exitCodesHelp = `
Exit codes:
  0  ok
  1  any other error
  2  usage: an unknown command or flag, a missing or bad argument, a request the hub refused as invalid
  3  not found: no such unit, door, alert, command or token
  4  conflict or refused: it exists already, the token's role does not allow it, the hub refused the
     command (the unit is offline or disabled)
  5  device failure: the unit reported the command failed (a jammed lock, a door that did not open) or
     did not answer before the command expired
  6  hub unreachable: connection refused, timeout
`

// exitCodeOf maps domain error codes to exit codes; the codes not here exit with exitFailed.
var exitCodeOf = map[string]int{
	fleet.EINVALID:      exitUsage,
	fleet.ETOOLARGE:     exitUsage,
	fleet.ENOTFOUND:     exitNotFound,
	fleet.ECONFLICT:     exitRefused,
	fleet.EKEYREUSED:    exitRefused,
	fleet.EUNAUTHORIZED: exitRefused,
	fleet.EFORBIDDEN:    exitRefused,
	fleet.ETIMEOUT:      exitDevice,
}

// exitCode is the exit code for the error a command returned.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	if e, ok := errors.AsType[*exitError](err); ok {
		return e.code
	}
	if _, ok := errors.AsType[*runError](err); !ok {
		// Cobra's own: an unknown command or flag, wrong arguments, a required flag missing.
		return exitUsage
	}
	if e, ok := errors.AsType[*fleet.Error](err); ok {
		if code, ok := exitCodeOf[e.Code]; ok {
			return code
		}
		return exitFailed
	}
	// Every request to the hub goes through net/http, whose failures to get an answer at all
	// are *url.Error; an interrupted command is not the hub's fault.
	if _, ok := errors.AsType[*url.Error](err); ok && !errors.Is(err, context.Canceled) {
		return exitUnreachable
	}
	return exitFailed
}

// exitError is an error that says its exit code itself, for failures no domain code names.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// runError is an error a command's RunE returned, as opposed to one of cobra's before it.
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// markRunErrors wraps the RunE of cmd and of every command under it so that their errors are
// *runError: any other error that Execute returns comes from cobra's parsing of the command line.
func markRunErrors(cmd *cobra.Command) {
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			if err := run(cmd, args); err != nil {
				return &runError{err}
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		markRunErrors(sub)
	}
}
