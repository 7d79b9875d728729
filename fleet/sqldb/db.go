// Package sqldb stores the hub's own data (the device registry, tokens, commands, alerts and the
// audit trail) in SQL: one SQLite file in the data directory for a hub of its own, or one
// PostgreSQL database that the several hubs of a cluster share. Both engines run the same
// schema, migrations and queries (see Open).
//
// SQLite goes through the pure-Go modernc.org/sqlite driver so that the hub builds without cgo.
// The database runs in WAL mode so that the CLI can read and write it while the hub serves:
// readers never block the writer, and every write transaction starts IMMEDIATE so two writers
// wait on the busy timeout instead of failing half-way. The hub's own writers also take turns
// on a lock of the process (see lock).
//
// PostgreSQL goes through pgx (github.com/jackc/pgx/v5/stdlib). There, several hub processes
// write at once, so every guarantee comes from the database and none from memory: the audit
// chain's head row is locked (SELECT ... FOR UPDATE) by each append, unique indexes refuse a
// second open alert or a reused idempotency key, command transitions are compare-and-set
// updates, and batches are transactions. Leadership among the hubs (Lead) is a PostgreSQL
// advisory lock.
//
// The hub learns about registry changes made by other processes (the CLI, another hub) through
// WatchRegistry, which polls a version that triggers bump on every registry change.
package sqldb

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/lockerhub/lockerhub/internal/privdir"
)

//go:embed migrations/*.sql
var migrations embed.FS

// FileName is the database file inside the data directory.
const FileName = "lockerhub.db"

// maxConns bounds the connections to the database; see Open.
const maxConns = 16

// Errors returned by Open and Lead.
var (
	// ErrStoreURL: store.url names neither SQLite (empty) nor PostgreSQL.
	ErrStoreURL = errors.New("store.url must be empty (SQLite in the data directory) or a postgres:// or postgresql:// URL")
	// ErrClosed: the DB was closed.
	ErrClosed = errors.New("database closed")
)

// dialect is the SQL engine behind a DB.
type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

func (d dialect) String() string {
	if d == dialectPostgres {
		return "postgres"
	}
	return "sqlite"
}

// DB is an open lockerhub database.
type DB struct {
	db      *sql.DB
	dialect dialect
	where   string           // the file, or the URL without its password: for errors
	now     func() time.Time // replaced in tests that need fixed times
	writer  chan struct{}    // SQLite: held by the one writer of this process; see exec and begin
	stop    chan struct{}    // closed by Close: ends the checkpointer and every Lead
	stopped chan struct{}    // closed when the checkpointer has ended

	leadMu     sync.Mutex     // guards leadClosed and the start of leads
	leadClosed bool           // set by Close: no Lead may take the leadership any more
	leads      sync.WaitGroup // one per leadership held (or being taken); Close waits for them

	closeOnce sync.Once
	closeErr  error
}

// checkpointEvery is how often the write-ahead log is copied into the database. SQLite would
// do it itself inside whichever commit crosses 1,000 pages, with an fsync of the database file,
// so that every ~few hundredth remote unlock would wait for a checkpoint; a goroutine does it
// instead, beside the writers (PASSIVE: it never blocks them). The last connection to close
// checkpoints what is left, so a CLI process, which has no checkpointer running for long,
// leaves no log behind.
const checkpointEvery = time.Second

// Open opens the database that storeURL names and applies the migrations it has not seen yet:
//
//   - "" is SQLite in dataDir/lockerhub.db, created (with dataDir) if needed;
//   - postgres://... or postgresql://... is PostgreSQL (any URL or parameter pgx accepts, e.g.
//     postgres://lockerhub:secret@db.example:5432/lockerhub?sslmode=verify-full); dataDir is
//     not used. The database must exist; its tables are created here.
//
// Any other URL is an ErrStoreURL error. Errors never contain the URL's password. Several hubs
// may open one empty PostgreSQL database at once: the migrations are applied once, under a
// lock in the database (see migrate).
func Open(ctx context.Context, storeURL, dataDir string) (*DB, error) {
	if storeURL == "" {
		return openSQLite(ctx, dataDir)
	}
	scheme, _, ok := strings.Cut(storeURL, "://")
	if !ok {
		return nil, fmt.Errorf("%w (got a value without a scheme)", ErrStoreURL)
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		return openPostgres(ctx, storeURL)
	}
	return nil, fmt.Errorf("%w (got the scheme %q)", ErrStoreURL, scheme)
}

