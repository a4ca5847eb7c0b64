package connect

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ofmprobe/ofmprobe/probe/engine/datagram"
	"github.com/ofmprobe/ofmprobe/probe/internal/timeheap"
)

// SYN is the connect path without a socket per probe, for IPv4 where raw sockets may be opened (root, or
// CAP_NET_RAW): one raw socket sends each attempt's SYN and reads every SYN-ACK and RST, another reads the ICMP
// errors, and an attempt in flight is a small struct in a table and a timer heap. A SYN-ACK proves the port open;
// the kernel, which knows no such connection, answers it with a RST, so no connection is left half-open at either
// end (nmap's -sS works the same way). It holds no file descriptor per attempt: the open-file limit, which bounds
// the connector's sockets in flight, does not bound it.
//
// It has the connector's API (Connect, Stats, Lost, Close) and outcomes: Connected for a SYN-ACK, Refused for a
// RST (or an ICMP port unreachable), Unreachable for the other ICMP destination-unreachable codes, with the ICMP
// error and its offender as the kernel's error queue would give them, Denied when this machine's firewall refuses
// the send (EPERM), TimedOut for silence.
//
// The kernel does not send a raw SYN again, so the prober does it as the kernel would for a connect: an attempt
// whose timeout is longer than synRTO (TCP's initial retransmission timeout, RFC 6298) sends a second SYN at synRTO,
// from another source port, so that an answer names the SYN it answers. An answer to the second one is Retransmitted:
// the path lost the first SYN or its answer (a loss, which cuts the window, and no round-trip sample); a late
// answer to the first one is not. Without it an attempt would carry one SYN where a connect carries two, and on a
// path that loses 30 % each way it would fail one time in two instead of one in four.
type SYN struct {
	cfg   Config
	epoch time.Time
	ctx   context.Context
	stop  context.CancelFunc
	tcp   *net.IPConn
	icmp  *net.IPConn
	wg    sync.WaitGroup
	wake  chan struct{}

	mu     sync.Mutex
	closed bool
	queue  []*synAttempt
	// flight holds each attempt in flight under the key of each SYN it sent (two after its resend); inFlight counts
	// the attempts.
	flight   map[synKey]*synAttempt
	inFlight int
	timers   timeheap.Heap[*synAttempt]
	win      window
	peak     int
	sources  map[[3]byte]netip.Addr // the local address that routes to each /24
	// broadcasts are this machine's subnets' broadcast addresses, to which TCP cannot connect (the kernel refuses
	// a connect there with ENETUNREACH): a SYN prober refuses them the same way.
	broadcasts map[[4]byte]bool
	nextSrc    uint16

	counters
	resent atomic.Uint64
}

// synKey names an attempt by what its answers carry: the destination, its port and the SYN's source port.
type synKey struct {
	dst   [4]byte
	dport uint16
	sport uint16
}

// synAttempt is one attempt's SYNs in flight or queued: about 130 bytes. key and seq are its first SYN's; resent
// says it sent a second, key2 and seq2, at synRTO; src is the local address both come from.
type synAttempt struct {
	key, key2 synKey
	dstAddr   netip.AddrPort
	src       netip.Addr
	seq, seq2 uint32
	resent    bool
	timeout   int64
	start     int64
	done      func(Result)
	started   func()
	timeheap.Timed
}

// synRTO is when an attempt sends its second SYN: TCP's initial retransmission timeout (RFC 6298 2.1, and Linux's
// TCP_TIMEOUT_INIT), as a connect's kernel does.
const synRTO = time.Second

// resends reports whether p sends a second SYN: its timeout is longer than synRTO.
func (p *synAttempt) resends() bool { return p.timeout > int64(synRTO) }

// The SYN's source ports: below the kernel's ephemeral range (32768-60999 by default), so that no connection of this
// machine's own (the protocol exchanges dial the same hosts and ports) shares a SYN's four-tuple.
const (
	synPortLow  = 20000
	synPortHigh = 32767
)

