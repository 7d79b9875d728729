package sqldb

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// AuditService is the SQL implementation of fleet.AuditService.
//
// The chain is serialized by the database, not in memory: the hub and the CLI append to the same
// SQLite file, and the hubs of a cluster to the same PostgreSQL database. Each append reads the
// head, computes the new hash and writes the entry and the new head in one transaction that no
// other append can interleave with: on SQLite an IMMEDIATE transaction, which runs alone; on
// PostgreSQL one that reads the head with SELECT ... FOR UPDATE, so the next append waits for
// it to commit and then reads the head it wrote. The device registry and the token store append
// their entries in the transactions of their changes (see DB.audited).
type AuditService struct {
	db *DB
}

var _ fleet.AuditService = (*AuditService)(nil)

// NewAuditService returns the audit trail in db.
func NewAuditService(db *DB) *AuditService { return &AuditService{db: db} }

const auditColumns = `seq, time, actor, action, device, detail, prev_hash, hash, actor_name`

// Append validates e and stores it as the entry after the head, filling in Seq, Time, PrevHash
// and Hash. e is left untouched if it fails.
func (s *AuditService) Append(ctx context.Context, e *fleet.AuditEntry) error {
	detail, err := encodeEntry(e)
	if err != nil {
		return err
	}
	next := *e
	tx, err := s.db.begin(ctx)
	if err == nil {
		defer tx.Rollback()
		if err = appendEntry(ctx, tx, &next, detail); err == nil {
			err = tx.Commit()
		}
	}
	if err != nil {
		return fmt.Errorf("append audit entry: %w", err)
	}
	*e = next
	return nil
}

// encodeEntry validates e and returns the canonical encoding of its detail, as stored.
func encodeEntry(e *fleet.AuditEntry) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return fleet.EncodeAuditDetail(e.Detail)
}

