//go:build linux

package datagram

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// socket is one unconnected, non-blocking UDP socket of the mux, watched by the Go runtime's poller.
type socket struct {
	file   *os.File
	rc     syscall.RawConn
	rcvbuf int           // SO_RCVBUF as the kernel reports it
	drops  atomic.Uint64 // the latest SO_RXQ_OVFL counter
	// errQueue is held while the receiver reads the error queue, and by a send trying again after it met an error
	// left for another datagram.
	errQueue sync.Mutex
}

// receiveBatch bounds the datagrams or errors read in one pass before the results are delivered.
const receiveBatch = 256

// openSocket opens the socket of a family: every ICMP error queued with the destination that caused it
// (IP_RECVERR, IPV6_RECVERR), SO_BROADCAST off so a broadcast destination fails with EACCES instead of being
// broadcast, the kernel's drop counter on every datagram (SO_RXQ_OVFL), and a receive buffer of rcvbuf bytes. The
// IPv6 socket is IPv6 only: IPv4 goes on the IPv4 socket.
func openSocket(v6 bool, rcvbuf int) (*socket, error) {
	family, level, recverr := unix.AF_INET, unix.IPPROTO_IP, unix.IP_RECVERR
	name := "udp4"
	if v6 {
		family, level, recverr = unix.AF_INET6, unix.IPPROTO_IPV6, unix.IPV6_RECVERR
		name = "udp6"
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	opts := []struct {
		level, opt, value int
		name              string
	}{
		{level, recverr, 1, "setsockopt recverr"},
		{unix.SOL_SOCKET, unix.SO_BROADCAST, 0, "setsockopt SO_BROADCAST"},
		{unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1, "setsockopt SO_RXQ_OVFL"},
	}
	if v6 {
		opts = append(opts, struct {
			level, opt, value int
			name              string
		}{unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1, "setsockopt IPV6_V6ONLY"})
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.value); err != nil {
			unix.Close(fd)
			return nil, os.NewSyscallError(o.name, err)
		}
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf) // capped by rmem_max; reported below
	}
	// The send buffer too: a datagram to a host whose ARP (or NDP) resolution is pending sits in the neighbour's
	// queue, charged to this socket, until the resolution ends (up to a few hundred milliseconds). One socket carries
	// the whole scan, so the default buffer (about 200 KiB) fills in a sweep of a subnet with many absent hosts, and
	// sends to every host stall.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, rcvbuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, rcvbuf)
	}
	got, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("getsockopt SO_RCVBUF", err)
	}
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &socket{file: f, rc: rc, rcvbuf: got}, nil
}

func (s *socket) close() error { return s.file.Close() }

// send sends payload to dst. An ICMP error about an earlier datagram also sets the socket's pending error, which the
// next send reports, and fails on, whatever it is for: that error belongs to the destination the error queue names,
// not to this send. Reading the error queue sets the pending error again from the entry behind the one read, so while
// the receiver drains a long queue every send can meet one. A send that fails so is tried again while the receiver
// holds off (errQueue), where only an ICMP error arriving in between can set it. An error that stays is this send's
// own (a route's ENETUNREACH). Clearing the pending error before every send (SO_ERROR), as this did before, cost a
// system call per datagram and still lost that race about once in a /16 sweep.
func (s *socket) send(dst netip.AddrPort, payload []byte) error {
	sa, err := sockaddr(dst)
	if err != nil {
		return err
	}
	var serr error
	werr := s.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), payload, 0, sa)
		if !asyncError(serr) {
			return true
		}
		s.errQueue.Lock()
		defer s.errQueue.Unlock()
		for range 16 { // each try that fails clears one error: 16 arrivals in a few microseconds do not happen
			if serr = unix.Sendto(int(fd), payload, 0, sa); !asyncError(serr) {
				break
			}
		}
		return true
	})
	if werr != nil {
		return werr
	}
	if serr != nil {
		return os.NewSyscallError("sendto", serr)
	}
	return nil
}

// asyncError reports whether a send's error may be a pending error left by an ICMP error for another datagram.
func asyncError(err error) bool {
	switch err {
	case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EHOSTDOWN, unix.ENONET, unix.EPROTO,
		unix.ENOPROTOOPT, unix.EOPNOTSUPP, unix.EMSGSIZE:
		return true
	}
	return false
}