// errNoRaw is the error of OpenSYN where raw sockets cannot be opened.
var errNoRaw = errors.New("connect: raw sockets are not available")

// OpenSYN opens the raw sockets and starts the sender, the timer and the two readers. It fails without the
// privilege to open raw sockets; the caller then uses Open.
func OpenSYN(cfg Config) (*SYN, error) {
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MinInFlight <= 0 {
		cfg.MinInFlight = min(DefaultMinInFlight, max(1, cfg.MaxInFlight/windowSteps))
	}
	tcp, err := net.ListenIP("ip4:tcp", &net.IPAddr{IP: net.IPv4zero})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoRaw, err)
	}
	icmp, err := net.ListenIP("ip4:icmp", &net.IPAddr{IP: net.IPv4zero})
	if err != nil {
		tcp.Close()
		return nil, fmt.Errorf("%w: %v", errNoRaw, err)
	}
	// Every TCP segment this machine receives is a copy to the raw socket: keep only SYN-ACKs and RSTs to the
	// SYNs' source ports, in the kernel.
	if err := attachSYNFilter(tcp); err != nil {
		tcp.Close()
		icmp.Close()
		return nil, fmt.Errorf("connect: SYN filter: %w", err)
	}
	// A SYN to an address whose link-layer resolution fails (nobody has it) is reported on the sending socket's
	// error queue, as a connect's would be: without IP_RECVERR it would be silence.
	if err := setRecvErr(tcp); err != nil {
		tcp.Close()
		icmp.Close()
		return nil, fmt.Errorf("connect: IP_RECVERR: %w", err)
	}
	tcp.SetReadBuffer(8 << 20)
	icmp.SetReadBuffer(4 << 20)
	// SYNs to addresses whose link-layer address is being resolved wait in the kernel (up to 3 s, for nobody)
	// charged to this socket's send buffer: a sweep of empty addresses fills the default one, and sends fail with
	// ENOBUFS. Root may set it past net.core.wmem_max.
	setSendBuffer(tcp, synSendBuffer)
	ctx, stop := context.WithCancel(context.Background())
	s := &SYN{
		cfg: cfg, epoch: time.Now(), ctx: ctx, stop: stop, tcp: tcp, icmp: icmp,
		wake:       make(chan struct{}, 1),
		flight:     map[synKey]*synAttempt{},
		sources:    map[[3]byte]netip.Addr{},
		broadcasts: localBroadcasts(),
		win:        newWindow(cfg.MaxInFlight, cfg.MinInFlight),
		nextSrc:    synPortLow + uint16(rand.N(synPortHigh-synPortLow)),
	}
	s.wg.Add(3)
	go s.runSender()
	go s.readTCP()
	go s.readICMP()
	return s, nil
}

// Handles reports whether SYN can probe dst with ttl: IPv4 without a time to live of its own (the hop finder's
// connects stay on the connector).
func (s *SYN) Handles(dst netip.Addr, ttl int) bool { return ttl == 0 && dst.Unmap().Is4() }

func (s *SYN) now() int64 { return int64(time.Since(s.epoch)) }

// Connect queues a; a.Done receives the result later (Canceled at once after Close).
func (s *SYN) Connect(a Attempt) {
	if a.Done == nil {
		a.Done = func(Result) {}
	}
	if a.Timeout <= 0 {
		a.Timeout = DefaultTimeout
	}
	dst := netip.AddrPortFrom(a.Dst.Addr().Unmap(), a.Dst.Port())
	p := &synAttempt{dstAddr: dst, timeout: int64(a.Timeout), done: a.Done, started: a.Started}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.end(p, Result{Outcome: Canceled, Err: ErrClosed})
		return
	}
	s.queue = append(s.queue, p)
	s.mu.Unlock()
	wake(s.wake)
}

