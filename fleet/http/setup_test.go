package http_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet"
	lhhttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/internal/testpg"
)

// registry is a real SQLite registry in a temporary directory, for the API tests.
type registry struct {
	db      *sqldb.DB
	devices *sqldb.DeviceService
	tokens  *sqldb.TokenService
	audit   *sqldb.AuditService
	srv     *lhhttp.Server // the last one serve started
}

func openRegistry(t testing.TB) *registry { return openRegistryAt(t, "") }

// openRegistryAt opens the registry in the PostgreSQL database at url, or in SQLite when url
// is "".
func openRegistryAt(t testing.TB, url string) *registry {
	t.Helper()
	db, err := sqldb.Open(context.Background(), url, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &registry{db: db, devices: sqldb.NewDeviceService(db), tokens: sqldb.NewTokenService(db), audit: sqldb.NewAuditService(db)}
}

// eachEngine runs fn as one subtest per SQL engine of the registry: SQLite, and the
// development PostgreSQL (without it, skipped, or failed when CI is set).
func eachEngine(t *testing.T, fn func(t *testing.T, reg *registry)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, openRegistry(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, openRegistryAt(t, testpg.Require(t))) })
}

// token creates a token and returns its secret.
func (r *registry) token(t testing.TB, name string, role fleet.Role, sites ...string) string {
	t.Helper()
	secret, err := r.tokens.CreateToken(fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"}), &fleet.Token{Name: name, Role: role, Sites: sites})
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// serve runs the API with svc (its registry services filled in from r) on 127.0.0.1 until the
// test ends, and returns its address.
func (r *registry) serve(t testing.TB, svc lhhttp.Services) string {
	t.Helper()
	svc.Devices, svc.Audit = r.devices, r.audit
	if svc.Tokens == nil {
		svc.Tokens = r.tokens
	}
	s := lhhttp.NewServer(prometheus.NewRegistry(), nil, lhhttp.Options{})
	s.Handle(svc, slog.New(slog.DiscardHandler))
	if err := s.Open("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	r.srv = s
	return s.Addr().String()
}

// loginFailures closes the server serve started, which writes the failed logins it batched to
// the audit trail, and returns their entries.
func (r *registry) loginFailures(t *testing.T) []*fleet.AuditEntry {
	t.Helper()
	if err := r.srv.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []*fleet.AuditEntry
	if err := r.audit.Entries(context.Background(), fleet.AuditFilter{}, func(e *fleet.AuditEntry) error {
		if e.Action == "login.failed" {
			got = append(got, e)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// failureCount is the number of failed logins an audit entry counts.
func failureCount(t *testing.T, e *fleet.AuditEntry) int {
	t.Helper()
	n, err := strconv.Atoi(fmt.Sprint(e.Detail["count"]))
	if err != nil {
		t.Fatalf("failed-login entry without a count: %+v", e)
	}
	return n
}
