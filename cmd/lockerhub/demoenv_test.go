package main_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// checkDemoEnv checks what a running demo printed on stdout to point the CLI at it: a file
// dataDir/env.sh, readable by its owner only (it holds the token), that sets the data
// directory, the hub and the token, so that store commands (audit export) and API commands
// (fleet status) in another shell reach the demo rather than ./var/lockerhub.
func checkDemoEnv(t *testing.T, stdout, dataDir string) {
	t.Helper()
	m := regexp.MustCompile(`(?m)^  \. '([^']+)'$`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("the demo printed no line to source:\n%s", stdout)
	}
	if want := filepath.Join(dataDir, "env.sh"); m[1] != want {
		t.Errorf("the demo's env file is %s, want %s", m[1], want)
	}
	fi, err := os.Stat(m[1])
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %o, want 600", m[1], fi.Mode().Perm())
	}
	b, err := os.ReadFile(m[1])
	if err != nil {
		t.Fatal(err)
	}
	// Only what the file sets: nothing from this process may point the CLI anywhere.
	environ := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "LOCKERHUB_") })
	for _, kv := range regexp.MustCompile(`(?m)^export (\w+)='([^']*)'$`).FindAllStringSubmatch(string(b), -1) {
		if !strings.Contains(stdout, kv[0]) {
			t.Errorf("the demo did not print %q", kv[0])
		}
		environ = append(environ, kv[1]+"="+kv[2])
	}
	if out, errOut, code := run(t, environ, "audit", "export"); code != 0 || !strings.Contains(out, `"action":"token.create"`) {
		t.Errorf("audit export with %s: exit %d, stdout %q, stderr %q", b, code, out, errOut)
	}
	if out, errOut, code := run(t, environ, "fleet", "status"); code != 0 {
		t.Errorf("fleet status with %s: exit %d, stdout %q, stderr %q", b, code, out, errOut)
	}
}
