package sqldb_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// store.url picks the engine; what it cannot be is refused by name, and no error shows the
// password.
func TestOpenStoreURL(t *testing.T) {
	t.Parallel()
	const password = "hunter2-s3cret"
	for _, tc := range []struct {
		name, url string
		notURL    bool // an ErrStoreURL error
	}{
		{"other scheme", "mysql://lockerhub:" + password + "@127.0.0.1/lockerhub", true},
		{"no scheme", "lockerhub:" + password + "@127.0.0.1/lockerhub", true},
		{"file path", "/var/lib/lockerhub/lockerhub.db", true},
		{"nothing listening", "postgres://lockerhub:" + password + "@127.0.0.1:1/lockerhub?sslmode=disable&connect_timeout=2", false},
		{"postgresql scheme", "postgresql://lockerhub:" + password + "@127.0.0.1:1/lockerhub?sslmode=disable&connect_timeout=2", false},
		{"password as a parameter", "postgres://lockerhub@127.0.0.1:1/lockerhub?sslmode=disable&connect_timeout=2&password=" + password, false},
		{"does not parse", "postgres://lockerhub:" + password + "@127.0.0.1:port/lockerhub", false},
		{"unknown parameter value", "postgres://lockerhub:" + password + "@127.0.0.1:1/lockerhub?sslmode=sometimes", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := sqldb.Open(context.Background(), tc.url, t.TempDir())
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if errors.Is(err, sqldb.ErrStoreURL) != tc.notURL {
				t.Errorf("errors.Is(err, ErrStoreURL) = %v, want %v: %v", !tc.notURL, tc.notURL, err)
			}
			if tc.notURL && !strings.Contains(err.Error(), "store.url") {
				t.Errorf("error does not name store.url: %v", err)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error shows the password: %v", err)
			}
			t.Log(err)
		})
	}
}
