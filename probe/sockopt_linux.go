package probe

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// udpControl prepares a UDP probe socket. It asks the kernel to report every ICMP error on the connected socket:
// without IP_RECVERR Linux reports only port unreachable (ECONNREFUSED), and host or network unreachable, or a failed
// ARP on the local link, would look like silence. It also clears SO_BROADCAST, which Go sets on every UDP socket: a
// probe is unicast, and a target that is a subnet's broadcast address must be refused (EACCES), not broadcast to
// every host on the segment.
func udpControl(network, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if network == "udp4" {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 0)
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVERR, 1)
			}
		} else if network == "udp6" {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVERR, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}
