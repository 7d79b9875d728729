//go:build !unix

package broker

// fileLimit reports no limit where the system has no RLIMIT_NOFILE.
func fileLimit() (int, bool) { return 0, false }
