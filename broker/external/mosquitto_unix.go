//go:build unix

package external

import (
	"os"
	"syscall"
)

// keepOwner gives path the owner and group old had, if they differ from this process's.
func keepOwner(path string, old os.FileInfo) error {
	st, ok := old.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) == os.Geteuid() && int(st.Gid) == os.Getegid() {
		return nil
	}
	return os.Chown(path, int(st.Uid), int(st.Gid))
}