func newDB(db *sql.DB, dialect dialect, where string) *DB {
	return &DB{db: db, dialect: dialect, where: where, now: time.Now, writer: make(chan struct{}, 1),
		stop: make(chan struct{}), stopped: make(chan struct{})}
}

func openSQLite(ctx context.Context, dataDir string) (*DB, error) {
	if err := privdir.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dataDir, FileName)
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "foreign_keys(ON)", "synchronous(NORMAL)", "wal_autocheckpoint(0)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	// SQLite runs one writer at a time and its readers on the CPU, so connections beyond a few
	// per core buy nothing. Unbounded, a reconnect storm of 10,000 units opened one connection
	// (three file descriptors: database, WAL, shared memory) per concurrent credential lookup
	// and ran the hub out of file descriptors. Idle ones are kept, as opening one costs the file
	// opens and the pragmas.
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	d := newDB(db, dialectSQLite, path)
	if err := d.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	go d.checkpoints()
	return d, nil
}

func openPostgres(ctx context.Context, storeURL string) (*DB, error) {
	where := redactURL(storeURL)
	secrets := passwords(storeURL)
	cfg, err := pgx.ParseConfig(storeURL)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", where, scrub(err, secrets))
	}
	db := stdlib.OpenDB(*cfg)
	// A hub's requests are short, so it gets the same bound as on SQLite; Lead's connections
	// count against it. Sixteen per hub is why a cluster of more than five hubs (plus the CLI)
	// needs a PostgreSQL max_connections above its default of 100, or a pooler in front.
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", where, scrub(err, secrets))
	}
	d := newDB(db, dialectPostgres, where)
	close(d.stopped) // no checkpointer: PostgreSQL checkpoints itself
	if err := d.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", where, scrub(err, secrets))
	}
	return d, nil
}

// redactURL returns the URL with its password, in the user information or as a parameter,
// replaced by xxxxx; or a placeholder if it does not parse.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(store.url, which does not parse as a URL)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// passwords returns the passwords in the URL, to scrub from errors.
func passwords(s string) []string {
	var out []string
	if u, err := url.Parse(s); err == nil {
		if p, ok := u.User.Password(); ok && p != "" {
			out = append(out, p, url.QueryEscape(p), url.PathEscape(p))
		}
		if p := u.Query().Get("password"); p != "" {
			out = append(out, p, url.QueryEscape(p))
		}
	}
	return out
}

// scrubbedError is an error whose message has the passwords replaced; it unwraps to the
// original, for errors.Is and errors.As.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// scrub returns err with every one of secrets removed from its message. pgx already redacts
// the password of a URL in its own errors, but not every spelling of it.
func scrub(err error, secrets []string) error {
	msg := err.Error()
	changed := false
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			msg, changed = strings.ReplaceAll(msg, s, "xxxxx"), true
		}
	}
	if !changed {
		return err
	}
	return &scrubbedError{msg: msg, err: err}
}

// Close ends every Lead, waiting for their fn to return (see Lead), stops the checkpointer and
// closes the database. Calls after the first do nothing.
func (d *DB) Close() error {
	d.closeOnce.Do(func() {
		d.leadMu.Lock()
		d.leadClosed = true
		d.leadMu.Unlock()
		close(d.stop)
		<-d.stopped
		d.leads.Wait()
		d.closeErr = d.db.Close()
	})
	return d.closeErr
}

// checkpoints copies the write-ahead log into the database every checkpointEvery until Close.
func (d *DB) checkpoints() {
	defer close(d.stopped)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			// A failure (the database busy with another process's checkpoint, say) leaves the
			// log to the next round.
			d.db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
		}
	}
}

// migration is one numbered step of the schema: the name it is recorded under in
// schema_migrations (the portable file's, whichever dialect ran) and the file this dialect runs.
type migration struct {
	name, file string
}

// postgresSuffix marks the PostgreSQL variant of a migration: migrations/0001_devices.sql runs
// on SQLite (and on PostgreSQL when it has no variant), migrations/0001_devices.postgres.sql
// runs on PostgreSQL in its place. Both are recorded as migrations/0001_devices.sql, so that
// the numbering and the tables stay one; a variant differs only where the syntax must (trigger
// bodies, identity columns, BYTEA, 64-bit keys), and has to mean the same.
const postgresSuffix = ".postgres.sql"

