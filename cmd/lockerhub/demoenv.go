package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// demoEnvFile is the file in the demo's data directory that points a shell's CLI at the demo.
const demoEnvFile = "env.sh"

// printDemoEnv writes the exports that point the CLI at the running demo (its data directory,
// its hub and its operator token) to demoEnvFile in its data directory, and prints them with the
// line that sources the file. Without them `lockerhub audit export` or `device list` in another
// terminal read ./var/lockerhub, not the demo. The file holds the token, so only its owner may
// read it; it goes with the data directory, removed at exit unless --data-dir kept it. Failing
// to write it is only a warning: the exports are printed either way.
func (c *cli) printDemoEnv(cfg Config, hubURL, token string) {
	dataDir, err := filepath.Abs(cfg.DataDir) // the other terminal may be elsewhere
	if err != nil {
		dataDir = cfg.DataDir
	}
	vars := [][2]string{{envPrefix + "_DATA_DIR", dataDir}, {envHub, hubURL}, {envToken, token}}
	if cfg.Store.URL != "" {
		vars = append(vars, [2]string{envPrefix + "_STORE_URL", cfg.Store.URL})
	}
	var b strings.Builder
	for _, v := range vars {
		fmt.Fprintf(&b, "export %s=%s\n", v[0], shellQuote(v[1]))
	}
	path := filepath.Join(dataDir, demoEnvFile)
	if err := os.WriteFile(path, []byte("# lockerhub demo: point the lockerhub CLI at it\n"+b.String()), 0o600); err != nil {
		fmt.Fprintf(c.stderr, "demo: cannot write %s: %v\n", path, err)
	}
	fmt.Fprintf(c.stdout, "To point lockerhub commands in another shell at this demo (data, hub and token):\n\n  . %s\n\nwhich runs\n\n", shellQuote(path))
	for line := range strings.Lines(b.String()) {
		fmt.Fprint(c.stdout, "  ", line)
	}
	fmt.Fprintln(c.stdout)
}

// shellQuote quotes s for a POSIX shell: in single quotes, each single quote in s closed, escaped
// and reopened.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