// Stats returns the counters as of now.
func (s *SYN) Stats() Stats {
	st := s.counters.stats(s.cfg.MaxInFlight)
	st.Resent = s.resent.Load()
	s.mu.Lock()
	st.InFlight, st.PeakInFlight, st.Queued = s.inFlight, s.peak, len(s.queue)
	st.Window, st.LowestWindow, st.Backoffs = s.win.cwnd, s.win.lowest, s.win.backoffs
	s.mu.Unlock()
	return st
}

// Queued is the number of attempts waiting for the sender now.
func (s *SYN) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Lost reports a loss on the way to a host that answers, as Connector.Lost does: it cuts the window.
func (s *SYN) Lost() { lostOn(&s.mu, &s.win, &s.losses, s.now()) }

// Close stops the goroutines, closes the raw sockets and gives Canceled to every attempt queued or in flight.
func (s *SYN) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.stop()
	wake(s.wake)
	s.tcp.Close()
	s.icmp.Close()
	s.wg.Wait()
	s.mu.Lock()
	canceled := s.queue
	for k, p := range s.flight {
		if k == p.key { // once, not once per SYN
			canceled = append(canceled, p)
		}
	}
	s.queue, s.flight, s.timers, s.inFlight = nil, map[synKey]*synAttempt{}, nil, 0
	s.mu.Unlock()
	for _, p := range canceled {
		s.end(p, Result{Outcome: Canceled, Err: ErrClosed})
	}
	return nil
}

// end counts r, moves the window on it, and gives it to p's Done; the caller holds no lock.
func (s *SYN) end(p *synAttempt, r Result) {
	s.ended[r.Outcome].Add(1)
	if windowOn(&s.mu, &s.win, &s.losses, r, s.now()) {
		wake(s.wake)
	}
	p.done(r)
}

// runSender sends the queued SYNs while the window has room, and times out the attempts whose deadline passed.
func (s *SYN) runSender() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var expired, resend []*synAttempt
	for {
		s.mu.Lock()
		now := s.now()
		for len(s.timers) > 0 && s.timers[0].At <= now {
			p := s.timers.Pop()
			if !p.resent && p.resends() && now < p.start+p.timeout {
				resend = append(resend, p)
				continue
			}
			s.dropLocked(p)
			expired = append(expired, p)
		}
		var next *synAttempt
		if len(s.queue) > 0 && s.inFlight < s.win.cwnd {
			next = s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			if len(s.queue) == 0 {
				s.queue = nil
			}
		}
		wait := time.Hour
		if len(s.timers) > 0 {
			wait = time.Duration(s.timers[0].At - now)
		}
		s.mu.Unlock()
		for i, p := range expired {
			s.end(p, Result{Outcome: TimedOut, RTT: time.Duration(now - p.start), Err: errTimedOut})
			expired[i] = nil
		}
		expired = expired[:0]
		rearmed := len(resend) > 0
		for i, p := range resend {
			s.resend(p)
			resend[i] = nil
		}
		resend = resend[:0]
		if next != nil {
			s.send(next)
			continue
		}
		if rearmed {
			continue // the resent attempts' timers are new: wait for the earliest again
		}
		timer.Reset(max(wait, 0))
		select {
		case <-s.wake:
		case <-timer.C:
		case <-s.ctx.Done():
			return
		}
	}
}

