package connect

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/engine/datagram"
	"github.com/ofmprobe/ofmprobe/probe/internal/timeheap"
)

// DefaultTimeout is the wait for a connect when an Attempt gives none.
const DefaultTimeout = 1500 * time.Millisecond

// DefaultMaxInFlight is the bound on sockets connecting at once when Config gives none.
const DefaultMaxInFlight = 4096

// ErrClosed is the error of an attempt that the connector's Close (or a Connect after Close) ended.
var ErrClosed = errors.New("connect: connector closed")

// errInvalidDestination is the error of an attempt whose destination is not an address and a non-zero port.
var errInvalidDestination = errors.New("connect: invalid destination")

// errTimedOut is the error of every TimedOut attempt; it is shared, as an error value never changes.
var errTimedOut = os.NewSyscallError("connect", syscall.ETIMEDOUT)

// Outcome says how an attempt ended.
type Outcome uint8

// The outcomes of an attempt.
const (
	// Connected: the three-way handshake completed (SO_ERROR 0); the socket was then reset, not closed gracefully.
	Connected Outcome = iota + 1
	// Refused: the destination answered the SYN with a RST (ECONNREFUSED), or an ICMP port unreachable came back.
	Refused
	// Unreachable: an ICMP error or the routing table ended the connect (EHOSTUNREACH, ENETUNREACH, EHOSTDOWN,
	// ENONET, ENETDOWN). Result.ICMP, when set, tells a host unreachable from an administratively prohibited.
	Unreachable
	// TimedOut: nothing decisive came before the attempt's timeout. Silence is not proof of filtering.
	TimedOut
	// LocalError: this machine pushed back (EMFILE, ENFILE, ENOBUFS, EADDRNOTAVAIL, ENOMEM, EAGAIN) on every
	// retry, or Pace failed. It says nothing about the destination and is never counted as started.
	LocalError
	// Denied: connect failed with EACCES or EPERM, which is this machine's firewall; no SYN left.
	Denied
	// Failed: any other errno, or an invalid destination.
	Failed
	// Canceled: the connector was closed before the attempt ended.
	Canceled
)

var outcomeNames = [...]string{
	"unknown", "connected", "refused", "unreachable", "timed out", "local error", "denied", "failed", "canceled",
}

// String returns the outcome's name in lower case.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// ICMPInfo is what the socket's error queue (IP_RECVERR, IPV6_RECVERR) said about an ICMP or ICMPv6 error that ended
// a connect: origin, type, code, errno and the offender, the host that sent it. Its Filtered method tells an
// administratively prohibited from a host or network unreachable.
type ICMPInfo = datagram.ICMP

// Attempt is one TCP connect.
type Attempt struct {
	// Dst is the destination; an IPv4-mapped IPv6 address is connected to over IPv4.
	Dst netip.AddrPort
	// Timeout is the wait from the connect call; zero means DefaultTimeout.
	Timeout time.Duration
	// TTL, when set, is the IP time to live (IPv6 hop limit) of the SYN: a router where it runs out answers with ICMP
	// time exceeded, which ends the attempt as Unreachable with that ICMP and the router as offender.
	TTL int
	// Started, when set, is called once the connect call was made and its socket waits (not for a connect that
	// ended at once, nor for one that waited in the queue and was canceled): a timer of the caller's own for the
	// attempt starts there, as the attempt's Timeout does, not while it waited for a free slot. It must not block.
	Started func()
	// Done receives the result, exactly once, on one of the connector's goroutines (from Connect itself when the
	// connector is already closed, from Close for Canceled). It must not block and must not call Close; it may call
	// Connect.
	Done func(Result)
}

// Result is how an attempt ended.
type Result struct {
	Outcome Outcome
	// RTT is the time from the connect call to the event that decided (the timeout for TimedOut); zero when none.
	RTT time.Duration
	// Err is the errno, a syscall.Errno wrapped with os.NewSyscallError, when the outcome is not Connected; ErrClosed
	// for Canceled.
	Err error
	// ICMP is the ICMP error that the socket's error queue held when the connect failed; zero Origin when none.
	ICMP ICMPInfo
	// Retransmitted says a connection was answered to a SYN the kernel sent again (its round-trip sample is much
	// shorter than the wait): the path lost the first SYN or its answer. A late answer to the first SYN is not one.
	// Linux only.
	Retransmitted bool
}

