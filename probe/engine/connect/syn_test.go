//go:build linux

package connect

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/internal/backlog"
)

// openSYN opens the raw-socket prober, or skips the test where raw sockets are not allowed (not root).
func openSYN(t testing.TB, cfg Config) *SYN {
	t.Helper()
	s, err := OpenSYN(cfg)
	if err != nil {
		t.Skipf("raw sockets unavailable: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestSYNOutcomes probes a listening, a closed and a silent loopback port with raw SYNs: open, refused, timed
// out; and the listener never gets a connection (the kernel resets the handshake it did not start).
func TestSYNOutcomes(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
			accepted <- struct{}{}
		}
	}()
	open := ln.Addr().(*net.TCPAddr).AddrPort()
	closed, silent := closedPort(t), silentPort(t)
	s := openSYN(t, Config{MaxInFlight: 64})
	r := newResults(t, 3)
	for i, dst := range []netip.AddrPort{open, closed, silent} {
		s.Connect(Attempt{Dst: dst, Timeout: 300 * time.Millisecond, Done: r.done(i)})
	}
	r.wait(5 * time.Second)
	want := []Outcome{Connected, Refused, TimedOut}
	for i, got := range r.got {
		if got.Outcome != want[i] {
			t.Errorf("attempt %d: %v (%v), want %v", i, got.Outcome, got.Err, want[i])
		}
	}
	if r.got[0].RTT <= 0 || r.got[0].RTT > 100*time.Millisecond {
		t.Errorf("open port's round trip %v", r.got[0].RTT)
	}
	if !errorsIsErrno(r.got[1].Err, syscall.ECONNREFUSED) {
		t.Errorf("refused with %v, want ECONNREFUSED", r.got[1].Err)
	}
	select {
	case <-accepted:
		t.Error("the listener accepted a connection: a SYN probe must leave none")
	case <-time.After(200 * time.Millisecond):
	}
	st := s.Stats()
	if st.Started != 3 || st.Connected != 1 || st.Refused != 1 || st.TimedOut != 1 || st.InFlight != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestSYNManyInFlight keeps more SYNs in flight than a process has file descriptors for sockets would allow at
// this size, and every one is decided.
func TestSYNManyInFlight(t *testing.T) {
	const n = 3000
	closed := closedPort(t)
	silent := silentPort(t)
	s := openSYN(t, Config{MaxInFlight: n})
	r := newResults(t, n)
	for i := range n {
		dst := closed
		if i%2 == 1 {
			dst = silent
		}
		s.Connect(Attempt{Dst: dst, Timeout: 500 * time.Millisecond, Done: r.done(i)})
	}
	r.wait(20 * time.Second)
	for i, got := range r.got {
		want := Refused
		if i%2 == 1 {
			want = TimedOut
		}
		if got.Outcome != want {
			t.Fatalf("attempt %d: %v, want %v", i, got.Outcome, want)
		}
	}
	if st := s.Stats(); st.PeakInFlight < n/2 {
		t.Errorf("at most %d in flight, want most of %d", st.PeakInFlight, n)
	}
}

// TestSYNCloseCancels: Close gives Canceled to what is queued and in flight, and a Connect after it.
func TestSYNCloseCancels(t *testing.T) {
	s := openSYN(t, Config{MaxInFlight: 1})
	silent := silentPort(t)
	r := newResults(t, 3)
	s.Connect(Attempt{Dst: silent, Timeout: 10 * time.Second, Done: r.done(0)})
	s.Connect(Attempt{Dst: silent, Timeout: 10 * time.Second, Done: r.done(1)})
	time.Sleep(50 * time.Millisecond)
	s.Close()
	s.Connect(Attempt{Dst: silent, Done: r.done(2)})
	r.wait(5 * time.Second)
	for i, got := range r.got {
		if got.Outcome != Canceled {
			t.Errorf("attempt %d: %v, want canceled", i, got.Outcome)
		}
	}
}

func errorsIsErrno(err error, want syscall.Errno) bool {
	var se *os.SyscallError
	if e, ok := err.(*os.SyscallError); ok {
		se = e
	}
	return se != nil && se.Err == want
}

// TestSYNSegment checks the SYN's fields and that its checksum verifies (the sum over the pseudo-header and the
// segment, checksum included, is all ones).
func TestSYNSegment(t *testing.T) {
	src, dst := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddrPort("198.18.0.10:445")
	b := synSegment(src, dst, 20001, 0x01020304)
	if binary.BigEndian.Uint16(b[0:]) != 20001 || binary.BigEndian.Uint16(b[2:]) != 445 || binary.BigEndian.Uint32(b[4:]) != 0x01020304 || b[13] != tcpSYN || b[12]>>4 != 6 {
		t.Errorf("segment % x", b)
	}
	if tcpChecksum(src.As4(), dst.Addr().As4(), b) != 0 {
		t.Errorf("checksum does not verify: % x", b)
	}
	// RFC 1071's example words, as a segment without a pseudo-header contribution other than its own.
	if got := tcpChecksum([4]byte{}, [4]byte{}, []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}); got != ^uint16(0xddf2+6+8) {
		t.Errorf("RFC 1071 example: %#04x", got)
	}
}

// TestParseICMPError reads a host-prohibited error quoting a SYN, and refuses what is not one.
func TestParseICMPError(t *testing.T) {
	msg := make([]byte, 8+20+8)
	msg[0], msg[1] = 3, 13
	inner := msg[8:]
	inner[0], inner[9] = 0x45, 6
	copy(inner[16:20], []byte{198, 18, 0, 10})
	binary.BigEndian.PutUint16(inner[20:], 20001)
	binary.BigEndian.PutUint16(inner[22:], 445)
	binary.BigEndian.PutUint32(inner[24:], 77)
	e, ok := parseICMPError(msg)
	if !ok || e.code != 13 || e.dst != [4]byte{198, 18, 0, 10} || e.sport != 20001 || e.dport != 445 || e.seq != 77 {
		t.Fatalf("%+v %v", e, ok)
	}
	if icmpErrno(13) != syscall.EHOSTUNREACH || icmpErrno(3) != syscall.ECONNREFUSED || icmpErrno(0) != syscall.ENETUNREACH {
		t.Error("icmpErrno does not follow the kernel's table")
	}
	for _, bad := range [][]byte{msg[:30], append([]byte{11}, msg[1:]...), nil} {
		if _, ok := parseICMPError(bad); ok {
			t.Errorf("accepted % x", bad)
		}
	}
	udp := append([]byte(nil), msg...)
	udp[8+9] = 17
	if _, ok := parseICMPError(udp); ok {
		t.Error("accepted an error about a UDP datagram")
	}
}

func FuzzParseICMPError(f *testing.F) {
	msg := make([]byte, 36)
	msg[0], msg[8], msg[17] = 3, 0x45, 6
	f.Add(msg)
	f.Add([]byte{3, 3, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if e, ok := parseICMPError(b); ok && (len(b) < 36 || e.code != b[1]) {
			t.Errorf("accepted %d bytes: %+v", len(b), e)
		}
	})
}

func FuzzParseSegment(f *testing.F) {
	f.Add(synSegment(netip.MustParseAddr("127.0.0.1"), netip.MustParseAddrPort("127.0.0.1:445"), 20000, 1))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, ok := parseSegment(b); ok && (len(b) < 20 || s.flags != b[13]) {
			t.Errorf("accepted %d bytes: %+v", len(b), s)
		}
	})
}

