package engine

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// retransmitted reports whether the kernel had to retransmit on a TCP connection (its SYN or data): the path lost a
// segment or its acknowledgement. A server that acknowledges a request and never answers (a tarpit) shows none.
func retransmitted(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var total uint32
	raw.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			total = info.Total_retrans
		}
	})
	return total > 0
}
