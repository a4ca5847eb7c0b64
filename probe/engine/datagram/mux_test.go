//go:build linux

package datagram

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// behaviour is how a test responder treats the datagrams it receives.
type behaviour int

const (
	answer      behaviour = iota // echo every datagram
	silent                       // never answer
	everyNth                     // echo only every nth datagram: loss
	straysFirst                  // send n echoes with a wrong transaction ID, then the real one
	otherPort                    // echo from another port of the same address: a spoofed source port
	otherAddr                    // echo from 127.0.0.2, same port: a spoofed source address
)

// responder is an in-process UDP server on a random loopback port, scripted by a behaviour.
type responder struct {
	addr netip.AddrPort
	seen atomic.Int64
	conn *net.UDPConn
	from *net.UDPConn // the spoofing socket of otherPort and otherAddr
	done chan struct{}
}

func startResponder(t testing.TB, b behaviour, n int) *responder {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	forceReceiveBuffer(t, conn)
	r := &responder{addr: conn.LocalAddr().(*net.UDPAddr).AddrPort(), conn: conn, from: conn, done: make(chan struct{})}
	switch b {
	case otherPort:
		r.from, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	case otherAddr:
		r.from, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: int(r.addr.Port())})
	}
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	go r.serve(t, b, n)
	t.Cleanup(func() {
		conn.Close()
		if r.from != conn {
			r.from.Close()
		}
		<-r.done
	})
	return r
}

func (r *responder) serve(t testing.TB, b behaviour, n int) {
	defer close(r.done)
	buf := make([]byte, 2048)
	for {
		k, peer, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		count := r.seen.Add(1)
		if !peer.Addr().Is4() || peer.Addr().As4()[0] != 127 {
			t.Errorf("responder: datagram from %v, not loopback; not answering", peer)
			continue
		}
		msg := buf[:k]
		switch b {
		case silent:
			continue
		case everyNth:
			if count%int64(n) != 0 {
				continue
			}
		case straysFirst:
			stray := append([]byte(nil), msg...)
			stray[0] ^= 0xff
			for range n {
				r.conn.WriteToUDPAddrPort(stray, peer)
			}
		}
		r.from.WriteToUDPAddrPort(msg, peer)
	}
}

// forceReceiveBuffer gives a responder room for thousands of queued datagrams (root may pass rmem_max).
func forceReceiveBuffer(t testing.TB, conn *net.UDPConn) {
	rc, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) != nil {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
		}
	})
}

// txidMatch accepts a reply that starts with the query's two-byte transaction ID, as a NetBIOS caller does.
func txidMatch(payload []byte) func([]byte) bool {
	return func(reply []byte) bool { return len(reply) >= 2 && reply[0] == payload[0] && reply[1] == payload[1] }
}