// Config sets up a Connector.
type Config struct {
	// Pace, when set, is called before every connect: the scan's rate limiter. Its context is canceled by Close. An
	// error other than that cancellation ends the attempt with LocalError. Pushback retries are not paced again.
	Pace func(ctx context.Context) error
	// MaxInFlight bounds the sockets open at once; further attempts wait in the queue. Zero means
	// DefaultMaxInFlight. The congestion window (see window) keeps fewer in flight after losses, down to
	// MinInFlight (zero: DefaultMinInFlight, or a sixteenth of MaxInFlight when that is less).
	MaxInFlight, MinInFlight int

	// socket, when set, replaces the opening of a socket for fault injection: it may return an errno or call open.
	socket func(family int, open func() (int, error)) (int, error)
	// connect, when set, replaces the connect call for fault injection: it may return an errno or call connect.
	connect func(dst netip.AddrPort, connect func() error) error
	// closing, when set, is called with every socket the connector is about to close and the outcome it gave.
	closing func(fd int, o Outcome)
	// pushbackRetries and pushbackDelay bound the retries of a local pushback; zero means the defaults.
	pushbackRetries int
	pushbackDelay   time.Duration
}

// Stats counts what a Connector did since Open.
type Stats struct {
	// Started is the number of connect calls that went to the network: EINPROGRESS, or an immediate answer. Pushback
	// retries, LocalError and Denied are not started.
	Started uint64
	// Connected, Refused, Unreachable, TimedOut, Denied, Failed, LocalErrors and Canceled count the attempts that
	// ended with each outcome.
	Connected, Refused, Unreachable, TimedOut, Denied, Failed, LocalErrors, Canceled uint64
	// Pushbacks is the number of socket or connect calls retried after EMFILE, ENFILE, ENOBUFS, EADDRNOTAVAIL,
	// ENOMEM or EAGAIN.
	Pushbacks uint64
	// Resent is the number of second SYNs the SYN prober sent, at synRTO, for attempts not answered by then (the
	// connector's kernel does the same for connects, uncounted).
	Resent uint64
	// InFlight is the number of sockets open now; PeakInFlight is the most there ever were at once.
	InFlight, PeakInFlight int
	// Queued is the number of attempts waiting for the sender now.
	Queued int
	// Window is the congestion window now (connects allowed in flight), LowestWindow the smallest it was cut to,
	// and Backoffs how often a loss cut it. Losses counts the loss signals: connections answered to a SYN the
	// kernel sent again, and the losses the scan reported (Lost).
	Window, LowestWindow, Backoffs int
	Losses                         uint64
	// MaxInFlight is the window's ceiling: Config.MaxInFlight.
	MaxInFlight int
}

// Connector keeps every TCP connect of a scan in flight as a non-blocking socket in one epoll set.
type Connector struct {
	cfg    Config
	epoch  time.Time
	ctx    context.Context
	cancel context.CancelFunc
	quit   chan struct{}

	sendWake chan struct{} // new work queued, or a slot freed
	sendBuf  []byte        // the sender's buffer for reading an error queue
	wg       sync.WaitGroup
	poll     poller
	sa4      sockaddr4 // the sender's, reused
	sa6      sockaddr6

	mu       sync.Mutex
	closed   bool
	queue    []*attempt // FIFO from head
	head     int
	conns    []*attempt // in flight, by fd; an entry is valid only for its generation
	timers   timeheap.Heap[*attempt]
	gen      uint32
	inFlight int
	peak     int
	win      window

	counters
}

// attempt is an Attempt and its state: about 80 bytes for each attempt queued or in flight.
type attempt struct {
	dst     netip.AddrPort
	done    func(Result)
	started func()
	timeout int64 // nanoseconds
	ttl     int
	start   int64 // nanoseconds since Connector.epoch of the connect call
	fd      int32
	gen     uint32 // the generation of fd in Connector.conns
	// Timed holds when the attempt times out (nanoseconds since Connector.epoch) and its place in Connector.timers.
	timeheap.Timed
}

// finished is an attempt that ended and the result its Done is to receive, once the connector is unlocked.
type finished struct {
	p *attempt
	r Result
}

