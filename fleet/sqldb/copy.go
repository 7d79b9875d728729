package sqldb

// Copy moves a whole store from one database to another: a hub of its own becomes the first of
// a cluster by copying its SQLite file into PostgreSQL, and goes back the other way. The tables
// are copied column by column, with the columns written out per table below: a column added by
// a later migration must be added here too, and Copy refuses a store with a column it does not
// know (see checkColumns) rather than leave it behind.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// Errors returned by Copy.
var (
	// ErrNotEmpty: the destination already holds lockerhub data (a row in one of the copied
	// tables, or an audit head past 0). Copy never merges into a store or overwrites one. Its
	// fleet code is ECONFLICT.
	ErrNotEmpty = &fleet.Error{Code: fleet.ECONFLICT, Message: "the destination already holds lockerhub data"}
	// ErrSameStore: the source and the destination are the same database. Its fleet code is
	// EINVALID.
	ErrSameStore = &fleet.Error{Code: fleet.EINVALID, Message: "the source and the destination are the same store"}
	// ErrSchema: a store's schema is not the one Copy copies: it records a migration this
	// lockerhub does not know (a newer one wrote it), or a table has columns Copy does not know
	// or lacks some it does. Nothing is copied.
	ErrSchema = errors.New("the store's schema is not the one this lockerhub copies")
	// ErrUnverified: the audit trail does not verify, either on the source (checked as it is
	// read, and then nothing is copied) or on the destination after the commit (and then the
	// copy is there, to be dropped).
	ErrUnverified = errors.New("the audit trail does not verify")
)

// CopyStats is what Copy copied.
type CopyStats struct {
	// From and To name the source and the destination as errors do: the SQLite file, or the
	// PostgreSQL URL without its password.
	From, To string
	// Rows copied, per table.
	Devices, Tokens, Commands, Alerts, Parcels, CodeSets, Audit int64
	// AuditHead and AuditHeadHash are the audit head copied (0 and "" for an empty trail): the
	// same as "lockerhub audit verify" shows on the source.
	AuditHead     int64
	AuditHeadHash string
	// Verified is the number of audit entries that Verify found intact on the destination
	// after the commit.
	Verified int64
}

// colKind is how a column's values are read from one engine and written to the other. Each
// kind reads into the Go type that both drivers convert the same way, which is where the
// dialects' types meet: colBool reads SQLite's 0/1 and PostgreSQL's BOOLEAN as a bool and is
// written as each engine spells it; colBytes is SQLite's BLOB and PostgreSQL's BYTEA. Reading
// into a type also refuses a value that does not fit it (an enabled of 2, a time stored as
// text) instead of changing it on the way.
type colKind int

const (
	colText      colKind = iota // TEXT NOT NULL
	colNullText                 // TEXT
	colInt                      // INTEGER / BIGINT NOT NULL
	colNullInt                  // INTEGER / BIGINT
	colNullFloat                // REAL / DOUBLE PRECISION (both 64 bits)
	colBool                     // INTEGER 0 or 1 on SQLite, BOOLEAN on PostgreSQL
	colBytes                    // BLOB / BYTEA NOT NULL
)

// dest returns a new value of kind k to scan into.
func (k colKind) dest() any {
	switch k {
	case colText:
		return new(string)
	case colNullText:
		return new(sql.NullString)
	case colInt:
		return new(int64)
	case colNullInt:
		return new(sql.NullInt64)
	case colNullFloat:
		return new(sql.NullFloat64)
	case colBool:
		return new(bool)
	case colBytes:
		return new([]byte)
	}
	panic(fmt.Sprintf("sqldb: unknown column kind %d", k))
}

// value returns what dest (from k.dest) holds, as a statement argument.
func value(dest any) any {
	switch v := dest.(type) {
	case *string:
		return *v
	case *sql.NullString:
		return *v
	case *int64:
		return *v
	case *sql.NullInt64:
		return *v
	case *sql.NullFloat64:
		return *v
	case *bool:
		return *v
	case *[]byte:
		if *v == nil {
			return []byte{} // an empty BLOB, which a nil would turn into NULL
		}
		return *v
	}
	panic(fmt.Sprintf("sqldb: unknown column destination %T", dest))
}

