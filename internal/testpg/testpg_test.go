package testpg

import (
	"database/sql"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
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
	ft := run(t, func(tb testing.TB) { Require(tb) })
	if !ft.skipped || ft.failed || !strings.Contains(ft.msg, "scripts/postgres.sh start") {
		t.Errorf("without CI: skipped=%v failed=%v msg=%q, want a skip naming scripts/postgres.sh start", ft.skipped, ft.failed, ft.msg)
	}
	if strings.Contains(ft.msg, "hunter2") {
		t.Errorf("the message shows the password: %q", ft.msg)
	}

	t.Setenv("CI", "true")
	ft = run(t, func(tb testing.TB) { Require(tb) })
	if !ft.failed || ft.skipped || !strings.Contains(ft.msg, "scripts/postgres.sh start") {
		t.Errorf("with CI: skipped=%v failed=%v msg=%q, want a failure naming scripts/postgres.sh start", ft.skipped, ft.failed, ft.msg)
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
			ft := run(t, func(tb testing.TB) { Require(tb) })
			if !ft.failed || ft.skipped {
				t.Errorf("failed=%v skipped=%v msg=%q, want a failure", ft.failed, ft.skipped, ft.msg)
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

// fakeTB records what a helper did to its test: failed, skipped, and the message.
type fakeTB struct {
	testing.TB // the real test, for everything not overridden
	mu         sync.Mutex
	failed     bool
	skipped    bool
	msg        string
	cleanups   []func()
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) record(failed, skipped bool, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = f.failed || failed
	f.skipped = f.skipped || skipped
	f.msg += fmt.Sprintln(args...)
}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.record(true, false, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Error(args ...any) { f.record(true, false, args...) }
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.record(true, false, fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (f *fakeTB) Fatal(args ...any) { f.record(true, false, args...); runtime.Goexit() }
func (f *fakeTB) FailNow()          { f.record(true, false); runtime.Goexit() }
func (f *fakeTB) Skipf(format string, args ...any) {
	f.record(false, true, fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (f *fakeTB) Skip(args ...any)  { f.record(false, true, args...); runtime.Goexit() }
func (f *fakeTB) SkipNow()          { f.record(false, true); runtime.Goexit() }
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }

// run calls fn with a fakeTB in its own goroutine (Fatal and Skip end it with Goexit, as the
// testing package does), then runs the cleanups fn registered.
func run(t *testing.T, fn func(testing.TB)) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	return f
}
