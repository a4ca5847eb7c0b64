//go:build linux

package connect

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/internal/backlog"

	"golang.org/x/sys/unix"
)

// acceptingPort returns a loopback port whose listener accepts every connection and closes it at once.
func acceptingPort(t testing.TB) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// closedPort returns a loopback port nothing listens on: a SYN to it draws a RST.
func closedPort(t testing.TB) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	return ap
}

// silentPort returns a loopback port that never completes a handshake: a listener with a backlog of zero that never
// accepts, whose accept queue is filled first, so the kernel drops further SYNs as a firewall would.
func silentPort(t testing.TB) netip.AddrPort {
	t.Helper()
	port, _ := backlog.Full(t)
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port))
}

func open(t testing.TB, cfg Config) *Connector {
	t.Helper()
	c, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// results collects the results of numbered attempts and fails the test on a second Done for one attempt.
type results struct {
	t    testing.TB
	mu   sync.Mutex
	got  map[int]Result
	dups int
	left sync.WaitGroup
}

func newResults(t testing.TB, n int) *results {
	r := &results{t: t, got: make(map[int]Result, n)}
	r.left.Add(n)
	return r
}

func (r *results) done(i int) func(Result) {
	return func(res Result) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, ok := r.got[i]; ok {
			r.dups++
			return
		}
		r.got[i] = res
		r.left.Done()
	}
}

// wait waits for every attempt to end, at most d.
func (r *results) wait(d time.Duration) {
	r.t.Helper()
	ch := make(chan struct{})
	go func() { r.left.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(d):
		r.mu.Lock()
		n := len(r.got)
		r.mu.Unlock()
		r.t.Fatalf("only %d attempts ended after %v", n, d)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dups > 0 {
		r.t.Fatalf("%d results delivered twice", r.dups)
	}
}

func connectOne(t *testing.T, c *Connector, dst netip.AddrPort, timeout time.Duration) Result {
	t.Helper()
	r := newResults(t, 1)
	c.Connect(Attempt{Dst: dst, Timeout: timeout, Done: r.done(0)})
	r.wait(timeout + 5*time.Second)
	return r.got[0]
}

func TestOutcomes(t *testing.T) {
	tests := []struct {
		name    string
		dst     func(t testing.TB) netip.AddrPort
		timeout time.Duration
		want    Outcome
		errno   syscall.Errno
	}{
		{"connected", acceptingPort, time.Second, Connected, 0},
		{"refused", closedPort, time.Second, Refused, syscall.ECONNREFUSED},
		{"timed out", silentPort, 300 * time.Millisecond, TimedOut, syscall.ETIMEDOUT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := tt.dst(t)
			c := open(t, Config{})
			r := connectOne(t, c, dst, tt.timeout)
			if r.Outcome != tt.want {
				t.Fatalf("outcome %v (err %v), want %v", r.Outcome, r.Err, tt.want)
			}
			if tt.errno == 0 && r.Err != nil {
				t.Errorf("err %v, want nil", r.Err)
			}
			if tt.errno != 0 {
				var se *os.SyscallError
				if !errors.As(r.Err, &se) || !errors.Is(r.Err, tt.errno) {
					t.Errorf("err %#v, want a SyscallError of %v", r.Err, tt.errno)
				}
			}
			if r.RTT <= 0 || r.RTT > tt.timeout+time.Second {
				t.Errorf("rtt %v", r.RTT)
			}
			if tt.want == TimedOut && (r.RTT < tt.timeout || r.RTT > tt.timeout+250*time.Millisecond) {
				t.Errorf("rtt %v, want about %v", r.RTT, tt.timeout)
			}
			if r.ICMP.Origin != 0 {
				t.Errorf("icmp %+v on loopback", r.ICMP)
			}
			s := c.Stats()
			if s.Started != 1 || s.InFlight != 0 || s.PeakInFlight != 1 {
				t.Errorf("stats %+v", s)
			}
			wantCount := map[Outcome]uint64{Connected: s.Connected, Refused: s.Refused, TimedOut: s.TimedOut}
			if wantCount[tt.want] != 1 {
				t.Errorf("stats %+v do not count the %v", s, tt.want)
			}
		})
	}
}

func TestDefaultTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 1.5 s")
	}
	c := open(t, Config{})
	r := connectOne(t, c, silentPort(t), 0)
	if r.Outcome != TimedOut || r.RTT < DefaultTimeout || r.RTT > DefaultTimeout+250*time.Millisecond {
		t.Fatalf("got %v after %v, want timed out after %v", r.Outcome, r.RTT, DefaultTimeout)
	}
}

// TestManyInFlight keeps 5,000 connects in flight at once to a silent port: the goroutines stay the connector's two
// and the heap grows by a small struct per attempt.
func TestManyInFlight(t *testing.T) {
	const n = 5000
	if lim := fdLimit(t); lim < n+200 {
		t.Skipf("RLIMIT_NOFILE %d is below %d", lim, n+200)
	}
	dst := silentPort(t)
	var timedOut, other, calls atomic.Int64
	var wg sync.WaitGroup
	wg.Add(n)
	done := func(r Result) { // one func for all: the heap measured is the connector's
		calls.Add(1)
		if r.Outcome == TimedOut {
			timedOut.Add(1)
		} else {
			other.Add(1)
		}
		wg.Done()
	}
	c := open(t, Config{MaxInFlight: n})
	base := runtime.NumGoroutine()
	var before, during runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		c.Connect(Attempt{Dst: dst, Timeout: time.Second, Done: done})
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().Started < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	runtime.GC()
	runtime.ReadMemStats(&during)
	s := c.Stats()
	goroutines := runtime.NumGoroutine()
	if s.InFlight > 0 {
		t.Logf("heap per attempt in flight: %d bytes (%d in flight, heap %+d bytes)", (int64(during.HeapAlloc)-int64(before.HeapAlloc))/int64(s.InFlight), s.InFlight, int64(during.HeapAlloc)-int64(before.HeapAlloc))
	}
	if goroutines > base+2 {
		t.Errorf("%d goroutines with %d in flight, %d before", goroutines, s.InFlight, base)
	}
	waitGroup(t, &wg, 10*time.Second)
	if timedOut.Load() != n || other.Load() != 0 || calls.Load() != n {
		t.Fatalf("%d timed out, %d other, %d calls; want %d timed out", timedOut.Load(), other.Load(), calls.Load(), n)
	}
	s = c.Stats()
	if s.Started != n || s.TimedOut != n || s.PeakInFlight > n || s.InFlight != 0 {
		t.Errorf("stats %+v", s)
	}
	t.Logf("stats %+v", s)
}

func TestMaxInFlight(t *testing.T) {
	const n, limit = 300, 40
	dst := silentPort(t)
	var open_, peak atomic.Int64
	c := open(t, Config{
		MaxInFlight: limit,
		socket: func(family int, open func() (int, error)) (int, error) {
			fd, err := open()
			if err == nil {
				if k := open_.Add(1); k > peak.Load() {
					peak.Store(k) // only the sender opens: no race between load and store
				}
			}
			return fd, err
		},
		closing: func(int, Outcome) { open_.Add(-1) },
	})
	r := newResults(t, n)
	for i := range n {
		c.Connect(Attempt{Dst: dst, Timeout: 50 * time.Millisecond, Done: r.done(i)})
	}
	r.wait(30 * time.Second)
	for i, res := range r.got {
		if res.Outcome != TimedOut {
			t.Fatalf("attempt %d: %v", i, res.Outcome)
		}
	}
	s := c.Stats()
	if s.PeakInFlight > limit || peak.Load() > limit || s.PeakInFlight < limit/2 {
		t.Errorf("peak %d sockets (stats %d), limit %d", peak.Load(), s.PeakInFlight, limit)
	}
	if open_.Load() != 0 {
		t.Errorf("%d sockets left open", open_.Load())
	}
}

