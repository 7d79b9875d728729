package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/http/hubclient"
)

// The mapping for the errors TestExitCodes cannot make a real hub produce.
func TestExitCodeOf(t *testing.T) {
	ran := func(err error) error { return &runError{err} }
	unreachable := &url.Error{Op: "Get", URL: "http://127.0.0.1:1/", Err: errors.New("connection refused")}
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{errors.New("unknown flag: --x"), exitUsage},
		{ran(errors.New("disk full")), exitFailed},
		{ran(fleet.Errorf(fleet.ETOOLARGE, "too large")), exitUsage},
		{ran(fleet.Errorf(fleet.EKEYREUSED, "key reused")), exitRefused},
		{ran(fleet.Errorf(fleet.EUNAUTHORIZED, "bad token")), exitRefused},
		{ran(&hubclient.Error{Status: 504, Err: fleet.Errorf(fleet.ETIMEOUT, "expired")}), exitDevice},
		{ran(&hubclient.Error{Status: 503, Err: fleet.Errorf(fleet.EUNAVAILABLE, "influxdb away")}), exitFailed},
		{ran(&hubclient.Error{Status: 429, Err: fleet.Errorf(fleet.ERATELIMITED, "slow down")}), exitFailed},
		{ran(&hubclient.Error{Status: 500, Err: fleet.Errorf(fleet.EINTERNAL, "oops")}), exitFailed},
		{ran(fmt.Errorf("hub: %w", unreachable)), exitUnreachable},
		{ran(fmt.Errorf("hub: %w", &url.Error{Op: "Get", URL: "http://hub/", Err: context.Canceled})), exitFailed},
		{ran(&exitError{exitDevice, errors.New("jammed")}), exitDevice},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