// Open creates the epoll set and starts the sender and the poller.
func Open(cfg Config) (*Connector, error) {
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MinInFlight <= 0 {
		cfg.MinInFlight = min(DefaultMinInFlight, max(1, cfg.MaxInFlight/windowSteps))
	}
	if cfg.pushbackRetries <= 0 {
		cfg.pushbackRetries = 10
	}
	if cfg.pushbackDelay <= 0 {
		cfg.pushbackDelay = time.Millisecond
	}
	p, err := openPoller()
	if err != nil {
		return nil, fmt.Errorf("connect: open poller: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Connector{
		cfg:      cfg,
		epoch:    time.Now(),
		ctx:      ctx,
		cancel:   cancel,
		quit:     make(chan struct{}),
		sendWake: make(chan struct{}, 1),
		sendBuf:  make([]byte, errQueueBuffer),
		poll:     p,
		win:      newWindow(cfg.MaxInFlight, cfg.MinInFlight),
	}
	c.wg.Add(2)
	go c.runSender()
	go c.runPoller()
	return c, nil
}

// Connect queues a and returns at once; a.Done receives the result later. After Close, a.Done receives Canceled
// before Connect returns.
func (c *Connector) Connect(a Attempt) {
	if a.Done == nil {
		a.Done = func(Result) {}
	}
	if a.Timeout <= 0 {
		a.Timeout = DefaultTimeout
	}
	p := &attempt{
		dst:     netip.AddrPortFrom(a.Dst.Addr().Unmap(), a.Dst.Port()),
		done:    a.Done,
		started: a.Started,
		timeout: int64(a.Timeout),
		ttl:     a.TTL,
		fd:      -1,
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.ended[Canceled].Add(1)
		a.Done(Result{Outcome: Canceled, Err: ErrClosed})
		return
	}
	c.queue = append(c.queue, p)
	c.mu.Unlock()
	wake(c.sendWake)
}

// Stats returns the counters as of now.
func (c *Connector) Stats() Stats {
	s := c.counters.stats(c.cfg.MaxInFlight)
	c.mu.Lock()
	s.InFlight, s.PeakInFlight, s.Queued = c.inFlight, c.peak, len(c.queue)-c.head
	s.Window, s.LowestWindow, s.Backoffs = c.win.cwnd, c.win.lowest, c.win.backoffs
	c.mu.Unlock()
	return s
}

// Queued is the number of attempts waiting for the sender now: what Stats says as Queued, without the counters.
func (c *Connector) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue) - c.head
}

// Close ends the connector's goroutines, closes every socket still connecting and the epoll set, and gives Canceled
// to every attempt still queued or in flight. It waits for a Done running on a connector goroutine to return.
func (c *Connector) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	close(c.quit)
	c.poll.wake()
	c.wg.Wait()

	// Both goroutines have ended: nothing else touches the table, the queue or the sockets.
	canceled := append([]*attempt(nil), c.queue[c.head:]...)
	for fd, p := range c.conns {
		if p != nil {
			c.closeSocket(fd, Canceled)
			canceled = append(canceled, p)
		}
	}
	c.queue, c.head, c.conns, c.timers = nil, 0, nil, nil
	c.mu.Lock()
	c.inFlight = 0
	c.mu.Unlock()
	err := c.poll.close()
	for _, p := range canceled {
		c.ended[Canceled].Add(1)
		p.done(Result{Outcome: Canceled, Err: ErrClosed})
	}
	if err != nil {
		return fmt.Errorf("connect: close: %w", err)
	}
	return nil
}

// now is the monotonic time since the connector opened, in nanoseconds.
func (c *Connector) now() int64 { return int64(time.Since(c.epoch)) }

// wake signals a goroutine that waits on ch without blocking.
func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// runSender starts the queued attempts, one at a time, paced by Config.Pace, while fewer than MaxInFlight sockets
// are open.
func (c *Connector) runSender() {
	defer c.wg.Done()
	backoff := time.NewTimer(time.Hour)
	backoff.Stop()
	for {
		p := c.next()
		if p == nil {
			return
		}
		c.start(p, backoff)
	}
}

// next waits for a queued attempt and a free slot, takes both and returns the attempt; nil when the connector
// closes.
func (c *Connector) next() *attempt {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil
		}
		if c.head < len(c.queue) && c.inFlight < c.win.cwnd {
			p := c.queue[c.head]
			c.queue[c.head] = nil
			c.head++
			if c.head == len(c.queue) {
				c.queue, c.head = c.queue[:0], 0
			} else if c.head >= 1024 && 2*c.head >= len(c.queue) {
				n := copy(c.queue, c.queue[c.head:])
				clear(c.queue[n:])
				c.queue, c.head = c.queue[:n], 0
			}
			c.inFlight++
			c.peak = max(c.peak, c.inFlight)
			c.mu.Unlock()
			return p
		}
		c.mu.Unlock()
		select {
		case <-c.sendWake:
		case <-c.quit:
			return nil
		}
	}
}

