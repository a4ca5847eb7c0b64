package probe

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"net"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"
)

// dialer opens connections; tests replace the net.Dialer with fakes that fail in scripted ways.
type dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Options configures a scan.
type Options struct {
	// Ports are the TCP ports to connect to.
	Ports []int
	// Timeout bounds one connect attempt.
	Timeout time.Duration
	// Retries is how many more attempts a silent port gets.
	Retries int
	// Concurrency is the budget of sockets in flight across the scan.
	Concurrency int
	// PerHost caps the probes in flight to one host.
	PerHost int
	// OFMPort is the OFM service port the user named, or 0.
	OFMPort int
	// UDPPorts are the UDP ports to send an empty datagram to (no safe query exists for them).
	UDPPorts []int
	// NodeStatus asks UDP 137 for the NetBIOS name table; Session requests a NetBIOS session on TCP 139 when it is
	// open. Both are IPv4 only.
	NodeStatus bool
	Session    bool
	// UDPTimeout bounds one UDP try; UDPRetries is how many more tries a silent UDP port gets.
	UDPTimeout time.Duration
	UDPRetries int
	// SMB negotiates on 445 (and over NetBIOS on 139 when 445 does not answer SMB); Share mounts OFMLOG$, stats the
	// OFM files and connects IPC$; EPM binds to the RPC endpoint mapper on 135. Each runs only when its port is open.
	SMB, Share, EPM bool
	// Credentials log on for the share check; nil means a guest login.
	Credentials *Credentials
	// ReadLog is how many of OFMNT.LOG's last lines to put in the report (0: none).
	ReadLog int
	// Rate caps new connections and datagrams per second across the scan; 0 means no cap.
	Rate float64
}

// Validate checks the options and names the first bad one.
func (o Options) Validate() error {
	switch {
	case len(o.Ports) == 0 && len(o.UDPPorts) == 0 && !o.NodeStatus:
		return errors.New("nothing to probe: no ports and no NetBIOS query")
	case o.Timeout <= 0:
		return fmt.Errorf("timeout %s must be positive", o.Timeout)
	case o.Retries < 0 || o.Retries > 10:
		return fmt.Errorf("retries %d must be from 0 to 10", o.Retries)
	case o.Concurrency < 1:
		return fmt.Errorf("concurrency %d must be at least 1", o.Concurrency)
	case o.PerHost < 1:
		return fmt.Errorf("per-host cap %d must be at least 1", o.PerHost)
	case o.OFMPort < 0 || o.OFMPort > 65535:
		return fmt.Errorf("OFM port %d out of range 1-65535", o.OFMPort)
	case (len(o.UDPPorts) > 0 || o.NodeStatus) && o.UDPTimeout <= 0:
		return fmt.Errorf("UDP timeout %s must be positive", o.UDPTimeout)
	case o.UDPRetries < 0 || o.UDPRetries > 10:
		return fmt.Errorf("UDP retries %d must be from 0 to 10", o.UDPRetries)
	case o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0):
		return fmt.Errorf("rate %v must be a positive number of packets per second (or 0 for no cap)", o.Rate)
	}
	for _, p := range append(slices.Clone(o.Ports), o.UDPPorts...) {
		if p < 1 || p > 65535 {
			return fmt.Errorf("port %d out of range 1-65535", p)
		}
	}
	return nil
}

// Scanner runs the probe steps for every target. It is the one place that owns concurrency: a weighted semaphore
// bounds the sockets in flight across the scan, a per-host cap bounds those to one host, and the number of hosts in
// flight is bounded so that memory does not grow with the size of the target set.
type Scanner struct {
	opts    Options
	ports   []int
	sockets *semaphore.Weighted
	dialer  dialer
	// udpDialer opens connected UDP sockets.
	udpDialer dialer
	// nbstatPort and nbssPort are 137 and 139; tests move them to loopback fakes.
	nbstatPort, nbssPort uint16
	stop                 chan struct{}
	once                 sync.Once

	// limiter paces new connections and datagrams; nil without a rate cap.
	limiter *rate.Limiter
	// pushback counts the times the kernel refused a socket for want of resources; budget is the socket budget
	// after the cuts pushback made, debt the sockets still to be kept back to make a cut, lastShrink the time of
	// the last cut in Unix nanoseconds.
	pushback   atomic.Int64
	budget     atomic.Int64
	debt       atomic.Int64
	lastShrink atomic.Int64
	// workers run the probe steps.
	workers workerPool
	// beforeHost, when set by a test, runs at the start of every host's probes (to inject faults).
	beforeHost func(Target)
}

