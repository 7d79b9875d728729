package sqldb

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// ParcelStore keeps parcels and the version of each unit's code set (the parcels service's
// store). Every change of a parcel is made in one transaction with its audit entry and, when
// the change adds a live code to its unit's set or takes one out, with the bump of the set's
// version, so that a unit is never left holding a set the hub believes it replaced.
type ParcelStore struct {
	db *DB
}

// NewParcelStore returns the parcel store in db.
func NewParcelStore(db *DB) *ParcelStore { return &ParcelStore{db: db} }

const parcelColumns = `id, device, registration, site, door, compartment, size, perishable, recipient, carrier, status,
	created_at, dropped_at, expires_at, picked_up_at, closed_at, closed_by, close_reason, offline, actor, actor_name,
	code_salt, code_hash`

// CreateParcel stores p with its audit entry e and returns the unit's code set version after
// it (bumped when p's code is live at once). ECONFLICT when p would hold a door another parcel
// of the unit holds (the unique index parcels_door decides, whichever hub stored first).
func (s *ParcelStore) CreateParcel(ctx context.Context, p *fleet.Parcel, e *fleet.AuditEntry) (uint64, error) {
	var want uint64
	err := s.db.audited(ctx, "deliver parcel", func(tx *writeTx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO parcels (`+parcelColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, parcelArgs(p)...)
		if isUniqueViolation(err) {
			return fleet.Errorf(fleet.ECONFLICT, "door %d of %s is taken", p.Door, p.DeviceID)
		}
		if err != nil {
			return fmt.Errorf("deliver parcel: %w", err)
		}
		want, err = s.bumpIf(ctx, tx, p, "")
		return err
	}, e)
	return want, err
}

// UpdateParcel stores p's lifecycle fields with its audit entry e if the stored parcel is
// still in status from: a compare-and-set, so that of two transitions decided on the same
// status (a pickup and an expiry, two hubs handling one event) exactly one applies. It reports
// whether it applied, and the unit's code set version after it.
func (s *ParcelStore) UpdateParcel(ctx context.Context, p *fleet.Parcel, from fleet.ParcelStatus, e *fleet.AuditEntry) (bool, uint64, error) {
	var ok bool
	var want uint64
	err := s.db.audited(ctx, "update parcel "+p.ID, func(tx *writeTx) error {
		res, err := tx.ExecContext(ctx, `UPDATE parcels SET status = ?, dropped_at = ?, expires_at = ?, picked_up_at = ?,
			closed_at = ?, closed_by = ?, close_reason = ?, offline = ? WHERE id = ? AND status = ?`,
			string(p.Status), millis(p.DroppedAt), p.ExpiresAt.UnixMilli(), millis(p.PickedUpAt), millis(p.ClosedAt),
			p.ClosedBy, p.CloseReason, boolInt(p.Offline), p.ID, string(from))
		if isUniqueViolation(err) {
			return fleet.Errorf(fleet.ECONFLICT, "door %d of %s is taken", p.Door, p.DeviceID)
		}
		if err != nil {
			return fmt.Errorf("update parcel %s: %w", p.ID, err)
		}
		n, err := res.RowsAffected()
		if err != nil || n == 0 {
			return errNotApplied // nothing to record: roll back the entry with the rest
		}
		ok = true
		want, err = s.bumpIf(ctx, tx, p, from)
		return err
	}, e)
	if errors.Is(err, errNotApplied) {
		return false, 0, nil
	}
	return ok, want, err
}

// errNotApplied ends the transaction of an update whose compare-and-set found another status.
var errNotApplied = errors.New("not applied")

// bumpIf bumps the version of p's unit's code set if the change from status from to p's
// status adds p's code to the set or takes it out, and returns the version (0 if unchanged).
func (s *ParcelStore) bumpIf(ctx context.Context, tx *writeTx, p *fleet.Parcel, from fleet.ParcelStatus) (uint64, error) {
	if (from == fleet.ParcelInLocker) == (p.Status == fleet.ParcelInLocker) {
		return 0, nil
	}
	var want uint64
	err := tx.QueryRowContext(ctx, `INSERT INTO code_sets (device, registration, want, reported) VALUES (?, ?, 1, 0)
		ON CONFLICT (device) DO UPDATE SET want = code_sets.want + 1, registration = excluded.registration
		RETURNING want`, p.DeviceID, p.Registration).Scan(&want)
	if err != nil {
		return 0, fmt.Errorf("bump the code set of %s: %w", p.DeviceID, err)
	}
	return want, nil
}

// FindParcelByID returns a parcel, or ENOTFOUND.
func (s *ParcelStore) FindParcelByID(ctx context.Context, id string) (*fleet.Parcel, error) {
	p, err := scanParcel(s.db.queryRow(ctx, `SELECT `+parcelColumns+` FROM parcels WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fleet.Errorf(fleet.ENOTFOUND, "parcel %q not found", id)
	}
	return p, err
}

// occupiesSQL is fleet.Parcel.Occupies as SQL, and holdsSQL fleet.Parcel.Holds (the index
// parcels_door's condition).
const (
	occupiesSQL = `(dropped_at IS NOT NULL AND status NOT IN ('picked-up', 'retrieved'))`
	holdsSQL    = `(status = 'awaiting-dropoff' OR ` + occupiesSQL + `)`
)

// FindParcels returns the parcels matching f, newest first.
func (s *ParcelStore) FindParcels(ctx context.Context, f fleet.ParcelFilter) ([]*fleet.Parcel, error) {
	where, args := []string{"1 = 1"}, []any{}
	for _, c := range []struct{ column, value string }{{"device", f.DeviceID}, {"site", f.Site}, {"actor", f.Actor}} {
		if c.value != "" {
			where, args = append(where, c.column+" = ?"), append(args, c.value)
		}
	}
	if len(f.Sites) > 0 { // none: every site, as for a token
		where = append(where, "site IN ("+placeholders(len(f.Sites))+")")
		for _, v := range f.Sites {
			args = append(args, v)
		}
	}
	if len(f.Status) > 0 {
		where = append(where, "status IN ("+placeholders(len(f.Status))+")")
		for _, v := range f.Status {
			args = append(args, string(v))
		}
	}
	if f.Occupies {
		where = append(where, occupiesSQL)
	}
	if f.Current {
		where = append(where, ofCurrentRegistration("parcels"))
	}
	if !f.From.IsZero() {
		where, args = append(where, "created_at >= ?"), append(args, f.From.UnixMilli())
	}
	if !f.To.IsZero() {
		where, args = append(where, "created_at < ?"), append(args, f.To.UnixMilli())
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	return s.queryParcels(ctx, `SELECT `+parcelColumns+` FROM parcels WHERE `+strings.Join(where, " AND ")+
		` ORDER BY created_at DESC, id LIMIT ?`, append(args, min(limit, 1000))...)
}

// placeholders returns n comma-separated ?s, n >= 1.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// HeldDoors returns the doors that parcels of registration of the unit hold (fleet.Parcel.Holds).
func (s *ParcelStore) HeldDoors(ctx context.Context, deviceID, registration string) (map[int]bool, error) {
	rows, err := s.db.query(ctx, `SELECT door FROM parcels WHERE device = ? AND registration = ? AND `+holdsSQL,
		deviceID, registration)
	if err != nil {
		return nil, fmt.Errorf("held doors of %s: %w", deviceID, err)
	}
	defer rows.Close()
	held := map[int]bool{}
	for rows.Next() {
		var door int
		if err := rows.Scan(&door); err != nil {
			return nil, err
		}
		held[door] = true
	}
	return held, rows.Err()
}

// CodeSet returns the version of the unit's code set and the parcels whose codes it holds at
// now: in-locker, not expired, of the unit's current registration. Both are read in one
// snapshot, so the version is the one of exactly those codes.
func (s *ParcelStore) CodeSet(ctx context.Context, deviceID string, now time.Time) (fleet.CodeSetVersion, []*fleet.Parcel, error) {
	v := fleet.CodeSetVersion{DeviceID: deviceID}
	tx, err := s.db.beginSnapshot(ctx)
	if err != nil {
		return v, nil, fmt.Errorf("code set of %s: %w", deviceID, err)
	}
	defer tx.Rollback()
	err = tx.QueryRowContext(ctx, `SELECT want, reported FROM code_sets WHERE device = ?`, deviceID).Scan(&v.Want, &v.Reported)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return v, nil, fmt.Errorf("code set of %s: %w", deviceID, err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+parcelColumns+` FROM parcels WHERE device = ? AND status = 'in-locker'
		AND expires_at > ? AND `+ofCurrentRegistration("parcels")+` ORDER BY door, id`, deviceID, now.UnixMilli())
	if err != nil {
		return v, nil, fmt.Errorf("code set of %s: %w", deviceID, err)
	}
	ps, err := scanParcels(rows)
	return v, ps, err
}

// SetReportedCodes records the code set version a unit reported holding.
func (s *ParcelStore) SetReportedCodes(ctx context.Context, deviceID string, version uint64) error {
	if _, err := s.db.exec(ctx, `UPDATE code_sets SET reported = ? WHERE device = ?`, version, deviceID); err != nil {
		return fmt.Errorf("record the code set %s reported: %w", deviceID, err)
	}
	return nil
}

// ExpiredParcels returns up to limit parcels in the locker whose codes expired at or before
// at, earliest first.
func (s *ParcelStore) ExpiredParcels(ctx context.Context, at time.Time, limit int) ([]*fleet.Parcel, error) {
	return s.queryParcels(ctx, `SELECT `+parcelColumns+` FROM parcels WHERE status = 'in-locker' AND expires_at <= ?
		ORDER BY expires_at, id LIMIT ?`, at.UnixMilli(), limit)
}

// NextExpiry returns the earliest expiry of a code in the locker; false if there is none.
func (s *ParcelStore) NextExpiry(ctx context.Context) (time.Time, bool, error) {
	var at sql.NullInt64
	if err := s.db.queryRow(ctx, `SELECT min(expires_at) FROM parcels WHERE status = 'in-locker'`).Scan(&at); err != nil {
		return time.Time{}, false, fmt.Errorf("next parcel expiry: %w", err)
	}
	if !at.Valid {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(at.Int64).UTC(), true, nil
}

func (s *ParcelStore) queryParcels(ctx context.Context, query string, args ...any) ([]*fleet.Parcel, error) {
	rows, err := s.db.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("find parcels: %w", err)
	}
	return scanParcels(rows)
}

func scanParcels(rows *sql.Rows) ([]*fleet.Parcel, error) {
	defer rows.Close()
	var out []*fleet.Parcel
	for rows.Next() {
		p, err := scanParcel(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func parcelArgs(p *fleet.Parcel) []any {
	return []any{p.ID, p.DeviceID, p.Registration, p.Site, p.Door, string(p.Compartment), string(p.Size), boolInt(p.Perishable),
		p.Recipient, p.Carrier, string(p.Status), p.CreatedAt.UnixMilli(), millis(p.DroppedAt), p.ExpiresAt.UnixMilli(),
		millis(p.PickedUpAt), millis(p.ClosedAt), p.ClosedBy, p.CloseReason, boolInt(p.Offline), p.Actor, p.ActorName,
		base64.StdEncoding.EncodeToString(p.CodeSalt), base64.StdEncoding.EncodeToString(p.CodeHash)}
}

func scanParcel(row scanner) (*fleet.Parcel, error) {
	var p fleet.Parcel
	var compartment, size, status, salt, hash string
	var perishable, offline int
	var created, expires int64
	var dropped, picked, closed sql.NullInt64
	if err := row.Scan(&p.ID, &p.DeviceID, &p.Registration, &p.Site, &p.Door, &compartment, &size, &perishable, &p.Recipient,
		&p.Carrier, &status, &created, &dropped, &expires, &picked, &closed, &p.ClosedBy, &p.CloseReason, &offline, &p.Actor,
		&p.ActorName, &salt, &hash); err != nil {
		return nil, err
	}
	p.Compartment, p.Size, p.Status = fleet.CompartmentKind(compartment), fleet.Size(size), fleet.ParcelStatus(status)
	p.Perishable, p.Offline = perishable != 0, offline != 0
	p.CreatedAt, p.ExpiresAt = time.UnixMilli(created).UTC(), time.UnixMilli(expires).UTC()
	p.DroppedAt, p.PickedUpAt, p.ClosedAt = fromMillis(dropped), fromMillis(picked), fromMillis(closed)
	var err1, err2 error
	p.CodeSalt, err1 = base64.StdEncoding.DecodeString(salt)
	p.CodeHash, err2 = base64.StdEncoding.DecodeString(hash)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("parcel %s: code: %w", p.ID, err)
	}
	return &p, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