func openMux(t testing.TB, cfg Config) *Mux {
	t.Helper()
	m, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// ask submits q and waits, bounded, for its one result; it fails the test if Done is called again.
func ask(t testing.TB, m *Mux, q Query) Result {
	t.Helper()
	ch := make(chan Result, 2)
	q.Done = func(r Result) { ch <- r }
	m.Submit(q)
	var r Result
	select {
	case r = <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("query %v: no result after 10s", q.Dst)
	}
	select {
	case r2 := <-ch:
		t.Fatalf("query %v: Done called twice: %+v, then %+v", q.Dst, r, r2)
	case <-time.After(20 * time.Millisecond):
	}
	return r
}

func TestMuxResponder(t *testing.T) {
	payload := []byte{0x12, 0x34, 'n', 'b'}
	tests := []struct {
		name       string
		behaviour  behaviour
		n          int
		tries      int
		timeout    time.Duration
		nilMatch   bool
		want       Outcome
		attempts   int
		seen       int64
		strays     uint64
		wantAnswer bool
	}{
		{name: "answer", behaviour: answer, tries: 3, timeout: time.Second, want: Answered, attempts: 1, seen: 1},
		{name: "answer without match", behaviour: answer, tries: 3, timeout: time.Second, nilMatch: true, want: Answered, attempts: 1, seen: 1},
		{name: "silent", behaviour: silent, tries: 2, timeout: 50 * time.Millisecond, want: Silent, attempts: 2, seen: 2},
		{name: "loss, answers every third", behaviour: everyNth, n: 3, tries: 3, timeout: 80 * time.Millisecond, want: Answered, attempts: 3, seen: 3},
		{name: "loss beyond the tries", behaviour: everyNth, n: 3, tries: 2, timeout: 50 * time.Millisecond, want: Silent, attempts: 2, seen: 2},
		{name: "strays before the answer", behaviour: straysFirst, n: 3, tries: 2, timeout: time.Second, want: Answered, attempts: 1, seen: 1, strays: 3},
		{name: "spoofed source port", behaviour: otherPort, tries: 2, timeout: 80 * time.Millisecond, want: Silent, attempts: 2, seen: 2, strays: 2},
		{name: "spoofed source address", behaviour: otherAddr, tries: 2, timeout: 80 * time.Millisecond, want: Silent, attempts: 2, seen: 2, strays: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startResponder(t, tt.behaviour, tt.n)
			m := openMux(t, Config{})
			q := Query{Dst: r.addr, Payload: payload, Tries: tt.tries, Timeout: tt.timeout, Match: txidMatch(payload)}
			if tt.nilMatch {
				q.Match = nil
			}
			start := time.Now()
			res := ask(t, m, q)
			elapsed := time.Since(start)
			if res.Outcome != tt.want || res.Attempts != tt.attempts || res.Err != nil {
				t.Fatalf("result %v, %d attempts, err %v; want %v, %d attempts", res.Outcome, res.Attempts, res.Err, tt.want, tt.attempts)
			}
			switch tt.want {
			case Answered:
				if !bytes.Equal(res.Reply, payload) {
					t.Errorf("reply % x, want % x", res.Reply, payload)
				}
				if res.RTT <= 0 || res.RTT > elapsed {
					t.Errorf("RTT %v, want in (0, %v]", res.RTT, elapsed)
				}
			case Silent:
				if res.Reply != nil || res.RTT != 0 {
					t.Errorf("silent result has reply %q, RTT %v", res.Reply, res.RTT)
				}
				if min := time.Duration(tt.tries) * tt.timeout; elapsed < min {
					t.Errorf("silent after %v, want at least %v", elapsed, min)
				}
			}
			if got := r.seen.Load(); got != tt.seen {
				t.Errorf("responder saw %d datagrams, want %d", got, tt.seen)
			}
			// Strays sent last may still be in flight when the query ends Silent: wait for them, bounded.
			deadline := time.Now().Add(time.Second)
			for m.Stats().Strays < tt.strays && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			st := m.Stats()
			if st.Strays != tt.strays || st.Sent != uint64(tt.attempts) {
				t.Errorf("stats %+v: want %d strays, %d sent", st, tt.strays, tt.attempts)
			}
			if (st.Answers == 1) != (tt.want == Answered) {
				t.Errorf("stats %+v: answers for outcome %v", st, tt.want)
			}
		})
	}
}

// TestMuxSameDestination has several queries wait on one destination: each reply goes to the query its transaction
// ID names, whatever the order.
func TestMuxSameDestination(t *testing.T) {
	r := startResponder(t, answer, 0)
	m := openMux(t, Config{})
	var wg sync.WaitGroup
	results := make([]Result, 8)
	for i := range results {
		p := []byte{0xab, byte(i), 'x'}
		wg.Add(1)
		m.Submit(Query{Dst: r.addr, Payload: p, Tries: 2, Timeout: time.Second, Match: txidMatch(p),
			Done: func(res Result) { results[i] = res; wg.Done() }})
	}
	wg.Wait()
	for i, res := range results {
		if res.Outcome != Answered || res.Attempts != 1 || !bytes.Equal(res.Reply, []byte{0xab, byte(i), 'x'}) {
			t.Errorf("query %d: %v, %d attempts, reply % x", i, res.Outcome, res.Attempts, res.Reply)
		}
	}
	if st := m.Stats(); st.Strays != 0 || st.Answers != 8 {
		t.Errorf("stats %+v, want 8 answers, no strays", st)
	}
}