type copyColumn struct {
	name string
	kind colKind
}

// copyTable is one table Copy copies, in key order.
type copyTable struct {
	name  string
	key   string
	cols  []copyColumn
	count func(*CopyStats) *int64
}

// copyTables are the tables Copy copies, in order. schema_migrations is not copied (Open has
// written the destination's own), registry_version is bumped by the destination's triggers as
// the devices go in, and audit_head is copied apart (copyAuditHead).
var copyTables = []copyTable{
	{name: "devices", key: "id", count: func(s *CopyStats) *int64 { return &s.Devices }, cols: []copyColumn{
		{"id", colText}, {"kind", colText}, {"site", colText}, {"doors", colInt}, {"labels", colText},
		{"enabled", colBool}, {"secret_hash", colText}, {"created_at", colInt}, {"updated_at", colInt},
		{"registration", colText},
	}},
	{name: "tokens", key: "id", count: func(s *CopyStats) *int64 { return &s.Tokens }, cols: []copyColumn{
		{"id", colText}, {"name", colText}, {"role", colText}, {"sites", colText}, {"secret_hash", colBytes},
		{"created_at", colInt}, {"revoked_at", colNullInt},
	}},
	{name: "commands", key: "id", count: func(s *CopyStats) *int64 { return &s.Commands }, cols: []copyColumn{
		{"id", colText}, {"device", colText}, {"type", colText}, {"door", colInt}, {"target", colText},
		{"setpoint_c", colNullFloat}, {"reason", colText}, {"actor", colText}, {"idempotency_key", colNullText},
		{"status", colText}, {"outcome", colText}, {"detail", colText}, {"created_at", colInt},
		{"expires_at", colInt}, {"sent_at", colNullInt}, {"completed_at", colNullInt}, {"registration", colText},
		{"actor_name", colText},
	}},
	{name: "alerts", key: "id", count: func(s *CopyStats) *int64 { return &s.Alerts }, cols: []copyColumn{
		{"id", colInt}, {"rule", colText}, {"severity", colText}, {"scope", colText}, {"device", colText},
		{"site", colText}, {"door", colInt}, {"state", colText}, {"summary", colText}, {"value", colNullFloat},
		{"fired_at", colInt}, {"acked_at", colInt}, {"acked_by", colText}, {"ack_note", colText},
		{"resolved_at", colInt}, {"resolved_by", colText}, {"resolve_note", colText}, {"registration", colText},
		{"acked_by_name", colText}, {"resolved_by_name", colText},
	}},
	{name: "parcels", key: "id", count: func(s *CopyStats) *int64 { return &s.Parcels }, cols: []copyColumn{
		{"id", colText}, {"device", colText}, {"registration", colText}, {"site", colText}, {"door", colInt},
		{"compartment", colText}, {"size", colText}, {"perishable", colInt}, {"recipient", colText}, {"carrier", colText},
		{"status", colText}, {"created_at", colInt}, {"dropped_at", colNullInt}, {"expires_at", colInt},
		{"picked_up_at", colNullInt}, {"closed_at", colNullInt}, {"closed_by", colText}, {"close_reason", colText},
		{"offline", colInt}, {"actor", colText}, {"actor_name", colText}, {"code_salt", colText}, {"code_hash", colText},
	}},
	{name: "code_sets", key: "device", count: func(s *CopyStats) *int64 { return &s.CodeSets }, cols: []copyColumn{
		{"device", colText}, {"registration", colText}, {"want", colInt}, {"reported", colInt},
	}},
	// In the order of auditColumns: chainCheck.next reads the rows by position.
	{name: "audit", key: "seq", count: func(s *CopyStats) *int64 { return &s.Audit }, cols: []copyColumn{
		{"seq", colInt}, {"time", colInt}, {"actor", colText}, {"action", colText}, {"device", colText},
		{"detail", colText}, {"prev_hash", colText}, {"hash", colText}, {"actor_name", colText},
	}},
}

