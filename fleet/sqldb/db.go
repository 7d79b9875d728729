// Package sqldb stores the hub's own data (the device registry, tokens, commands, alerts and the
// audit trail) in one SQLite file in the data directory, through the pure-Go
// modernc.org/sqlite driver so that the hub builds without cgo.
//
// The database runs in WAL mode so that the CLI can read and write it while the hub serves:
// readers never block the writer, and every write transaction starts IMMEDIATE so two writers
// wait on the busy timeout instead of failing half-way. The hub learns about changes made by
// other processes through WatchRegistry, which polls a version that triggers bump on every
// registry change.
package sqldb

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// FileName is the database file inside the data directory.
const FileName = "lockerhub.db"

// maxConns bounds the connections to the database; see Open.
const maxConns = 16

// DB is an open lockerhub database.
type DB struct {
	db      *sql.DB
	now     func() time.Time // replaced in tests that need fixed times
	writer  chan struct{}    // held by the one writer of this process; see exec and begin
	stop    chan struct{}    // closed by Close: ends the checkpointer
	stopped chan struct{}

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

// Open opens (creating if needed) the database in dataDir and applies pending migrations.
func Open(ctx context.Context, dataDir string) (*DB, error) {
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
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
	d := &DB{db: db, now: time.Now, writer: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	if err := d.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	go d.checkpoints()
	return d, nil
}

// Close stops the checkpointer and closes the database. Calls after the first do nothing.
func (d *DB) Close() error {
	d.closeOnce.Do(func() {
		close(d.stop)
		<-d.stopped
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

// migrate applies the embedded migrations that the database has not seen yet, each in its own
// transaction, in file name order.
func (d *DB) migrate(ctx context.Context) error {
	if _, err := d.exec(ctx,
		`CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		if err := d.migrateFile(ctx, name); err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
	}
	return nil
}

func (d *DB) migrateFile(ctx context.Context, name string) error {
	tx, err := d.begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE name = ?`, name).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	body, err := migrations.ReadFile(name)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, string(body)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)`,
		name, d.now().UnixMilli()); err != nil {
		return err
	}
	return tx.Commit()
}

// WatchRegistry calls onChange whenever the device registry changes, checking every interval
// until ctx is done. Changes made by other processes count (the CLI works on the same file), so
// the hub reacts at once to a device disabled, removed or given a new secret while it runs.
func (d *DB) WatchRegistry(ctx context.Context, interval time.Duration, onChange func()) error {
	version := func() (v int64, err error) {
		err = d.db.QueryRowContext(ctx, `SELECT version FROM registry_version`).Scan(&v)
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

// Ping checks that the database file can be read.
func (d *DB) Ping(ctx context.Context) error {
	var n int
	return d.db.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n)
}

// The hub's writers take turns on a lock of their own before they write. SQLite lets one
// writer in at a time and makes the others poll, sleeping 1 to 100 ms between tries (its busy
// handler); under load those sleeps, not the writes, made a remote unlock (five writes) take
// seconds. Writers in other processes, such as the CLI, still meet the busy timeout.

func (d *DB) lock(ctx context.Context) error {
	select {
	case d.writer <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *DB) unlock() { <-d.writer }

// exec runs one writing statement.
func (d *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := d.lock(ctx); err != nil {
		return nil, err
	}
	defer d.unlock()
	return d.db.ExecContext(ctx, query, args...)
}

// writeTx is a write transaction; it holds the writer lock until Commit or Rollback.
type writeTx struct {
	*sql.Tx
	release func()
}

// begin starts a write transaction (IMMEDIATE: see Open).
func (d *DB) begin(ctx context.Context) (*writeTx, error) {
	if err := d.lock(ctx); err != nil {
		return nil, err
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		d.unlock()
		return nil, err
	}
	return &writeTx{Tx: tx, release: sync.OnceFunc(d.unlock)}, nil
}

func (t *writeTx) Commit() error {
	defer t.release()
	return t.Tx.Commit()
}

func (t *writeTx) Rollback() error {
	defer t.release()
	return t.Tx.Rollback()
}