// closedPorts returns n different loopback ports that nothing listens on: bound together, then closed. A mux that
// has not sent yet has no port of its own, and may later be given one of them.
func closedPorts(t *testing.T, n int) []netip.AddrPort {
	var ports []netip.AddrPort
	var conns []*net.UDPConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		ports = append(ports, c.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	return ports
}

// TestMuxPortUnreachable sends to closed loopback ports, interleaved with queries to a responder: each closed port
// ends ICMPError from the error queue's msg_name, and the pending socket error it leaves does not fail the sends
// after it. Linux rate-limits neither per destination nor globally the ICMP errors of the loopback device. It does
// sometimes fail to send them at all on this machine (Icmp OutErrors in /proc/net/snmp grows, every datagram of the
// round goes unanswered): such a round is tried again with a new mux, and only when the kernel's own counter says so.
func TestMuxPortUnreachable(t *testing.T) {
	for round := 1; round <= 3; round++ {
		before := icmpOutErrors(t)
		silent := portUnreachableRound(t)
		if silent == 0 {
			return
		}
		if icmpOutErrors(t) == before {
			t.Fatalf("round %d: %d closed ports silent, and the kernel sent its ICMP errors", round, silent)
		}
		t.Logf("round %d: the kernel failed to send %d ICMP errors (Icmp OutErrors grew); again", round, silent)
	}
	t.Skip("the kernel failed to send its ICMP port unreachable errors in every round")
}

// icmpOutErrors reads the kernel's count of ICMP messages it failed to send.
func icmpOutErrors(t *testing.T) uint64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Icmp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, name := range names {
			if name == "OutErrors" && i < len(f) {
				n, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
		}
	}
	t.Fatal("no Icmp OutErrors in /proc/net/snmp")
	return 0
}

// portUnreachableRound runs one round of TestMuxPortUnreachable and returns how many closed ports stayed silent;
// any other wrong result fails the test.
func portUnreachableRound(t *testing.T) int {
	r := startResponder(t, answer, 0)
	m, err := Open(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	closed := closedPorts(t, 4)
	type outcome struct {
		dst netip.AddrPort
		res Result
	}
	ch := make(chan outcome, 16)
	payload := []byte{1, 2, 3}
	for _, dst := range closed {
		for _, d := range []netip.AddrPort{dst, r.addr} {
			m.Submit(Query{Dst: d, Payload: payload, Tries: 2, Timeout: 300 * time.Millisecond,
				Done: func(res Result) { ch <- outcome{d, res} }})
		}
	}
	silent := 0
	for range 2 * len(closed) {
		var o outcome
		select {
		case o = <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("no result after 10s")
		}
		if o.dst == r.addr {
			if o.res.Outcome != Answered || o.res.Attempts != 1 {
				t.Errorf("responder query: %v, %d attempts, err %v", o.res.Outcome, o.res.Attempts, o.res.Err)
			}
			continue
		}
		res := o.res
		if res.Outcome == Silent && res.Attempts == 2 {
			silent++
			continue
		}
		want := ICMP{Origin: OriginICMP, Type: 3, Code: 3, Errno: syscall.ECONNREFUSED, Offender: netip.MustParseAddr("127.0.0.1")}
		if res.Outcome != ICMPError || res.Attempts != 1 || res.ICMP != want || !errors.Is(res.Err, syscall.ECONNREFUSED) {
			t.Errorf("%v: %v, %d attempts, %+v, err %v; want ICMPError, 1 attempt, %+v", o.dst, res.Outcome, res.Attempts, res.ICMP, res.Err, want)
		}
		if !res.ICMP.Closed() || res.ICMP.Filtered() || res.RTT <= 0 {
			t.Errorf("%v: closed %v, filtered %v, RTT %v", o.dst, res.ICMP.Closed(), res.ICMP.Filtered(), res.RTT)
		}
	}
	st := m.Stats()
	if st.ICMPErrors != uint64(len(closed)-silent) || st.Answers != uint64(len(closed)) || st.Sent != uint64(2*len(closed)+silent) {
		t.Errorf("stats %+v, want %d ICMP errors, %d answers", st, len(closed)-silent, len(closed))
	}
	return silent
}

// TestMuxBroadcast sends to the loopback broadcast address: with SO_BROADCAST off the kernel refuses it (EACCES).
func TestMuxBroadcast(t *testing.T) {
	m := openMux(t, Config{})
	res := ask(t, m, Query{Dst: netip.MustParseAddrPort("127.255.255.255:9"), Payload: []byte{1}, Tries: 3, Timeout: time.Second})
	if res.Outcome != SendFailed || res.Attempts != 0 || !errors.Is(res.Err, syscall.EACCES) {
		t.Fatalf("broadcast: %v, %d attempts, err %v; want SendFailed, 0 attempts, EACCES", res.Outcome, res.Attempts, res.Err)
	}
	if st := m.Stats(); st.Sent != 0 || st.SendFailures != 1 {
		t.Fatalf("stats %+v, want nothing sent, one send failure", st)
	}
}

// TestMuxInjectedSendErrors replaces the send with one that fails as the kernel would.
func TestMuxInjectedSendErrors(t *testing.T) {
	payload := []byte{0x55, 0x66}
	tests := []struct {
		name      string
		err       error
		failFirst int // how many sends fail; -1 for all
		want      Outcome
		attempts  int
		pushbacks uint64
	}{
		{name: "ENOBUFS then sent", err: syscall.ENOBUFS, failFirst: 3, want: Answered, attempts: 1, pushbacks: 3},
		{name: "EAGAIN then sent", err: syscall.EAGAIN, failFirst: 2, want: Answered, attempts: 1, pushbacks: 2},
		{name: "ENOBUFS never clears", err: syscall.ENOBUFS, failFirst: -1, want: LocalError, pushbacks: 4},
		{name: "ENOMEM never clears", err: syscall.ENOMEM, failFirst: -1, want: LocalError, pushbacks: 4},
		{name: "EPERM from a local firewall", err: syscall.EPERM, failFirst: -1, want: SendFailed},
		{name: "ENETUNREACH, no route", err: syscall.ENETUNREACH, failFirst: -1, want: SendFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startResponder(t, answer, 0)
			var calls atomic.Int64
			m := openMux(t, Config{
				pushbackRetries: 4, pushbackDelay: time.Millisecond,
				send: func(dst netip.AddrPort, p []byte, send func() error) error {
					if n := calls.Add(1); tt.failFirst < 0 || n <= int64(tt.failFirst) {
						return os.NewSyscallError("sendto", tt.err)
					}
					return send()
				},
			})
			start := time.Now()
			res := ask(t, m, Query{Dst: r.addr, Payload: payload, Tries: 3, Timeout: 5 * time.Second, Match: txidMatch(payload)})
			if res.Outcome != tt.want || res.Attempts != tt.attempts {
				t.Fatalf("%v, %d attempts, err %v; want %v, %d attempts", res.Outcome, res.Attempts, res.Err, tt.want, tt.attempts)
			}
			if tt.want != Answered && !errors.Is(res.Err, tt.err) {
				t.Errorf("err %v, want %v", res.Err, tt.err)
			}
			if tt.want == Answered && res.RTT <= 0 {
				t.Errorf("RTT %v", res.RTT)
			}
			if elapsed := time.Since(start); elapsed > time.Second {
				t.Errorf("took %v: a send failure must not wait for the timeout", elapsed)
			}
			st := m.Stats()
			if st.Pushbacks != tt.pushbacks || st.Sent != uint64(tt.attempts) || r.seen.Load() != int64(tt.attempts) {
				t.Errorf("stats %+v, responder saw %d; want %d pushbacks, %d sent", st, r.seen.Load(), tt.pushbacks, tt.attempts)
			}
		})
	}
}

