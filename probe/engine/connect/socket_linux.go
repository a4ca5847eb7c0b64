//go:build linux

package connect

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ofmprobe/ofmprobe/probe/engine/datagram"
)

// errQueueBuffer is the size of a buffer for one read of a socket's error queue: the part of the packet the kernel
// copies back (which may be cut short) and the control messages.
const errQueueBuffer = 512

// pollBatch bounds the events read by one epoll_wait.
const pollBatch = 256

// resetLinger is SO_LINGER on with a zero timeout: close sends a RST and leaves no TIME_WAIT.
var resetLinger = unix.Linger{Onoff: 1, Linger: 0}

// poller is the connector's epoll set and the eventfd in it that wakes the poller goroutine.
type poller struct {
	epfd, efd int
	add       unix.EpollEvent // the sender's event for epoll_ctl, reused
	one       [8]byte         // the eventfd increment, reused
}

// openPoller creates the epoll set and adds the eventfd to it under wakeKey.
func openPoller() (poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return poller{}, os.NewSyscallError("epoll_create1", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return poller{}, os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setKey(&ev, wakeKey)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		unix.Close(efd)
		unix.Close(epfd)
		return poller{}, os.NewSyscallError("epoll_ctl", err)
	}
	p := poller{epfd: epfd, efd: efd}
	p.one[0] = 1 // the eventfd counter is a native-endian uint64: 1 on little-endian machines, 1<<56 on big-endian
	return p, nil
}

// wake makes the poller goroutine return from epoll_wait.
func (p *poller) wake() { _, _ = unix.Write(p.efd, p.one[:]) }

// drainWake resets the eventfd.
func (p *poller) drainWake() {
	var b [8]byte
	_, _ = unix.Read(p.efd, b[:])
}

func (p *poller) close() error {
	err1 := unix.Close(p.efd)
	err2 := unix.Close(p.epfd)
	if err1 != nil {
		return os.NewSyscallError("close", err1)
	}
	if err2 != nil {
		return os.NewSyscallError("close", err2)
	}
	return nil
}

// setKey stores k in the 64-bit data of ev (the fields Fd and Pad of x/sys are its two halves).
func setKey(ev *unix.EpollEvent, k uint64) {
	ev.Fd = int32(uint32(k))
	ev.Pad = int32(uint32(k >> 32))
}

func eventKey(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// dial opens p's socket, non-blocking, with IP_RECVERR or IPV6_RECVERR on, and connects it. It returns the socket
// (-1 when none could be opened) and the result of connect, EINPROGRESS when the handshake is under way. It runs on
// the sender only: the sockaddr is the sender's.
func (c *Connector) dial(p *attempt) (int, error) {
	family, level, recverr := unix.AF_INET, unix.IPPROTO_IP, unix.IP_RECVERR
	if !p.dst.Addr().Is4() {
		family, level, recverr = unix.AF_INET6, unix.IPPROTO_IPV6, unix.IPV6_RECVERR
	}
	var (
		fd  int
		err error
	)
	if c.cfg.socket != nil {
		fd, err = c.cfg.socket(family, func() (int, error) { return openSocket(family) })
	} else {
		fd, err = openSocket(family)
	}
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if err := unix.SetsockoptInt(fd, level, recverr, 1); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("setsockopt recverr", err)
	}
	if p.ttl > 0 {
		opt := unix.IP_TTL
		if family == unix.AF_INET6 {
			opt = unix.IPV6_UNICAST_HOPS
		}
		if err := unix.SetsockoptInt(fd, level, opt, p.ttl); err != nil {
			unix.Close(fd)
			return -1, os.NewSyscallError("setsockopt ttl", err)
		}
	}
	sa, err := c.sockaddr(p.dst)
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	p.start = c.now()
	if c.cfg.connect != nil {
		err = c.cfg.connect(p.dst, func() error { return unix.Connect(fd, sa) })
	} else {
		err = unix.Connect(fd, sa)
	}
	if err == unix.EINPROGRESS {
		return fd, err // the common case, not wrapped: it allocates nothing
	}
	if err != nil {
		return fd, os.NewSyscallError("connect", err)
	}
	return fd, nil
}

func openSocket(family int) (int, error) {
	return unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
}

// sockaddr returns dst as a sockaddr, reusing the sender's so that a connect allocates none.
func (c *Connector) sockaddr(dst netip.AddrPort) (unix.Sockaddr, error) {
	a := dst.Addr()
	if a.Is4() {
		c.sa4.Port, c.sa4.Addr = int(dst.Port()), a.As4()
		return &c.sa4, nil
	}
	c.sa6.Port, c.sa6.Addr, c.sa6.ZoneId = int(dst.Port()), a.As16(), 0
	if z := a.Zone(); z != "" {
		if n, err := strconv.ParseUint(z, 10, 32); err == nil {
			c.sa6.ZoneId = uint32(n)
		} else if ifi, err := net.InterfaceByName(z); err == nil {
			c.sa6.ZoneId = uint32(ifi.Index)
		} else {
			return nil, err
		}
	}
	return &c.sa6, nil
}