// NewScanner checks the options and returns a scanner.
func NewScanner(opts Options) (*Scanner, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ports := slices.Clone(opts.Ports)
	if opts.OFMPort != 0 {
		ports = append(ports, opts.OFMPort)
	}
	slices.Sort(ports)
	s := &Scanner{
		opts:    opts,
		ports:   slices.Compact(ports),
		sockets: semaphore.NewWeighted(int64(opts.Concurrency)),
		// No keep-alives: a connect probe closes at once.
		dialer:     &net.Dialer{KeepAlive: -1},
		udpDialer:  &net.Dialer{Control: udpControl},
		nbstatPort: 137,
		nbssPort:   139,
		stop:       make(chan struct{}),
	}
	s.budget.Store(int64(opts.Concurrency))
	if opts.Rate > 0 {
		// A burst of 20 ms worth of packets (at least one) keeps the average at the cap without a timer per packet.
		s.limiter = rate.NewLimiter(rate.Limit(opts.Rate), max(1, int(opts.Rate/50)))
	}
	return s, nil
}

// Stop makes Run start no new hosts; the hosts in flight finish within their timeouts and are emitted.
func (s *Scanner) Stop() { s.once.Do(func() { close(s.stop) }) }

// Stats counts what a run did.
type Stats struct {
	Hosts    int64 // hosts emitted
	Internal int64 // hosts whose probes failed inside ofmprobe
	Stopped  bool  // Stop was called before every target was started
	// Pushback counts the times the kernel refused a socket for want of resources and a probe waited to retry;
	// Budget is the socket budget at the end, lower than the configured concurrency after pushback.
	Pushback int64
	Budget   int
}

// Run probes every target and calls emit once per host as each finishes, from a single goroutine, so emit needs no
// locking. Cancelling ctx aborts probes in flight; Stop only stops new hosts from starting.
func (s *Scanner) Run(ctx context.Context, targets iter.Seq[Target], emit func(*Host)) Stats {
	var stats Stats
	results := make(chan *Host, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for h := range results {
			stats.Hosts++
			if h.Status == HostInternal {
				stats.Internal++
			}
			emit(h)
		}
	}()

	var g errgroup.Group
	g.SetLimit(s.hostLimit())
feed:
	for t := range targets {
		select {
		case <-s.stop:
			stats.Stopped = true
			break feed
		case <-ctx.Done():
			stats.Stopped = true
			break feed
		default:
		}
		g.Go(func() error {
			results <- s.probeHost(ctx, t)
			return nil
		})
	}
	_ = g.Wait()
	s.workers.stop()
	close(results)
	<-done
	stats.Pushback = s.pushback.Load()
	stats.Budget = int(s.budget.Load())
	return stats
}

// hostLimit is how many hosts are probed at once. Each host runs up to PerHost steps, each holding one socket, so
// twice Concurrency/PerHost hosts keep every socket busy with a queue of ready steps behind them. More would only
// cost memory: a host waiting for a socket holds a goroutine and its facts.
func (s *Scanner) hostLimit() int {
	return min(s.opts.Concurrency, max(16, 2*s.opts.Concurrency/s.opts.PerHost))
}

