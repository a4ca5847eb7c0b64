//go:build unix

package probe

import (
	"fmt"
	"syscall"
)

// fdReserve is the file descriptors kept back from the socket budget for the process itself: output files, the
// resolver, standard streams, the runtime's own.
const fdReserve = 64

// RaiseFileLimit raises the soft limit on open files to the hard limit and returns the resulting soft limit.
func RaiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read open-file limit: %w", err)
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			return lim.Cur, fmt.Errorf("raise open-file limit from %d to %d: %w", lim.Cur, lim.Max, err)
		}
		lim = raised
	}
	return lim.Cur, nil
}

// SocketBudget returns the sockets in flight the open-file limit allows for the requested budget: the request itself
// when it fits below the limit with a reserve kept back, else the largest that does.
func SocketBudget(requested int, fileLimit uint64) int {
	if fileLimit <= fdReserve+1 {
		return 1
	}
	allowed := fileLimit - fdReserve
	if uint64(requested) > allowed {
		return int(allowed)
	}
	return requested
}
