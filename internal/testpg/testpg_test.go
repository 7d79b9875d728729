package testpg

import (
	"database/sql"
	"os"
	"strings"
	"testing"

	"github.com/lockerhub/lockerhub/internal/testtb"
)

func exists(t *testing.T, name string) bool {
	t.Helper()
	db, err := admin(DefaultURLOrEnv())
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func dbName(t *testing.T, u string) string {
	t.Helper()
	i := strings.LastIndex(u, "/")
	name, _, _ := strings.Cut(u[i+1:], "?")
	return name
}

func TestRequireGivesEachTestItsOwnDatabase(t *testing.T) {
	u := Require(t)
	name := dbName(t, u)
	if !strings.HasPrefix(name, "t_") || len(name) != len("t_")+12 {
		t.Errorf("database %q, want t_<12 hex digits>", name)
	}
	if !exists(t, name) {
		t.Fatalf("database %s was not created", name)
	}
	db, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE outer_only (x INT)`); err != nil {
		t.Fatal(err)
	}

	var inner string
	t.Run("inner", func(t *testing.T) {
		inner = dbName(t, Require(t))
		if inner == name {
			t.Fatalf("two tests share database %s", name)
		}
		other, err := sql.Open("pgx", strings.Replace(u, name, inner, 1))
		if err != nil {
			t.Fatal(err)
		}
		// Left open on purpose: the drop must not wait for it.
		var n int
		if err := other.QueryRow(`SELECT count(*) FROM information_schema.tables WHERE table_name = 'outer_only'`).Scan(&n); err != nil || n != 0 {
			t.Errorf("the inner database sees the outer one's table: %d, %v", n, err)
		}
	})
	if inner == "" {
		t.Fatal("inner test did not run")
	}
	if exists(t, inner) {
		t.Errorf("database %s of the finished subtest was not dropped", inner)
	}
}

func TestRequireWithoutServerSkipsOrFailsInCI(t *testing.T) {
	t.Setenv(EnvURL, "postgres://lockerhub:hunter2@127.0.0.1:1/lockerhub?sslmode=disable") // nothing listens on port 1

	t.Setenv("CI", "")
	ft := testtb.Run(t, func(tb testing.TB) { Require(tb) })
	if !ft.DidSkip || ft.DidFail || !strings.Contains(ft.Message, "scripts/postgres.sh start") {
		t.Errorf("without CI: skipped=%v failed=%v msg=%q, want a skip naming scripts/postgres.sh start", ft.DidSkip, ft.DidFail, ft.Message)
	}
	if strings.Contains(ft.Message, "hunter2") {
		t.Errorf("the message shows the password: %q", ft.Message)
	}

	t.Setenv("CI", "true")
	ft = testtb.Run(t, func(tb testing.TB) { Require(tb) })
	if !ft.DidFail || ft.DidSkip || !strings.Contains(ft.Message, "scripts/postgres.sh start") {
		t.Errorf("with CI: skipped=%v failed=%v msg=%q, want a failure naming scripts/postgres.sh start", ft.DidSkip, ft.DidFail, ft.Message)
	}
}

func TestRequireRefusesNonLoopback(t *testing.T) {
	for _, u := range []string{
		"postgres://lockerhub@192.0.2.1:5433/lockerhub",
		"postgres://lockerhub@db.example:5433/lockerhub",
		"mysql://lockerhub@127.0.0.1:5433/lockerhub",
	} {
		t.Run(u, func(t *testing.T) {
			t.Setenv(EnvURL, u)
			t.Setenv("CI", "")
			ft := testtb.Run(t, func(tb testing.TB) { Require(tb) })
			if !ft.DidFail || ft.DidSkip {
				t.Errorf("failed=%v skipped=%v msg=%q, want a failure", ft.DidFail, ft.DidSkip, ft.Message)
			}
		})
	}
}

// DefaultURLOrEnv is the server Require uses.
func DefaultURLOrEnv() string {
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return DefaultURL
}