// TestMuxIPv6Lazy opens the IPv6 socket on the first IPv6 query. The send is injected and sends nothing.
func TestMuxIPv6Lazy(t *testing.T) {
	var called atomic.Bool
	m := openMux(t, Config{send: func(netip.AddrPort, []byte, func() error) error {
		called.Store(true)
		return os.NewSyscallError("sendto", syscall.EPERM)
	}})
	m.sockMu.Lock()
	before := m.v6
	m.sockMu.Unlock()
	if before != nil {
		t.Fatal("IPv6 socket open before any IPv6 query")
	}
	res := ask(t, m, Query{Dst: netip.MustParseAddrPort("[::1]:9"), Payload: []byte{1}, Timeout: time.Second})
	if res.Outcome != SendFailed || res.Attempts != 0 {
		t.Fatalf("%v, %d attempts, err %v; want SendFailed, 0 attempts", res.Outcome, res.Attempts, res.Err)
	}
	m.sockMu.Lock()
	v6, v6err := m.v6, m.v6err
	m.sockMu.Unlock()
	switch {
	case v6 != nil:
		if !called.Load() || !errors.Is(res.Err, syscall.EPERM) {
			t.Fatalf("injected send not used: err %v", res.Err)
		}
	case v6err != nil:
		t.Logf("no IPv6 on this machine: %v", v6err)
	default:
		t.Fatalf("no IPv6 socket and no error: %v", res.Err)
	}
}

