package probe

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// udpPorts is the "udp port" step for all of a host's UDP ports at once, on one unconnected socket. Each try sends an
// empty datagram to every port still silent, then waits UDPTimeout for answers: a datagram from the host's port is
// "open", an ICMP error about it is "closed" or "unreachable", silence after every try is "open|filtered".
//
// One socket per host instead of one per port: in a /16 sweep the three UDP ports' sockets were a fifth of the CPU
// (socket, three options, connect, two address lookups, two epoll registrations and close, per port). A connected
// socket is what attributes an ICMP error to its port; here IP_RECVERR queues every error with the destination of the
// datagram that caused it (the original address and port, as msg_name of an MSG_ERRQUEUE read), which attributes it
// just as well, and only datagrams from the host itself are taken as answers.
func (s *Scanner) udpPorts(ctx context.Context, addr netip.Addr, ports []int) []PortResult {
	if addr.Zone() != "" {
		return s.udpPortsEach(ctx, addr, ports)
	}
	results := make([]PortResult, len(ports))
	for i, p := range ports {
		results[i] = PortResult{Port: p, Protocol: "udp"}
	}
	sock, err := s.openUDPMulti(ctx, addr)
	var rc syscall.RawConn
	if err == nil {
		defer sock.Close()
		rc, err = sock.SyscallConn()
	}
	if err != nil {
		for i := range results {
			results[i] = udpSendFailure(results[i], err)
		}
		return results
	}

	sent := make([]time.Time, len(ports))
	index := make(map[int]int, len(ports))
	for i, p := range ports {
		index[p] = i
	}
	pending := len(ports)
	buf := make([]byte, 512)
	oob := make([]byte, 512)
	for try := 0; try <= s.opts.UDPRetries && pending > 0 && ctx.Err() == nil; try++ {
		for i := range results {
			if results[i].State != "" {
				continue
			}
			if s.pace(ctx) != nil {
				break
			}
			results[i].Attempts++
			sent[i] = time.Now()
			var serr error
			werr := rc.Write(func(fd uintptr) bool {
				serr = sendDatagram(int(fd), sockaddr(addr, ports[i]))
				return !errors.Is(serr, unix.EAGAIN)
			})
			if werr == nil && serr != nil {
				werr = serr
			}
			if werr != nil {
				results[i] = udpSendFailure(results[i], werr)
				pending--
			}
		}
		// Collect answers and errors until this try's deadline or until every port is decided.
		sock.SetReadDeadline(time.Now().Add(s.opts.UDPTimeout))
		for pending > 0 {
			var events []udpEvent
			rerr := rc.Read(func(fd uintptr) bool {
				events = readUDPEvents(int(fd), addr, buf, oob, events)
				return len(events) > 0
			})
			if rerr != nil {
				break // the try's deadline, or the socket closed under a cancelled scan
			}
			for _, ev := range events {
				i, ok := index[ev.port]
				if !ok || results[i].State != "" {
					continue
				}
				rtt := time.Since(sent[i])
				if ev.err == nil {
					results[i].State, results[i].RTT = StateOpen, rtt
					results[i].Evidence = fmt.Sprintf("udp %d: open, answered in %s", ports[i], formatRTT(rtt))
				} else if st, done := udpErrorState(ev.err); done {
					results[i] = udpFinal(results[i], st, ev.err, rtt)
				} else {
					continue
				}
				pending--
			}
		}
	}
	for i := range results {
		if results[i].State == "" {
			if ctx.Err() != nil && results[i].Attempts == 0 {
				results[i].State, results[i].Evidence = StateError, fmt.Sprintf("udp %d: scan cancelled", ports[i])
				continue
			}
			results[i].State = StateOpenFiltered
			results[i].Evidence = fmt.Sprintf("udp %d: open|filtered, no answer and no ICMP error to %d %s of %s (no safe query exists for this port)",
				ports[i], results[i].Attempts, plural(results[i].Attempts, "datagram"), s.opts.UDPTimeout)
		}
	}
	return results
}

