//go:build unix

package broker

import "syscall"

// fileLimit returns the process's soft limit on open file descriptors. Go raises it to the hard
// limit at start-up, so this is what the hub can open.
func fileLimit() (int, bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 0, false
	}
	return int(rl.Cur), true
}