// giveBack returns p, which the sender took but did not start because the connector closed, to the queue, where
// Close finds it; and frees its slot.
func (c *Connector) giveBack(p *attempt) {
	c.mu.Lock()
	c.queue = append(c.queue, p)
	c.inFlight--
	c.mu.Unlock()
}

// release frees n slots and wakes the sender.
func (c *Connector) release(n int) {
	if n == 0 {
		return
	}
	c.mu.Lock()
	c.inFlight -= n
	c.mu.Unlock()
	wake(c.sendWake)
}

// start paces p, opens its socket and connects, retrying local pushback with a growing backoff; a connect in
// progress is handed to the poller, an immediate result ends p.
func (c *Connector) start(p *attempt, backoff *time.Timer) {
	if !validDestination(p.dst) {
		c.release(1)
		c.end(p, Result{Outcome: Failed, Err: errInvalidDestination})
		return
	}
	if c.cfg.Pace != nil {
		if err := c.cfg.Pace(c.ctx); err != nil {
			if c.ctx.Err() != nil {
				c.giveBack(p)
				return
			}
			c.release(1)
			c.end(p, Result{Outcome: LocalError, Err: fmt.Errorf("connect: pace %s: %w", p.dst, err)})
			return
		}
	}
	delay := c.cfg.pushbackDelay
	var (
		fd  int
		err error
	)
	for retry := 0; ; retry++ {
		fd, err = c.dial(p)
		if !isPushback(err) || retry >= c.cfg.pushbackRetries {
			break
		}
		if fd >= 0 {
			c.closeSocket(fd, LocalError)
		}
		c.pushbacks.Add(1)
		if !c.sleep(backoff, delay) {
			c.giveBack(p)
			return
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
	if err == syscall.EINPROGRESS {
		if p.started != nil {
			p.started()
		}
		c.watch(p, fd)
		return
	}
	r := Result{Outcome: Connected}
	if err != nil {
		r = Result{Outcome: classify(err), Err: err}
	}
	if r.Outcome != LocalError && r.Outcome != Denied && fd >= 0 {
		c.started.Add(1)
		r.RTT = time.Duration(c.now() - p.start)
	}
	if fd >= 0 {
		if r.Outcome != Connected {
			r.ICMP = readICMP(fd, c.sendBuf)
		}
		c.closeSocket(fd, r.Outcome)
	}
	c.release(1)
	c.end(p, r)
}

// sleep waits for d on t and reports false when the connector closes first.
func (c *Connector) sleep(t *time.Timer, d time.Duration) bool {
	t.Reset(d)
	select {
	case <-t.C:
		return true
	case <-c.quit:
		t.Stop()
		return false
	}
}

// end counts r, moves the congestion window on it and gives it to p's Done; the caller holds no lock.
func (c *Connector) end(p *attempt, r Result) {
	c.ended[r.Outcome].Add(1)
	if windowOn(&c.mu, &c.win, &c.losses, r, c.now()) {
		wake(c.sendWake)
	}
	p.done(r)
}

// Lost reports a loss on the way to a host that answers: a connect answered only to a later attempt, a port silent
// at first that answered when it was tried again. It cuts the congestion window (see window), as a connection
// answered only to a SYN the kernel sent again does.
func (c *Connector) Lost() { lostOn(&c.mu, &c.win, &c.losses, c.now()) }

func validDestination(dst netip.AddrPort) bool {
	return dst.Addr().IsValid() && !dst.Addr().IsUnspecified() && dst.Port() != 0
}

// key is the epoll data of a socket in flight: the fd in the low 32 bits, its generation in the high 32. Generation
// 0 is never given to a socket, so wakeKey cannot collide.
func key(fd int32, gen uint32) uint64 { return uint64(uint32(fd)) | uint64(gen)<<32 }

// wakeKey is the epoll data of the connector's eventfd.
const wakeKey = ^uint64(0) >> 32 // fd 0xffffffff, generation 0
