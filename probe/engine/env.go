package engine

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/ofmprobe/ofmprobe/probe/status"
)

// Dialer opens connections; tests replace the net.Dialer with fakes that fail in scripted ways.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Options are the engine's budgets and timings.
type Options struct {
	// Timeout bounds one connect attempt and one exchange on a connection; Retries is how many more attempts a
	// silent connect gets.
	Timeout time.Duration
	Retries int
	// UDPTimeout bounds one UDP try; UDPRetries is how many more tries a silent UDP query gets.
	UDPTimeout time.Duration
	UDPRetries int
	// Sockets is the budget of sockets in flight across the scan.
	Sockets int
	// PerHost caps the steps in flight to one host.
	PerHost int
	// HostsInFlight bounds the hosts being probed at once (each is a small struct while it waits).
	HostsInFlight int
	// Rate caps new connections and datagrams per second across the scan; 0 means no cap.
	Rate float64
	// Dialer opens TCP connections; nil is a net.Dialer without keep-alives.
	Dialer Dialer
	// TCPProbe is how connect probes go out: TCPProbeConnect (the zero value) makes every one a full TCP connect
	// on a socket of its own (the connector); TCPProbeSYN sends raw SYNs (connect.SYN) to IPv4 addresses when this
	// process may open raw sockets, and uses the connector for the rest; TCPProbeAuto is TCPProbeSYN where raw
	// sockets are allowed and TCPProbeConnect, without complaint, where they are not (as nmap picks -sS or -sT).
	TCPProbe string
	// Datagram configures the shared UDP mux (its receive buffer).
	Datagram DatagramConfig
}

// The ways connect probes go out (Options.TCPProbe).
const (
	TCPProbeConnect = ""
	TCPProbeSYN     = "syn"
	TCPProbeAuto    = "auto"
)

// MaxRetries bounds --retries and --udp-retries.
const MaxRetries = 10

// Validate checks the options and names the first bad one.
func (o Options) Validate() error {
	switch {
	case o.Timeout <= 0:
		return fmt.Errorf("timeout %s must be positive", o.Timeout)
	case o.Retries < 0 || o.Retries > MaxRetries:
		return fmt.Errorf("retries %d must be from 0 to %d", o.Retries, MaxRetries)
	case o.UDPTimeout <= 0:
		return fmt.Errorf("UDP timeout %s must be positive", o.UDPTimeout)
	case o.UDPRetries < 0 || o.UDPRetries > MaxRetries:
		return fmt.Errorf("UDP retries %d must be from 0 to %d", o.UDPRetries, MaxRetries)
	case o.Sockets < 1:
		return fmt.Errorf("concurrency %d must be at least 1", o.Sockets)
	case o.PerHost < 1:
		return fmt.Errorf("per-host cap %d must be at least 1", o.PerHost)
	case o.HostsInFlight < 0:
		return fmt.Errorf("hosts in flight %d must be at least 1 (or 0 for the default)", o.HostsInFlight)
	case o.TCPProbe != TCPProbeConnect && o.TCPProbe != TCPProbeSYN && o.TCPProbe != TCPProbeAuto:
		return fmt.Errorf("TCP probe %q must be empty (full connects), %q or %q", o.TCPProbe, TCPProbeSYN, TCPProbeAuto)
	case o.Rate < 0 || math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0):
		return fmt.Errorf("rate %v must be a positive number of packets per second (or 0 for no cap)", o.Rate)
	}
	return nil
}

// maxLocalRetries bounds how often one operation waits out this machine's own resource shortages (EMFILE, ENOBUFS,
// EADDRNOTAVAIL) before it is reported as an error of this machine rather than as a property of the host.
const maxLocalRetries = 30

// minBudget is the smallest socket budget pushback shrinks the scan to: below it a scan of any size would crawl.
const minBudget = 32

// shrinkInterval spaces budget cuts: one burst of EMFILE errors from probes started together is one signal, not many.
const shrinkInterval = 100 * time.Millisecond