// TestMuxPace calls Pace before every datagram, retries included, and ends the query LocalError when it fails.
func TestMuxPace(t *testing.T) {
	r := startResponder(t, silent, 0)
	var paced atomic.Int64
	m := openMux(t, Config{Pace: func(ctx context.Context) error { paced.Add(1); return nil }})
	res := ask(t, m, Query{Dst: r.addr, Payload: []byte{1}, Tries: 3, Timeout: 20 * time.Millisecond})
	if res.Outcome != Silent || res.Attempts != 3 || paced.Load() != 3 {
		t.Fatalf("%v, %d attempts, paced %d times; want Silent, 3, 3", res.Outcome, res.Attempts, paced.Load())
	}

	errLimit := errors.New("rate: wait would exceed the deadline")
	m2 := openMux(t, Config{Pace: func(ctx context.Context) error { return errLimit }})
	res = ask(t, m2, Query{Dst: r.addr, Payload: []byte{1}, Tries: 3, Timeout: time.Second})
	if res.Outcome != LocalError || res.Attempts != 0 || !errors.Is(res.Err, errLimit) {
		t.Fatalf("%v, %d attempts, err %v; want LocalError, 0 attempts", res.Outcome, res.Attempts, res.Err)
	}
}

// TestMuxTryTimeout gives each try its own wait.
func TestMuxTryTimeout(t *testing.T) {
	r := startResponder(t, silent, 0)
	m := openMux(t, Config{})
	var mu sync.Mutex
	var asked []int
	start := time.Now()
	res := ask(t, m, Query{Dst: r.addr, Payload: []byte{1}, Tries: 3, Timeout: time.Hour, TryTimeout: func(try int) time.Duration {
		mu.Lock()
		asked = append(asked, try)
		mu.Unlock()
		return time.Duration(try) * 30 * time.Millisecond
	}})
	elapsed := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	if res.Outcome != Silent || res.Attempts != 3 || !slices.Equal(asked, []int{1, 2, 3}) {
		t.Fatalf("%v, %d attempts, TryTimeout asked for %v", res.Outcome, res.Attempts, asked)
	}
	if elapsed < 180*time.Millisecond || elapsed > 5*time.Second {
		t.Fatalf("silent after %v, want 30+60+90 ms", elapsed)
	}
}

// TestMuxManyQueries puts 5,000 queries in flight at once: the goroutines stay the mux's few, whatever the count.
func TestMuxManyQueries(t *testing.T) {
	const n = 5000
	r := startResponder(t, answer, 0)
	base := runtime.NumGoroutine()
	m := openMux(t, Config{})
	var wg sync.WaitGroup
	var answered, other atomic.Int64
	wg.Add(n)
	for i := range n {
		p := []byte{byte(i >> 8), byte(i), 'q'}
		m.Submit(Query{Dst: r.addr, Payload: p, Tries: 3, Timeout: 2 * time.Second, Match: txidMatch(p), Done: func(res Result) {
			if res.Outcome == Answered && bytes.Equal(res.Reply, p) {
				answered.Add(1)
			} else {
				other.Add(1)
			}
			wg.Done()
		}})
	}
	peak := runtime.NumGoroutine()
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	timeout := time.After(30 * time.Second)
wait:
	for {
		select {
		case <-finished:
			break wait
		case <-timeout:
			t.Fatalf("after 30s: %d answered, %d other", answered.Load(), other.Load())
		case <-time.After(time.Millisecond):
			peak = max(peak, runtime.NumGoroutine()-1) // less the waiter above
		}
	}
	if answered.Load() != n {
		t.Fatalf("%d of %d answered, %d other", answered.Load(), n, other.Load())
	}
	if extra := peak - base; extra > 6 {
		t.Fatalf("%d goroutines beyond the %d before Open with %d queries in flight", extra, base, n)
	}
	st := m.Stats()
	t.Logf("goroutines: %d before, peak %d; stats %+v", base, peak, st)
	if st.Answers != n || st.Sent < n {
		t.Fatalf("stats %+v", st)
	}
}

