package main_test

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/lockerhub/lockerhub/internal/testpg"
)

// The upgrade from one hub to a cluster and the way back, through the binary: a device added
// to SQLite is listed, and its trail verifies, on PostgreSQL after store copy, and on a new
// SQLite store after copying back.
func TestStoreCopy(t *testing.T) {
	t.Parallel()
	pgURL := testpg.Require(t)
	// The development server trusts 127.0.0.1 and ignores the password; the copy must not show it.
	u, err := url.Parse(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	const password = "s3cret-Pa55"
	u.User = url.UserPassword(u.User.Username(), password)
	withPassword := u.String()

	single := env(t.TempDir())
	out, errOut, code := run(t, single, "device", "add", "--id", "bank-1", "--kind", "locker-bank", "--site", "elm-street", "--doors", "16", "--json")
	if code != 0 {
		t.Fatalf("device add: exit %d: %s", code, errOut)
	}
	var added struct{ ID, Secret string }
	if err := json.Unmarshal([]byte(out), &added); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := run(t, single, "device", "disable", "--id", "bank-1"); code != 0 {
		t.Fatalf("device disable: exit %d: %s", code, errOut)
	}
	if _, errOut, code := run(t, single, "token", "create", "--name", "ops", "--role", "operator"); code != 0 {
		t.Fatalf("token create: exit %d: %s", code, errOut)
	}
	headSingle := auditHead(t, single)

	out, errOut, code = run(t, single, "store", "copy", "--to", withPassword)
	if code != 0 {
		t.Fatalf("store copy: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"devices   1\n", "tokens    1\n", "commands  0\n", "alerts    0\n", "parcels   0\n", "audit     3\n",
		"audit chain verified: 3 entries, head " + headSingle + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("store copy printed\n%s\nwant a line %q", out, want)
		}
	}
	if strings.Contains(out+errOut, password) {
		t.Errorf("store copy printed the password:\n%s%s", out, errOut)
	}

	cluster := env(t.TempDir(), "LOCKERHUB_STORE_URL="+pgURL)
	if out, errOut, code := run(t, cluster, "device", "list"); code != 0 || !regexp.MustCompile(`bank-1\s+locker-bank\s+elm-street`).MatchString(out) {
		t.Fatalf("device list on PostgreSQL: exit %d: %s%s; want bank-1", code, out, errOut)
	}
	if head := auditHead(t, cluster); head != headSingle {
		t.Fatalf("audit head on PostgreSQL %q, want the copied %q", head, headSingle)
	}

	// Never into a store with data: the cluster's database now has some.
	_, errOut, code = run(t, single, "store", "copy", "--to", withPassword)
	if code != 4 || !strings.Contains(errOut, "already holds lockerhub data") || strings.Contains(errOut, password) {
		t.Fatalf("second store copy: exit %d, stderr %q; want a refusal (exit 4) without the password", code, errOut)
	}
	if head := auditHead(t, cluster); head != headSingle {
		t.Fatalf("audit head on PostgreSQL %q after a refused copy, want %q", head, headSingle)
	}

	// The way back, into a new data directory.
	backDir := t.TempDir()
	if out, errOut, code := run(t, cluster, "store", "copy", "--to-dir", backDir); code != 0 || !strings.Contains(out, "audit chain verified: 3 entries") {
		t.Fatalf("store copy --to-dir: exit %d: %s%s", code, out, errOut)
	}
	back := env(backDir)
	if out, errOut, code := run(t, back, "device", "list"); code != 0 || !regexp.MustCompile(`bank-1\s+locker-bank\s+elm-street`).MatchString(out) {
		t.Fatalf("device list after the way back: exit %d: %s%s", code, out, errOut)
	}
	if head := auditHead(t, back); head != headSingle {
		t.Fatalf("audit head after the way back %q, want %q", head, headSingle)
	}
}

// auditHead runs audit verify and returns the head it prints ("3 <hash>").
func auditHead(t *testing.T, environ []string) string {
	t.Helper()
	out, errOut, code := run(t, environ, "audit", "verify")
	m := regexp.MustCompile(`audit trail intact: \d+ entries, head (\d+ \S+)`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("audit verify: exit %d: %s%s", code, out, errOut)
	}
	return m[1]
}

func TestStoreCopyRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	single := env(dir)
	if _, errOut, code := run(t, single, "device", "add", "--id", "bank-1", "--kind", "locker-bank", "--site", "elm", "--doors", "4"); code != 0 {
		t.Fatalf("device add: exit %d: %s", code, errOut)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no destination", nil, "--to postgres://... or --to-dir DIR"},
		{"two destinations", []string{"--to", "postgres://127.0.0.1/x", "--to-dir", t.TempDir()}, "one of them"},
		{"not a postgres URL", []string{"--to", "mysql://root:hunter2@db/x"}, "--to takes a postgres://"},
		{"onto itself", []string{"--to-dir", dir}, "the same store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := run(t, single, append([]string{"store", "copy"}, tc.args...)...)
			if code != 2 || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, "hunter2") {
				t.Fatalf("exit %d, stderr %q; want a usage error (exit 2) naming %q", code, errOut, tc.want)
			}
		})
	}
	out, _, code := run(t, single, "store", "copy", "--help")
	if code != 0 || !strings.Contains(out, "Stop the hub first") {
		t.Fatalf("store copy --help does not say to stop the hub:\n%s", out)
	}
}
