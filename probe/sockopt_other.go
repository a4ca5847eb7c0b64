//go:build !linux

package probe

import "syscall"

// udpControl does nothing where IP_RECVERR does not exist.
func udpControl(string, string, syscall.RawConn) error { return nil }
