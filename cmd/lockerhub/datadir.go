package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/lockerhub/lockerhub/fleet/sqldb"
)

// Commands that work on the store (device, token, audit, store copy) find SQLite in data_dir,
// ./var/lockerhub unless the configuration or LOCKERHUB_DATA_DIR says otherwise. Run from the
// wrong directory, or beside a demo whose data lives elsewhere, a command that created an empty
// store there would answer from it: `audit export` would print nothing and exit 0. So only the
// commands that set a hub up create a store (device add and import, token create, simulate
// --provision: the README's first steps), and say where; every other command fails without
// creating anything, naming the directory it looked in.

// creating returns a copy of c whose store commands may create the store in data_dir.
func (c *cli) creating() *cli {
	cc := *c
	cc.createStore = true
	return &cc
}

// checkStore returns an error if the store cfg names is SQLite and has no database yet, unless
// c may create it: then it says on stderr that it does. PostgreSQL is not checked: a database
// that does not exist fails to open with its own error, and an empty one is a new cluster's.
func (c *cli) checkStore(cfg Config) error {
	if cfg.Store.URL != "" {
		return nil
	}
	_, err := os.Stat(filepath.Join(cfg.DataDir, sqldb.FileName))
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// The absolute path names the directory whichever the working directory; the configured one
	// is what to change.
	where, setting := cfg.DataDir, "data_dir"
	if abs, err := filepath.Abs(where); err == nil && abs != filepath.Clean(where) {
		where, setting = abs, "data_dir "+cfg.DataDir
	}
	if c.createStore {
		fmt.Fprintf(c.stderr, "lockerhub: no hub data in %s yet (%s): creating a new store there; "+
			"run the hub with the same data_dir (LOCKERHUB_DATA_DIR or --config)\n", where, setting)
		return nil
	}
	return fmt.Errorf("no hub data in %s (%s; LOCKERHUB_DATA_DIR or --config sets it): "+
		"is this the directory your hub uses? Nothing was created there; a demo prints the "+
		"settings that point the CLI at it", where, setting)
}