// auditHeadColumns are audit_head's, which copyAuditHead copies with an UPDATE of its one row.
var auditHeadColumns = []string{"id", "seq", "hash"}

// copyBatch is the number of rows per INSERT: a few hundred parameters per statement instead of
// a round trip per row, well below either engine's limit on parameters (32,766 and 65,535).
const copyBatch = 200

// Copy copies every table of src (devices, tokens, commands, alerts, parcels and code sets, the audit trail and its
// head) into dst, which must hold no lockerhub data, and returns what it copied. Either engine
// may be either side: SQLite to PostgreSQL is the upgrade from one hub to a cluster, PostgreSQL
// to SQLite the way back. Both must be open (Open has brought both schemas up to date), and no
// hub should be running on either: src is read in one snapshot, so writes made to it meanwhile
// are not copied.
//
// Every value is kept as it is: ids, secret hashes, times, the audit entries with their seqs
// and hashes, and the audit head. Only the types change where the dialects differ (see
// colKind). Alert ids are kept too, and the destination's next alert id is moved past the
// source's (its highest id, or higher if its own counter is past that), so that an id is never
// given twice.
//
// The rows go into dst in one transaction, which first checks that dst is empty (on PostgreSQL
// with the tables locked against writers until the commit): if it is not, Copy returns an
// ErrNotEmpty error and changes nothing. The audit chain is checked as it is read from src; a
// broken one is an ErrUnverified error and nothing is copied. After the commit, Copy verifies
// the chain on dst with AuditService.Verify and returns an ErrUnverified error if that fails
// (the copy then stays in dst). Other errors: ErrSameStore when dst and src are one database,
// ErrSchema when either records a migration this lockerhub does not know or a table's columns
// are not the ones Copy copies, or an error of either database; none of them leaves anything
// in dst. Errors never contain a password.
func Copy(ctx context.Context, dst, src *DB) (CopyStats, error) {
	stats := CopyStats{From: src.where, To: dst.where}
	if err := checkNotSame(ctx, dst, src); err != nil {
		return stats, fmt.Errorf("copy store: %w", err)
	}
	if err := copyStore(ctx, dst, src, &stats); err != nil {
		return CopyStats{From: stats.From, To: stats.To}, fmt.Errorf("copy store: %w", err)
	}
	res, err := NewAuditService(dst).Verify(ctx)
	if err != nil {
		return stats, fmt.Errorf("copy store: copied into %s, but could not verify the audit trail there: %w", dst.where, err)
	}
	if !res.OK {
		return stats, fmt.Errorf("copy store: copied into %s, but there %w: entry %d: %s; drop the copy before copying again",
			dst.where, ErrUnverified, res.FirstBad, res.Problem)
	}
	stats.Verified = res.Entries
	return stats, nil
}

