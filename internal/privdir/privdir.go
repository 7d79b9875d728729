// Package privdir creates a private directory the way `mkdir -p -m MODE` and PostgreSQL's
// pg_mkdir_p do: only the directory itself gets the private mode, the parents it has to create
// get the usual 0755 (less the umask). os.MkdirAll gives every parent the private mode, so the
// first command that used the default data directory ./var/lockerhub made ./var itself 0750,
// and nothing else that keeps its files under ./var (the development PostgreSQL, which runs as
// another user) could reach them any more. Standard library only, so the edge agent can use it.
package privdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// MkdirAll creates dir with mode perm (less the umask), and its missing parents with 0755 (less
// the umask). A dir that exists is left as it is, whatever its mode. It returns the error of
// the mkdir that failed, or an error if dir exists but is not a directory.
func MkdirAll(dir string, perm fs.FileMode) error {
	dir = filepath.Clean(dir)
	if parent := filepath.Dir(dir); parent != dir {
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return err
		}
	}
	err := os.Mkdir(dir, perm)
	if !errors.Is(err, fs.ErrExist) {
		return err
	}
	if fi, serr := os.Stat(dir); serr != nil || !fi.IsDir() {
		return fmt.Errorf("mkdir %s: exists and is not a directory", dir)
	}
	return nil
}