// send paces p, picks its source address and port, and sends its SYN; the attempt is in flight from there.
func (s *SYN) send(p *synAttempt) {
	if !validDestination(p.dstAddr) {
		s.end(p, Result{Outcome: Failed, Err: errInvalidDestination})
		return
	}
	if s.cfg.Pace != nil {
		if err := s.cfg.Pace(s.ctx); err != nil {
			if s.ctx.Err() != nil {
				s.end(p, Result{Outcome: Canceled, Err: ErrClosed})
				return
			}
			s.end(p, Result{Outcome: LocalError, Err: fmt.Errorf("connect: pace %s: %w", p.dstAddr, err)})
			return
		}
	}
	if a := p.dstAddr.Addr(); a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || s.broadcasts[a.As4()] {
		s.end(p, Result{Outcome: Unreachable, Err: os.NewSyscallError("connect", syscall.ENETUNREACH)})
		return
	}
	src, err := s.source(p.dstAddr.Addr())
	if err != nil {
		s.end(p, Result{Outcome: classify(err), Err: err})
		return
	}
	s.mu.Lock()
	p.seq, p.start, p.src = rand.Uint32(), s.now(), src
	p.key = s.freeKeyLocked(p.dstAddr)
	s.flight[p.key] = p
	s.inFlight++
	s.peak = max(s.peak, s.inFlight)
	s.mu.Unlock()

	err = s.write(synSegment(src, p.dstAddr, p.key.sport, p.seq), p.dstAddr)
	if err != nil {
		s.mu.Lock()
		s.dropLocked(p)
		s.mu.Unlock()
		if s.ctx.Err() != nil {
			s.end(p, Result{Outcome: Canceled, Err: ErrClosed})
			return
		}
		err = asConnectError(err)
		s.end(p, Result{Outcome: classify(err), Err: err})
		return
	}
	s.started.Add(1)
	if p.started != nil {
		p.started()
	}
	s.mu.Lock()
	if s.flight[p.key] == p { // not answered already
		p.At = p.start + p.timeout
		if p.resends() {
			p.At = p.start + int64(synRTO)
		}
		s.timers.Push(p)
	}
	s.mu.Unlock()
}

// resend sends p's second SYN, from another source port, unless p was answered meanwhile, and waits for either
// until p's timeout. A failed send leaves the first SYN to its timeout.
func (s *SYN) resend(p *synAttempt) {
	s.mu.Lock()
	if s.flight[p.key] != p {
		s.mu.Unlock()
		return
	}
	p.key2, p.seq2, p.resent = s.freeKeyLocked(p.dstAddr), rand.Uint32(), true
	s.flight[p.key2] = p
	p.At = p.start + p.timeout
	s.timers.Push(p)
	s.mu.Unlock()
	s.resent.Add(1) // before the send, so that it counts before the answer can
	if s.write(synSegment(p.src, p.dstAddr, p.key2.sport, p.seq2), p.dstAddr) != nil {
		s.resent.Add(^uint64(0))
	}
}

// freeKeyLocked picks the next source port that no SYN in flight to dst uses.
func (s *SYN) freeKeyLocked(dst netip.AddrPort) synKey {
	k := synKey{dst: dst.Addr().As4(), dport: dst.Port()}
	for range synPortHigh - synPortLow {
		s.nextSrc++
		if s.nextSrc > synPortHigh || s.nextSrc < synPortLow {
			s.nextSrc = synPortLow
		}
		k.sport = s.nextSrc
		if s.flight[k] == nil {
			break
		}
	}
	return k
}

// dropLocked takes p out of flight: the keys of its SYNs, and its timer.
func (s *SYN) dropLocked(p *synAttempt) {
	if s.flight[p.key] == p {
		delete(s.flight, p.key)
		s.inFlight--
	}
	if p.resent && s.flight[p.key2] == p {
		delete(s.flight, p.key2)
	}
	if p.Queued() {
		s.timers.Remove(p)
	}
}