// TestMuxClose closes the mux with queries pending: each gets Canceled once, and the mux's goroutines end.
func TestMuxClose(t *testing.T) {
	const n = 200
	r := startResponder(t, silent, 0)
	base := runtime.NumGoroutine()
	m, err := Open(Config{})
	if err != nil {
		t.Fatal(err)
	}
	var calls [n]atomic.Int32
	results := make([]Result, n)
	for i := range n {
		m.Submit(Query{Dst: r.addr, Payload: []byte{1}, Tries: 3, Timeout: time.Minute, Done: func(res Result) {
			results[i] = res
			calls[i].Add(1)
		}})
	}
	for deadline := time.Now().Add(5 * time.Second); m.Stats().Sent < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d sent after 5s", m.Stats().Sent, n)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if c := calls[i].Load(); c != 1 {
			t.Fatalf("query %d: Done called %d times", i, c)
		}
		if res := results[i]; res.Outcome != Canceled || res.Attempts != 1 || !errors.Is(res.Err, ErrClosed) {
			t.Fatalf("query %d: %v, %d attempts, err %v; want Canceled, 1 attempt", i, res.Outcome, res.Attempts, res.Err)
		}
	}
	var got Outcome
	m.Submit(Query{Dst: r.addr, Done: func(res Result) { got = res.Outcome }})
	if got != Canceled {
		t.Fatalf("Submit after Close: %v, want Canceled at once", got)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	now := runtime.NumGoroutine()
	for deadline := time.Now().Add(2 * time.Second); now > base && time.Now().Before(deadline); now = runtime.NumGoroutine() {
		time.Sleep(5 * time.Millisecond)
	}
	if now > base {
		t.Fatalf("%d goroutines after Close, %d before Open", now, base)
	}
}

// TestMuxReceiveBuffer reports the receive buffer the kernel granted.
func TestMuxReceiveBuffer(t *testing.T) {
	m := openMux(t, Config{ReceiveBuffer: 1 << 20})
	if got := m.Stats().ReceiveBuffer; got < 1<<20 && got < 2*212992 {
		t.Fatalf("receive buffer %d, want at least the 1 MiB asked or the default", got)
	}
}

// TestPendingQueryCost measures the memory of a pending query: the query itself, its place in the index by
// destination and in the timer heap. The send is injected and sends nothing.
func TestPendingQueryCost(t *testing.T) {
	const n = 20000
	m := openMux(t, Config{Window: n, MaxWindow: n, send: func(netip.AddrPort, []byte, func() error) error { return nil }})
	payload := []byte{1, 2}
	done := func(Result) {}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}), 137)
		m.Submit(Query{Dst: dst, Payload: payload, Tries: 2, Timeout: time.Hour, Done: done})
	}
	for deadline := time.Now().Add(10 * time.Second); m.Stats().Sent < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d sent", m.Stats().Sent, n)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perQuery := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes per pending query (query struct %d bytes)", perQuery, unsafeSizeofQuery)
	if perQuery > 400 {
		t.Fatalf("%.0f bytes per pending query, want at most 400", perQuery)
	}
	m.mu.Lock()
	pending := len(m.pending)
	m.mu.Unlock()
	if pending != n {
		t.Fatalf("%d destinations pending, want %d", pending, n)
	}
}

func BenchmarkMuxQuery(b *testing.B) {
	const window = 256
	r := startResponder(b, answer, 0)
	m := openMux(b, Config{})
	sem := make(chan struct{}, window)
	var wg sync.WaitGroup
	var failed atomic.Int64
	payload := []byte{0x77, 0x88, 'b'}
	match := txidMatch(payload)
	done := func(res Result) {
		if res.Outcome != Answered {
			failed.Add(1)
		}
		<-sem
		wg.Done()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		sem <- struct{}{}
		wg.Add(1)
		m.Submit(Query{Dst: r.addr, Payload: payload, Tries: 3, Timeout: 2 * time.Second, Match: match, Done: done})
	}
	wg.Wait()
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d queries not answered", f, b.N)
	}
}

var unsafeSizeofQuery = unsafe.Sizeof(query{})

// TestMuxMappedDestination sends to an IPv4-mapped IPv6 address over the IPv4 socket.
func TestMuxMappedDestination(t *testing.T) {
	r := startResponder(t, answer, 0)
	m := openMux(t, Config{})
	dst := netip.AddrPortFrom(netip.AddrFrom16(r.addr.Addr().As16()), r.addr.Port())
	res := ask(t, m, Query{Dst: dst, Payload: []byte{9, 9}, Tries: 2, Timeout: time.Second})
	if res.Outcome != Answered || res.Attempts != 1 || res.RTT <= 0 {
		t.Fatalf("%v: %v, %d attempts, RTT %v, err %v", dst, res.Outcome, res.Attempts, res.RTT, res.Err)
	}
	m.sockMu.Lock()
	defer m.sockMu.Unlock()
	if m.v6 != nil {
		t.Fatal("an IPv4-mapped destination opened the IPv6 socket")
	}
}