// TestSYNResendsAtTheRTO loses the first SYN for real, as TestRetransmittedSYNIsALoss does for a connect: the
// listener's accept queue is full, so the kernel drops it, and the queue is drained before the prober's second SYN
// at synRTO, which is answered. The attempt is Connected and Retransmitted, about a second after the first SYN, and
// the prober counts the resend and the loss and cuts its window. An attempt whose timeout is not longer than synRTO
// sends no second SYN.
func TestSYNResendsAtTheRTO(t *testing.T) {
	s := openSYN(t, Config{MaxInFlight: 64})
	port, drain := backlog.Full(t)
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))

	short := newResults(t, 1)
	s.Connect(Attempt{Dst: dst, Timeout: 800 * time.Millisecond, Done: short.done(0)})
	short.wait(5 * time.Second)
	if got := short.got[0]; got.Outcome != TimedOut || got.Retransmitted {
		t.Fatalf("800ms attempt: %+v, want timed out", got)
	}
	if st := s.Stats(); st.Resent != 0 {
		t.Fatalf("800ms attempt: %d second SYNs, want none", st.Resent)
	}
	// Silence through both SYNs ends at the attempt's timeout, not later.
	silent := newResults(t, 1)
	s.Connect(Attempt{Dst: dst, Timeout: 1300 * time.Millisecond, Done: silent.done(0)})
	silent.wait(5 * time.Second)
	if got := silent.got[0]; got.Outcome != TimedOut || got.RTT < 1300*time.Millisecond || got.RTT > 1800*time.Millisecond {
		t.Fatalf("1.3s silent attempt: %+v, want timed out at 1.3s", got)
	}
	if st := s.Stats(); st.Resent != 1 {
		t.Fatalf("1.3s silent attempt: %d second SYNs, want one", st.Resent)
	}

	time.AfterFunc(400*time.Millisecond, drain) // after the first SYN, before the second
	r := newResults(t, 1)
	s.Connect(Attempt{Dst: dst, Timeout: 3 * time.Second, Done: r.done(0)})
	r.wait(10 * time.Second)
	got := r.got[0]
	if got.Outcome != Connected || !got.Retransmitted || got.RTT < 900*time.Millisecond || got.RTT > 2*time.Second {
		t.Fatalf("got %+v, want connected to the second SYN, about 1 s after the first", got)
	}
	if st := s.Stats(); st.Resent != 2 || st.Losses != 1 || st.Backoffs != 1 || st.Window != 32 || st.InFlight != 0 {
		t.Errorf("stats %+v: want one second SYN, the loss counted, the window halved, nothing left in flight", st)
	}
}

