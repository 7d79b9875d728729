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

// CreateDevice validates and inserts d as an enabled device, recorded in the audit trail, and
// returns its new secret. A duplicate id is an ECONFLICT error.
func (s *DeviceService) CreateDevice(ctx context.Context, d *fleet.Device) (string, error) {
	secrets, err := s.CreateDevices(ctx, []*fleet.Device{d})
	if err != nil {
		return "", err
	}
	return secrets[0], nil
}

// CreateDevices validates and inserts ds as enabled devices in one transaction, each with a new
// registration and its device.create entry in the audit trail, and returns their new secrets;
// on any error nothing is stored. An id already registered, or twice in ds, is an ECONFLICT
// error naming it.
func (s *DeviceService) CreateDevices(ctx context.Context, ds []*fleet.Device) ([]string, error) {
	labels := make([][]byte, len(ds))
	entries := make([]*fleet.AuditEntry, len(ds))
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
		detail := map[string]any{"kind": string(d.Kind), "site": d.Site, "doors": d.Doors}
		if entries[i], err = fleet.NewAuditEntry(ctx, fleet.AuditDeviceCreate, d.ID, detail); err != nil {
			return nil, err
		}
	}
	now := s.db.now().UTC().Truncate(time.Millisecond)
	secrets := make([]string, len(ds))
	registrations := make([]string, len(ds))
	err := s.db.audited(ctx, "create devices", func(tx *writeTx) error {
		insert, err := tx.PrepareContext(ctx,
			`INSERT INTO devices (id, kind, site, doors, labels, enabled, secret_hash, created_at, updated_at, registration)
			 VALUES (?, ?, ?, ?, ?, TRUE, ?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("create devices: %w", err)
		}
		defer insert.Close()
		for i, d := range ds {
			secrets[i], registrations[i] = credential.NewSecret(), newRegistration()
			_, err := insert.ExecContext(ctx, d.ID, string(d.Kind), d.Site, d.Doors, string(labels[i]),
				credential.Hash(secrets[i]), now.UnixMilli(), now.UnixMilli(), registrations[i])
			if isUniqueViolation(err) {
				return fleet.Errorf(fleet.ECONFLICT, "device %q already exists", d.ID)
			} else if err != nil {
				return fmt.Errorf("create device %s: %w", d.ID, err)
			}
		}
		return nil
	}, entries...)
	if err != nil {
		return nil, err
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

// RotateSecret gives the device a new secret, recorded in the audit trail, and returns it.
func (s *DeviceService) RotateSecret(ctx context.Context, id string) (string, error) {
	secret := credential.NewSecret()
	if err := s.update(ctx, id, fleet.AuditDeviceRotateSecret, `secret_hash = ?`, credential.Hash(secret)); err != nil {
		return "", err
	}
	return secret, nil
}

// SetEnabled enables or disables the device, recorded in the audit trail, and returns it as
// stored.
func (s *DeviceService) SetEnabled(ctx context.Context, id string, enabled bool) (*fleet.Device, error) {
	action := fleet.AuditDeviceDisable
	if enabled {
		action = fleet.AuditDeviceEnable
	}
	if err := s.update(ctx, id, action, `enabled = ?`, enabled); err != nil {
		return nil, err
	}
	return s.FindDeviceByID(ctx, id)
}

// update sets one column of a device and its updated_at time, or returns ENOTFOUND.
func (s *DeviceService) update(ctx context.Context, id string, action fleet.AuditAction, set string, value any) error {
	return s.change(ctx, id, action, "update", `UPDATE devices SET `+set+`, updated_at = ? WHERE id = ?`,
		value, s.db.now().UnixMilli(), id)
}

// DeleteDevice removes the device, recorded in the audit trail, or returns ENOTFOUND.
func (s *DeviceService) DeleteDevice(ctx context.Context, id string) error {
	return s.change(ctx, id, fleet.AuditDeviceRemove, "delete", `DELETE FROM devices WHERE id = ?`, id)
}

// change runs query, which changes the row of device id (verb says how, for errors), with the
// entry of action by the actor in ctx (see DB.audited). ENOTFOUND when the query changes no
// row; then nothing is recorded.
func (s *DeviceService) change(ctx context.Context, id string, action fleet.AuditAction, verb, query string, args ...any) error {
	e, err := fleet.NewAuditEntry(ctx, action, id, nil)
	if err != nil {
		return err
	}
	return s.db.audited(ctx, verb+" device "+id, func(tx *writeTx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("%s device %s: %w", verb, id, err)
		}
		return mustAffect(res, id)
	}, e)
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
