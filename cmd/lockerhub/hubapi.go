package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/http/hubclient"
)

// hubAPI is the --hub and --token flags of the operator commands that talk to a running hub
// through its HTTP API, under the same roles as any other API client.
type hubAPI struct {
	url, token string
}

// The environment variables the hub's address and token default to, so that one shell can be
// pointed at a hub once (lockerhub demo writes both into its env.sh).
const (
	envHub   = "LOCKERHUB_HUB"
	envToken = "LOCKERHUB_TOKEN"
)

// defaultHubURL is where `lockerhub serve` answers with the default http.addr.
const defaultHubURL = "http://127.0.0.1:8080"

// flags registers --hub and --token on fs.
func (h *hubAPI) flags(fs *pflag.FlagSet, role fleet.Role) {
	fs.StringVar(&h.url, "hub", "", "the hub's HTTP address (default $"+envHub+", else "+defaultHubURL+")")
	roles := fmt.Sprintf("the %s role or above", role)
	if role == fleet.RoleCarrier {
		roles = "the carrier, operator or admin role"
	}
	fs.StringVar(&h.token, "token", "", fmt.Sprintf("API token with %s (default $%s)", roles, envToken))
}

// client returns the API client of the flags, or of the environment where they are not given.
// It fails without a token.
func (h *hubAPI) client() (*hubclient.Client, error) {
	c := &hubclient.Client{URL: cmp.Or(h.url, os.Getenv(envHub), defaultHubURL), Token: cmp.Or(h.token, os.Getenv(envToken))}
	if c.Token == "" {
		return nil, errors.New("no API token: pass --token or set " + envToken)
	}
	return c, nil
}