// Env is what the engine hands every step: connections paced by the rate limit and retried through this machine's
// own shortages, the shared datagram mux, and the scan's timings. A step reaches the network only through it.
type Env struct {
	opts    Options
	dialer  Dialer
	limiter *rate.Limiter

	// sockets is the socket budget; budget is its size after pushback, debt the sockets still to be kept back to
	// make a cut, lastShrink the time of the last cut in Unix nanoseconds, pushback the count of refusals.
	sockets    *semaphore.Weighted
	budget     atomic.Int64
	debt       atomic.Int64
	lastShrink atomic.Int64
	pushback   atomic.Int64
	// verify counts the silent probes of answering hosts tried again before silence was reported, and recovered
	// those that got an answer then.
	verify VerifyStats
	// stopping is set by Engine.Stop: the hosts in flight finish within their timeouts, without verifications.
	stopping atomic.Bool

	mux  muxState
	conn connectorState
	// rtt estimates the round trip across the scan, from every host's answers.
	rtt RTT
}

// NewEnv returns an environment for the options, which must be valid.
func NewEnv(opts Options) *Env {
	e := &Env{opts: opts, dialer: opts.Dialer}
	if e.dialer == nil {
		// No keep-alives: a connect probe closes at once.
		e.dialer = &net.Dialer{KeepAlive: -1}
	}
	n := e.exchangeBudget()
	if opts.Dialer != nil {
		// Every connect dials through the scripted dialer, within the whole budget.
		n = opts.Sockets
	}
	e.sockets = semaphore.NewWeighted(int64(n))
	e.budget.Store(int64(n))
	if opts.Rate > 0 {
		// A burst of 20 ms worth of packets (at least one) keeps the average at the cap without a timer per packet.
		e.limiter = rate.NewLimiter(rate.Limit(opts.Rate), max(1, int(opts.Rate/50)))
	}
	return e
}

// Timeout is the bound of one connect or one exchange.
func (e *Env) Timeout() time.Duration { return e.opts.Timeout }

// Retries is how many more attempts a silent connect gets.
func (e *Env) Retries() int { return e.opts.Retries }

// UDPTimeout is the bound of one UDP try.
func (e *Env) UDPTimeout() time.Duration { return e.opts.UDPTimeout }

// UDPTries is how many datagrams a silent UDP query gets in all.
func (e *Env) UDPTries() int { return e.opts.UDPRetries + 1 }

// Pace waits for the rate limit, if one is set, before a connection attempt or a datagram.
func (e *Env) Pace(ctx context.Context) error {
	if e.limiter == nil {
		return nil
	}
	return e.limiter.Wait(ctx)
}

// DialTCP connects to addr:port within the scan timeout, paced by the rate limit, and returns how long the last
// connect took (the round trip a connect probe reports; the rate limit's and pushback's waits are not in it). A
// connect the kernel refuses for want of local resources waits and tries again, up to maxLocalRetries times, rather
// than failing the step.
func (e *Env) DialTCP(ctx context.Context, addr netip.Addr, port uint16) (net.Conn, time.Duration, error) {
	return e.dialTCP(ctx, addr, port, e.opts.Timeout)
}

func (e *Env) dialTCP(ctx context.Context, addr netip.Addr, port uint16, timeout time.Duration) (net.Conn, time.Duration, error) {
	target := netip.AddrPortFrom(addr, port).String()
	for tries := 1; ; tries++ {
		if err := e.Pace(ctx); err != nil {
			return nil, 0, err
		}
		start := time.Now()
		dctx, cancel := context.WithTimeout(ctx, timeout)
		conn, err := e.dialer.DialContext(dctx, "tcp", target)
		rtt := time.Since(start)
		cancel()
		if err == nil {
			return watchContext(ctx, conn), rtt, nil
		}
		class := status.Classify(err)
		if h := hostOf(ctx); h != nil && class == status.Timeout && ctx.Err() == nil {
			// A Run step dials only a port that accepted a connection a moment before: silence now is a SYN or
			// its answer lost on the way.
			h.markLossy()
			e.Lost(addr)
		}
		if class != status.Local || tries > maxLocalRetries || !e.PushedBack(ctx, tries) {
			return conn, rtt, err
		}
	}
}