// TestSYNBesideForeignICMPErrors probes a listening loopback port while ICMP host unreachable errors about other,
// made-up SYNs arrive. The kernel gives each to the raw TCP socket (IP_RECVERR): it queues the error and sets the
// socket's pending error. A UDP send fails with that error whatever it sends (the datagram mux tries again); a raw
// socket's does not, as the kernel allocates its packets without looking at the error. Either way no probe may end
// with another SYN's error: every one connects.
func TestSYNBesideForeignICMPErrors(t *testing.T) {
	const probes, errs = 1500, 20000
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	open := ln.Addr().(*net.TCPAddr).AddrPort()
	s := openSYN(t, Config{MaxInFlight: 256})
	icmp, err := net.ListenIP("ip4:icmp", &net.IPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Skipf("raw ICMP socket: %v", err)
	}
	defer icmp.Close()

	// An ICMP destination unreachable (host unreachable) quoting a SYN from 127.0.0.1:1 to 127.0.0.9:1.
	msg := make([]byte, 8+20+8)
	msg[0], msg[1] = 3, 1
	q := msg[8:]
	q[0], q[2], q[3], q[8], q[9] = 0x45, 0, 40, 64, syscall.IPPROTO_TCP
	copy(q[12:16], []byte{127, 0, 0, 1})
	copy(q[16:20], []byte{127, 0, 0, 9})
	binary.BigEndian.PutUint16(q[10:], ^checksum(q[:20]))
	binary.BigEndian.PutUint16(q[20:], 1)
	binary.BigEndian.PutUint16(q[22:], 1)
	binary.BigEndian.PutUint16(msg[2:], ^checksum(msg))

	stop, flooded := make(chan struct{}), make(chan int)
	go func() {
		n := 0
		defer func() { flooded <- n }()
		to := &net.IPAddr{IP: net.IPv4(127, 0, 0, 1)}
		for ; n < errs; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := icmp.WriteTo(msg, to); err != nil {
				return
			}
		}
	}()
	r := newResults(t, probes)
	for i := range probes {
		s.Connect(Attempt{Dst: open, Timeout: 3 * time.Second, Done: r.done(i)})
	}
	r.wait(20 * time.Second)
	close(stop)
	sent := <-flooded
	wrong := 0
	for i, got := range r.got {
		if got.Outcome != Connected {
			if wrong++; wrong <= 3 {
				t.Errorf("probe %d: %v (%v)", i, got.Outcome, got.Err)
			}
		}
	}
	t.Logf("%d ICMP errors sent beside %d probes; %d probes wrong", sent, probes, wrong)
	if sent == 0 {
		t.Fatal("no ICMP error sent: the test raced nothing")
	}
}

// checksum is the ones' complement sum of b (RFC 1071), not yet inverted.
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}
