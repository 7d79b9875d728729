package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet/wire"
)

func TestLockoutEscalates(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute, 5: 8 * time.Minute,
		6: 15 * time.Minute, 7: 15 * time.Minute, maxFailures / keypadMaxWrong: 15 * time.Minute} {
		if got := lockout(n); got != want {
			t.Errorf("lockout %d = %s, want %s", n, got, want)
		}
	}
}

// The file holds code hashes and the lockout: only the agent's user may read or replace it.
func TestCodeStoreFile(t *testing.T) {
	dir := t.TempDir()
	s, err := openCodes(dir)
	if err != nil {
		t.Fatal(err)
	}
	if applied, err := s.replace(wire.CodeSet{V: wire.Version, Version: 4, Issued: 1}); !applied || err != nil {
		t.Fatalf("replace: %v, %v", applied, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "codes.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("codes.json mode %v, want 0600", fi.Mode().Perm())
	}
	if err := os.WriteFile(filepath.Join(dir, "codes.json"), []byte(`{"set":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openCodes(dir); err == nil {
		t.Error("a damaged codes.json was taken as no codes and no lockout")
	}
}