// TestMuxKernelDrops overflows the mux's receive buffer while its receiver is held in a Done, and reads the
// kernel's drop counter (SO_RXQ_OVFL) from the next datagram. Holding Done breaks its contract on purpose.
func TestMuxKernelDrops(t *testing.T) {
	r := startResponder(t, answer, 0)
	m := openMux(t, Config{ReceiveBuffer: 1}) // the kernel's minimum
	release := make(chan struct{})
	held := make(chan struct{})
	m.Submit(Query{Dst: r.addr, Payload: []byte{1}, Tries: 1, Timeout: 5 * time.Second, Done: func(Result) {
		close(held)
		<-release
	}})
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("no answer to hold the receiver with")
	}
	var local netip.AddrPort
	m.v4.rc.Control(func(fd uintptr) {
		if sa, err := unix.Getsockname(int(fd)); err == nil {
			if ap, ok := addrPort(sa); ok {
				local = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), ap.Port())
			}
		}
	})
	flood, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	defer flood.Close()
	msg := make([]byte, 512)
	for range 200 {
		flood.WriteToUDPAddrPort(msg, local)
	}
	close(release)
	for deadline := time.Now().Add(3 * time.Second); m.Stats().KernelDrops == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no kernel drops counted after 200 datagrams into %d bytes: %+v", m.Stats().ReceiveBuffer, m.Stats())
		}
		flood.WriteToUDPAddrPort(msg, local) // queued after the drops, so it carries the counter
	}
	st := m.Stats()
	t.Logf("stats %+v", st)
	if st.KernelDrops+st.Strays < 200 || st.Strays == 0 {
		t.Fatalf("stats %+v: 200 stray datagrams are neither dropped nor counted", st)
	}
}

// TestMuxSendsBesideICMPErrors sends to a responder while thousands of ICMP port unreachable errors arrive for
// queries to closed ports on the same socket. Every dequeue of the error queue sets the socket's pending error again
// from the error behind it, so a send racing the receiver's drain meets errors that belong to other datagrams, again
// and again. No send may fail for them: each responder query is answered, and each closed port ends in an ICMP error
// (or, when the kernel failed to send one, silence).
func TestMuxSendsBesideICMPErrors(t *testing.T) {
	const n = 2000
	r := startResponder(t, answer, 0)
	forceReceiveBuffer(t, r.conn)
	m := openMux(t, Config{})
	if res := ask(t, m, Query{Dst: r.addr, Payload: []byte("bind"), Tries: 1, Timeout: 2 * time.Second}); res.Outcome != Answered {
		t.Fatalf("first query: %v, err %v", res.Outcome, res.Err) // it gives the mux its port, which no closed port may be
	}
	closed := closedPorts(t, n)
	type outcome struct {
		toResponder bool
		res         Result
	}
	ch := make(chan outcome, 2*n)
	for i, dst := range closed {
		p := []byte{byte(i >> 8), byte(i), 'c'}
		m.Submit(Query{Dst: dst, Payload: p, Tries: 1, Timeout: 2 * time.Second,
			Done: func(res Result) { ch <- outcome{false, res} }})
		p = []byte{byte(i >> 8), byte(i), 'r'}
		m.Submit(Query{Dst: r.addr, Payload: p, Tries: 2, Timeout: 2 * time.Second, Match: txidMatch(p),
			Done: func(res Result) { ch <- outcome{true, res} }})
	}
	counts := map[string]int{}
	for range 2 * n {
		var o outcome
		select {
		case o = <-ch:
		case <-time.After(20 * time.Second):
			t.Fatalf("no result after 20s; so far %v", counts)
		}
		switch {
		case o.toResponder && o.res.Outcome == Answered:
			counts["answered"]++
		case !o.toResponder && o.res.Outcome == ICMPError:
			counts["refused"]++
		case !o.toResponder && o.res.Outcome == Silent:
			counts["silent"]++
		default:
			counts["wrong"]++
			if counts["wrong"] <= 5 {
				t.Errorf("responder %v: %v, err %v", o.toResponder, o.res.Outcome, o.res.Err)
			}
		}
	}
	t.Logf("%v; stats %+v", counts, m.Stats())
	if counts["wrong"] > 0 {
		t.Fatalf("%d of %d queries ended wrong", counts["wrong"], 2*n)
	}
}