// closeSocket closes fd, which gave the outcome o: a connected socket is reset (SO_LINGER 0), so neither side keeps
// a TIME_WAIT or a half-open connection.
func (c *Connector) closeSocket(fd int, o Outcome) {
	if o == Connected {
		_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &resetLinger)
	}
	if c.cfg.closing != nil {
		c.cfg.closing(fd, o)
	}
	_ = unix.Close(fd)
}

// readICMP reads fd's error queue without blocking and returns the first ICMP or ICMPv6 error in it; the zero
// ICMPInfo when there is none. buf holds the packet part and the control messages of one read.
func readICMP(fd int, buf []byte) ICMPInfo {
	data, oob := buf[:64], buf[64:]
	var local ICMPInfo
	for range 8 {
		_, oobn, _, _, err := unix.Recvmsg(fd, data, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err != nil {
			break // EAGAIN: the queue is empty
		}
		e, err := datagram.ParseExtendedError(oob[:oobn])
		if err != nil {
			continue
		}
		if e.Origin == datagram.OriginICMP || e.Origin == datagram.OriginICMP6 {
			return e
		}
		if local.Origin == 0 {
			local = e
		}
	}
	return local
}

// watch hands a socket whose connect is in progress to the poller: it enters the table under a new generation, the
// epoll set with that key (one shot: the first writable, error or hang-up event), and the timer heap.
func (c *Connector) watch(p *attempt, fd int) {
	c.mu.Lock()
	c.gen++
	if c.gen == 0 {
		c.gen = 1
	}
	p.fd, p.gen = int32(fd), c.gen
	if fd >= len(c.conns) {
		c.conns = append(c.conns, make([]*attempt, fd+1-len(c.conns))...)
	}
	c.conns[fd] = p
	c.poll.add = unix.EpollEvent{Events: unix.EPOLLOUT | unix.EPOLLERR | unix.EPOLLHUP | unix.EPOLLONESHOT}
	setKey(&c.poll.add, key(p.fd, p.gen))
	if err := unix.EpollCtl(c.poll.epfd, unix.EPOLL_CTL_ADD, fd, &c.poll.add); err != nil {
		c.conns[fd] = nil
		c.mu.Unlock()
		err = os.NewSyscallError("epoll_ctl", err)
		outcome := Failed
		if err := err.(*os.SyscallError).Err; err == unix.ENOMEM || err == unix.ENOSPC {
			outcome = LocalError
		}
		c.closeSocket(fd, outcome)
		c.release(1)
		c.end(p, Result{Outcome: outcome, Err: err})
		return
	}
	p.At = p.start + p.timeout
	c.timers.Push(p)
	first := p.Index() == 0
	c.mu.Unlock()
	c.started.Add(1)
	if first {
		c.poll.wake() // the poller may be waiting for a later deadline
	}
}

// runPoller is the poller goroutine: it waits in epoll_wait until an event or the earliest deadline, ends the
// attempts that were decided or timed out, and delivers their results.
func (c *Connector) runPoller() {
	defer c.wg.Done()
	events := make([]unix.EpollEvent, pollBatch)
	buf := make([]byte, errQueueBuffer)
	var (
		done    []finished
		expired []*attempt
	)
	for {
		wait := -1
		c.mu.Lock()
		if len(c.timers) > 0 {
			wait = 0
			if d := c.timers[0].At - c.now(); d > 0 {
				wait = int((d + int64(time.Millisecond) - 1) / int64(time.Millisecond))
			}
		}
		c.mu.Unlock()
		n, err := unix.EpollWait(c.poll.epfd, events, wait)
		if err != nil {
			if err != unix.EINTR {
				time.Sleep(time.Millisecond) // cannot happen with a valid epoll set; do not spin
			}
			n = 0
		}
		now := c.now()
		freed := 0
		for i := range events[:n] {
			k := eventKey(&events[i])
			if k == wakeKey {
				c.poll.drainWake()
				continue
			}
			if f, ok := c.settle(k, events[i].Events, now, buf); ok {
				done = append(done, f)
				freed++
			}
		}
		c.mu.Lock()
		now = c.now()
		for len(c.timers) > 0 && c.timers[0].At <= now {
			p := c.timers.Pop()
			c.conns[p.fd] = nil
			expired = append(expired, p)
		}
		c.mu.Unlock()
		for i, p := range expired {
			c.closeSocket(int(p.fd), TimedOut)
			done = append(done, finished{p, Result{Outcome: TimedOut, RTT: time.Duration(now - p.start), Err: errTimedOut}})
			expired[i] = nil
		}
		freed += len(expired)
		expired = expired[:0]
		c.release(freed)
		for i, f := range done {
			c.end(f.p, f.r)
			done[i] = finished{}
		}
		done = done[:0]
		if c.ctx.Err() != nil {
			return
		}
	}
}

// settle ends the attempt of an epoll event with key k, unless the key is stale (an fd that was closed and reused
// since the event was queued). It reads the connect's result (SO_ERROR), the error queue of a failed connect, and
// closes the socket.
func (c *Connector) settle(k uint64, events uint32, now int64, buf []byte) (finished, bool) {
	fd, gen := int32(uint32(k)), uint32(k>>32)
	c.mu.Lock()
	if fd < 0 || int(fd) >= len(c.conns) || c.conns[fd] == nil || c.conns[fd].gen != gen {
		c.mu.Unlock()
		return finished{}, false
	}
	p := c.conns[fd]
	c.conns[fd] = nil
	c.timers.Remove(p)
	c.mu.Unlock()

	r := Result{Outcome: Connected, RTT: time.Duration(now - p.start)}
	soerr, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
	switch {
	case err != nil:
		r.Outcome, r.Err = Failed, os.NewSyscallError("getsockopt SO_ERROR", err)
	case soerr == 0:
		if events&unix.EPOLLOUT == 0 {
			if _, err := unix.Getpeername(int(fd)); err != nil {
				r.Outcome, r.Err = Failed, os.NewSyscallError("getpeername", err)
				// An error-queue entry (IP_RECVERR) raises EPOLLERR while the connect is still in progress and
				// SO_ERROR is 0: a failed ARP for a host that is not there, or an ICMP error for one SYN. The entry
				// says what went wrong, as the connect itself would once its retries ran out.
				if e := readICMP(int(fd), buf); e.Errno != 0 {
					r.Outcome, r.Err, r.ICMP = classify(e.Errno), os.NewSyscallError("connect", e.Errno), e
				}
			}
		}
	case syscall.Errno(soerr) == unix.ECONNRESET || syscall.Errno(soerr) == unix.EPIPE:
		// Reset after the handshake completed (a RST to a SYN is ECONNREFUSED): the port is open.
	default:
		errno := syscall.Errno(soerr)
		r.Outcome, r.Err = classify(errno), os.NewSyscallError("connect", errno)
		r.ICMP = readICMP(int(fd), buf)
	}
	if r.Outcome == Connected {
		// The kernel sends the SYN again after 1 s. With TCP timestamps the SYN-ACK echoes the SYN it answers, and the
		// kernel's round-trip sample (tcpi_rtt) is taken from that one: a sample much shorter than the whole wait
		// means the answer came to a later SYN, so a packet was lost; a late answer to the first SYN (a slow path)
		// gives a sample as long as the wait, and is no loss.
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil && info.Total_retrans > 0 {
			sample := time.Duration(info.Rtt) * time.Microsecond
			r.Retransmitted = r.RTT-sample > retransmitGap
		}
	}
	c.closeSocket(int(fd), r.Outcome)
	return finished{p, r}, true
}

// retransmitGap is how much shorter than the whole wait the kernel's round-trip sample must be for a connection to
// count as answered to a retransmitted SYN (the kernel's first retransmission comes 1 s after the SYN).
const retransmitGap = 500 * time.Millisecond

type (
	sockaddr4 = unix.SockaddrInet4
	sockaddr6 = unix.SockaddrInet6
)

// isPushback reports whether err is this machine's short-lived refusal to open or connect a socket: no descriptor,
// buffer, memory or local port.
func isPushback(err error) bool {
	if err == nil {
		return false
	}
	errno, ok := errnoOf(err)
	if !ok {
		return false
	}
	switch errno {
	case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.EADDRNOTAVAIL, syscall.ENOMEM, syscall.EAGAIN:
		return true
	}
	return false
}

// classify maps the errno of a failed connect to its outcome.
func classify(err error) Outcome {
	errno, ok := errnoOf(err)
	if !ok {
		return Failed
	}
	switch errno {
	case 0:
		return Connected
	case syscall.ECONNREFUSED:
		return Refused
	case syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.EHOSTDOWN, syscall.ENONET, syscall.ENETDOWN:
		return Unreachable
	case syscall.ETIMEDOUT:
		return TimedOut
	case syscall.EACCES, syscall.EPERM:
		return Denied
	case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.EADDRNOTAVAIL, syscall.ENOMEM, syscall.EAGAIN:
		return LocalError
	}
	return Failed
}

// errnoOf returns the errno in err; the common shapes are unwrapped without errors.As, which allocates.
func errnoOf(err error) (syscall.Errno, bool) {
	switch e := err.(type) {
	case syscall.Errno:
		return e, true
	case *os.SyscallError:
		if errno, ok := e.Err.(syscall.Errno); ok {
			return errno, true
		}
	}
	var errno syscall.Errno
	return errno, errors.As(err, &errno)
}