// ctxConn is a dialled connection that ends its I/O when the step's context ends (a scrape timeout, a second
// Ctrl-C): the context's end moves its deadline into the past, and a deadline a step sets later stays there, so an
// exchange waiting on a silent server returns at once with a timeout instead of running out its own.
type ctxConn struct {
	net.Conn
	ctx  context.Context
	host *Host
	mu   sync.Mutex
	stop func() bool
}

// expired is the deadline of a connection whose context ended.
var expired = time.Unix(1, 0)

func watchContext(ctx context.Context, conn net.Conn) net.Conn {
	h := hostOf(ctx)
	if ctx.Done() == nil && h == nil {
		return conn
	}
	c := &ctxConn{Conn: conn, ctx: ctx, host: h, stop: func() bool { return false }}
	if ctx.Done() != nil {
		c.stop = context.AfterFunc(ctx, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.Conn.SetDeadline(expired)
		})
	}
	return c
}

// hostKey carries the host a Run step probes in its context, so that the connections it dials can tell the host
// that its path loses packets.
type hostKey struct{}

func withHost(ctx context.Context, h *Host) context.Context {
	return context.WithValue(ctx, hostKey{}, h)
}

func hostOf(ctx context.Context) *Host {
	h, _ := ctx.Value(hostKey{}).(*Host)
	return h
}

func (c *ctxConn) deadline(t time.Time) time.Time {
	if c.ctx.Err() != nil {
		return expired
	}
	return t
}

func (c *ctxConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetDeadline(c.deadline(t))
}

func (c *ctxConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetReadDeadline(c.deadline(t))
}

func (c *ctxConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetWriteDeadline(c.deadline(t))
}

// Close closes the connection. When the kernel had to retransmit on it, the host's path loses packets: its later
// exchanges get more retries and a longer budget (ExchangeRetries, ExchangeBudget).
func (c *ctxConn) Close() error {
	c.stop()
	if c.host != nil && retransmitted(c.Conn) {
		c.host.markLossy()
	}
	return c.Conn.Close()
}

// ConnectFailure words a failed connect: the errno, or the timeout that silence ran into.
func (e *Env) ConnectFailure(err error) string {
	if status.Classify(err) == status.Timeout {
		return fmt.Sprintf("connect failed: no answer in %s", e.opts.Timeout)
	}
	return "connect failed: " + ErrnoText(err)
}

// acquire takes one socket from the budget.
func (e *Env) acquire(ctx context.Context) error { return e.sockets.Acquire(ctx, 1) }

// release returns one socket to the budget, unless the budget owes sockets after pushback: then the socket is kept
// back for the rest of the run, which is how the budget shrinks without waiting for sockets in use to come back.
func (e *Env) release() {
	for {
		d := e.debt.Load()
		if d <= 0 {
			e.sockets.Release(1)
			return
		}
		if e.debt.CompareAndSwap(d, d-1) {
			return
		}
	}
}