// write sends one SYN segment to dst, retrying kernel pushback a few times.
func (s *SYN) write(seg []byte, dst netip.AddrPort) error {
	to := &net.IPAddr{IP: dst.Addr().AsSlice()}
	delay := time.Millisecond
	for retry := 0; ; retry++ {
		_, err := s.tcp.WriteTo(seg, to)
		if err == nil || !isPushback(err) || retry >= synPushbackRetries {
			return err
		}
		s.pushbacks.Add(1)
		select {
		case <-time.After(delay):
		case <-s.ctx.Done():
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// source is the local address the routing table picks for dst, from a connected UDP socket's name, remembered per
// /24 (one lookup for 256 hosts).
func (s *SYN) source(dst netip.Addr) (netip.Addr, error) {
	a := dst.As4()
	net24 := [3]byte{a[0], a[1], a[2]}
	s.mu.Lock()
	src, ok := s.sources[net24]
	s.mu.Unlock()
	if ok {
		return src, nil
	}
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return netip.Addr{}, asConnectError(err)
	}
	src = c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	c.Close()
	s.mu.Lock()
	s.sources[net24] = src
	s.mu.Unlock()
	return src, nil
}

// settle ends the attempt an answer names, if it is in flight and the answer acknowledges its SYN (ack is its
// sequence number plus one).
func (s *SYN) settle(k synKey, ack uint32, r Result) {
	now := s.now()
	s.mu.Lock()
	p := s.flight[k]
	second := p != nil && p.resent && k == p.key2
	if p == nil || (!second && ack != p.seq+1) || (second && ack != p.seq2+1) {
		s.mu.Unlock()
		return // a stray, a spoofed answer, or one to an attempt that already ended
	}
	s.dropLocked(p)
	s.mu.Unlock()
	r.RTT = time.Duration(now - p.start)
	r.Retransmitted = second
	wake(s.wake) // a slot is free
	s.end(p, r)
}

// readTCP reads the SYN-ACKs and RSTs the filter lets through.
func (s *SYN) readTCP() {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := s.tcp.ReadFromIP(buf)
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.readErrQueue() // the read returned a queued error: the queue holds what it was about
			continue
		}
		src, ok := netip.AddrFromSlice(from.IP)
		if !ok || !src.Unmap().Is4() {
			continue
		}
		seg, ok := parseSegment(buf[:n])
		if !ok {
			continue
		}
		k := synKey{dst: src.Unmap().As4(), dport: seg.sport, sport: seg.dport}
		switch {
		case seg.flags&tcpSYN != 0 && seg.flags&tcpACK != 0:
			s.settle(k, seg.ack, Result{Outcome: Connected})
		case seg.flags&tcpRST != 0:
			// A RST answering a SYN acknowledges it (RFC 9293 3.10.7.3); one without an ACK cannot be matched.
			if seg.flags&tcpACK != 0 {
				s.settle(k, seg.ack, Result{Outcome: Refused, Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
			}
		}
	}
}

// readICMP reads ICMP destination-unreachable errors about the SYNs: the original header inside names the attempt.
func (s *SYN) readICMP() {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := s.icmp.ReadFromIP(buf)
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			continue
		}
		offender, ok := netip.AddrFromSlice(from.IP)
		if !ok {
			continue
		}
		e, ok := parseICMPError(buf[:n])
		if !ok {
			continue
		}
		errno := icmpErrno(e.code)
		info := datagram.ICMP{Origin: datagram.OriginICMP, Type: 3, Code: e.code, Errno: errno, Offender: offender.Unmap()}
		r := Result{Outcome: classify(errno), Err: os.NewSyscallError("connect", errno), ICMP: info}
		// The quoted header carries the SYN's sequence number: an ICMP error about another packet of the same
		// ports does not match.
		s.settle(synKey{dst: e.dst, dport: e.dport, sport: e.sport}, e.seq+1, r)
	}
}