// udpEvent is what the socket said about one of the host's ports: an answer (err nil) or an ICMP error.
type udpEvent struct {
	port int
	err  error
}

// readUDPEvents drains the socket's error queue and its datagrams without blocking and appends what concerns addr.
func readUDPEvents(fd int, addr netip.Addr, buf, oob []byte, events []udpEvent) []udpEvent {
	for {
		_, oobn, _, from, err := unix.Recvmsg(fd, buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err != nil {
			break
		}
		dst, ok := sockaddrAddrPort(from)
		if !ok || dst.Addr() != addr {
			continue
		}
		if errno, ok := extendedErrno(oob[:oobn]); ok {
			events = append(events, udpEvent{port: int(dst.Port()), err: os.NewSyscallError("recvmsg", errno)})
		}
	}
	for range 1024 {
		_, from, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			continue // the socket's pending error (see sendDatagram), now cleared; the queue says whose it was
		}
		src, ok := sockaddrAddrPort(from)
		if ok && src.Addr() == addr {
			events = append(events, udpEvent{port: int(src.Port())})
		}
	}
	return events
}

// extendedErrno returns the errno of the sock_extended_err in an IP_RECVERR or IPV6_RECVERR control message: its
// first four bytes (ECONNREFUSED for port unreachable, EHOSTUNREACH for host unreachable or a failed ARP, ...).
func extendedErrno(oob []byte) (syscall.Errno, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if (m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_RECVERR) ||
			(m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_RECVERR) {
			if len(m.Data) >= 4 {
				return syscall.Errno(uint32(m.Data[0]) | uint32(m.Data[1])<<8 | uint32(m.Data[2])<<16 | uint32(m.Data[3])<<24), true
			}
		}
	}
	return 0, false
}

// sendDatagram sends an empty datagram to sa. An ICMP error about an earlier datagram also sets the socket's pending
// error, which the next send or receive reports whatever it is for: that error belongs to the port the error queue
// names, not to this send. So the pending error is cleared (SO_ERROR) before the send, and a send that still meets
// one (an ICMP error that arrived in between) is tried again. An error that stays is this send's own: no route,
// a broadcast address.
func sendDatagram(fd int, sa unix.Sockaddr) error {
	var err error
	for range 4 {
		_, _ = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err = unix.Sendto(fd, nil, 0, sa); err == nil || errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			return err
		}
	}
	return err
}

func sockaddr(addr netip.Addr, port int) unix.Sockaddr {
	if addr.Is4() {
		return &unix.SockaddrInet4{Port: port, Addr: addr.As4()}
	}
	return &unix.SockaddrInet6{Port: port, Addr: addr.As16()}
}

func sockaddrAddrPort(sa unix.Sockaddr) (netip.AddrPort, bool) {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), true
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port)), true
	}
	return netip.AddrPort{}, false
}

// openUDPMulti opens the unconnected, non-blocking UDP socket of udpPorts, with every ICMP error queued (IP_RECVERR)
// and SO_BROADCAST off (a target that is a broadcast address is refused with EACCES, never broadcast to). It is an
// os.File, so the runtime poller waits on it and read deadlines work. Local resource shortages are retried as dials
// are.
func (s *Scanner) openUDPMulti(ctx context.Context, addr netip.Addr) (*os.File, error) {
	family, level, opt := unix.AF_INET, unix.IPPROTO_IP, unix.IP_RECVERR
	if !addr.Is4() {
		family, level, opt = unix.AF_INET6, unix.IPPROTO_IPV6, unix.IPV6_RECVERR
	}
	for tries := 1; ; tries++ {
		fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			if err = unix.SetsockoptInt(fd, level, opt, 1); err == nil {
				return os.NewFile(uintptr(fd), "udp"), nil
			}
			unix.Close(fd)
		}
		err = os.NewSyscallError("socket", err)
		if Classify(err) != StatusLocal || tries > maxLocalRetries || !s.pushedBack(ctx, tries) {
			return nil, err
		}
	}
}
