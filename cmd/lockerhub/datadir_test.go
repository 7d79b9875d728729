package main_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// emptyStore creates the hub's store in dataDir, empty, as a hub's first start leaves it: the
// CLI's store commands answer from it rather than saying there is no hub data.
func emptyStore(t *testing.T, dataDir string) {
	t.Helper()
	db, err := sqldb.Open(context.Background(), "", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// The README's first step, `device add` with the default data directory ./var/lockerhub, must
// leave ./var searchable by others: the development PostgreSQL keeps its cluster under it and
// runs as another user. The data directory itself, which holds the secrets' hashes,
// stays private. The umask is fixed at 022, the common one, which os.MkdirAll's 0750 for every
// parent used to defeat.
func TestDefaultDataDirLeavesVarReachable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	environ := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "LOCKERHUB_DATA_DIR=") })
	cmd := exec.Command("sh", "-c", `umask 022 && exec "$0" "$@"`, binary,
		"device", "add", "--id", "bank-1", "--kind", "locker-bank", "--site", "elm-street", "--doors", "24")
	cmd.Dir, cmd.Env = dir, environ
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("device add: %v\n%s", err, stderr.String())
	}
	if want := "no hub data in " + filepath.Join(dir, "var", "lockerhub") + " yet (data_dir ./var/lockerhub): creating a new store there"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q lacks %q", stderr.String(), want)
	}
	for path, want := range map[string]os.FileMode{"var": 0o755, "var/lockerhub": 0o750} {
		fi, err := os.Stat(filepath.Join(dir, path))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("./%s: mode %o, want %o", path, got, want)
		}
	}
}

// A store command run against a data directory without the hub's database (the wrong
// directory, or a demo's data elsewhere) says so and fails, creating nothing; only the commands
// that set up a hub create the store, and say where.
func TestStoreCommandsNeedHubData(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing")
	empty := t.TempDir()
	for _, dataDir := range []string{missing, empty} {
		environ := env(dataDir)
		for _, args := range [][]string{
			{"audit", "export"}, {"audit", "verify"}, {"audit", "head"},
			{"device", "list"}, {"device", "disable", "--id", "bank-1"}, {"device", "remove", "--id", "bank-1"},
			{"token", "list"}, {"store", "copy", "--to-dir", filepath.Join(t.TempDir(), "copy")},
		} {
			out, errOut, code := run(t, environ, args...)
			if code != 1 || out != "" || !strings.Contains(errOut, "no hub data in "+dataDir+" (data_dir; LOCKERHUB_DATA_DIR or --config sets it): is this the directory your hub uses?") {
				t.Errorf("%s in %s: exit %d, stdout %q, stderr %q; want exit 1 and why on stderr", strings.Join(args, " "), dataDir, code, out, errOut)
			}
		}
		if entries, err := os.ReadDir(dataDir); len(entries) != 0 || (dataDir == missing) != os.IsNotExist(err) {
			t.Errorf("the commands changed %s: %v %v", dataDir, entries, err)
		}
	}
	environ := env(missing)
	if _, errOut, code := run(t, environ, "token", "create", "--name", "me", "--role", "admin"); code != 0 || !strings.Contains(errOut, "no hub data in "+missing+" yet") {
		t.Fatalf("token create: exit %d, stderr %q", code, errOut)
	}
	if out, errOut, code := run(t, environ, "audit", "export"); code != 0 || !strings.Contains(out, `"action":"token.create"`) || errOut != "" {
		t.Fatalf("audit export after token create: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