// PushedBack records that the kernel refused a socket for want of resources (EMFILE, ENFILE, ENOBUFS,
// EADDRNOTAVAIL, ENOMEM) on the caller's tries-th local failure, shrinks the budget by an eighth (at most once per
// shrinkInterval, never below minBudget), and waits before the caller tries again. It returns false when ctx ended.
// The probe that met the error is not charged an attempt: the host did nothing.
func (e *Env) PushedBack(ctx context.Context, tries int) bool {
	e.pushback.Add(1)
	now := time.Now().UnixNano()
	last := e.lastShrink.Load()
	if now-last >= int64(shrinkInterval) && e.lastShrink.CompareAndSwap(last, now) {
		for {
			b := e.budget.Load()
			cut := b / 8
			if b-cut < minBudget {
				cut = b - minBudget
			}
			if cut <= 0 {
				break
			}
			if e.budget.CompareAndSwap(b, b-cut) {
				e.debt.Add(cut)
				break
			}
		}
	}
	t := time.NewTimer(min(time.Duration(tries)*10*time.Millisecond, 200*time.Millisecond))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// VerifyStats counts the verification of silence: probes that met silence on a host that answered other probes,
// tried again before being reported (Ports for TCP ports, Queries for node status), and how many of them answered
// then (Recovered): each such answer is a probe or an answer lost on the way.
type VerifyStats struct {
	Ports, Queries, Recovered atomic.Int64
}

// Stopping reports whether the scan was asked to stop (a first Ctrl-C): steps then finish what they do without
// starting extra work such as the verification of silence.
func (e *Env) Stopping() bool { return e.stopping.Load() }

// VerifyingPort and VerifyingQuery record that a silent TCP port, or a silent node status query, is tried again to
// verify its silence.
func (e *Env) VerifyingPort()  { e.verify.Ports.Add(1) }
func (e *Env) VerifyingQuery() { e.verify.Queries.Add(1) }

// Recovered records that a verification got an answer, and returns the words its evidence ends with.
func (e *Env) Recovered(attempt int) string {
	e.verify.Recovered.Add(1)
	return fmt.Sprintf(" on attempt %d: the host answered other probes, so its silence was verified, and earlier attempts or their answers were lost", attempt)
}

// VerifiedSilence is the end of the evidence of a probe whose silence held through n verification attempts.
func VerifiedSilence(n int) string {
	if n == 1 {
		return " (the last one after the host answered other probes)"
	}
	return fmt.Sprintf(" (the last %d after the host answered other probes)", n)
}

// close releases what the environment opened.
func (e *Env) close() {
	e.closeMux()
	e.closeConnector()
}

// connectBudget is the connects in flight the connector may hold: the socket budget less what the exchanges (the
// Run steps) may hold.
func (e *Env) connectBudget() int { return max(1, e.opts.Sockets-e.exchangeBudget()) }

// exchangeBudget is the sockets the Run steps (protocol exchanges, each with a worker goroutine) may hold at once: a
// quarter of the budget, at most maxExchanges. Connect probes, which hold no goroutine, get the rest.
func (e *Env) exchangeBudget() int { return max(1, min(e.opts.Sockets/4, maxExchanges)) }

// maxExchanges bounds the Run steps in flight: each holds a goroutine whose stack grows as it speaks SMB.
const maxExchanges = 4096

// ConnectTimeout is the timeout of one connect attempt to h: --timeout, or longer when h's answers (or, before it
// has given any, the scan's) show the network is slower than that.
func (e *Env) ConnectTimeout(h *Host) time.Duration {
	return adaptiveTimeout(h, &e.rtt, e.opts.Timeout)
}

// RetryConnectTimeout is the timeout of a connect probe's retry after silence: the round trip that h's own answers
// (or, before it has given any, the scan's) predict, srtt + 4·rttvar, but at least a third of --timeout and at most
// first, the timeout of the attempt that met silence. The first attempt waited the full timeout, so a port that
// answers slowly has had its chance; the retry is there for a lost SYN or a lost answer, which the next round trip
// shows. Without any estimate the retry waits as long as the first.
func (e *Env) RetryConnectTimeout(h *Host, first time.Duration) time.Duration {
	est, ok := e.estimate(h)
	if !ok {
		return first
	}
	return min(first, max(est, e.opts.Timeout/3))
}

// LateAnswerGrace is how long a connect's first attempt to h keeps its socket open past its timeout first, while the
// retry runs, for a late answer: as long as the retry waits. It is zero where the round trips measured (h's, or
// before it has answered, the scan's) are under a quarter of first: on such a path an answer after the timeout is a
// loss that the kernel's own retransmission made up for (which the connector counts), not a slow answer, and a
// second socket per silent port would cost the scan's socket budget for nothing. Without any measurement yet it is
// the retry's wait: the network is unknown.
func (e *Env) LateAnswerGrace(h *Host, first time.Duration) time.Duration {
	if est, ok := e.estimate(h); ok && 4*est < first {
		return 0
	}
	return e.RetryConnectTimeout(h, first)
}

// estimate is srtt + 4·rttvar of h's round trips, or of the scan's before h has given any; ok is false without a
// sample.
func (e *Env) estimate(h *Host) (time.Duration, bool) {
	if h != nil {
		if est, ok := h.rtt.estimate(); ok {
			return est, true
		}
	}
	return e.rtt.estimate()
}

// UDPTimeoutFor is the wait for one UDP try to h, adapted as ConnectTimeout is, from --udp-timeout.
func (e *Env) UDPTimeoutFor(h *Host) time.Duration {
	return adaptiveTimeout(h, &e.rtt, e.opts.UDPTimeout)
}

// SampleRTT records a round trip to h that the first attempt of a probe measured (a connect's answer, a
// datagram's answer or ICMP error).
func (e *Env) SampleRTT(h *Host, d time.Duration) {
	if h != nil {
		h.rtt.Sample(d)
	}
	e.rtt.Sample(d)
}

// RetrySilence runs one attempt of a step, and again on a fresh connection while the attempt ends in silence (a
// connect that timed out, or a connection whose answer never came), up to ExchangeRetries(h) more times: a lost
// exchange is not a property of the host. It returns the last attempt's result and how many attempts ran. An answer
// of any kind, a refusal included, ends it at once.
func RetrySilence[T any](ctx context.Context, env *Env, h *Host, attempt func() T, silent func(T) bool) (T, int) {
	var r T
	n := 0
	for n <= env.ExchangeRetries(h) {
		n++
		r = attempt()
		if !silent(r) || ctx.Err() != nil {
			break
		}
	}
	return r, n
}

// LossyExchangeRetries is the least number of retries an exchange with a host whose answers came on retries gets,
// and LossyBudgetFactor how much longer its budget is: on a path that loses packets, TCP's own retransmissions
// stretch every exchange, and a lost exchange is the path's doing, not the host's.
const (
	LossyExchangeRetries = 5
	LossyBudgetFactor    = 2
)

// ExchangeRetries is how many more times a protocol exchange with h that met silence is tried: --retries, or at
// least LossyExchangeRetries when one of h's answers came only on a retry.
func (e *Env) ExchangeRetries(h *Host) int {
	if h != nil && h.Lossy() {
		return max(e.opts.Retries, LossyExchangeRetries)
	}
	return e.opts.Retries
}

// ExchangeBudget is the time an exchange of n round trips with h may take: n scan timeouts, LossyBudgetFactor times
// that when h's path loses packets.
func (e *Env) ExchangeBudget(h *Host, n int) time.Duration {
	d := time.Duration(n) * e.opts.Timeout
	if h != nil && h.Lossy() {
		d *= LossyBudgetFactor
	}
	return d
}

// SilenceNote words what RetrySilence did for the evidence: nothing after one attempt; "answered on attempt 2 of 2
// (the first met silence)"; or, when every attempt met silence, that they were made on fresh connections, and that
// the port had just accepted a connection when it had, so that the step does not seem to contradict it.
func SilenceNote(attempts int, stillSilent bool, portOpen bool) string {
	switch {
	case attempts <= 1:
		return ""
	case !stillSilent:
		return fmt.Sprintf(" (answered on attempt %d of %d; the earlier met silence)", attempts, attempts)
	case portOpen:
		return fmt.Sprintf(" (silence on all %d attempts, each on a fresh connection, though the port accepted a connection a moment before: the answers were lost or the server does not answer)", attempts)
	}
	return fmt.Sprintf(" (silence on all %d attempts, each on a fresh connection)", attempts)
}
