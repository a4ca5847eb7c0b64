package main

// UDP modes: a NetBIOS node status responder for a whole address range
// (nbstat) and a name service that answers every query with a malformed
// datagram (nbgarbage). Both share one responder loop: a single UDP socket
// with a large receive buffer and IP_PKTINFO, which answers each unicast
// datagram from the address it was sent to.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ofmprobe/ofmprobe/probe/netbios"
)

// udpRcvBuf is the receive buffer labd forces on its UDP sockets. With the
// default (about 200 KiB) a fast sweep of a /20 loses a quarter of its
// queries in the socket queue.
const udpRcvBuf = 8 << 20

// statsEvery is how often a UDP mode logs its counters (only when they changed).
const statsEvery = time.Minute

// udpAnswer builds the reply to one datagram that arrived for the local
// address local, or returns nil to stay silent.
type udpAnswer func(req []byte, local netip.Addr) []byte

// udpCounters are a UDP mode's running totals.
type udpCounters struct {
	answered, ignored, broadcast, sendErrors, readErrors atomic.Uint64
}

func (c *udpCounters) String() string {
	return fmt.Sprintf("answered %d, ignored %d (of them broadcast %d), send errors %d, read errors %d",
		c.answered.Load(), c.ignored.Load(), c.broadcast.Load(), c.sendErrors.Load(), c.readErrors.Load())
}

// errLog logs at most burst messages per minute and counts the rest, so a
// flood of failing sends cannot fill the disk.
type errLog struct {
	mu         sync.Mutex
	logger     *log.Logger
	burst      int
	window     time.Time
	n          int
	suppressed int
}

func (e *errLog) printf(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	if now.Sub(e.window) >= time.Minute {
		if e.suppressed > 0 {
			e.logger.Printf("(%d similar messages suppressed)", e.suppressed)
		}
		e.window, e.n, e.suppressed = now, 0, 0
	}
	if e.n >= e.burst {
		e.suppressed++
		return
	}
	e.n++
	e.logger.Printf(format, args...)
}

// udpMode returns a runFunc that serves answer on one UDP socket per
// listen address.
func udpMode(answer udpAnswer) runFunc {
	return func(ctx context.Context, opts options, logger *log.Logger) error {
		conns := make([]*net.UDPConn, 0, len(opts.listen))
		for _, addr := range opts.listen {
			c, err := listenUDP(addr, logger)
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				logger.Printf("listen udp %s: %v", addr, err)
				return fmt.Errorf("listen udp %s: %w", addr, err)
			}
			conns = append(conns, c)
		}
		var counters udpCounters
		errs := &errLog{logger: logger, burst: 10}
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveUDP(ctx, c, answer, &counters, errs)
			}()
		}
		ticker := time.NewTicker(statsEvery)
		defer ticker.Stop()
		last := counters.String()
	wait:
		for {
			select {
			case <-ticker.C:
				if s := counters.String(); s != last {
					logger.Printf("%s", s)
					last = s
				}
			case <-ctx.Done():
				break wait
			}
		}
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
		logger.Printf("%s", &counters)
		return ctx.Err()
	}
}

// listenUDP opens an IPv4 UDP socket with SO_REUSEADDR, a forced 8 MiB
// receive buffer and IP_PKTINFO, bound to addr.
func listenUDP(addr string, logger *log.Logger) (*net.UDPConn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	if !ap.Addr().Is4() {
		return nil, fmt.Errorf("%s: the UDP modes are IPv4 only", addr)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	fail := func(what string, err error) (*net.UDPConn, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, udpRcvBuf); err != nil {
		// Without CAP_NET_ADMIN: take what net.core.rmem_max allows.
		logger.Printf("SO_RCVBUFFORCE %d: %v; falling back to SO_RCVBUF", udpRcvBuf, err)
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, udpRcvBuf); err != nil {
			return fail("SO_RCVBUF", err)
		}
	}
	// The send buffer too: in the lab's slow mode every answer waits 150-900 ms in the NFQUEUE delay line, charged to
	// this socket until it is released, and the default buffer (about 200 KiB) capped the responder at a few hundred
	// answers a second, far below what a /16 sweep asks of it.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, udpRcvBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, udpRcvBuf)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
		return fail("IP_PKTINFO", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		return fail("bind", err)
	}
	rcv, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	f := os.NewFile(uintptr(fd), "udp:"+addr)
	defer f.Close() // net.FilePacketConn dups the descriptor.
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, err
	}
	logger.Printf("listening on udp %s (receive buffer %d bytes)", pc.LocalAddr(), rcv)
	return pc.(*net.UDPConn), nil
}

