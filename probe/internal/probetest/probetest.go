// Package probetest holds the fakes the probe steps' tests share: loopback TCP and UDP servers scripted with a
// table of behaviours (answer, silence, reset, garbage), a scripted dialer that fails as the kernel would without
// touching the network, and Scan, which runs the real registry plan through the engine for one target.
//
// Every fake listens on 127.0.0.1. Addresses outside 127.0.0.0/8 (the 198.18.0.0/15 benchmark range) may only be
// handed to a ScriptedDialer: Scan and SafeTargets fail a test that would send real packets anywhere else.
package probetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/internal/backlog"

	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/netbios"
	"github.com/ofmprobe/ofmprobe/probe/steps"
	"github.com/ofmprobe/ofmprobe/probe/steps/nbt"
	"github.com/ofmprobe/ofmprobe/probe/steps/udp"
	"github.com/ofmprobe/ofmprobe/probe/targets"
)

// Loopback is the address every fake listens on.
var Loopback = netip.MustParseAddr("127.0.0.1")

// Must fails the test on an error.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Options fills the zero budgets and timings of opts with the tests' defaults: a 300 ms timeout for connects and
// UDP tries, 64 sockets, 4 steps per host. Retries stay as given.
func Options(opts engine.Options) engine.Options {
	if opts.Timeout == 0 {
		opts.Timeout = 300 * time.Millisecond
	}
	if opts.UDPTimeout == 0 {
		opts.UDPTimeout = 300 * time.Millisecond
	}
	if opts.Sockets == 0 {
		opts.Sockets = 64
	}
	if opts.PerHost == 0 {
		opts.PerHost = 4
	}
	return opts
}

// NewEnv returns an environment for opts (defaults filled), for a step run alone. Its datagram mux is opened at
// once and closed when the test ends.
func NewEnv(t testing.TB, opts engine.Options) *engine.Env {
	t.Helper()
	opts = Options(opts)
	Must(t, opts.Validate())
	env := engine.NewEnv(opts)
	mux, err := env.Datagrams()
	Must(t, err)
	t.Cleanup(func() { mux.Close() })
	return env
}

// Plan is the registry's plan for cfg, narrowed to the --steps keys in only (every step when only is empty).
func Plan(t testing.TB, cfg steps.Config, only ...string) *engine.Plan {
	t.Helper()
	p, err := steps.Plan(cfg, nil, only)
	Must(t, err)
	return p
}

// Scan runs the registry's plan for cfg, narrowed to the step keys in only, through engine.New and Run for the one
// target addr, and returns its host. Zero options get the defaults of Options.
func Scan(t testing.TB, cfg steps.Config, opts engine.Options, addr string, only ...string) *engine.Host {
	t.Helper()
	return ScanPlan(t, Plan(t, cfg, only...), opts, addr)
}

// ScanPlan runs plan for the one target addr and returns its host.
func ScanPlan(t testing.TB, plan *engine.Plan, opts engine.Options, addr string) *engine.Host {
	t.Helper()
	opts = Options(opts)
	e, err := engine.New(plan, opts)
	Must(t, err)
	one := func(yield func(targets.Target) bool) { yield(targets.Target{Addr: netip.MustParseAddr(addr)}) }
	var hosts []*engine.Host
	e.Run(context.Background(), SafeTargets(t, plan, opts, one), func(h *engine.Host) { hosts = append(hosts, h) })
	if len(hosts) != 1 {
		t.Fatalf("got %d hosts, want 1", len(hosts))
	}
	return hosts[0]
}

