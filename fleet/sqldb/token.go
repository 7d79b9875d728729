package sqldb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// TokenService is the SQL implementation of fleet.TokenService.
//
// A token's secret reads "lh_<id>_<random>": the id finds the row with one indexed lookup and
// the SHA-256 of the whole secret is compared in constant time, so a request costs one query
// whatever the number of tokens.
type TokenService struct {
	db *DB
}

var _ fleet.TokenService = (*TokenService)(nil)

// NewTokenService returns the token store in db.
func NewTokenService(db *DB) *TokenService { return &TokenService{db: db} }

const tokenPrefix = "lh_"

// CreateToken validates t, gives it a new id and stores it with its token.create entry in the
// audit trail; it returns the secret.
func (s *TokenService) CreateToken(ctx context.Context, t *fleet.Token) (string, error) {
	if err := t.Validate(); err != nil {
		return "", err
	}
	id := make([]byte, 8)
	key := make([]byte, 32)
	rand.Read(id)
	rand.Read(key)
	t.ID = hex.EncodeToString(id)
	secret := tokenPrefix + t.ID + "_" + base64.RawURLEncoding.EncodeToString(key)
	sum := sha256.Sum256([]byte(secret))
	sites, err := json.Marshal(t.Sites)
	if err != nil {
		return "", err
	}
	e, err := fleet.NewAuditEntry(ctx, fleet.AuditTokenCreate, "", map[string]any{"token": t.ID, "name": t.Name, "role": string(t.Role), "sites": t.Sites})
	if err != nil {
		return "", err
	}
	t.CreatedAt = s.db.now().UTC().Truncate(time.Millisecond)
	err = s.db.audited(ctx, "create token", func(tx *writeTx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO tokens (id, name, role, sites, secret_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			t.ID, t.Name, string(t.Role), string(sites), sum[:], t.CreatedAt.UnixMilli()); err != nil {
			return fmt.Errorf("create token: %w", err)
		}
		return nil
	}, e)
	if err != nil {
		return "", err
	}
	return secret, nil
}

// FindTokens returns every token, newest first.
func (s *TokenService) FindTokens(ctx context.Context) ([]*fleet.Token, error) {
	rows, err := s.db.query(ctx, `SELECT id, name, role, sites, created_at, revoked_at FROM tokens ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("find tokens: %w", err)
	}
	defer rows.Close()
	var out []*fleet.Token
	for rows.Next() {
		t, _, err := scanToken(rows, false)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// FindTokenByID returns the token with id, revoked or not.
func (s *TokenService) FindTokenByID(ctx context.Context, id string) (*fleet.Token, error) {
	t, _, err := scanToken(s.db.queryRow(ctx, `SELECT id, name, role, sites, created_at, revoked_at FROM tokens WHERE id = ?`, id), false)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fleet.Errorf(fleet.ENOTFOUND, "token %q not found", id)
	} else if err != nil {
		return nil, fmt.Errorf("find token %s: %w", id, err)
	}
	return t, nil
}

// RevokeToken revokes the token, recorded in the audit trail; revoking it again keeps the first
// revocation time, and is recorded again.
func (s *TokenService) RevokeToken(ctx context.Context, id string) error {
	e, err := fleet.NewAuditEntry(ctx, fleet.AuditTokenRevoke, "", map[string]any{"token": id})
	if err != nil {
		return err
	}
	return s.db.audited(ctx, "revoke token "+id, func(tx *writeTx) error {
		res, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?`, s.db.now().UnixMilli(), id)
		if err != nil {
			return fmt.Errorf("revoke token %s: %w", id, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return fleet.Errorf(fleet.ENOTFOUND, "token %q not found", id)
		}
		return nil
	}, e)
}

// Authenticate returns the live token whose secret this is.
func (s *TokenService) Authenticate(ctx context.Context, secret string) (*fleet.Token, error) {
	unauthorized := fleet.Errorf(fleet.EUNAUTHORIZED, "invalid or revoked token")
	id, _, ok := strings.Cut(strings.TrimPrefix(secret, tokenPrefix), "_")
	if !strings.HasPrefix(secret, tokenPrefix) || !ok || len(id) != 16 {
		return nil, unauthorized
	}
	row := s.db.queryRow(ctx, `SELECT id, name, role, sites, created_at, revoked_at, secret_hash FROM tokens WHERE id = ?`, id)
	t, hash, err := scanToken(row, true)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, unauthorized
	} else if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], hash) != 1 || t.RevokedAt != nil {
		return nil, unauthorized
	}
	return t, nil
}

func scanToken(row scanner, withHash bool) (*fleet.Token, []byte, error) {
	var t fleet.Token
	var role, sites string
	var created int64
	var revoked sql.NullInt64
	var hash []byte
	dest := []any{&t.ID, &t.Name, &role, &sites, &created, &revoked}
	if withHash {
		dest = append(dest, &hash)
	}
	if err := row.Scan(dest...); err != nil {
		return nil, nil, err
	}
	t.Role = fleet.Role(role)
	if err := json.Unmarshal([]byte(sites), &t.Sites); err != nil {
		return nil, nil, fmt.Errorf("token %s: sites: %w", t.ID, err)
	}
	t.CreatedAt = time.UnixMilli(created).UTC()
	t.RevokedAt = fromMillis(revoked)
	return &t, hash, nil
}