// readErrQueue takes the raw TCP socket's error queue: each entry is a SYN that this machine could not send on (no
// answer to ARP, no route), with the SYN itself quoted, which names its attempt.
func (s *SYN) readErrQueue() {
	data, oob := make([]byte, 128), make([]byte, 512)
	control(s.tcp, func(fd int) error {
		for range 256 {
			n, oobn, _, from, err := unix.Recvmsg(fd, data, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
			if err != nil {
				return nil // EAGAIN: the queue is empty
			}
			e, err := datagram.ParseExtendedError(oob[:oobn])
			if err != nil || e.Errno == 0 {
				continue
			}
			seg, ok := parseQuotedSYN(data[:n])
			dst, isV4 := from.(*unix.SockaddrInet4)
			if !ok || !isV4 {
				continue
			}
			r := Result{Outcome: classify(e.Errno), Err: os.NewSyscallError("connect", e.Errno), ICMP: e}
			s.settle(synKey{dst: dst.Addr, dport: seg.dport, sport: seg.sport}, seg.seq+1, r)
		}
		return nil
	})
}

// parseQuotedSYN reads the SYN an error-queue entry quotes: the TCP header, after an IPv4 header when there is one.
func parseQuotedSYN(b []byte) (segment, bool) {
	if len(b) >= 20 && b[0]>>4 == 4 {
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl+8 || b[9] != syscall.IPPROTO_TCP {
			return segment{}, false
		}
		b = b[ihl:]
	}
	if len(b) < 8 {
		return segment{}, false
	}
	return segment{sport: binary.BigEndian.Uint16(b[0:]), dport: binary.BigEndian.Uint16(b[2:]), seq: binary.BigEndian.Uint32(b[4:])}, true
}

// localBroadcasts lists the directed broadcast addresses of this machine's IPv4 subnets.
func localBroadcasts() map[[4]byte]bool {
	out := map[[4]byte]bool{}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.To4() == nil || len(n.Mask) != net.IPv4len {
			continue
		}
		if ones, _ := n.Mask.Size(); ones >= 31 {
			continue // point-to-point: no broadcast address
		}
		var b [4]byte
		for i := range b {
			b[i] = n.IP.To4()[i] | ^n.Mask[i]
		}
		out[b] = true
	}
	return out
}

// synSendBuffer is the raw TCP socket's send buffer: room for some 40,000 SYNs waiting for address resolution.
const synSendBuffer = 32 << 20

// synPushbackRetries bounds the retries of a SYN the kernel refused for want of buffer (about 1.4 s in all, as
// long as an unanswered address resolution holds earlier SYNs).
const synPushbackRetries = 30

// setSendBuffer sets c's send buffer to n bytes: SO_SNDBUFFORCE where this process may exceed the system's cap,
// else as far as the cap allows.
func setSendBuffer(c *net.IPConn, n int) {
	if control(c, func(fd int) error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, n) }) != nil {
		c.SetWriteBuffer(n)
	}
}

// setRecvErr turns IP_RECVERR on for c's socket.
func setRecvErr(c *net.IPConn) error {
	return control(c, func(fd int) error { return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVERR, 1) })
}

// control runs f with c's socket and returns f's error, or the one that kept it from running.
func control(c *net.IPConn, f func(fd int) error) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// asConnectError words a failed send or route lookup as the connect call's error, as the connector reports one:
// the errno under "connect".
func asConnectError(err error) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return os.NewSyscallError("connect", se.Err)
	}
	return err
}

// The TCP flags the prober reads.
const (
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// synSegment is a SYN from src:sport to dst with sequence number seq and an MSS option, its checksum computed over
// the IPv4 pseudo-header (the kernel adds the IP header of a raw socket's datagram, not the TCP checksum).
func synSegment(src netip.Addr, dst netip.AddrPort, sport uint16, seq uint32) []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dst.Port())
	binary.BigEndian.PutUint32(b[4:], seq)
	b[12] = 6 << 4 // data offset: 6 words, with the option
	b[13] = tcpSYN
	binary.BigEndian.PutUint16(b[14:], 64240) // window
	b[20], b[21] = 2, 4                       // MSS, length 4
	binary.BigEndian.PutUint16(b[22:], 1460)
	binary.BigEndian.PutUint16(b[16:], tcpChecksum(src.As4(), dst.Addr().As4(), b))
	return b
}

