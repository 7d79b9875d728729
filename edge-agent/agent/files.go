package agent

import (
	"os"
	"path/filepath"
)

// writeFileAtomic makes dir/name hold b, all or nothing: b goes to a temporary file that is then
// renamed over name, so a crash leaves the old file or the new one, plus at worst a temporary
// file that OpenOutbox removes. With fsync the data is synced before the rename and the
// directory after it, so that a power loss cannot keep the rename but lose the content.
func writeFileAtomic(dir, name string, b []byte, fsync bool) error {
	path := filepath.Join(dir, name)
	tmp := path + tmpSuffix
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
		return syncDir(dir)
	}
	return nil
}

// syncDir makes a rename or delete in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
