package fleet

import (
	"context"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Role is what an API token may do. Each role of the ladder (Roles) may do everything the roles
// before it may. RoleCarrier stands beside the ladder: a delivery company's token, which may
// deliver parcels, drop them off and list its own, and nothing else; Allows grants it nothing.
type Role string

// Roles, from least to most powerful.
const (
	RoleViewer     Role = "viewer"     // reads fleet state, telemetry and alerts
	RoleTechnician Role = "technician" // also acknowledges alerts
	RoleOperator   Role = "operator"   // also sends commands (unlock, lock, setpoints)
	RoleAdmin      Role = "admin"      // also manages devices and tokens

	RoleCarrier Role = "carrier" // delivers parcels (see MayDeliver), outside the ladder
)

// Roles lists the roles from least to most powerful.
var Roles = []Role{RoleViewer, RoleTechnician, RoleOperator, RoleAdmin}

// Validate returns an EINVALID *Error unless r is one of Roles or RoleCarrier.
func (r Role) Validate() error {
	if !slices.Contains(Roles, r) && r != RoleCarrier {
		return Errorf(EINVALID, "unknown role %q: must be one of viewer, technician, operator, admin, carrier", r)
	}
	return nil
}

// Allows reports whether a token with role r may do what needs role need, a role of the
// ladder. A role outside the ladder (RoleCarrier) is allowed nothing by it.
func (r Role) Allows(need Role) bool {
	return slices.Index(Roles, r) >= slices.Index(Roles, need) && slices.Contains(Roles, r) && slices.Contains(Roles, need)
}

// MayDeliver reports whether a token with role r may deliver parcels and drop them off: a
// carrier, an operator or an admin.
func (r Role) MayDeliver() bool { return r == RoleCarrier || r.Allows(RoleOperator) }

// Token is an API credential. The secret itself is shown once when the token is created and
// only its hash is stored.
type Token struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      Role       `json:"role"`
	Sites     []string   `json:"sites,omitempty"` // empty: every site
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Actor is who did something, as records keep it: ID is what the record is keyed and counted
// by ("token:<id>", "device:<id>", "cli", "hub"); Name is the token's name at the time of the
// action, "" for the hub's own actors. The name is copied into the record rather than looked up
// when it is shown, so that it survives the token's revocation, and shows who it was even if
// another token is later given the same name. The services find the actor in the context
// (NewContextWithActor).
type Actor struct {
	ID   string
	Name string
	// Via names the tool through which the actor made changes in bulk ("import", "demo"),
	// "" for one made by hand; audit entries keep it in their detail as "by", so that a reader
	// of the trail tells a device registered by hand from one of a thousand an import made.
	Via string
}

// Actor returns the actor that t stands for in records.
func (t *Token) Actor() Actor { return Actor{ID: "token:" + t.ID, Name: t.Name} }

// Validate reports the first attribute of t that breaks a rule.
func (t *Token) Validate() error {
	if t.Name == "" || len(t.Name) > 128 || !utf8.ValidString(t.Name) {
		return Errorf(EINVALID, "invalid token name %q: 1..128 bytes of UTF-8", t.Name)
	}
	if err := t.Role.Validate(); err != nil {
		return err
	}
	for _, s := range t.Sites {
		if !validSite(s) {
			return Errorf(EINVALID, "invalid site %q in the token's scope", s)
		}
	}
	return nil
}

// InScope reports whether the token may see devices of site: a token scoped to sites sees only
// those, and a request outside its scope is answered as if the device did not exist.
func (t *Token) InScope(site string) bool {
	return len(t.Sites) == 0 || slices.Contains(t.Sites, site)
}

// ParseSites splits a comma-separated list of sites, as given on the command line.
func ParseSites(s string) []string {
	var sites []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" && !slices.Contains(sites, p) {
			sites = append(sites, p)
		}
	}
	return sites
}

// TokenService manages API tokens. Creations and revocations are recorded in the audit trail
// like the changes of DeviceService.
type TokenService interface {
	// CreateToken stores t (with a new ID) and returns its secret, which cannot be shown again.
	CreateToken(ctx context.Context, t *Token) (secret string, err error)
	// FindTokens returns every token, revoked ones included, newest first.
	FindTokens(ctx context.Context) ([]*Token, error)
	// FindTokenByID returns a token, revoked or not, as it is now; ENOTFOUND for an unknown
	// id. Whoever holds on to a token (an open event stream) reads it again with this to
	// learn of its revocation or of a change to its role or sites.
	FindTokenByID(ctx context.Context, id string) (*Token, error)
	// RevokeToken revokes a token at once; ENOTFOUND for an unknown id.
	RevokeToken(ctx context.Context, id string) error
	// Authenticate returns the live token whose secret this is, or an EUNAUTHORIZED error for
	// an unknown, malformed or revoked secret.
	Authenticate(ctx context.Context, secret string) (*Token, error)
}
