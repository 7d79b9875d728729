//go:build unix

package privdir

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestMkdirAllKeepsParentsReachable is issue 17's first case: the CLI's default data
// directory ./var/lockerhub must not make ./var private, where the development PostgreSQL
// (another user) keeps its cluster.
func TestMkdirAllKeepsParentsReachable(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	root := t.TempDir()
	dir := filepath.Join(root, "var", "lockerhub") + string(filepath.Separator)
	if err := MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{filepath.Join(root, "var"): 0o755, filepath.Join(root, "var", "lockerhub"): 0o750} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", path, got, want)
		}
	}
	// Existing directories are left alone, and a second call succeeds.
	if err := os.Chmod(filepath.Join(root, "var"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(root, "var")); fi.Mode().Perm() != 0o700 {
		t.Errorf("an existing parent's mode changed to %o", fi.Mode().Perm())
	}
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(file, 0o700); err == nil {
		t.Error("no error for a path that is a file")
	}
}