// migrationsFor returns the migrations of dialect in order. A variant without its portable file
// is an error: the numbering must be the same on both engines.
func migrationsFor(fsys fs.FS, dialect dialect) ([]migration, error) {
	files, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, f := range files {
		have[f] = true
	}
	var out []migration
	for _, f := range files {
		if base, ok := strings.CutSuffix(f, postgresSuffix); ok {
			if !have[base+".sql"] {
				return nil, fmt.Errorf("%s has no portable %s.sql beside it", f, base)
			}
			continue
		}
		m := migration{name: f, file: f}
		if v := strings.TrimSuffix(f, ".sql") + postgresSuffix; dialect == dialectPostgres && have[v] {
			m.file = v
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// migrateLockKey is the PostgreSQL advisory lock that serializes migrations among hubs; Lead's
// keys come from the same hash, so they cannot collide with it.
var migrateLockKey = lockKey("lockerhub:migrate")

// lockKey turns a name into a PostgreSQL advisory lock key (FNV-1a, 64 bits).
func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// migrate applies the migrations that the database has not seen yet, each in its own
// transaction, in name order. On PostgreSQL every one of those transactions starts by taking
// a transaction-level advisory lock, so that hubs starting at once against an empty database
// take turns: the second finds the migration recorded and skips it. (CREATE TABLE IF NOT EXISTS
// alone is not enough there: two sessions creating the same table at once can both pass the
// check, and one fails.) On SQLite the IMMEDIATE transaction serializes them.
func (d *DB) migrate(ctx context.Context) error {
	list, err := migrationsFor(migrations, d.dialect)
	if err != nil {
		return err
	}
	if err := d.migrateStep(ctx, func(tx *writeTx) error {
		_, err := tx.ExecContext(ctx,
			`CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`)
		return err
	}); err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	for _, m := range list {
		if err := d.migrateStep(ctx, func(tx *writeTx) error { return d.migrateFile(ctx, tx, m) }); err != nil {
			return fmt.Errorf("migration %s: %w", m.file, err)
		}
	}
	return nil
}

// migrateStep runs fn in a write transaction that holds the migration lock.
func (d *DB) migrateStep(ctx context.Context, fn func(*writeTx) error) error {
	tx, err := d.begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if d.dialect == dialectPostgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, migrateLockKey); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func (d *DB) migrateFile(ctx context.Context, tx *writeTx, m migration) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE name = ?`, m.name).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	body, err := migrations.ReadFile(m.file)
	if err != nil {
		return err
	}
	// Not rebound: a migration has no parameters, and its function bodies may hold anything.
	if _, err := tx.Tx.ExecContext(ctx, string(body)); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)`, m.name, d.now().UnixMilli())
	return err
}

// WatchRegistry calls onChange whenever the device registry changes, checking every interval
// until ctx is done, then returns nil. Changes made by other processes count (the CLI, another
// hub on the same PostgreSQL), so the hub reacts at once to a device disabled, removed or given
// a new secret while it runs. It returns an error if the version cannot be read.
func (d *DB) WatchRegistry(ctx context.Context, interval time.Duration, onChange func()) error {
	version := func() (v int64, err error) {
		err = d.queryRow(ctx, `SELECT version FROM registry_version WHERE id = 1`).Scan(&v)
		return v, err
	}
	last, err := version()
	if err != nil {
		return fmt.Errorf("watch registry: %w", err)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		v, err := version()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch registry: %w", err)
		}
		if v != last {
			last = v
			onChange()
		}
	}
}

// Ping checks that the database can be read.
func (d *DB) Ping(ctx context.Context) error {
	var n int
	return d.queryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n)
}

// Queries are written once, for both engines, with ? placeholders; rebind turns them into
// PostgreSQL's $1, $2, ... A few constructs differ and are asked of the DB: forUpdate.