// tcpChecksum is the Internet checksum (RFC 1071) of seg over the IPv4 pseudo-header (RFC 9293 3.1).
func tcpChecksum(src, dst [4]byte, seg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	sum += 6 + uint32(len(seg))
	add(seg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// segment is the part of a TCP header the prober reads.
type segment struct {
	sport, dport uint16
	seq, ack     uint32
	flags        uint8
}

// parseSegment reads a TCP header (net.IPConn gives a raw socket's datagram without its IPv4 header); false when b
// is too short.
func parseSegment(b []byte) (segment, bool) {
	if len(b) < 20 {
		return segment{}, false
	}
	return segment{
		sport: binary.BigEndian.Uint16(b[0:]), dport: binary.BigEndian.Uint16(b[2:]),
		seq: binary.BigEndian.Uint32(b[4:]), ack: binary.BigEndian.Uint32(b[8:]), flags: b[13],
	}, true
}

// icmpError is a destination-unreachable about a TCP segment: its code and the segment's addresses, ports and
// sequence number, from the header the error quotes.
type icmpError struct {
	code         uint8
	dst          [4]byte
	sport, dport uint16
	seq          uint32
}

// parseICMPError reads an ICMP destination unreachable (type 3) that quotes a TCP segment's IPv4 header and its
// first 8 bytes; b is the ICMP message, without the outer IPv4 header (net.IPConn strips it).
func parseICMPError(b []byte) (icmpError, bool) {
	if len(b) < 8+20+8 || b[0] != 3 {
		return icmpError{}, false
	}
	inner := b[8:]
	ihl := int(inner[0]&0x0f) * 4
	if inner[0]>>4 != 4 || ihl < 20 || len(inner) < ihl+8 || inner[9] != syscall.IPPROTO_TCP {
		return icmpError{}, false
	}
	e := icmpError{code: b[1], dst: [4]byte(inner[16:20])}
	tcp := inner[ihl:]
	e.sport, e.dport, e.seq = binary.BigEndian.Uint16(tcp[0:]), binary.BigEndian.Uint16(tcp[2:]), binary.BigEndian.Uint32(tcp[4:])
	return e, true
}

// icmpErrno is the errno the kernel gives a TCP connect for a destination-unreachable code (its icmp_err_convert
// table): port unreachable is a refusal, the rest say why the host cannot be reached.
func icmpErrno(code uint8) syscall.Errno {
	switch code {
	case 0, 6, 9, 11: // net unreachable, unknown, prohibited, unreachable for TOS
		return syscall.ENETUNREACH
	case 3:
		return syscall.ECONNREFUSED
	case 7:
		return syscall.EHOSTDOWN
	case 8:
		return syscall.ENONET
	}
	return syscall.EHOSTUNREACH // 1, 10, 12, 13, 14, 15: host unreachable, prohibited, filtered, precedence
}

// attachSYNFilter makes the kernel pass the raw TCP socket only segments to the SYNs' source ports with SYN and ACK,
// or RST, set: every other TCP segment of this machine would otherwise be copied to it.
func attachSYNFilter(c *net.IPConn) error {
	// Classic BPF over the IPv4 packet: X = header length; port at X+2; flags at X+13.
	prog := []unix.SockFilter{
		{Code: unix.BPF_LDX | unix.BPF_B | unix.BPF_MSH, K: 0},                        // X = 4*(b[0]&0xf)
		{Code: unix.BPF_LD | unix.BPF_H | unix.BPF_IND, K: 2},                         // A = destination port
		{Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, K: synPortLow, Jt: 0, Jf: 5}, // below the range: drop
		{Code: unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K, K: synPortHigh, Jt: 4, Jf: 0},
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_IND, K: 13}, // A = flags
		{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: tcpSYN | tcpRST},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 0, Jt: 1, Jf: 0},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0xffff}, // accept
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},      // drop
	}
	return control(c, func(fd int) error {
		return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
	})
}
