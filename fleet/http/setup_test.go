package http_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet"
	lhhttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// registry is a real SQLite registry in a temporary directory, for the API tests.
type registry struct {
	db      *sqldb.DB
	devices *sqldb.DeviceService
	tokens  *sqldb.TokenService
	audit   *sqldb.AuditService
}

func openRegistry(t *testing.T) *registry {
	t.Helper()
	db, err := sqldb.Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &registry{db: db, devices: sqldb.NewDeviceService(db), tokens: sqldb.NewTokenService(db), audit: sqldb.NewAuditService(db)}
}

// token creates a token and returns its secret.
func (r *registry) token(t *testing.T, name string, role fleet.Role, sites ...string) string {
	t.Helper()
	secret, err := r.tokens.CreateToken(context.Background(), &fleet.Token{Name: name, Role: role, Sites: sites})
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// serve runs the API with svc (its registry services filled in from r) on 127.0.0.1 until the
// test ends, and returns its address.
func (r *registry) serve(t *testing.T, svc lhhttp.Services) string {
	t.Helper()
	svc.Devices, svc.Tokens, svc.Audit = r.devices, r.tokens, r.audit
	s := lhhttp.NewServer(prometheus.NewRegistry(), nil)
	s.Handle(svc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.Open("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s.Addr().String()
}
