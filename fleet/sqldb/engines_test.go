package sqldb_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/internal/testpg"
)

// engine is one of the SQL engines the store runs on.
type engine string

const (
	sqliteEngine   engine = "sqlite"
	postgresEngine engine = "postgres"
)

var engines = []engine{sqliteEngine, postgresEngine}

// forEachEngine runs fn as one subtest per engine, named after it. The PostgreSQL one needs
// the development server (scripts/postgres.sh start): without it, it is skipped, or fails when
// CI is set.
func forEachEngine(t *testing.T, fn func(t *testing.T, e engine)) {
	t.Helper()
	for _, e := range engines {
		t.Run(string(e), func(t *testing.T) { fn(t, e) })
	}
}

// store is a fresh database of one engine: an SQLite data directory, or a PostgreSQL database
// of its own.
type store struct {
	engine engine
	url    string // PostgreSQL's, or "" for SQLite
	dir    string
}

// newStore creates an empty database, dropped (or deleted) when the test ends.
func newStore(t testing.TB, e engine) store {
	t.Helper()
	s := store{engine: e, dir: t.TempDir()}
	if e == postgresEngine {
		s.url = testpg.Require(t)
	}
	return s
}

// open opens a handle on the database, as a hub or the CLI would: every call is another one,
// closed when the test ends.
func (s store) open(t testing.TB) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(context.Background(), s.url, s.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// raw opens the database without lockerhub, as someone with write access to it would.
func (s store) raw(t testing.TB) *sql.DB {
	t.Helper()
	driver, dsn := "sqlite", filepath.Join(s.dir, sqldb.FileName)
	if s.engine == postgresEngine {
		driver, dsn = "pgx", s.url
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openDB opens a handle on a fresh database of engine e.
func openDB(t testing.TB, e engine) *sqldb.DB {
	t.Helper()
	return newStore(t, e).open(t)
}

// queryStrings runs a query of one text column and returns its rows.
func queryStrings(t testing.TB, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
