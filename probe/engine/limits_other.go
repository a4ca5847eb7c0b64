//go:build !unix

package engine

// RaiseFileLimit has no open-file limit to raise outside unix; it returns a limit that leaves the requested socket
// budget as it is (Windows bounds sockets by memory, not by a descriptor limit).
func RaiseFileLimit() (uint64, error) { return 1 << 20, nil }