// serveUDP answers datagrams on c until c is closed. Only datagrams sent to
// a unicast address of this host are answered, from exactly that address.
// No error ends the loop: a failed send (ENETUNREACH for a peer outside the
// lab, say) is counted and logged within errs' budget.
func serveUDP(ctx context.Context, c *net.UDPConn, answer udpAnswer, counters *udpCounters, errs *errLog) {
	buf := make([]byte, 2048)
	oob := make([]byte, 256)
	for {
		n, oobn, flags, src, err := c.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			counters.readErrors.Add(1)
			errs.printf("read: %v", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		dst, spec, ok := parsePktinfo(oob[:oobn])
		switch {
		case !ok || flags&unix.MSG_TRUNC != 0 || !src.Addr().Unmap().Is4() || src.Port() == 0 || src.Addr().Unmap().IsUnspecified():
			counters.ignored.Add(1)
			continue
		case dst != spec:
			// Broadcast or multicast (nmbd's registrations, say): the
			// kernel's preferred source differs from the destination.
			counters.ignored.Add(1)
			counters.broadcast.Add(1)
			continue
		}
		reply := answer(buf[:n], dst)
		if reply == nil {
			counters.ignored.Add(1)
			continue
		}
		cm := unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: dst.As4()})
		if _, _, err := c.WriteMsgUDPAddrPort(reply, cm, src); err != nil {
			counters.sendErrors.Add(1)
			errs.printf("send to %v from %v: %v", src, dst, err)
			continue
		}
		counters.answered.Add(1)
	}
}

// parsePktinfo returns the header destination address (ipi_addr) and the
// local address the kernel would answer from (ipi_spec_dst) of a datagram.
func parsePktinfo(oob []byte) (dst, spec netip.Addr, ok bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return dst, spec, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo {
			// struct in_pktinfo: int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr.
			spec = netip.AddrFrom4([4]byte(m.Data[4:8]))
			dst = netip.AddrFrom4([4]byte(m.Data[8:12]))
			return dst, spec, true
		}
	}
	return dst, spec, false
}

// nameQuery is the part of a name service request the UDP modes use.
type nameQuery struct {
	txid  uint16
	name  netbios.Name
	qtype uint16
}

// parseNameQuery accepts a name service request (RFC 1002 §4.2.1): a
// 12-byte header without the response bit, opcode query, at least one
// question; it decodes the first question's name and QTYPE and checks
// QCLASS IN.
func parseNameQuery(b []byte) (nameQuery, bool) {
	if len(b) < netbios.HeaderLen {
		return nameQuery{}, false
	}
	flags := binary.BigEndian.Uint16(b[2:])
	if flags&netbios.FlagResponse != 0 || flags>>11&0x0F != 0 || binary.BigEndian.Uint16(b[4:]) == 0 {
		return nameQuery{}, false
	}
	name, n, err := netbios.ParseName(b[netbios.HeaderLen:])
	if err != nil {
		return nameQuery{}, false
	}
	q := b[netbios.HeaderLen+n:]
	if len(q) < 4 || binary.BigEndian.Uint16(q[2:]) != netbios.ClassIN {
		return nameQuery{}, false
	}
	return nameQuery{txid: binary.BigEndian.Uint16(b), name: name, qtype: binary.BigEndian.Uint16(q)}, true
}

// bulkWorkgroup is the workgroup of every address nbstat answers for.
const bulkWorkgroup = "BULKLAB"