// copyStore copies src into dst in one transaction on each: a snapshot read of src, a write of
// dst that commits only if everything was copied.
func copyStore(ctx context.Context, dst, src *DB, stats *CopyStats) error {
	stx, err := src.beginSnapshot(ctx)
	if err != nil {
		return fmt.Errorf("read %s: %w", src.where, err)
	}
	defer stx.Rollback()
	dtx, err := dst.begin(ctx)
	if err != nil {
		return fmt.Errorf("write %s: %w", dst.where, err)
	}
	defer dtx.Rollback()
	if dst.dialect == dialectPostgres {
		// A hub started on dst meanwhile waits for the commit instead of writing between the
		// check for emptiness and the copy. (On SQLite the IMMEDIATE transaction already keeps
		// every other writer out.) Readers go on.
		if _, err := dtx.ExecContext(ctx, `LOCK TABLE devices, tokens, commands, alerts, parcels, code_sets, audit, audit_head IN EXCLUSIVE MODE`); err != nil {
			return fmt.Errorf("lock the tables of %s: %w", dst.where, err)
		}
	}
	for _, side := range []struct {
		d  *DB
		tx *writeTx
	}{{src, stx}, {dst, dtx}} {
		if err := checkSchema(ctx, side.d, side.tx); err != nil {
			return err
		}
	}
	if err := checkEmpty(ctx, dst, dtx); err != nil {
		return err
	}
	var maxAlertID int64
	chain := &chainCheck{src: src}
	for _, t := range copyTables {
		var each func([]any) error
		switch t.name {
		case "alerts":
			each = func(row []any) error {
				maxAlertID = max(maxAlertID, row[0].(int64))
				return nil
			}
		case "audit":
			each = chain.next
		}
		n, err := copyRows(ctx, dtx, stx, t, each)
		if err != nil {
			return err
		}
		*t.count(stats) = n
	}
	if err := copyAuditHead(ctx, dtx, stx, chain); err != nil {
		return err
	}
	stats.AuditHead, stats.AuditHeadHash = chain.last.Seq, chain.last.Hash
	if err := copyAlertCounter(ctx, dst, dtx, src, stx, maxAlertID); err != nil {
		return err
	}
	if err := dtx.Commit(); err != nil {
		return fmt.Errorf("commit into %s: %w", dst.where, err)
	}
	return nil
}

// copyRows copies table t from stx into dtx, calling each (if not nil) with every row's values
// before it is written, and returns the number of rows.
func copyRows(ctx context.Context, dtx, stx *writeTx, t copyTable, each func([]any) error) (int64, error) {
	names := make([]string, len(t.cols))
	for i, c := range t.cols {
		names[i] = c.name
	}
	list := strings.Join(names, ", ")
	rows, err := stx.QueryContext(ctx, `SELECT `+list+` FROM `+t.name+` ORDER BY `+t.key)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", t.name, err)
	}
	defer rows.Close()
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(t.cols)), ", ") + ")"
	insert := func(n int) string {
		return `INSERT INTO ` + t.name + ` (` + list + `) VALUES ` + strings.TrimSuffix(strings.Repeat(tuple+", ", n), ", ")
	}
	full := insert(copyBatch) // the same text every time, so that pgx prepares it once
	var (
		batch  = make([]any, 0, copyBatch*len(t.cols))
		copied int64
	)
	flush := func() error {
		n := len(batch) / len(t.cols)
		if n == 0 {
			return nil
		}
		q := full
		if n < copyBatch {
			q = insert(n)
		}
		if _, err := dtx.ExecContext(ctx, q, batch...); err != nil {
			return fmt.Errorf("write %s: %w", t.name, err)
		}
		copied += int64(n)
		batch = batch[:0]
		return nil
	}
	for rows.Next() {
		dest := make([]any, len(t.cols))
		for i, c := range t.cols {
			dest[i] = c.kind.dest()
		}
		if err := rows.Scan(dest...); err != nil {
			return 0, fmt.Errorf("read %s after %d rows: %w", t.name, copied+int64(len(batch)/len(t.cols)), err)
		}
		row := make([]any, len(dest))
		for i, p := range dest {
			row[i] = value(p)
		}
		if each != nil {
			if err := each(row); err != nil {
				return 0, err
			}
		}
		batch = append(batch, row...)
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", t.name, err)
	}
	return copied, flush()
}

// chainCheck checks the audit entries as they are copied, with the checks of Verify: the source
// is not copied at all if its own chain is broken.
type chainCheck struct {
	src  *DB
	last fleet.AuditEntry // the entry checked last: seq 0 and hash "" before the first
}

