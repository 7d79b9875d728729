package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// AlertStore is the SQL implementation of fleet.AlertStore.
type AlertStore struct {
	db *DB
}

var _ fleet.AlertStore = (*AlertStore)(nil)

// NewAlertStore returns the alert store in db.
func NewAlertStore(db *DB) *AlertStore { return &AlertStore{db: db} }

const alertColumns = `id, rule, severity, scope, device, site, door, state, summary, value, fired_at,
	acked_at, acked_by, ack_note, resolved_at, resolved_by, resolve_note, registration, acked_by_name, resolved_by_name`

// CreateAlert stores a firing alert and sets its ID. The partial unique index alerts_open
// refuses a second open alert with the same key (of the same registration), even from another
// hub at the same moment (PostgreSQL makes the second insert wait for the first to commit, then
// refuses it): that is an ECONFLICT error, on which the alerts engine adopts the open alert.
func (s *AlertStore) CreateAlert(ctx context.Context, a *fleet.Alert) error {
	var id int64
	err := s.db.execScan(ctx, `INSERT INTO alerts (rule, severity, scope, device, site, door, state, summary, value, fired_at, registration)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		[]any{a.Rule, string(a.Severity), string(a.Scope), a.DeviceID, a.Site, a.Door, string(fleet.AlertFiring), a.Summary, a.Value,
			a.FiredAt.UnixMilli(), a.Registration}, &id)
	if isUniqueViolation(err) {
		return fleet.Errorf(fleet.ECONFLICT, "alert %s on %s door %d is already open", a.Rule, a.DeviceID, a.Door)
	}
	if err != nil {
		return fmt.Errorf("create alert: %w", err)
	}
	a.ID, a.State = id, fleet.AlertFiring
	return nil
}

// AckAlert moves a firing alert to acknowledged.
func (s *AlertStore) AckAlert(ctx context.Context, id int64, by fleet.Actor, note string, at time.Time) (*fleet.Alert, error) {
	return s.transition(ctx, id, fleet.AlertFiring, `UPDATE alerts SET state = ?, acked_at = ?, acked_by = ?, acked_by_name = ?, ack_note = ?
		WHERE id = ? AND state = ?`, string(fleet.AlertAcknowledged), at.UnixMilli(), by.ID, by.Name, note, id, string(fleet.AlertFiring))
}

// ResolveAlert resolves an open alert.
func (s *AlertStore) ResolveAlert(ctx context.Context, id int64, by fleet.Actor, note string, at time.Time) (*fleet.Alert, error) {
	return s.transition(ctx, id, "", `UPDATE alerts SET state = ?, resolved_at = ?, resolved_by = ?, resolved_by_name = ?, resolve_note = ?
		WHERE id = ? AND state != ?`, string(fleet.AlertResolved), at.UnixMilli(), by.ID, by.Name, note, id, string(fleet.AlertResolved))
}

// RestateAlert replaces an open alert's summary and value.
func (s *AlertStore) RestateAlert(ctx context.Context, id int64, summary string, value *float64) (*fleet.Alert, error) {
	return s.transition(ctx, id, "", `UPDATE alerts SET summary = ?, value = ? WHERE id = ? AND state != ?`,
		summary, value, id, string(fleet.AlertResolved))
}

// transition runs a guarded UPDATE and returns the alert after it. When no row changed it
// tells a missing alert (ENOTFOUND) from one in the wrong state (ECONFLICT).
func (s *AlertStore) transition(ctx context.Context, id int64, want fleet.AlertState, update string, args ...any) (*fleet.Alert, error) {
	res, err := s.db.exec(ctx, update, args...)
	if err != nil {
		return nil, fmt.Errorf("update alert %d: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, fmt.Errorf("update alert %d: %w", id, err)
	}
	a, err := s.FindAlertByID(ctx, id)
	if err != nil || n == 1 {
		return a, err
	}
	if want != "" {
		return nil, fleet.Errorf(fleet.ECONFLICT, "alert %d is %s, not %s", id, a.State, want)
	}
	return nil, fleet.Errorf(fleet.ECONFLICT, "alert %d is already %s", id, a.State)
}

// FindAlertByID returns the alert with the given id.
func (s *AlertStore) FindAlertByID(ctx context.Context, id int64) (*fleet.Alert, error) {
	a, err := scanAlert(s.db.queryRow(ctx, `SELECT `+alertColumns+` FROM alerts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fleet.Errorf(fleet.ENOTFOUND, "alert %d not found", id)
	}
	return a, err
}

// FindAlerts returns the alerts matching f, newest first.
func (s *AlertStore) FindAlerts(ctx context.Context, f fleet.AlertFilter) ([]*fleet.Alert, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	var where []string
	var args []any
	add := func(cond string, vals ...any) {
		where = append(where, cond)
		args = append(args, vals...)
	}
	switch {
	case f.Open:
		add("state != ?", string(fleet.AlertResolved))
	case f.State != "":
		add("state = ?", string(f.State))
	}
	if f.Rule != "" {
		add("rule = ?", f.Rule)
	}
	if f.Severity != "" {
		add("severity = ?", string(f.Severity))
	}
	if f.Site != "" {
		add("site = ?", f.Site)
	}
	if f.DeviceID != "" {
		add("device = ?", f.DeviceID)
	}
	if f.Current {
		add(ofCurrentRegistration("alerts"))
	}
	if f.BeforeID > 0 {
		add("id < ?", f.BeforeID)
	}
	if f.Sites != nil {
		if len(f.Sites) == 0 {
			return nil, nil
		}
		marks := strings.TrimSuffix(strings.Repeat("?,", len(f.Sites)), ",")
		vals := make([]any, len(f.Sites))
		for i, v := range f.Sites {
			vals[i] = v
		}
		add("site IN ("+marks+")", vals...)
	}
	q := `SELECT ` + alertColumns + ` FROM alerts`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit == 0 {
		limit = 100
	}
	rows, err := s.db.query(ctx, q+` ORDER BY id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("find alerts: %w", err)
	}
	defer rows.Close()
	var out []*fleet.Alert
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func scanAlert(row scanner) (*fleet.Alert, error) {
	var a fleet.Alert
	var severity, scope, state string
	var value sql.NullFloat64
	var fired, acked, resolved int64
	if err := row.Scan(&a.ID, &a.Rule, &severity, &scope, &a.DeviceID, &a.Site, &a.Door, &state, &a.Summary, &value, &fired,
		&acked, &a.AckedBy, &a.AckNote, &resolved, &a.ResolvedBy, &a.ResolveNote, &a.Registration, &a.AckedByName, &a.ResolvedByName); err != nil {
		return nil, err
	}
	a.Severity, a.Scope, a.State = fleet.Severity(severity), fleet.Scope(scope), fleet.AlertState(state)
	if value.Valid {
		a.Value = &value.Float64
	}
	a.FiredAt = time.UnixMilli(fired).UTC()
	a.AckedAt, a.ResolvedAt = optionalMillis(acked), optionalMillis(resolved)
	return &a, nil
}

// optionalMillis turns a stored time where 0 means "not yet" into a zero or UTC time.
func optionalMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