// SafeTargets passes on the targets of seq that a test may probe with plan and opts: any loopback address, and
// other addresses only when a scripted dialer stands in for the network and the plan has no UDP step (the mux
// would send real datagrams). At the first other target it reports an error and stops.
func SafeTargets(t testing.TB, plan *engine.Plan, opts engine.Options, seq iter.Seq[targets.Target]) iter.Seq[targets.Target] {
	udpSteps := plan.Has(nbt.NodeStatusStep) || plan.Has(udp.StepName)
	return func(yield func(targets.Target) bool) {
		for tg := range seq {
			if !tg.Addr.IsLoopback() {
				if _, scripted := opts.Dialer.(*ScriptedDialer); !scripted || udpSteps {
					t.Errorf("probetest: %s is not loopback; only a ScriptedDialer with no UDP step may be given it", tg.Addr)
					return
				}
			}
			if !yield(tg) {
				return
			}
		}
	}
}

// ScriptedTargets yields n addresses of 198.18.16.0/20 (RFC 2544 benchmark space), for a ScriptedDialer only.
func ScriptedTargets(n int) iter.Seq[targets.Target] {
	return func(yield func(targets.Target) bool) {
		for i := range n {
			a := netip.MustParseAddr(fmt.Sprintf("198.18.%d.%d", 16+i/250, 1+i%250))
			if !yield(targets.Target{Addr: a}) {
				return
			}
		}
	}
}

// ListenOpen returns a loopback TCP port that accepts connections and closes them.
func ListenOpen(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	Must(t, err)
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

// ClosedPort returns a loopback TCP port nothing listens on.
func ClosedPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	Must(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// ClosedUDPPort returns a loopback UDP port nothing listens on: a datagram to it draws an ICMP port unreachable.
func ClosedUDPPort(t testing.TB) int {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	Must(t, err)
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	return port
}

// SilentPort returns a loopback port that never completes a handshake: a listener with a backlog of zero that never
// accepts, whose queue is filled first, so the kernel drops further SYNs as a firewall would.
func SilentPort(t testing.TB) int {
	t.Helper()
	port, _ := backlog.Full(t)
	return port
}

// TCPFake serves each connection on a loopback port with handle (connections numbered from 1), under a 3 s
// deadline, and closes it after.
func TCPFake(t testing.TB, handle func(n int, c net.Conn)) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	Must(t, err)
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			k := int(n.Add(1))
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(3 * time.Second))
				handle(k, c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// UDPFake is a loopback UDP responder scripted per received query (numbered from 1): script returns the datagrams
// to send back. queries counts what it received.
func UDPFake(t testing.TB, script func(n int, query []byte) [][]byte) (port int, queries *atomic.Int64) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	Must(t, err)
	t.Cleanup(func() { pc.Close() })
	queries = &atomic.Int64{}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			k := int(queries.Add(1))
			for _, d := range script(k, append([]byte(nil), buf[:n]...)) {
				pc.WriteTo(d, from)
			}
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).Port, queries
}

// ScriptedDialer is an engine.Dialer that sends nothing: it fails or succeeds as Script says for the n-th dial (from
// 1) of an address, after holding Hold, and records the dials in flight, overall and per host. A success is one end
// of a net.Pipe whose other end is closed.
type ScriptedDialer struct {
	Script func(n int, address string) error
	Hold   time.Duration

	Calls    atomic.Int64
	inFlight atomic.Int64
	peak     atomic.Int64
	mu       sync.Mutex
	perHost  map[string]int
	peakHost int
}

// DialContext implements engine.Dialer.
func (d *ScriptedDialer) DialContext(ctx context.Context, _, address string) (net.Conn, error) {
	n := int(d.Calls.Add(1))
	cur := d.inFlight.Add(1)
	defer d.inFlight.Add(-1)
	for p := d.peak.Load(); cur > p && !d.peak.CompareAndSwap(p, cur); p = d.peak.Load() {
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
	if d.Hold > 0 {
		t := time.NewTimer(d.Hold)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := d.Script(n, address); err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
	}
	c1, c2 := net.Pipe()
	c2.Close()
	return c1, nil
}

// Peak is the most dials that were in flight at once.
func (d *ScriptedDialer) Peak() int64 { return d.peak.Load() }

// PeakHost is the most dials that were in flight to one host at once.
func (d *ScriptedDialer) PeakHost() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.peakHost
}