// appendEntry stores e, whose detail encodes as detail, as the entry after the head, in tx. The
// head is read for update, so the appends of every transaction form one chain, in the order
// they commit.
func appendEntry(ctx context.Context, tx *writeTx, e *fleet.AuditEntry, detail []byte) error {
	var head int64
	if err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`+tx.d.forUpdate()).Scan(&head, &e.PrevHash); err != nil {
		return fmt.Errorf("read head: %w", err)
	}
	e.Seq = head + 1
	e.Time = tx.d.now().UTC().Truncate(time.Millisecond)
	var err error
	if e.Hash, err = e.ComputeHash(); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit (`+auditColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, e.Time.UnixMilli(), e.Actor, string(e.Action), e.Device, string(detail), e.PrevHash, e.Hash, e.ActorName); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`, e.Seq, e.Hash)
	return err
}

// notRecorded is the error of a change, named by what, undone because the audit trail could not
// record it. A domain error (an entry too large) keeps its code and says why; any other cause
// keeps its text for logs and the CLI but is also a fleet.Error, whose message alone the API
// shows, so that its clients learn what happened without the store's internals.
func notRecorded(what string, err error) error {
	if fleet.ErrorCode(err) != fleet.EINTERNAL {
		return fmt.Errorf("%s: not made, since the audit trail could not record it: %w", what, err)
	}
	return fmt.Errorf("%w: %w", fleet.Errorf(fleet.EINTERNAL, "%s: not made, since the audit trail could not record it", what), err)
}

// audited makes a change and appends the entries recording it in one transaction: both commit
// or neither does, so that no change goes unrecorded and no entry records a change that was not
// made. change runs first, in tx, and returns its own errors; what names the change in the
// errors of the transaction. An entry that cannot be appended undoes the change, and the error
// says so.
func (d *DB) audited(ctx context.Context, what string, change func(tx *writeTx) error, entries ...*fleet.AuditEntry) error {
	tx, err := d.begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback()
	if err := change(tx); err != nil {
		return err
	}
	for _, e := range entries {
		detail, err := encodeEntry(e)
		if err == nil {
			err = appendEntry(ctx, tx, e, detail)
		}
		if err != nil {
			return notRecorded(what, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Entries calls fn for each entry matching f, in seq order.
func (s *AuditService) Entries(ctx context.Context, f fleet.AuditFilter, fn func(*fleet.AuditEntry) error) error {
	var where []string
	var args []any
	if !f.Since.IsZero() {
		where, args = append(where, "time >= ?"), append(args, f.Since.UnixMilli())
	}
	if f.Device != "" {
		where, args = append(where, "device = ?"), append(args, f.Device)
	}
	q := `SELECT ` + auditColumns + ` FROM audit`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	rows, err := s.db.query(ctx, q+` ORDER BY seq`, args...)
	if err != nil {
		return fmt.Errorf("read audit trail: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, detail, err := scanAudit(rows)
		if err != nil {
			return err
		}
		if e.Detail, err = fleet.DecodeAuditDetail([]byte(detail)); err != nil {
			return fmt.Errorf("audit entry %d: %w", e.Seq, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Head returns the head as audit_head records it and the time of the entry it names (zero
// for an empty trail, or when that entry is missing: Verify says why).
func (s *AuditService) Head(ctx context.Context) (fleet.AuditHead, time.Time, error) {
	var h fleet.AuditHead
	var ms sql.NullInt64
	if err := s.db.queryRow(ctx, `SELECT h.seq, h.hash, a.time FROM audit_head h LEFT JOIN audit a ON a.seq = h.seq WHERE h.id = 1`).
		Scan(&h.Seq, &h.Hash, &ms); err != nil {
		return fleet.AuditHead{}, time.Time{}, fmt.Errorf("read audit head: %w", err)
	}
	if !ms.Valid {
		return h, time.Time{}, nil
	}
	return h, time.UnixMilli(ms.Int64).UTC(), nil
}

// Verify walks the whole trail in seq order, recomputing every hash and link, and checks that
// it ends at the head and contains every witnessed head. FirstBad names the first entry that
// fails, or the first one missing:
//
//   - an entry edited in place fails its own hash: that entry;
//   - an entry edited with its hash recomputed breaks the next entry's prev_hash: the next
//     entry, since the break alone cannot tell which of the two changed (the last entry is
//     checked against the head instead: that entry);
//   - entries deleted leave a gap in seq: the first missing seq;
//   - entries swapped fail their hashes, which cover seq: the lower one;
//   - entries deleted from the end fall short of the head: the first missing seq;
//   - entries deleted from the end with the head rewound to the last one left leave a chain
//     that is whole: only a witnessed head past its end shows them, as the first missing seq;
//   - a witnessed entry replaced (the chain rewritten, or cut and appended to again): that
//     entry.
//
// Everything is read in one snapshot, so appends made meanwhile are not mistaken for a head that
// points past the last row.
func (s *AuditService) Verify(ctx context.Context, witnessed ...fleet.AuditHead) (fleet.VerifyResult, error) {
	var res fleet.VerifyResult
	for _, w := range witnessed {
		if err := w.Validate(); err != nil {
			return res, err
		}
	}
	// Entries come in seq order, so the witnessed heads are checked off in that order too.
	pending := slices.SortedFunc(slices.Values(witnessed), func(a, b fleet.AuditHead) int { return cmp.Compare(a.Seq, b.Seq) })
	tx, err := s.db.beginSnapshot(ctx) // appends go on meanwhile
	if err != nil {
		return res, fmt.Errorf("verify audit trail: %w", err)
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&res.HeadSeq, &res.HeadHash); err != nil {
		return res, fmt.Errorf("verify audit trail: read head: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit ORDER BY seq`)
	if err != nil {
		return res, fmt.Errorf("verify audit trail: %w", err)
	}
	defer rows.Close()
	var last fleet.AuditEntry // what the first entry follows: seq 0, hash ""
	for rows.Next() {
		e, detail, err := scanAudit(rows)
		if err != nil {
			return res, fmt.Errorf("verify audit trail: %w", err)
		}
		res.Entries++
		if res.Problem == "" { // past the first problem, only count
			res.FirstBad, res.Problem = checkEntry(&last, e, detail)
			if res.Problem == "" {
				res.FirstBad, res.Problem = checkWitnessed(e, &pending)
			}
			last = *e
		}
	}
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("verify audit trail: %w", err)
	}
	if res.Problem == "" {
		res.FirstBad, res.Problem = checkHead(&last, res.HeadSeq, res.HeadHash)
	}
	if res.Problem == "" && len(pending) > 0 {
		res.FirstBad, res.Problem = last.Seq+1, fmt.Sprintf("it is missing: entry %d was witnessed as %s, but the trail and its head end at entry %d, so entries were cut from its end and the head rewound", pending[0].Seq, pending[0], last.Seq)
	}
	res.OK = res.Problem == ""
	return res, nil
}