// next checks one row of the audit table, in the order of auditColumns.
func (c *chainCheck) next(row []any) error {
	e := fleet.AuditEntry{Seq: row[0].(int64), Actor: row[2].(string), Action: fleet.AuditAction(row[3].(string)),
		Device: row[4].(string), PrevHash: row[6].(string), Hash: row[7].(string), ActorName: row[8].(string)}
	e.Time = time.UnixMilli(row[1].(int64)).UTC() // as scanAudit reads it
	if bad, problem := checkEntry(&c.last, &e, row[5].(string)); problem != "" {
		return c.broken(bad, problem)
	}
	c.last = e
	return nil
}

func (c *chainCheck) broken(seq int64, problem string) error {
	return fmt.Errorf("%w on %s at entry %d: %s; nothing was copied (lockerhub audit verify on the source shows the same)",
		ErrUnverified, c.src.where, seq, problem)
}

// copyAuditHead copies the audit head, once chain has seen every entry, and checks that the
// entries lead to it.
func copyAuditHead(ctx context.Context, dtx, stx *writeTx, chain *chainCheck) error {
	var seq int64
	var hash string
	if err := stx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&seq, &hash); err != nil {
		return fmt.Errorf("read audit_head: %w", err)
	}
	if bad, problem := checkHead(&chain.last, seq, hash); problem != "" {
		return chain.broken(bad, problem)
	}
	res, err := dtx.ExecContext(ctx, `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`, seq, hash)
	if err != nil {
		return fmt.Errorf("write audit_head: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("write audit_head: %d rows updated (%v), want 1", n, err)
	}
	return nil
}

// copyAlertCounter moves dst's next alert id past every id src has given: past its highest
// alert id or, if higher, its own counter (sqlite_sequence, or the identity's sequence), which
// is ahead of the highest id when the newest alerts were deleted. PostgreSQL's sequence does not
// move for explicit ids at all, and SQLite's counter only to the highest id inserted.
func copyAlertCounter(ctx context.Context, dst *DB, dtx *writeTx, src *DB, stx *writeTx, maxID int64) error {
	var counter int64
	q := `SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'alerts'`
	if src.dialect == dialectPostgres {
		q = `SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('alerts', 'id')::regclass), 0)`
	}
	if err := stx.QueryRowContext(ctx, q).Scan(&counter); err != nil {
		return fmt.Errorf("read the alert id counter: %w", err)
	}
	next := max(counter, maxID)
	if next == 0 {
		return nil
	}
	var err error
	if dst.dialect == dialectPostgres {
		// setval is not undone by a rollback; on a destination without alerts, an id skipped
		// is all that can come of it.
		_, err = dtx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence('alerts', 'id')::regclass,
			greatest(?, coalesce(pg_sequence_last_value(pg_get_serial_sequence('alerts', 'id')::regclass), 0)))`, next)
	} else {
		if _, err = dtx.ExecContext(ctx, `INSERT INTO sqlite_sequence (name, seq) SELECT 'alerts', ?
			WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'alerts')`, next); err == nil {
			_, err = dtx.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = ? WHERE name = 'alerts' AND seq < ?`, next, next)
		}
	}
	if err != nil {
		return fmt.Errorf("move the alert id counter of %s: %w", dst.where, err)
	}
	return nil
}

