package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/targets"
)

func TestClassify(t *testing.T) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)}
	}
	tests := []struct {
		err  error
		want Status
	}{
		{nil, StatusOK},
		{opErr(syscall.ECONNREFUSED), StatusRefused},
		{opErr(syscall.ETIMEDOUT), StatusTimeout},
		{context.DeadlineExceeded, StatusTimeout},
		{fmt.Errorf("read: %w", os.ErrDeadlineExceeded), StatusTimeout},
		{opErr(syscall.EHOSTUNREACH), StatusUnreachable},
		{opErr(syscall.ENETUNREACH), StatusUnreachable},
		{opErr(syscall.ECONNRESET), StatusReset},
		{opErr(syscall.EPIPE), StatusReset},
		{io.EOF, StatusReset},
		{opErr(syscall.EMFILE), StatusLocal},
		{opErr(syscall.ENOBUFS), StatusLocal},
		{opErr(syscall.EADDRNOTAVAIL), StatusLocal},
		{opErr(syscall.EPERM), StatusAccessDenied},
		{context.Canceled, StatusCanceled},
		{fmt.Errorf("nbstat: %w: short answer", ProtocolError), StatusProtocolError},
		{errors.New("something else"), StatusError},
	}
	for _, tc := range tests {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// listenOpen returns a loopback port that accepts connections.
func listenOpen(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	must(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// silentPort returns a loopback port that never completes a handshake: a listener with a backlog of zero that never
// accepts, whose queue is filled first, so the kernel drops further SYNs as a firewall would.
func silentPort(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	must(t, err)
	t.Cleanup(func() { syscall.Close(fd) })
	must(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	must(t, syscall.Listen(fd, 0))
	sa, err := syscall.Getsockname(fd)
	must(t, err)
	port := sa.(*syscall.SockaddrInet4).Port
	// Fill the accept queue; these connects complete, later ones are dropped.
	for i := 0; i < 4; i++ {
		c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return port
}

func newTestScanner(t *testing.T, opts Options) *Scanner {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = 300 * time.Millisecond
	}
	if opts.Concurrency == 0 {
		opts.Concurrency = 64
	}
	if opts.PerHost == 0 {
		opts.PerHost = 4
	}
	s, err := NewScanner(opts)
	must(t, err)
	return s
}

func scanOne(t *testing.T, s *Scanner, addr string) *Host {
	t.Helper()
	var hosts []*Host
	s.Run(context.Background(), func(yield func(Target) bool) { yield(Target{Addr: netip.MustParseAddr(addr)}) }, func(h *Host) {
		hosts = append(hosts, h)
	})
	if len(hosts) != 1 {
		t.Fatalf("got %d hosts, want 1", len(hosts))
	}
	return hosts[0]
}

func TestTCPStatesOnLoopback(t *testing.T) {
	open, closed, silent := listenOpen(t), closedPort(t), silentPort(t)
	s := newTestScanner(t, Options{Ports: []int{open, closed, silent}, Retries: 1})
	h := scanOne(t, s, "127.0.0.1")
	want := map[int]struct {
		state    string
		attempts int
		evidence string
	}{
		open:   {StateOpen, 1, fmt.Sprintf("tcp %d: open, connected in ", open)},
		closed: {StateClosed, 1, fmt.Sprintf("tcp %d: closed, connection refused in ", closed)},
		silent: {StateFiltered, 2, fmt.Sprintf("tcp %d: filtered, no answer to 2 attempts of 300ms", silent)},
	}
	for _, p := range h.Ports {
		w := want[p.Port]
		if p.State != w.state || p.Attempts != w.attempts || !strings.HasPrefix(p.Evidence, w.evidence) {
			t.Errorf("port %d: got %s after %d attempts (%q), want %s after %d (%q...)", p.Port, p.State, p.Attempts, p.Evidence, w.state, w.attempts, w.evidence)
		}
	}
	if h.Status != HostUp {
		t.Errorf("host status %q, want up", h.Status)
	}
}

// TestSilentHostIsUnreachable: a host where every probe met silence is unreachable as a whole, not "all filtered".
func TestSilentHostIsUnreachable(t *testing.T) {
	s := newTestScanner(t, Options{Ports: []int{silentPort(t), silentPort(t)}, Retries: 0})
	h := scanOne(t, s, "127.0.0.1")
	if h.Status != HostUnreachable || !h.Unreachable() {
		t.Fatalf("status %q, want unreachable", h.Status)
	}
	g := catalog.Grade(catalog.Profile{ID: "p", Requirements: []catalog.Requirement{{
		ID: "r", Severity: catalog.Required, Match: catalog.MatchAll,
		Checks: []catalog.Check{{Kind: "tcp", Port: h.Ports[0].Port, Pass: []string{"open"}}},
	}}}, h)
	if g.Grade != catalog.GradeUnreachable {
		t.Errorf("grade %q, want unreachable", g.Grade)
	}
}

// scriptedDialer fails or succeeds as its script says, per address, and records concurrency.
type scriptedDialer struct {
	script   func(n int, address string) error
	calls    atomic.Int64
	inFlight atomic.Int64
	peak     atomic.Int64
	mu       sync.Mutex
	perHost  map[string]int
	peakHost int
	hold     time.Duration
}

func (d *scriptedDialer) DialContext(ctx context.Context, _, address string) (net.Conn, error) {
	n := int(d.calls.Add(1))
	cur := d.inFlight.Add(1)
	defer d.inFlight.Add(-1)
	for {
		p := d.peak.Load()
		if cur <= p || d.peak.CompareAndSwap(p, cur) {
			break
		}
	}
	host, _, _ := net.SplitHostPort(address)
	d.mu.Lock()
	if d.perHost == nil {
		d.perHost = map[string]int{}
	}
	d.perHost[host]++
	d.peakHost = max(d.peakHost, d.perHost[host])
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.perHost[host]--
		d.mu.Unlock()
	}()
	if d.hold > 0 {
		select {
		case <-time.After(d.hold):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := d.script(n, address); err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
	}
	c1, c2 := net.Pipe()
	c2.Close()
	return c1, nil
}

func TestTCPUnreachableAndLocalPushback(t *testing.T) {
	s := newTestScanner(t, Options{Ports: []int{445}})
	d := &scriptedDialer{script: func(n int, _ string) error {
		if n <= 3 {
			return os.NewSyscallError("connect", syscall.EMFILE) // this machine ran out of descriptors
		}
		return os.NewSyscallError("connect", syscall.EHOSTUNREACH)
	}}
	s.dialer = d
	h := scanOne(t, s, "198.18.0.17")
	p := h.Ports[0]
	if p.State != StateUnreachable || p.Attempts != 1 || p.Evidence != "tcp 445: unreachable, no route to host after "+formatRTT(p.RTT) {
		t.Errorf("got %+v, want unreachable after 1 counted attempt", p)
	}
	if d.calls.Load() != 4 {
		t.Errorf("dialled %d times, want 3 pushbacks then 1 real attempt", d.calls.Load())
	}
	if h.Status != HostUnreachable {
		t.Errorf("host status %q, want unreachable", h.Status)
	}
}

func TestTCPLocalExhaustionIsNotAHostProperty(t *testing.T) {
	s := newTestScanner(t, Options{Ports: []int{445}})
	s.dialer = &scriptedDialer{script: func(int, string) error { return os.NewSyscallError("connect", syscall.ENOBUFS) }}
	start := time.Now()
	h := scanOne(t, s, "198.18.0.10")
	if p := h.Ports[0]; p.State != StateError || !strings.Contains(p.Evidence, "this machine ran out of resources") {
		t.Errorf("got %+v, want an error blaming this machine", p)
	}
	if o := h.Observe(catalog.Check{Kind: "tcp", Port: 445}); o.Skipped == "" {
		t.Errorf("a local failure must not grade as a port state, got %+v", o)
	}
	if time.Since(start) > 15*time.Second {
		t.Errorf("pushback retries took %s; they must stay bounded", time.Since(start))
	}
}

func TestSchedulerBoundsSocketsAndPerHost(t *testing.T) {
	s := newTestScanner(t, Options{Ports: []int{53, 135, 139, 445, 8080, 8081}, Concurrency: 7, PerHost: 2})
	d := &scriptedDialer{hold: 5 * time.Millisecond, script: func(int, string) error { return nil }}
	s.dialer = d
	set := &targets.Set{}
	must(t, (&targets.Parser{}).Include(context.Background(), set, "198.18.0.0/26"))
	var n int
	s.Run(context.Background(), set.All(), func(h *Host) {
		n++
		if len(h.Ports) != 6 || h.Status != HostUp {
			t.Errorf("%s: %d ports, status %s", h.Addr, len(h.Ports), h.Status)
		}
	})
	if n != 64 {
		t.Errorf("emitted %d hosts, want 64", n)
	}
	if p := d.peak.Load(); p > 7 || p < 4 {
		t.Errorf("peak sockets in flight %d, want at most the budget 7 (and the budget used)", p)
	}
	if d.peakHost > 2 {
		t.Errorf("peak probes to one host %d, want at most 2", d.peakHost)
	}
}

func TestWorkerPanicBecomesInternal(t *testing.T) {
	s := newTestScanner(t, Options{Ports: []int{445}})
	s.dialer = &scriptedDialer{script: func(int, string) error { return nil }}
	s.beforeHost = func(tg Target) {
		if tg.Addr == netip.MustParseAddr("198.18.0.11") {
			panic("injected fault")
		}
	}
	set := &targets.Set{}
	must(t, (&targets.Parser{}).Include(context.Background(), set, "198.18.0.10-12"))
	got := map[string]*Host{}
	stats := s.Run(context.Background(), set.All(), func(h *Host) { got[h.Addr.String()] = h })
	if len(got) != 3 || stats.Internal != 1 {
		t.Fatalf("got %d hosts, %d internal; want 3 and 1", len(got), stats.Internal)
	}
	bad := got["198.18.0.11"]
	if bad.Status != HostInternal || bad.Error != "panic: injected fault" || !strings.Contains(bad.Stack, "beforeHost") && !strings.Contains(bad.Stack, "TestWorkerPanicBecomesInternal") {
		t.Errorf("panicking host: status %q error %q", bad.Status, bad.Error)
	}
	for _, a := range []string{"198.18.0.10", "198.18.0.12"} {
		if got[a].Status != HostUp {
			t.Errorf("%s: status %q, want up: the scan must go on after a panic", a, got[a].Status)
		}
	}
}

func TestStopKeepsFinishedHosts(t *testing.T) {
	s := newTestScanner(t, Options{Ports: []int{445}, Concurrency: 4, PerHost: 1})
	s.dialer = &scriptedDialer{hold: 20 * time.Millisecond, script: func(int, string) error { return nil }}
	var stopped atomic.Bool
	var startedAfterStop atomic.Int64
	s.beforeHost = func(Target) {
		if stopped.Load() {
			startedAfterStop.Add(1)
		}
	}
	set := &targets.Set{}
	must(t, (&targets.Parser{}).Include(context.Background(), set, "198.18.16.0/20"))
	var n int
	stats := s.Run(context.Background(), set.All(), func(h *Host) {
		n++
		if n == 10 {
			stopped.Store(true)
			s.Stop()
		}
	})
	// Hosts already handed to workers may still start after Stop: at most the hosts in flight (4) and the one the
	// feeder was handing over. Nothing new is fed.
	if !stats.Stopped || n < 10 || n > 100 || startedAfterStop.Load() > 4+1 {
		t.Errorf("stopped=%v after %d hosts, %d started after Stop; want a prompt stop", stats.Stopped, n, startedAfterStop.Load())
	}
	if int64(n) != stats.Hosts {
		t.Errorf("emitted %d, stats say %d: every started host must be emitted", n, stats.Hosts)
	}
}

// TestAbortEndsProbesInFlight: cancelling the context (a second Ctrl-C) ends probes at once, without waiting for their
// timeouts, and the host is still emitted, its ports marked as cancelled rather than given a state.
func TestAbortEndsProbesInFlight(t *testing.T) {
	s := newTestScanner(t, Options{Ports: []int{445}, Timeout: 10 * time.Second})
	s.dialer = &scriptedDialer{hold: time.Minute, script: func(int, string) error { return nil }}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	var hosts []*Host
	s.Run(ctx, func(yield func(Target) bool) { yield(Target{Addr: netip.MustParseAddr("198.18.0.16")}) }, func(h *Host) {
		hosts = append(hosts, h)
	})
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("abort took %s, want about 100ms", took)
	}
	if len(hosts) != 1 || hosts[0].Ports[0].State != StateError || hosts[0].Ports[0].Evidence != "tcp 445: scan cancelled" {
		t.Fatalf("got %+v, want one host with its port cancelled", hosts)
	}
}

func TestSocketBudget(t *testing.T) {
	tests := []struct {
		requested int
		limit     uint64
		want      int
	}{
		{1024, 1 << 20, 1024}, // fits
		{1024, 1024, 1024 - fdReserve},
		{4096, 256, 256 - fdReserve},
		{10, 20, 1}, // a limit below the reserve still leaves one socket
	}
	for _, tc := range tests {
		if got := SocketBudget(tc.requested, tc.limit); got != tc.want {
			t.Errorf("SocketBudget(%d, %d) = %d, want %d", tc.requested, tc.limit, got, tc.want)
		}
	}
}