// rebind returns query with its ? placeholders numbered $1, $2, ... in order, for PostgreSQL.
// A ? inside a string literal ('...'), a quoted identifier ("...") or a comment (-- to the end
// of the line, /* ... */) is left alone. Dollar-quoted strings ($$...$$) are not recognized:
// queries with parameters do not use them (migrations, which do, are not rebound).
func rebind(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			// To the closing quote; a doubled quote inside ('it''s') closes and reopens, which
			// comes to the same.
			j := strings.IndexByte(query[i+1:], c)
			if j < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+j+2])
			i += j + 1
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+j+1])
			i += j
		case c == '/' && i+1 < len(query) && query[i+1] == '*':
			j := strings.Index(query[i+2:], "*/")
			if j < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+j+4])
			i += j + 3
		case c == '?':
			n++
			fmt.Fprintf(&b, "$%d", n)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// sql returns query in this database's dialect.
func (d *DB) sql(query string) string {
	if d.dialect == dialectPostgres {
		return rebind(query)
	}
	return query
}

// forUpdate is the clause that locks the rows a SELECT reads until the transaction ends. SQLite
// has none and needs none: its write transactions run one at a time.
func (d *DB) forUpdate() string {
	if d.dialect == dialectPostgres {
		return " FOR UPDATE"
	}
	return ""
}

func (d *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return d.db.QueryContext(ctx, d.sql(query), args...)
}

func (d *DB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return d.db.QueryRowContext(ctx, d.sql(query), args...)
}

// The hub's writers take turns on a lock of their own before they write to SQLite. SQLite lets
// one writer in at a time and makes the others poll, sleeping 1 to 100 ms between tries (its
// busy handler); under load those sleeps, not the writes, made a remote unlock (five writes)
// take seconds. Writers in other processes, such as the CLI, still meet the busy timeout.
//
// PostgreSQL writers run side by side and wait on row locks in the server; the lock is not
// taken there, since it would protect nothing against the other hubs.

func (d *DB) lock(ctx context.Context) error {
	if d.dialect != dialectSQLite {
		return nil
	}
	select {
	case d.writer <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *DB) unlock() {
	if d.dialect == dialectSQLite {
		<-d.writer
	}
}

// exec runs one writing statement.
func (d *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := d.lock(ctx); err != nil {
		return nil, err
	}
	defer d.unlock()
	return d.db.ExecContext(ctx, d.sql(query), args...)
}

// execScan runs one writing statement that returns a row (INSERT ... RETURNING) and scans it.
func (d *DB) execScan(ctx context.Context, query string, args []any, dest ...any) error {
	if err := d.lock(ctx); err != nil {
		return err
	}
	defer d.unlock()
	return d.db.QueryRowContext(ctx, d.sql(query), args...).Scan(dest...)
}

// writeTx is a transaction whose statements are written with ? placeholders, like every query
// of the package. A write transaction holds the SQLite writer lock until Commit or Rollback.
type writeTx struct {
	*sql.Tx
	d       *DB
	release func()
}

// begin starts a write transaction (IMMEDIATE on SQLite: see Open).
func (d *DB) begin(ctx context.Context) (*writeTx, error) {
	if err := d.lock(ctx); err != nil {
		return nil, err
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		d.unlock()
		return nil, err
	}
	return &writeTx{Tx: tx, d: d, release: sync.OnceFunc(d.unlock)}, nil
}

// beginSnapshot starts a read-only transaction in which every statement sees the same
// snapshot: SQLite's deferred read transaction does; PostgreSQL's default (READ COMMITTED)
// does not, so it asks for REPEATABLE READ.
func (d *DB) beginSnapshot(ctx context.Context) (*writeTx, error) {
	opts := &sql.TxOptions{ReadOnly: true} // deferred on SQLite: appends go on
	if d.dialect == dialectPostgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := d.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &writeTx{Tx: tx, d: d, release: func() {}}, nil
}

func (t *writeTx) Commit() error {
	defer t.release()
	return t.Tx.Commit()
}

func (t *writeTx) Rollback() error {
	defer t.release()
	return t.Tx.Rollback()
}

func (t *writeTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.Tx.ExecContext(ctx, t.d.sql(query), args...)
}

func (t *writeTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.Tx.QueryContext(ctx, t.d.sql(query), args...)
}

func (t *writeTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return t.Tx.QueryRowContext(ctx, t.d.sql(query), args...)
}

func (t *writeTx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return t.Tx.PrepareContext(ctx, t.d.sql(query))
}

// pgUniqueViolation is PostgreSQL's SQLSTATE for unique_violation.
const pgUniqueViolation = "23505"

// isUniqueViolation reports whether err is a primary key or unique index refusing a row, on
// either engine.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == pgUniqueViolation
}