// checkSchema returns an ErrSchema error if d records a migration this lockerhub does not know
// (a newer lockerhub wrote it, and may have added what Copy would leave behind) or if a copied
// table's columns are not exactly the ones Copy copies.
func checkSchema(ctx context.Context, d *DB, tx *writeTx) error {
	known, err := migrationsFor(migrations, d.dialect)
	if err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, `SELECT name FROM schema_migrations ORDER BY name`)
	if err != nil {
		return fmt.Errorf("read the migrations of %s: %w", d.where, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		if !slices.ContainsFunc(known, func(m migration) bool { return m.name == name }) {
			return fmt.Errorf("%w: %s records the migration %s, which this lockerhub does not know: copy with the lockerhub that wrote it",
				ErrSchema, d.where, name)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, t := range copyTables {
		want := make([]string, len(t.cols))
		for i, c := range t.cols {
			want[i] = c.name
		}
		if err := checkColumns(ctx, d, tx, t.name, want); err != nil {
			return err
		}
	}
	return checkColumns(ctx, d, tx, "audit_head", auditHeadColumns)
}

// checkColumns returns an ErrSchema error unless table has exactly the columns want.
func checkColumns(ctx context.Context, d *DB, tx *writeTx, table string, want []string) error {
	q := `SELECT name FROM pragma_table_info(?)`
	if d.dialect == dialectPostgres {
		q = `SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(?) AND attnum > 0 AND NOT attisdropped`
	}
	rows, err := tx.QueryContext(ctx, q, table)
	if err != nil {
		return fmt.Errorf("read the columns of %s in %s: %w", table, d.where, err)
	}
	defer rows.Close()
	var have []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		have = append(have, name)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var unknown, missing []string
	for _, c := range have {
		if !slices.Contains(want, c) {
			unknown = append(unknown, c)
		}
	}
	for _, c := range want {
		if !slices.Contains(have, c) {
			missing = append(missing, c)
		}
	}
	if len(unknown) > 0 || len(missing) > 0 {
		return fmt.Errorf("%w: in %s, the table %s has the columns %v that Copy does not know and lacks %v",
			ErrSchema, d.where, table, unknown, missing)
	}
	return nil
}

// checkEmpty returns an ErrNotEmpty error, saying what it holds, if d has a row in any of the
// copied tables or an audit head past 0.
func checkEmpty(ctx context.Context, d *DB, tx *writeTx) error {
	var held []string
	for _, t := range copyTables {
		var n int64
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+t.name).Scan(&n); err != nil {
			return fmt.Errorf("count the %s of %s: %w", t.name, d.where, err)
		}
		if n > 0 {
			held = append(held, fmt.Sprintf("%d in %s", n, t.name))
		}
	}
	var head int64
	if err := tx.QueryRowContext(ctx, `SELECT seq FROM audit_head WHERE id = 1`).Scan(&head); err != nil {
		return fmt.Errorf("read the audit head of %s: %w", d.where, err)
	}
	if head != 0 {
		held = append(held, fmt.Sprintf("an audit head at entry %d", head))
	}
	if len(held) == 0 {
		return nil
	}
	return fmt.Errorf("%w (%s holds %s): copy only into a new, empty database", ErrNotEmpty, d.where, strings.Join(held, ", "))
}

// checkNotSame returns an ErrSameStore error if dst and src are one database, however they were
// named: SQLite's file, resolved; PostgreSQL's server (the time it started and its port),
// database and schema.
func checkNotSame(ctx context.Context, dst, src *DB) error {
	if dst == src {
		return ErrSameStore
	}
	if dst.dialect != src.dialect {
		return nil
	}
	a, err := storeIdentity(ctx, dst)
	if err != nil {
		return fmt.Errorf("identify %s: %w", dst.where, err)
	}
	b, err := storeIdentity(ctx, src)
	if err != nil {
		return fmt.Errorf("identify %s: %w", src.where, err)
	}
	if a == b {
		return fmt.Errorf("%w (%s)", ErrSameStore, dst.where)
	}
	return nil
}

// storeIdentity returns a string that is the same for two handles on one database.
func storeIdentity(ctx context.Context, d *DB) (string, error) {
	if d.dialect == dialectSQLite {
		var file string
		if err := d.queryRow(ctx, `SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&file); err != nil {
			return "", err
		}
		if abs, err := filepath.Abs(file); err == nil {
			file = abs
		}
		if real, err := filepath.EvalSymlinks(file); err == nil {
			file = real
		}
		return "sqlite:" + file, nil
	}
	var started, db, schema string
	var port sql.NullInt64
	err := d.queryRow(ctx, `SELECT pg_postmaster_start_time()::text, inet_server_port(), current_database(),
		coalesce(current_schema(), '')`).Scan(&started, &port, &db, &schema)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("postgres:%s:%d/%s/%s", started, port.Int64, db, schema), nil
}
