package sqldb

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestRebind(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in, want string
	}{
		{"none", `SELECT 1`, `SELECT 1`},
		{"in order", `UPDATE t SET a = ?, b = ? WHERE id = ?`, `UPDATE t SET a = $1, b = $2 WHERE id = $3`},
		{"adjacent", `VALUES (?,?)`, `VALUES ($1,$2)`},
		{"ten and more", strings.Repeat("?,", 10) + "?", "$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11"},
		{"string literal", `SELECT '?' || ?`, `SELECT '?' || $1`},
		{"doubled quote in a literal", `WHERE a = 'it''s ?' AND b = ?`, `WHERE a = 'it''s ?' AND b = $1`},
		{"quoted identifier", `SELECT "what?" FROM t WHERE x = ?`, `SELECT "what?" FROM t WHERE x = $1`},
		{"line comment", "SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2"},
		{"line comment at the end", "SELECT ? -- why?", "SELECT $1 -- why?"},
		{"block comment", `SELECT /* a ? b */ ?`, `SELECT /* a ? b */ $1`},
		{"unterminated literal", `SELECT ? WHERE a = 'x?`, `SELECT $1 WHERE a = 'x?`},
		{"unterminated comment", `SELECT ? /* ?`, `SELECT $1 /* ?`},
		{"minus and slash alone", `SELECT ? - 1 / ?`, `SELECT $1 - 1 / $2`},
		{"the package's IN list", `site IN (?,?,?) ORDER BY id DESC LIMIT ?`, `site IN ($1,$2,$3) ORDER BY id DESC LIMIT $4`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rebind(tc.in); got != tc.want {
				t.Fatalf("rebind(%q)\n = %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestMigrationsFor(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"migrations/0001_a.sql":          {},
		"migrations/0001_a.postgres.sql": {},
		"migrations/0002_b.sql":          {},
		"migrations/0010_c.sql":          {},
		"migrations/0010_c.postgres.sql": {},
	}
	for _, tc := range []struct {
		dialect dialect
		want    string
	}{
		{dialectSQLite, "0001_a.sql=0001_a.sql 0002_b.sql=0002_b.sql 0010_c.sql=0010_c.sql"},
		{dialectPostgres, "0001_a.sql=0001_a.postgres.sql 0002_b.sql=0002_b.sql 0010_c.sql=0010_c.postgres.sql"},
	} {
		t.Run(tc.dialect.String(), func(t *testing.T) {
			list, err := migrationsFor(fsys, tc.dialect)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range list {
				got = append(got, strings.TrimPrefix(m.name, "migrations/")+"="+strings.TrimPrefix(m.file, "migrations/"))
			}
			if strings.Join(got, " ") != tc.want {
				t.Fatalf("got %s\nwant %s", strings.Join(got, " "), tc.want)
			}
		})
	}
	t.Run("variant without its portable file", func(t *testing.T) {
		fsys := fstest.MapFS{"migrations/0001_a.sql": {}, "migrations/0002_b.postgres.sql": {}}
		if _, err := migrationsFor(fsys, dialectPostgres); err == nil {
			t.Fatal("no error for a variant that has no portable file")
		}
	})
	t.Run("the embedded migrations", func(t *testing.T) {
		sl, err := migrationsFor(migrations, dialectSQLite)
		if err != nil {
			t.Fatal(err)
		}
		pl, err := migrationsFor(migrations, dialectPostgres)
		if err != nil {
			t.Fatal(err)
		}
		if len(sl) != len(pl) || len(sl) == 0 {
			t.Fatalf("%d SQLite and %d PostgreSQL migrations", len(sl), len(pl))
		}
		for i := range sl {
			if sl[i].name != pl[i].name {
				t.Errorf("migration %d: %s on SQLite, %s on PostgreSQL", i, sl[i].name, pl[i].name)
			}
		}
	})
}