// probeHost runs every step for one host, in phases. First, in parallel under the per-host cap, the TCP
// connects, the UDP ports and the NetBIOS node status. Then the steps that depend on them: the NetBIOS session on 139
// only when 139 is open, to the name node status gave. A panic in any step becomes an internal status on the host; the
// facts found before it are kept and the scan goes on.
func (s *Scanner) probeHost(ctx context.Context, t Target) (h *Host) {
	h = &Host{Target: t, Started: time.Now(), ofmPort: s.opts.OFMPort}
	var guard stepGuard
	defer func() {
		h.Duration = time.Since(h.Started)
		h.Aborted = ctx.Err() != nil
		if r := recover(); r != nil {
			guard.record(r)
		}
		switch {
		case guard.panicked != nil:
			h.Status, h.Error, h.Stack = HostInternal, fmt.Sprintf("panic: %v", guard.panicked), guard.stack
		case h.Unreachable():
			h.Status = HostUnreachable
		default:
			h.Status = HostUp
		}
	}()
	if s.beforeHost != nil {
		s.beforeHost(t)
	}
	ipv4 := t.Addr.Is4()
	if !ipv4 && (s.opts.NodeStatus || s.opts.Session) {
		h.netbiosSkipped = "NetBIOS runs over IPv4 only"
	}

	h.Ports = make([]PortResult, len(s.ports)+len(s.opts.UDPPorts))
	var wg sync.WaitGroup
	perHost := make(chan struct{}, s.opts.PerHost)
	// step takes a slot of the per-host cap and a socket of the scan's budget before it starts a goroutine, so the
	// goroutines in flight are about the sockets in flight, not the steps waiting for one. A step holds its socket
	// for its whole run, retries and follow-up connections included. When the scan is cancelled the step still
	// runs, without a socket, and reports itself cancelled at once.
	step := func(name string, fn func()) {
		perHost <- struct{}{}
		held := s.acquire(ctx) == nil
		wg.Add(1)
		s.workers.do(func() {
			defer func() {
				if held {
					s.release()
				}
				<-perHost
				wg.Done()
			}()
			guard.run(name, fn)
		})
	}
	for i, port := range s.ports {
		step(fmt.Sprintf("tcp %d", port), func() { h.Ports[i] = s.tcpConnect(ctx, t.Addr, port) })
	}
	if len(s.opts.UDPPorts) > 0 {
		step("udp ports", func() { copy(h.Ports[len(s.ports):], s.udpPorts(ctx, t.Addr, s.opts.UDPPorts)) })
	}
	if s.opts.NodeStatus && ipv4 {
		step("nbstat", func() {
			ns := s.nodeStatus(ctx, t.Addr)
			h.NetBIOS = &ns
		})
	}
	wg.Wait()
	// An internal error in a step leaves its result empty: fill it so the report says so.
	for i := range h.Ports {
		if h.Ports[i].State == "" {
			h.Ports[i] = PortResult{Port: s.portAt(i), Protocol: s.protocolAt(i), State: StateError, Evidence: "internal error in this step"}
		}
	}

	// Second phase: the protocol steps whose ports are open, in parallel under the per-host cap.
	name := ""
	if h.NetBIOS != nil && h.NetBIOS.State == NBAnswered && h.NetBIOS.FileServer {
		name = h.NetBIOS.ComputerName
	}
	open := func(port int) bool { p, ok := h.Port(port); return ok && p.State == StateOpen }
	if s.opts.Session && ipv4 && open(139) {
		step("nbss session", func() { sess := s.nbssSession(ctx, t.Addr, name); h.Session = &sess })
	}
	if s.opts.SMB && open(445) {
		step("smb negotiate 445", func() { r := s.smbNegotiate(ctx, t.Addr, 445); h.SMB = &r })
	}
	if s.opts.EPM && open(135) {
		step("epm bind", func() { r := s.epmBind(ctx, t.Addr); h.EPM = &r })
	}
	wg.Wait()

	// Third phase: SMB over NetBIOS when 445 gave no SMB answer, and the share check when 445 speaks SMB2. When
	// the session step already failed on 139, SMB over it would fail the same way: that is its answer, without
	// another connection.
	smbOn445 := h.SMB != nil && (h.SMB.State == SMBStateSMB2 || h.SMB.State == SMBStateSMB1Only)
	if s.opts.SMB && ipv4 && open(139) && !smbOn445 {
		if r, failed := smbFromSession(h.Session); failed {
			h.SMB139 = &r
		} else {
			step("smb negotiate 139", func() { r := s.smbNegotiate139(ctx, t.Addr, name); h.SMB139 = &r })
		}
	}
	if s.opts.Share && h.SMB != nil && h.SMB.State == SMBStateSMB2 {
		step("share mount", func() { r := s.shareCheck(ctx, t.Addr, 445, s.opts.Credentials); h.Share = &r })
	}
	wg.Wait()

	// Fourth phase: the share check over NetBIOS on 139, when that is where the host speaks SMB2 (445 did not).
	if s.opts.Share && h.Share == nil && h.SMB139 != nil && h.SMB139.State == SMBStateSMB2 {
		step("share mount 139", func() { r := s.shareCheck139(ctx, t.Addr, name, s.opts.Credentials); h.Share = &r })
		wg.Wait()
	}
	return h
}

// smbFromSession returns the "smb negotiate 139" result a failed NetBIOS session request implies: SMB over 139
// needs that session first. It returns false when the session was positive or not requested.
func smbFromSession(sess *Session) (SMBResult, bool) {
	if sess == nil {
		return SMBResult{}, false
	}
	r := SMBResult{Port: 139, Evidence: "smb negotiate 139: not attempted, the NetBIOS session it needs failed: " + sess.Evidence}
	switch sess.State {
	case SessionNegative:
		r.State = SMBStateSessionRefused
	case SessionTimeout:
		r.State = SMBStateTimeout
	case SessionProtocolError:
		r.State = SMBStateProtocolError
	default:
		return SMBResult{}, false
	}
	return r, true
}

func (s *Scanner) portAt(i int) int {
	if i < len(s.ports) {
		return s.ports[i]
	}
	return s.opts.UDPPorts[i-len(s.ports)]
}

func (s *Scanner) protocolAt(i int) string {
	if i < len(s.ports) {
		return "tcp"
	}
	return "udp"
}

// stepGuard runs probe steps under recover and keeps the first panic with its stack.
type stepGuard struct {
	mu       sync.Mutex
	panicked any
	stack    string
}

func (g *stepGuard) run(name string, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			g.record(fmt.Sprintf("%s: %v", name, r))
		}
	}()
	fn()
}

func (g *stepGuard) record(r any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.panicked == nil {
		g.panicked, g.stack = r, string(debug.Stack())
	}
}