// checkEntry returns what is wrong with e as the entry after prev, or 0 and "".
func checkEntry(prev, e *fleet.AuditEntry, detail string) (int64, string) {
	if want := prev.Seq + 1; e.Seq != want {
		return want, fmt.Sprintf("it is missing (the next entry stored is %d): entries were deleted or renumbered", e.Seq)
	}
	var err error
	if e.Detail, err = fleet.DecodeAuditDetail([]byte(detail)); err != nil {
		return e.Seq, err.Error() + ": the entry was changed after it was written"
	}
	if h, err := e.ComputeHash(); err != nil || h != e.Hash {
		return e.Seq, "its contents do not match its hash: the entry was changed after it was written"
	}
	if e.PrevHash != prev.Hash {
		return e.Seq, fmt.Sprintf("its prev_hash does not match the hash of entry %d: one of the two was changed", prev.Seq)
	}
	return 0, ""
}

// checkWitnessed returns what is wrong with e as the entry the witnessed heads with its seq
// name, or 0 and "", and takes them off *pending, which is sorted by seq and holds no seq
// below e's: the entries before e were all there.
func checkWitnessed(e *fleet.AuditEntry, pending *[]fleet.AuditHead) (int64, string) {
	for len(*pending) > 0 && (*pending)[0].Seq == e.Seq {
		w := (*pending)[0]
		*pending = (*pending)[1:]
		if w.Hash != e.Hash {
			return e.Seq, fmt.Sprintf("it is not the entry witnessed as %s (its hash is %s): the trail was rewritten up to it, or cut before it and appended to again", w, e.Hash)
		}
	}
	return 0, ""
}

// checkHead returns what is wrong with last as the last entry of a trail whose head is seq and
// hash, or 0 and "".
func checkHead(last *fleet.AuditEntry, seq int64, hash string) (int64, string) {
	switch {
	case seq > last.Seq:
		return last.Seq + 1, fmt.Sprintf("it is missing: the head records %d entries but the trail stops after entry %d, so entries were deleted from its end", seq, last.Seq)
	case seq < last.Seq:
		return seq + 1, fmt.Sprintf("it is past the head, which records %d entries: it was written behind lockerhub's back", seq)
	case hash != last.Hash:
		return last.Seq, "its hash does not match the head's: the last entry was changed"
	}
	return 0, ""
}

// scanAudit reads one row, leaving its detail as stored: a detail that does not decode is an
// error for Entries but evidence of tampering for Verify.
func scanAudit(row scanner) (*fleet.AuditEntry, string, error) {
	var e fleet.AuditEntry
	var ms int64
	var detail string
	if err := row.Scan(&e.Seq, &ms, &e.Actor, &e.Action, &e.Device, &detail, &e.PrevHash, &e.Hash, &e.ActorName); err != nil {
		return nil, "", err
	}
	e.Time = time.UnixMilli(ms).UTC()
	return &e, detail, nil
}
