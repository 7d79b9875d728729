// Package atomicfile replaces small files all or nothing: the state files (the agent's state and
// outbox meta, the spool's cursor) that must come back whole, old or new, after a crash or a
// power loss. Standard library only, so the edge agent can use it.
package atomicfile

import (
	"os"
	"path/filepath"
)

// TempSuffix ends the name of the temporary file Write renames into place; a file with it left
// over from a crash is garbage and may be removed.
const TempSuffix = ".tmp"

// Write makes dir/name hold b: b goes to a temporary file that is renamed over name, so a crash
// leaves the old content or the new, plus at worst a temporary file. With fsync the data is
// synced before the rename and the directory after it, so that a power loss cannot keep the
// rename but lose the content.
func Write(dir, name string, b []byte, fsync bool) error {
	path := filepath.Join(dir, name)
	tmp := path + TempSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil && fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if fsync {
		return SyncDir(dir)
	}
	return nil
}

// SyncDir makes the creation, rename or removal of a file in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
