package sqldb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/credential"
)

// DeviceService is the SQL implementation of fleet.DeviceService.
type DeviceService struct {
	db *DB
}

var _ fleet.DeviceService = (*DeviceService)(nil)

// NewDeviceService returns a device registry backed by db.
func NewDeviceService(db *DB) *DeviceService { return &DeviceService{db: db} }

const deviceColumns = `id, kind, site, doors, labels, enabled, created_at, updated_at, registration`

// FindDeviceByID returns the device with the given id, or an ENOTFOUND error.
func (s *DeviceService) FindDeviceByID(ctx context.Context, id string) (*fleet.Device, error) {
	row := s.db.queryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = ?`, id)
	d, err := scanDevice(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound(id)
	}
	return d, err
}

// FindDevices returns the devices matching f, ordered by id; an unknown kind is EINVALID.
func (s *DeviceService) FindDevices(ctx context.Context, f fleet.DeviceFilter) ([]*fleet.Device, error) {
	if f.Kind != "" {
		if err := f.Kind.Validate(); err != nil {
			return nil, err
		}
	}
	var where []string
	var args []any
	if f.Site != "" {
		where, args = append(where, "site = ?"), append(args, f.Site)
	}
	if f.Kind != "" {
		where, args = append(where, "kind = ?"), append(args, string(f.Kind))
	}
	if f.Enabled != nil {
		where, args = append(where, "enabled = ?"), append(args, *f.Enabled)
	}
	q := `SELECT ` + deviceColumns + ` FROM devices`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	rows, err := s.db.query(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("find devices: %w", err)
	}
	defer rows.Close()
	var out []*fleet.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// CreateDevice validates and inserts d as an enabled device and returns its new secret.
// A duplicate id is an ECONFLICT error.
func (s *DeviceService) CreateDevice(ctx context.Context, d *fleet.Device) (string, error) {
	secrets, err := s.CreateDevices(ctx, []*fleet.Device{d})
	if err != nil {
		return "", err
	}
	return secrets[0], nil
}

// CreateDevices validates and inserts ds as enabled devices in one transaction, each with a new
// registration, and returns their new secrets; on any error nothing is stored. An id already
// registered, or twice in ds, is an ECONFLICT error naming it.
func (s *DeviceService) CreateDevices(ctx context.Context, ds []*fleet.Device) ([]string, error) {
	labels := make([][]byte, len(ds))
	for i, d := range ds {
		if d.Labels == nil {
			d.Labels = map[string]string{}
		}
		if err := d.Validate(); err != nil {
			return nil, err
		}
		var err error
		if labels[i], err = json.Marshal(d.Labels); err != nil {
			return nil, err
		}
	}
	tx, err := s.db.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("create devices: %w", err)
	}
	defer tx.Rollback()
	insert, err := tx.PrepareContext(ctx,
		`INSERT INTO devices (id, kind, site, doors, labels, enabled, secret_hash, created_at, updated_at, registration)
		 VALUES (?, ?, ?, ?, ?, TRUE, ?, ?, ?, ?)`)
	if err != nil {
		return nil, fmt.Errorf("create devices: %w", err)
	}
	defer insert.Close()
	now := s.db.now().UTC().Truncate(time.Millisecond)
	secrets := make([]string, len(ds))
	registrations := make([]string, len(ds))
	for i, d := range ds {
		secrets[i], registrations[i] = credential.NewSecret(), newRegistration()
		_, err := insert.ExecContext(ctx, d.ID, string(d.Kind), d.Site, d.Doors, string(labels[i]),
			credential.Hash(secrets[i]), now.UnixMilli(), now.UnixMilli(), registrations[i])
		if isUniqueViolation(err) {
			return nil, fleet.Errorf(fleet.ECONFLICT, "device %q already exists", d.ID)
		} else if err != nil {
			return nil, fmt.Errorf("create device %s: %w", d.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("create devices: %w", err)
	}
	for i, d := range ds {
		d.Enabled, d.CreatedAt, d.UpdatedAt, d.Registration = true, now, now, registrations[i]
	}
	return secrets, nil
}

// newRegistration returns a new registration id: 128 random bits in hex, like those
// 0007_registrations.sql gave the devices registered before it.
func newRegistration() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// RotateSecret gives the device a new secret and returns it.
func (s *DeviceService) RotateSecret(ctx context.Context, id string) (string, error) {
	secret := credential.NewSecret()
	if err := s.update(ctx, id, `secret_hash = ?`, credential.Hash(secret)); err != nil {
		return "", err
	}
	return secret, nil
}

// SetEnabled enables or disables the device and returns it as stored.
func (s *DeviceService) SetEnabled(ctx context.Context, id string, enabled bool) (*fleet.Device, error) {
	if err := s.update(ctx, id, `enabled = ?`, enabled); err != nil {
		return nil, err
	}
	return s.FindDeviceByID(ctx, id)
}

// update sets one column of a device and its updated_at time, or returns ENOTFOUND.
func (s *DeviceService) update(ctx context.Context, id, set string, value any) error {
	res, err := s.db.exec(ctx, `UPDATE devices SET `+set+`, updated_at = ? WHERE id = ?`,
		value, s.db.now().UnixMilli(), id)
	if err != nil {
		return fmt.Errorf("update device %s: %w", id, err)
	}
	return mustAffect(res, id)
}

// DeleteDevice removes the device, or returns ENOTFOUND.
func (s *DeviceService) DeleteDevice(ctx context.Context, id string) error {
	res, err := s.db.exec(ctx, `DELETE FROM devices WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete device %s: %w", id, err)
	}
	return mustAffect(res, id)
}

// DeviceCredential returns what the broker checks when the device connects.
func (s *DeviceService) DeviceCredential(ctx context.Context, id string) (fleet.Credential, error) {
	c := fleet.Credential{DeviceID: id}
	err := s.db.queryRow(ctx, `SELECT enabled, secret_hash FROM devices WHERE id = ?`, id).
		Scan(&c.Enabled, &c.SecretHash)
	if errors.Is(err, sql.ErrNoRows) {
		return c, notFound(id)
	}
	return c, err
}

type scanner interface{ Scan(dest ...any) error }

func scanDevice(row scanner) (*fleet.Device, error) {
	var d fleet.Device
	var kind, labels string
	var created, updated int64
	if err := row.Scan(&d.ID, &kind, &d.Site, &d.Doors, &labels, &d.Enabled, &created, &updated, &d.Registration); err != nil {
		return nil, err
	}
	d.Kind = fleet.Kind(kind)
	if err := json.Unmarshal([]byte(labels), &d.Labels); err != nil {
		return nil, fmt.Errorf("device %s: labels: %w", d.ID, err)
	}
	d.CreatedAt, d.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	return &d, nil
}

func notFound(id string) error { return fleet.Errorf(fleet.ENOTFOUND, "device %q not found", id) }

func mustAffect(res sql.Result, id string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound(id)
	}
	return nil
}