func sockaddr(dst netip.AddrPort) (unix.Sockaddr, error) {
	a := dst.Addr()
	if a.Is4() {
		return &unix.SockaddrInet4{Port: int(dst.Port()), Addr: a.As4()}, nil
	}
	sa := &unix.SockaddrInet6{Port: int(dst.Port()), Addr: a.As16()}
	if z := a.Zone(); z != "" {
		if n, err := strconv.ParseUint(z, 10, 32); err == nil {
			sa.ZoneId = uint32(n)
		} else if ifi, err := net.InterfaceByName(z); err == nil {
			sa.ZoneId = uint32(ifi.Index)
		} else {
			return nil, err
		}
	}
	return sa, nil
}

func addrPort(sa unix.Sockaddr) (netip.AddrPort, bool) {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), true
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port)), true
	}
	return netip.AddrPort{}, false
}

// receive is the receiver goroutine of s: it waits for the socket to be readable or to have an error queued, drains
// the error queue and the datagrams in batches, and delivers the results between batches. It ends when s closes.
func (m *Mux) receive(s *socket) {
	defer m.wg.Done()
	buf := make([]byte, 1<<16)
	oob := make([]byte, 512)
	var done []finished
	for {
		err := s.rc.Read(func(fd uintptr) bool {
			var busy bool
			done, busy = m.drain(int(fd), s, buf, oob, done)
			return busy // false: both queues are empty, wait for the poller
		})
		for i, f := range done {
			f.q.Done(f.r)
			done[i] = finished{}
		}
		done = done[:0]
		if err != nil {
			return
		}
	}
}

// drain reads up to receiveBatch queued errors and receiveBatch datagrams from fd without blocking, and appends the
// queries they end to done. It reports whether it read anything; false means both queues were empty.
func (m *Mux) drain(fd int, s *socket, buf, oob []byte, done []finished) ([]finished, bool) {
	busy := s.readErrors(fd, buf, oob, func(from unix.Sockaddr, oob []byte) {
		dst, ok := addrPort(from)
		e, perr := ParseExtendedError(oob)
		if !ok || perr != nil || e.Origin > OriginICMP6 {
			m.strays.Add(1) // not about a datagram of ours that the kernel can name
			return
		}
		done = m.fail(dst, e, done)
	})
	for range receiveBatch {
		n, oobn, flags, from, err := unix.Recvmsg(fd, buf, oob, unix.MSG_DONTWAIT)
		if err == unix.EAGAIN {
			break
		}
		busy = true
		if err != nil {
			continue // the socket's pending error, cleared by this read: the error queue says whose it was
		}
		if oobn > 0 {
			m.noteDrops(s, oob[:oobn])
		}
		src, ok := addrPort(from)
		if !ok || flags&unix.MSG_TRUNC != 0 {
			m.strays.Add(1)
			continue
		}
		if f, ok := m.answer(src, buf[:n]); ok {
			done = append(done, f)
		}
	}
	return done, busy
}

// readErrors reads up to receiveBatch entries of fd's error queue without blocking, holding errQueue, and calls each
// with the destination and the control messages of every entry read. It reports whether it read anything.
func (s *socket) readErrors(fd int, buf, oob []byte, each func(from unix.Sockaddr, oob []byte)) bool {
	busy := false
	s.errQueue.Lock()
	defer s.errQueue.Unlock()
	for range receiveBatch {
		_, oobn, _, from, err := unix.Recvmsg(fd, buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err == unix.EAGAIN {
			break // the error queue is empty
		}
		busy = true // only EAGAIN may end a pass: the poller reports edges
		if err != nil {
			continue
		}
		each(from, oob[:oobn])
	}
	return busy
}

// noteDrops keeps the kernel's drop counter for s from a datagram's SO_RXQ_OVFL control message.
func (m *Mux) noteDrops(s *socket, oob []byte) {
	_ = walkControlMessages(oob, func(level, typ int32, data []byte) bool {
		if level == unix.SOL_SOCKET && typ == unix.SO_RXQ_OVFL && len(data) >= 4 {
			s.drops.Store(uint64(binary.NativeEndian.Uint32(data)))
			return false
		}
		return true
	})
}
