package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"path/filepath"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// Timing of Lead on PostgreSQL.
const (
	leadRetry       = time.Second     // a hub that does not lead tries again this often; also the pause after fn returns
	leadPing        = time.Second     // the leader checks its connection this often
	leadPingTimeout = 2 * time.Second // a check that takes longer means the connection is lost
)

// Lead runs fn whenever this process holds the leadership for name, and blocks until ctx is
// done (then it returns nil) or the DB is closed (ErrClosed). fn's context is cancelled when
// the leadership is lost, when ctx is done, or when the DB is closed; the leadership is released
// only once fn has returned. When fn returns, Lead releases the leadership, waits a second and
// competes again. An empty name is an error. Errors reaching the database are not returned:
// Lead keeps trying, every second.
//
// On PostgreSQL the leadership is a session-level advisory lock (pg_try_advisory_lock, its key
// the FNV-1a hash of "lockerhub:lead:" + name) held by one connection set aside for it, so at
// most one hub of those sharing the database holds it. A hub that does not lead tries again
// every second. The leader pings its connection every second; a ping that fails or takes more
// than two seconds means the leadership is lost: fn's context is cancelled and, once fn has
// returned, the connection is closed. A hub that is killed or stops closes its connection and
// the server releases the lock, so another hub leads within about a second.
//
// The limits: the server notices a connection that died without closing (a cut network, a
// frozen machine) only when TCP tells it, which can take minutes, and no other hub leads
// meanwhile. The other way round, a leader cut off from the database keeps running fn until
// its ping fails (up to about three seconds), and its fn may run on past that until it heeds
// its context; the server may have let another hub lead by then. So for a moment two hubs may
// both believe they lead: work whose effect must happen once must still rely on the database
// (the unique indexes, compare-and-set updates, the audit head's row lock), with leadership
// only keeping the hubs from all doing the same work.
//
// On SQLite the database belongs to one hub, and leadership is a lock of the process on the
// database file and name: the first caller leads at once, another (a second handle on the same
// file) leads when the first releases. Other processes on the file (the CLI) are not involved.
func (d *DB) Lead(ctx context.Context, name string, fn func(ctx context.Context)) error {
	if name == "" {
		return errors.New("lead: empty name")
	}
	for {
		if err := d.leadOver(ctx); err != nil || ctx.Err() != nil {
			return err
		}
		var t *term
		if d.dialect == dialectPostgres {
			t = d.acquirePostgres(ctx, lockKey("lockerhub:lead:"+name))
		} else {
			t = d.acquireLocal(ctx, name)
		}
		if t != nil {
			d.runLeader(ctx, t, fn)
		}
		select {
		case <-ctx.Done():
		case <-d.stop:
		case <-time.After(leadRetry):
		}
	}
}

// leadOver returns ErrClosed once Close was called.
func (d *DB) leadOver(ctx context.Context) error {
	select {
	case <-d.stop:
		return ErrClosed
	default:
		return nil
	}
}

// term is one leadership held: lost is closed if it is lost before release is called; release
// gives it up.
type term struct {
	lost    <-chan struct{}
	release func()
}

// runLeader runs fn until it returns, cancelling its context when the leadership is lost, ctx
// is done or the DB is closed, then releases the leadership.
func (d *DB) runLeader(ctx context.Context, t *term, fn func(context.Context)) {
	defer t.release()
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(fctx)
	}()
	select {
	case <-done:
	case <-t.lost:
	case <-d.stop:
	case <-fctx.Done():
	}
	cancel()
	<-done
}

// holdLead registers a leadership held, so that Close waits for its release; it returns false
// once Close was called.
func (d *DB) holdLead() bool {
	d.leadMu.Lock()
	defer d.leadMu.Unlock()
	if d.leadClosed {
		return false
	}
	d.leads.Add(1)
	return true
}

// acquirePostgres tries once to take the advisory lock key on a connection of its own, and
// returns the term, or nil if another session holds it or the database cannot be reached.
func (d *DB) acquirePostgres(ctx context.Context, key int64) *term {
	if !d.holdLead() {
		return nil
	}
	held := false
	defer func() {
		if !held {
			d.leads.Done()
		}
	}()
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return nil
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
		// Whether the lock was taken before the error is unknown: the session must end.
		discard(conn)
		return nil
	}
	if !ok {
		conn.Close() // back to the pool: it holds nothing
		return nil
	}
	held = true
	lost := make(chan struct{})
	stop := make(chan struct{})
	pinged := make(chan struct{})
	go func() {
		defer close(pinged)
		t := time.NewTicker(leadPing)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			pctx, cancel := context.WithTimeout(context.Background(), leadPingTimeout)
			err := conn.PingContext(pctx)
			cancel()
			if err != nil {
				close(lost)
				return
			}
		}
	}()
	return &term{lost: lost, release: func() {
		close(stop)
		<-pinged
		// Closing the session releases the lock, whatever state the connection is in;
		// pg_advisory_unlock and a return to the pool would leave the lock held if the unlock
		// failed half-way.
		discard(conn)
		d.leads.Done()
	}}
}

// discard closes the connection itself rather than returning it to the pool, ending its
// session on the server (and the advisory locks the session holds).
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(dc any) error {
		if c, ok := dc.(*stdlib.Conn); ok {
			ctx, cancel := context.WithTimeout(context.Background(), leadPingTimeout)
			defer cancel()
			_ = c.Conn().Close(ctx)
		}
		return driver.ErrBadConn // database/sql drops a connection that reports this
	})
	_ = conn.Close()
}

// localLeads holds the SQLite leaderships of this process, by database file and name.
var localLeads = struct {
	sync.Mutex
	m map[string]chan struct{}
}{m: map[string]chan struct{}{}}

// acquireLocal waits for the process's lock on this database and name, and returns the term,
// or nil if ctx is done or the DB closed first.
func (d *DB) acquireLocal(ctx context.Context, name string) *term {
	path, err := filepath.Abs(d.where)
	if err != nil {
		path = d.where
	}
	localLeads.Lock()
	slot := localLeads.m[path+"\x00"+name]
	if slot == nil {
		slot = make(chan struct{}, 1)
		localLeads.m[path+"\x00"+name] = slot
	}
	localLeads.Unlock()
	if !d.holdLead() {
		return nil
	}
	select {
	case slot <- struct{}{}:
		return &term{release: func() {
			<-slot
			d.leads.Done()
		}}
	case <-ctx.Done():
	case <-d.stop:
	}
	d.leads.Done()
	return nil
}
