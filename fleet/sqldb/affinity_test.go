package sqldb

import (
	"context"
	"sort"
	"strings"
	"testing"
)

// affinity is the type affinity SQLite gives a column declared as decl (the rules of
// https://www.sqlite.org/datatype3.html#determination_of_column_affinity, in their order).
func affinity(decl string) string {
	d := strings.ToUpper(decl)
	switch {
	case strings.Contains(d, "INT"):
		return "INTEGER"
	case strings.Contains(d, "CHAR"), strings.Contains(d, "CLOB"), strings.Contains(d, "TEXT"):
		return "TEXT"
	case strings.Contains(d, "BLOB"), d == "":
		return "BLOB"
	case strings.Contains(d, "REAL"), strings.Contains(d, "FLOA"), strings.Contains(d, "DOUB"):
		return "REAL"
	}
	return "NUMERIC"
}

// The migrations were made portable after SQLite databases had been created with them; what
// they mean to SQLite must not change, so a fresh database still gets the affinities (and
// rowid keys) of those databases, recorded here from one made before PostgreSQL support.
func TestSQLiteSchemaUnchangedByPortability(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		"alerts":            "id:INTEGER:pk rule:TEXT severity:TEXT scope:TEXT device:TEXT site:TEXT door:INTEGER state:TEXT summary:TEXT value:REAL fired_at:INTEGER acked_at:INTEGER acked_by:TEXT ack_note:TEXT resolved_at:INTEGER resolved_by:TEXT resolve_note:TEXT registration:TEXT acked_by_name:TEXT resolved_by_name:TEXT",
		"audit":             "seq:INTEGER:pk time:INTEGER actor:TEXT action:TEXT device:TEXT detail:TEXT prev_hash:TEXT hash:TEXT actor_name:TEXT",
		"audit_head":        "id:INTEGER:pk seq:INTEGER hash:TEXT",
		"code_sets":         "device:TEXT:pk registration:TEXT want:INTEGER reported:INTEGER",
		"commands":          "id:TEXT:pk device:TEXT type:TEXT door:INTEGER target:TEXT setpoint_c:REAL reason:TEXT actor:TEXT idempotency_key:TEXT status:TEXT outcome:TEXT detail:TEXT created_at:INTEGER expires_at:INTEGER sent_at:INTEGER completed_at:INTEGER registration:TEXT actor_name:TEXT",
		"devices":           "id:TEXT:pk kind:TEXT site:TEXT doors:INTEGER labels:TEXT enabled:INTEGER secret_hash:TEXT created_at:INTEGER updated_at:INTEGER registration:TEXT",
		"parcels":           "id:TEXT:pk device:TEXT registration:TEXT site:TEXT door:INTEGER compartment:TEXT size:TEXT perishable:INTEGER recipient:TEXT carrier:TEXT status:TEXT created_at:INTEGER dropped_at:INTEGER expires_at:INTEGER picked_up_at:INTEGER closed_at:INTEGER closed_by:TEXT close_reason:TEXT offline:INTEGER actor:TEXT actor_name:TEXT code_salt:TEXT code_hash:TEXT",
		"registry_version":  "id:INTEGER:pk version:INTEGER",
		"schema_migrations": "name:TEXT:pk applied_at:INTEGER",
		"tokens":            "id:TEXT:pk name:TEXT role:TEXT sites:TEXT secret_hash:BLOB created_at:INTEGER revoked_at:INTEGER",
	}
	d, err := Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rows, err := d.db.Query(`SELECT m.name, p.name, p.type, p.pk FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string][]string{}
	for rows.Next() {
		var table, col, decl string
		var pk int
		if err := rows.Scan(&table, &col, &decl, &pk); err != nil {
			t.Fatal(err)
		}
		c := col + ":" + affinity(decl)
		if pk > 0 {
			c += ":pk"
		}
		got[table] = append(got[table], c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var tables []string
	for table := range got {
		tables = append(tables, table)
	}
	sort.Strings(tables)
	if len(tables) != len(want) {
		t.Errorf("tables %v, want the %d of before", tables, len(want))
	}
	for _, table := range tables {
		if g := strings.Join(got[table], " "); g != want[table] {
			t.Errorf("%s:\n got %s\nwant %s", table, g, want[table])
		}
	}
	// The rowid keys: an INTEGER PRIMARY KEY is the rowid only when declared exactly so.
	for _, table := range []string{"audit", "alerts"} {
		var sql string
		if err := d.db.QueryRow(`SELECT sql FROM sqlite_master WHERE name = ?`, table).Scan(&sql); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(sql, "INTEGER PRIMARY KEY") {
			t.Errorf("%s's key is no longer the rowid: %s", table, sql)
		}
	}
}