// ConnFake is a loopback TCP server that runs a script on each connection (numbered from 1) and then waits for the
// client to close it. It counts the connections the client closed, so tests can prove the steps close every one.
type ConnFake struct {
	ln       net.Listener
	wg       sync.WaitGroup
	Accepted atomic.Int64
	// ClientClosed counts connections that ended with the client's close (EOF or reset) after the script.
	ClientClosed atomic.Int64
	stopOnce     sync.Once
}

// StartFake starts a ConnFake; it stops when the test ends.
func StartFake(t testing.TB, script func(n int, c net.Conn)) *ConnFake {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	Must(t, err)
	f := &ConnFake{ln: ln}
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(f.Accepted.Add(1))
			f.wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				script(n, c)
				_, err := io.Copy(io.Discard, c)
				if err == nil || errors.Is(err, syscall.ECONNRESET) {
					f.ClientClosed.Add(1)
				}
			})
		}
	})
	t.Cleanup(f.Stop)
	return f
}

// Port is the fake's port.
func (f *ConnFake) Port() uint16 { return uint16(f.ln.Addr().(*net.TCPAddr).Port) }

// Stop closes the listener and waits for every connection's handler.
func (f *ConnFake) Stop() {
	f.stopOnce.Do(func() {
		f.ln.Close()
		f.wg.Wait()
	})
}

// HangUp closes c with a reset, as Windows does to an SMB1 negotiate when SMB1 is off.
func HangUp(c net.Conn) {
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
}

// ReadSessionRequest reads one 72-byte NetBIOS session request and returns the called name ("OFM90<20>"), or ""
// when what came is not one.
func ReadSessionRequest(c net.Conn) string {
	req := make([]byte, 72)
	if _, err := io.ReadFull(c, req); err != nil {
		return ""
	}
	name, _, err := netbios.ParseName(req[4:])
	if err != nil {
		return ""
	}
	return name.String()
}

// SettledGoroutines waits up to 3 s for the goroutine count to drop to want (or to stop changing, when want is 0)
// and returns it.
func SettledGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for range 60 {
		time.Sleep(50 * time.Millisecond)
		m := runtime.NumGoroutine()
		if (want > 0 && m <= want) || (want == 0 && m == n) {
			return m
		}
		n = m
	}
	return n
}

// ICMPOutErrors reads the kernel's count of ICMP messages it failed to send (Icmp OutErrors in /proc/net/snmp).
func ICMPOutErrors(t testing.TB) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/net/snmp")
	Must(t, err)
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
				Must(t, err)
				return n
			}
		}
	}
	t.Fatal("no Icmp OutErrors in /proc/net/snmp")
	return 0
}

// RetryLostICMP runs round, which sends datagrams to closed loopback ports and returns how many of them came back
// silent instead of closed; it reports every other wrong result itself. On this machine the kernel sometimes fails
// to send loopback ICMP port unreachable errors; a round with silent closed ports is tried again (up to 3 rounds)
// only when the kernel's Icmp OutErrors counter grew during it, and fails the test otherwise. When every round lost
// its ICMP errors that way, the test is skipped.
func RetryLostICMP(t *testing.T, round func(t *testing.T) (silent int)) {
	t.Helper()
	for n := 1; n <= 3; n++ {
		before := ICMPOutErrors(t)
		silent := round(t)
		if silent == 0 || t.Failed() {
			return
		}
		if ICMPOutErrors(t) == before {
			t.Fatalf("round %d: %d closed ports silent, and the kernel sent its ICMP errors", n, silent)
		}
		t.Logf("round %d: the kernel failed to send %d ICMP errors (Icmp OutErrors grew); again", n, silent)
	}
	t.Skip("the kernel failed to send its ICMP port unreachable errors in every round")
}
