package sqldb_test

import (
	"context"
	"strings"
	"testing"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

func TestTokens(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, e engine) {
		ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
		st := newStore(t, e)
		s := sqldb.NewTokenService(st.open(t))

		tok := &fleet.Token{Name: "oak property manager", Role: fleet.RoleOperator, Sites: []string{"oak", "elm"}}
		secret, err := s.CreateToken(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(secret, "lh_"+tok.ID+"_") {
			t.Fatalf("secret %q does not carry the id %s", secret, tok.ID)
		}
		// Another handle on the file (the CLI) sees and authenticates it.
		other := sqldb.NewTokenService(st.open(t))
		got, err := other.Authenticate(ctx, secret)
		if err != nil || got.ID != tok.ID || got.Role != fleet.RoleOperator || len(got.Sites) != 2 || !got.InScope("elm") || got.InScope("pine") {
			t.Fatalf("Authenticate = %+v, %v", got, err)
		}
		for _, bad := range []string{
			"",
			"lh_",
			secret[:len(secret)-1],
			secret + "x",
			strings.Replace(secret, tok.ID, "0000000000000000", 1),
			"Bearer " + secret,
		} {
			if _, err := s.Authenticate(ctx, bad); fleet.ErrorCode(err) != fleet.EUNAUTHORIZED {
				t.Errorf("Authenticate(%q) = %v, want unauthorized", bad, err)
			}
		}
		if err := other.RevokeToken(ctx, tok.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, secret); fleet.ErrorCode(err) != fleet.EUNAUTHORIZED {
			t.Fatalf("revoked token authenticated: %v", err)
		}
		// Read again by id, a token shows its revocation (an open event stream ends on it).
		if got, err := s.FindTokenByID(ctx, tok.ID); err != nil || got.RevokedAt == nil || got.Role != fleet.RoleOperator || len(got.Sites) != 2 {
			t.Fatalf("FindTokenByID after revocation = %+v, %v", got, err)
		}
		if _, err := s.FindTokenByID(ctx, "nope"); fleet.ErrorCode(err) != fleet.ENOTFOUND {
			t.Fatalf("FindTokenByID(unknown) = %v, want not found", err)
		}
		if err := s.RevokeToken(ctx, "nope"); fleet.ErrorCode(err) != fleet.ENOTFOUND {
			t.Fatalf("revoke unknown: %v", err)
		}
		list, err := s.FindTokens(ctx)
		if err != nil || len(list) != 1 || list[0].RevokedAt == nil {
			t.Fatalf("FindTokens = %+v, %v", list, err)
		}
		for _, bad := range []fleet.Token{{Name: "", Role: fleet.RoleViewer}, {Name: "x", Role: "root"}, {Name: "x", Role: fleet.RoleViewer, Sites: []string{"Bad Site"}}} {
			if _, err := s.CreateToken(ctx, &bad); fleet.ErrorCode(err) != fleet.EINVALID {
				t.Errorf("CreateToken(%+v) = %v, want invalid", bad, err)
			}
		}
	})
}
