package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// CommandStore is the SQL implementation of fleet.CommandStore.
type CommandStore struct {
	db *DB
}

var _ fleet.CommandStore = (*CommandStore)(nil)

// NewCommandStore returns the command store in db.
func NewCommandStore(db *DB) *CommandStore { return &CommandStore{db: db} }

const commandColumns = `id, device, type, door, target, setpoint_c, reason, actor, coalesce(idempotency_key, ''), status, outcome, detail,
	created_at, expires_at, sent_at, completed_at, registration, actor_name`

// CreateCommand stores c, or returns the earlier command with the same actor and idempotency key.
// The unique index commands_idempotency decides, so of two hubs storing the same key at once,
// one stores its command and the other is given it.
func (s *CommandStore) CreateCommand(ctx context.Context, c *fleet.Command) (*fleet.Command, error) {
	var key any
	if c.IdempotencyKey != "" {
		key = c.IdempotencyKey
	}
	_, err := s.db.exec(ctx, `INSERT INTO commands (id, device, type, door, target, setpoint_c, reason, actor,
		idempotency_key, status, created_at, expires_at, registration, actor_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.DeviceID, string(c.Type), c.Door, c.Target, c.SetpointC, c.Reason, c.Actor, key, string(c.Status),
		c.CreatedAt.UnixMilli(), c.ExpiresAt.UnixMilli(), c.Registration, c.ActorName)
	if isUniqueViolation(err) && c.IdempotencyKey != "" {
		row := s.db.queryRow(ctx, `SELECT `+commandColumns+` FROM commands WHERE actor = ? AND idempotency_key = ?`,
			c.Actor, c.IdempotencyKey)
		return scanCommand(row)
	}
	if err != nil {
		return nil, fmt.Errorf("create command: %w", err)
	}
	return nil, nil
}

// UpdateCommand stores c's lifecycle fields if the stored status is still from. It is one
// guarded UPDATE, a compare-and-set in the database: of two transitions decided on the same
// status, by this hub or another, exactly one applies.
func (s *CommandStore) UpdateCommand(ctx context.Context, c *fleet.Command, from fleet.CommandStatus) (bool, error) {
	res, err := s.db.exec(ctx, `UPDATE commands SET status = ?, outcome = ?, detail = ?, sent_at = ?, completed_at = ?
		WHERE id = ? AND status = ?`,
		string(c.Status), string(c.Outcome), c.Detail, millis(c.SentAt), millis(c.CompletedAt), c.ID, string(from))
	if err != nil {
		return false, fmt.Errorf("update command %s: %w", c.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("update command %s: %w", c.ID, err)
	}
	return n == 1, nil
}

// FindCommandByID returns the command with the given id.
func (s *CommandStore) FindCommandByID(ctx context.Context, id string) (*fleet.Command, error) {
	c, err := scanCommand(s.db.queryRow(ctx, `SELECT `+commandColumns+` FROM commands WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fleet.Errorf(fleet.ENOTFOUND, "command %q not found", id)
	}
	return c, err
}

// FindCommands returns the commands matching f, newest first.
func (s *CommandStore) FindCommands(ctx context.Context, f fleet.CommandFilter) ([]*fleet.Command, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	where := `(? = '' OR device = ?) AND (? = '' OR status = ?)`
	if f.Current {
		where += ` AND ` + ofCurrentRegistration("commands")
	}
	rows, err := s.db.query(ctx, `SELECT `+commandColumns+` FROM commands WHERE `+where+` ORDER BY created_at DESC, id LIMIT ?`,
		f.DeviceID, f.DeviceID, string(f.Status), string(f.Status), min(limit, 1000))
	if err != nil {
		return nil, fmt.Errorf("find commands: %w", err)
	}
	defer rows.Close()
	var out []*fleet.Command
	for rows.Next() {
		c, err := scanCommand(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// CountCommands counts the commands created at since or later by actor, or for deviceID.
func (s *CommandStore) CountCommands(ctx context.Context, actor, deviceID string, since time.Time) (int, error) {
	column, value := "actor", actor
	if actor == "" {
		column, value = "device", deviceID
	}
	var n int
	if err := s.db.queryRow(ctx, `SELECT count(*) FROM commands WHERE `+column+` = ? AND created_at >= ?`, value, since.UnixMilli()).Scan(&n); err != nil {
		return 0, fmt.Errorf("count commands: %w", err)
	}
	return n, nil
}

func scanCommand(row scanner) (*fleet.Command, error) {
	var c fleet.Command
	var typ, status, outcome string
	var created, expires int64
	var sent, completed sql.NullInt64
	var setpoint sql.NullFloat64
	if err := row.Scan(&c.ID, &c.DeviceID, &typ, &c.Door, &c.Target, &setpoint, &c.Reason, &c.Actor, &c.IdempotencyKey, &status, &outcome,
		&c.Detail, &created, &expires, &sent, &completed, &c.Registration, &c.ActorName); err != nil {
		return nil, err
	}
	c.Type, c.Status, c.Outcome = wire.CommandType(typ), fleet.CommandStatus(status), wire.Outcome(outcome)
	c.CreatedAt, c.ExpiresAt = time.UnixMilli(created).UTC(), time.UnixMilli(expires).UTC()
	c.SentAt, c.CompletedAt = fromMillis(sent), fromMillis(completed)
	if setpoint.Valid {
		c.SetpointC = &setpoint.Float64
	}
	return &c, nil
}

// ofCurrentRegistration is the condition that a row of table (commands or alerts: both have the
// columns device and registration) belongs to its device's current registration. A row of a
// device removed, or removed and registered again, does not.
func ofCurrentRegistration(table string) string {
	return `EXISTS (SELECT 1 FROM devices WHERE devices.id = ` + table + `.device AND devices.registration = ` + table + `.registration)`
}

func millis(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMilli()
}

func fromMillis(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.UnixMilli(v.Int64).UTC()
	return &t
}