// answerNodeStatus answers an NBSTAT query for local a.b.c.d with the name
// table of the computer BULKcccddd: BULKcccddd<00> and <20> (unique),
// BULKLAB<00> (group), all H-node and active, and the MAC 02:00:c6:12:cc:dd.
// Anything that is not a node status request gets no answer.
func answerNodeStatus(req []byte, local netip.Addr) []byte {
	q, ok := parseNameQuery(req)
	if !ok || q.qtype != netbios.TypeNBSTAT {
		return nil
	}
	a := local.As4()
	computer := fmt.Sprintf("BULK%03d%03d", a[2], a[3])
	unique := netbios.NameActive | netbios.NameFlags(netbios.HNode)<<13
	s := netbios.NodeStatus{
		TxID:  q.txid,
		Flags: netbios.FlagResponse | netbios.FlagAuthoritative,
		Name:  q.name,
		Names: []netbios.NodeName{
			{Name: computer, Suffix: netbios.SuffixWorkstation, Flags: unique},
			{Name: computer, Suffix: netbios.SuffixFileServer, Flags: unique},
			{Name: bulkWorkgroup, Suffix: netbios.SuffixWorkstation, Flags: unique | netbios.NameGroup},
		},
		Statistics:    netbios.Statistics{UnitID: netbios.MAC{0x02, 0x00, 0xc6, 0x12, a[2], a[3]}},
		StatisticsLen: netbios.StatisticsSize,
	}
	b, err := netbios.AppendNodeStatusResponse(nil, &s)
	if err != nil {
		return nil // A question name that cannot be echoed: stay silent.
	}
	return b
}

// garbageKinds counts the malformed answers nbgarbage rotates through.
const garbageKinds = 5

var garbageNext atomic.Uint64

// answerGarbage answers every name service request with a datagram that
// carries the request's transaction ID and the response bit but cannot be
// decoded as a node status response. It rotates through:
//
//	0  an NBSTAT answer whose RR name has letters outside 'A'..'P'
//	1  an NBSTAT answer with RDLENGTH 0xFFFF and NUM_NAMES 255 but one entry
//	2  ANCOUNT 1 and the datagram ends inside the RR name
//	3  an RR name that is a label string pointer (0xC0 0x0C)
//	4  an answer of type NB (0x0020) instead of NBSTAT
func answerGarbage(req []byte, local netip.Addr) []byte {
	q, ok := parseNameQuery(req)
	if !ok {
		return nil
	}
	b := binary.BigEndian.AppendUint16(nil, q.txid)
	b = binary.BigEndian.AppendUint16(b, netbios.FlagResponse|netbios.FlagAuthoritative)
	b = append(b, 0, 0, 0, 1, 0, 0, 0, 0) // QDCOUNT 0, ANCOUNT 1, NSCOUNT 0, ARCOUNT 0
	wildcard, _ := netbios.EncodeName(netbios.Wildcard)
	entry := []byte("GARBAGE        \x20\x04\x00")
	rr := func(b []byte, typ uint16, rdlen uint16) []byte {
		b = binary.BigEndian.AppendUint16(b, typ)
		b = binary.BigEndian.AppendUint16(b, netbios.ClassIN)
		b = binary.BigEndian.AppendUint32(b, 0)
		return binary.BigEndian.AppendUint16(b, rdlen)
	}
	switch garbageNext.Add(1) % garbageKinds {
	case 0:
		b = append(b, 0x20)
		for range 32 {
			b = append(b, 'Z')
		}
		b = append(b, 0)
		b = rr(b, netbios.TypeNBSTAT, 1+netbios.NameEntryLen+netbios.StatisticsSize)
		b = append(b, 1)
		b = append(b, entry...)
		b = append(b, make([]byte, netbios.StatisticsSize)...)
	case 1:
		b = append(b, wildcard...)
		b = rr(b, netbios.TypeNBSTAT, 0xFFFF)
		b = append(b, 255)
		b = append(b, entry...)
	case 2:
		b = append(b, wildcard[:10]...)
	case 3:
		b = append(b, 0xC0, 0x0C)
		b = rr(b, netbios.TypeNBSTAT, 1)
		b = append(b, 0)
	default:
		a := local.As4()
		b = append(b, wildcard...)
		b = rr(b, netbios.TypeNB, 6)
		b = append(b, 0x00, 0x00, a[0], a[1], a[2], a[3])
	}
	return b
}