func TestCloseCancelsPending(t *testing.T) {
	const n, limit = 200, 50
	dst := silentPort(t)
	fds := countFDs(t)
	base := runtime.NumGoroutine()
	c, err := Open(Config{MaxInFlight: limit})
	if err != nil {
		t.Fatal(err)
	}
	r := newResults(t, n)
	for i := range n {
		c.Connect(Attempt{Dst: dst, Timeout: time.Minute, Done: r.done(i)})
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().Started < limit && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if s := c.Stats(); s.InFlight != limit || s.Queued != n-limit {
		t.Fatalf("before close: stats %+v", s)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	r.wait(time.Second) // Close has delivered every result already
	for i, res := range r.got {
		if res.Outcome != Canceled || !errors.Is(res.Err, ErrClosed) {
			t.Fatalf("attempt %d: %v %v", i, res.Outcome, res.Err)
		}
	}
	if s := c.Stats(); s.Canceled != n || s.InFlight != 0 {
		t.Errorf("stats %+v", s)
	}
	if got := countFDs(t); got != fds {
		t.Errorf("%d fds after close, %d before open", got, fds)
	}
	waitGoroutines(t, base)
	if err := c.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	var late Result
	c.Connect(Attempt{Dst: dst, Done: func(r Result) { late = r }})
	if late.Outcome != Canceled {
		t.Errorf("connect after close: %v", late.Outcome)
	}
}

func TestCloseDuringPace(t *testing.T) {
	paced := make(chan struct{})
	c, err := Open(Config{Pace: func(ctx context.Context) error {
		close(paced)
		<-ctx.Done()
		return ctx.Err()
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := newResults(t, 1)
	c.Connect(Attempt{Dst: closedPort(t), Done: r.done(0)})
	<-paced
	c.Close()
	r.wait(time.Second)
	if r.got[0].Outcome != Canceled {
		t.Fatalf("got %v, want canceled", r.got[0].Outcome)
	}
}

func TestPaceError(t *testing.T) {
	var paced atomic.Int64
	errLimit := errors.New("rate limiter closed")
	c := open(t, Config{Pace: func(context.Context) error {
		if paced.Add(1) == 2 {
			return errLimit
		}
		return nil
	}})
	dst := acceptingPort(t)
	r1 := connectOne(t, c, dst, time.Second)
	r2 := connectOne(t, c, dst, time.Second)
	if r1.Outcome != Connected || r2.Outcome != LocalError || !errors.Is(r2.Err, errLimit) {
		t.Fatalf("got %v and %v (%v)", r1.Outcome, r2.Outcome, r2.Err)
	}
	if s := c.Stats(); s.Started != 1 || s.LocalErrors != 1 || s.InFlight != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestPushback injects EMFILE at socket and EADDRNOTAVAIL at connect: retried, not started, and LocalError when it
// lasts.
func TestPushback(t *testing.T) {
	dst := acceptingPort(t)
	tests := []struct {
		name     string
		failures int // how many calls fail; -1 for all
		atSocket bool
		errno    syscall.Errno
		want     Outcome
		started  uint64
	}{
		{"emfile then connected", 3, true, syscall.EMFILE, Connected, 1},
		{"emfile persists", -1, true, syscall.EMFILE, LocalError, 0},
		{"enfile then connected", 1, true, syscall.ENFILE, Connected, 1},
		{"eaddrnotavail then connected", 2, false, syscall.EADDRNOTAVAIL, Connected, 1},
		{"enobufs persists", -1, false, syscall.ENOBUFS, LocalError, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fds := countFDs(t)
			var calls int
			fail := func() bool {
				calls++
				return tt.failures < 0 || calls <= tt.failures
			}
			cfg := Config{pushbackRetries: 4, pushbackDelay: 100 * time.Microsecond}
			if tt.atSocket {
				cfg.socket = func(family int, open func() (int, error)) (int, error) {
					if fail() {
						return -1, tt.errno
					}
					return open()
				}
			} else {
				cfg.connect = func(dst netip.AddrPort, connect func() error) error {
					if fail() {
						return tt.errno
					}
					return connect()
				}
			}
			c := open(t, cfg)
			r := connectOne(t, c, dst, time.Second)
			if r.Outcome != tt.want {
				t.Fatalf("outcome %v (%v), want %v", r.Outcome, r.Err, tt.want)
			}
			if tt.want == LocalError && !errors.Is(r.Err, tt.errno) {
				t.Errorf("err %v, want %v", r.Err, tt.errno)
			}
			s := c.Stats()
			wantPushbacks := uint64(tt.failures)
			if tt.failures < 0 {
				wantPushbacks = uint64(cfg.pushbackRetries)
			}
			if s.Started != tt.started || s.Pushbacks != wantPushbacks || s.InFlight != 0 {
				t.Errorf("stats %+v, want %d started and %d pushbacks", s, tt.started, wantPushbacks)
			}
			c.Close()
			if got := countFDs(t); got != fds {
				t.Errorf("%d fds after, %d before", got, fds)
			}
		})
	}
}

func TestDenied(t *testing.T) {
	dst := acceptingPort(t)
	for _, errno := range []syscall.Errno{syscall.EACCES, syscall.EPERM} {
		t.Run(errno.Error(), func(t *testing.T) {
			fds := countFDs(t)
			var closed []Outcome
			c := open(t, Config{
				connect: func(netip.AddrPort, func() error) error { return errno },
				closing: func(_ int, o Outcome) { closed = append(closed, o) },
			})
			r := connectOne(t, c, dst, time.Second)
			if r.Outcome != Denied || !errors.Is(r.Err, errno) || r.RTT != 0 {
				t.Fatalf("got %v %v rtt %v, want denied", r.Outcome, r.Err, r.RTT)
			}
			c.Close()
			if s := c.Stats(); s.Started != 0 || s.Denied != 1 || s.Pushbacks != 0 {
				t.Errorf("stats %+v", s)
			}
			if len(closed) != 1 || closed[0] != Denied {
				t.Errorf("sockets closed: %v", closed)
			}
			if got := countFDs(t); got != fds {
				t.Errorf("%d fds after, %d before", got, fds)
			}
		})
	}
}

func TestInvalidDestination(t *testing.T) {
	c := open(t, Config{})
	for _, dst := range []netip.AddrPort{{}, netip.MustParseAddrPort("0.0.0.0:80"), netip.MustParseAddrPort("127.0.0.1:0")} {
		r := connectOne(t, c, dst, time.Second)
		if r.Outcome != Failed || !errors.Is(r.Err, errInvalidDestination) {
			t.Errorf("%v: got %v %v", dst, r.Outcome, r.Err)
		}
	}
}

// TestConnectedResets checks that a connected socket is closed with SO_LINGER {1, 0} and leaves no TIME_WAIT.
func TestConnectedResets(t *testing.T) {
	const n = 20
	dst := acceptingPort(t)
	var mu sync.Mutex
	var lingers []unix.Linger
	c := open(t, Config{closing: func(fd int, o Outcome) {
		l, err := unix.GetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER)
		if err != nil || o != Connected {
			t.Errorf("closing %d (%v): %v", fd, o, err)
			return
		}
		mu.Lock()
		lingers = append(lingers, *l)
		mu.Unlock()
	}})
	r := newResults(t, n)
	for i := range n {
		c.Connect(Attempt{Dst: dst, Done: r.done(i)})
	}
	r.wait(10 * time.Second)
	for i, res := range r.got {
		if res.Outcome != Connected {
			t.Fatalf("attempt %d: %v %v", i, res.Outcome, res.Err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lingers) != n {
		t.Fatalf("%d sockets closed, want %d", len(lingers), n)
	}
	for _, l := range lingers {
		if l.Onoff != 1 || l.Linger != 0 {
			t.Fatalf("SO_LINGER %+v, want {1 0}", l)
		}
	}
	if tw := timeWaits(t, dst.Port()); tw > 0 {
		t.Errorf("%d connections to or from port %d in TIME_WAIT", tw, dst.Port())
	}
}

// TestDoneMayConnect chains attempts: each Done starts the next.
func TestDoneMayConnect(t *testing.T) {
	const n = 50
	dst := acceptingPort(t)
	c := open(t, Config{})
	var count atomic.Int64
	finished := make(chan struct{})
	var next func(Result)
	next = func(r Result) {
		if r.Outcome != Connected {
			t.Errorf("attempt %d: %v", count.Load(), r.Outcome)
		}
		if count.Add(1) == n {
			close(finished)
			return
		}
		c.Connect(Attempt{Dst: dst, Done: next})
	}
	c.Connect(Attempt{Dst: dst, Done: next})
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatalf("%d of %d", count.Load(), n)
	}
}

// TestStaleKey checks that an event whose generation is not the table's is ignored: the fd was reused.
func TestStaleKey(t *testing.T) {
	dst := silentPort(t)
	c := open(t, Config{})
	r := newResults(t, 1)
	c.Connect(Attempt{Dst: dst, Timeout: time.Minute, Done: r.done(0)})
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().InFlight == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	c.mu.Lock()
	var p *attempt
	for _, q := range c.conns {
		if q != nil {
			p = q
		}
	}
	c.mu.Unlock()
	if p == nil {
		t.Fatal("no attempt in flight")
	}
	buf := make([]byte, errQueueBuffer)
	if _, ok := c.settle(key(p.fd, p.gen+1), unix.EPOLLOUT, c.now(), buf); ok {
		t.Fatal("an event of another generation ended the attempt")
	}
	if _, ok := c.settle(key(p.fd+1000, p.gen), unix.EPOLLOUT, c.now(), buf); ok {
		t.Fatal("an event of another fd ended the attempt")
	}
	if s := c.Stats(); s.InFlight != 1 {
		t.Fatalf("stats %+v", s)
	}
	c.Close()
	r.wait(time.Second)
	if r.got[0].Outcome != Canceled {
		t.Fatalf("got %v", r.got[0].Outcome)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want Outcome
	}{
		{syscall.Errno(0), Connected},
		{os.NewSyscallError("connect", syscall.ECONNREFUSED), Refused},
		{syscall.EHOSTUNREACH, Unreachable},
		{syscall.ENETUNREACH, Unreachable},
		{syscall.EHOSTDOWN, Unreachable},
		{syscall.ENONET, Unreachable},
		{syscall.ENETDOWN, Unreachable},
		{syscall.ETIMEDOUT, TimedOut},
		{syscall.EACCES, Denied},
		{os.NewSyscallError("connect", syscall.EPERM), Denied},
		{syscall.EMFILE, LocalError},
		{syscall.ENFILE, LocalError},
		{syscall.ENOBUFS, LocalError},
		{syscall.EADDRNOTAVAIL, LocalError},
		{syscall.ENOMEM, LocalError},
		{syscall.EPROTO, Failed},
		{syscall.EMSGSIZE, Failed},
		{errors.New("not an errno"), Failed},
	}
	for _, tt := range tests {
		if got := classify(tt.err); got != tt.want {
			t.Errorf("classify(%v) = %v, want %v", tt.err, got, tt.want)
		}
		if got, want := isPushback(tt.err), tt.want == LocalError; got != want {
			t.Errorf("isPushback(%v) = %v, want %v", tt.err, got, want)
		}
	}
}

func TestOutcomeString(t *testing.T) {
	for o, want := range map[Outcome]string{Connected: "connected", TimedOut: "timed out", Canceled: "canceled", 99: "outcome(99)"} {
		if got := o.String(); got != want {
			t.Errorf("%d: %q, want %q", o, got, want)
		}
	}
}

func waitGroup(t testing.TB, wg *sync.WaitGroup, d time.Duration) {
	t.Helper()
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("not done after %v", d)
	}
}

func waitGoroutines(t testing.TB, base int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		t.Errorf("%d goroutines, %d before", n, base)
	}
}

func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func fdLimit(t testing.TB) uint64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	return rl.Cur
}

// timeWaits counts the IPv4 connections in /proc/net/tcp in TIME_WAIT with port as either end.
func timeWaits(t testing.TB, port uint16) int {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	hex := fmt.Sprintf(":%04X", port)
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] != "06" { // TCP_TIME_WAIT
			continue
		}
		if strings.HasSuffix(fields[1], hex) || strings.HasSuffix(fields[2], hex) {
			n++
		}
	}
	return n
}
