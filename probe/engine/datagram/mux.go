package datagram

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/internal/timeheap"
)

// MaxReply is the most bytes of an answer that Result.Reply keeps; Match sees the whole datagram.
const MaxReply = 8 << 10

// DefaultTimeout is the wait for an answer to one try when a Query gives none.
const DefaultTimeout = time.Second

// DefaultReceiveBuffer is the receive buffer each socket asks for when Config gives none.
const DefaultReceiveBuffer = 4 << 20

// ErrClosed is the error of a query that the mux's Close (or a Submit after Close) ended.
var ErrClosed = errors.New("datagram: mux closed")

// errInvalidDestination is the error of a query whose destination is not an address and a non-zero port.
var errInvalidDestination = errors.New("datagram: invalid destination")

// Outcome says how a query ended.
type Outcome uint8

// The outcomes of a query.
const (
	// Answered: a datagram came from exactly Dst (address and port) and Match accepted it.
	Answered Outcome = iota + 1
	// ICMPError: the error queue attributed an error to Dst (the destination of the datagram that caused it); see
	// Result.ICMP for the type, code and offender.
	ICMPError
	// Silent: every try was sent and timed out without an answer or an error. Silence is not proof of filtering.
	Silent
	// SendFailed: this machine refused to send (EPERM from a local firewall, EACCES for a broadcast address,
	// ENETUNREACH or EHOSTUNREACH from the routing table, an invalid destination), or the error queue reported a
	// local error. Nothing about the destination is known.
	SendFailed
	// LocalError: the kernel pushed back (ENOBUFS, EAGAIN, ENOMEM) on every retry, a socket could not be opened, or
	// Pace failed. It says nothing about the destination and is never counted as a try.
	LocalError
	// Canceled: the mux was closed before the query ended.
	Canceled
)

var outcomeNames = [...]string{"unknown", "answered", "icmp error", "silent", "send failed", "local error", "canceled"}

// String returns the outcome's name in lower case.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Query is one request and response exchange over UDP.
type Query struct {
	// Dst is the destination; an IPv4-mapped IPv6 address is sent as IPv4.
	Dst netip.AddrPort
	// Payload is the datagram to send on every try. The mux does not copy it: it must not change until Done.
	Payload []byte
	// Match, when set, decides whether a datagram from exactly Dst answers the query (a NetBIOS caller checks the
	// transaction ID); a rejected datagram is a stray and the query keeps waiting. When nil, any datagram from Dst is
	// the answer. Match runs on the receiver goroutine with the mux locked: it must be quick, must not keep reply,
	// and must not call the Mux.
	Match func(reply []byte) bool
	// Tries is how many datagrams may be sent; less than 1 means 1.
	Tries int
	// Timeout is the wait after each try; zero means DefaultTimeout.
	Timeout time.Duration
	// TryTimeout, when set, gives the wait after try number try (1 for the first) and replaces Timeout. It is called
	// on the sender goroutine as each try is sent, so it may read an adaptive estimate (srtt + 4·rttvar).
	TryTimeout func(try int) time.Duration
	// Done receives the result, exactly once, on one of the mux's goroutines (from Submit itself when the mux is
	// already closed, from Close for Canceled). It must not block and must not call Close; it may call Submit.
	Done func(Result)
}

// Result is how a query ended.
type Result struct {
	Outcome Outcome
	// Reply is a copy of the answer, at most MaxReply bytes; nil unless Answered.
	Reply []byte
	// RTT is the time from the latest try's send to the answer or the error (an answer to an earlier try is not told
	// apart, as in Karn's algorithm); zero when nothing decided.
	RTT time.Duration
	// Attempts is how many datagrams the kernel accepted for this query. Pushback retries are not attempts.
	Attempts int
	// Err is the errno (a syscall.Errno, possibly wrapped) of ICMPError, SendFailed and LocalError, or ErrClosed.
	Err error
	// ICMP is the queued error, for ICMPError and for a SendFailed that the error queue reported.
	ICMP ICMP
}

// Config sets up a Mux.
type Config struct {
	// ReceiveBuffer is the receive buffer each socket asks for, in bytes; zero means DefaultReceiveBuffer. It is set
	// with SO_RCVBUFFORCE, or SO_RCVBUF (capped by net.core.rmem_max) when that is not permitted.
	ReceiveBuffer int
	// Pace, when set, is called before every datagram is sent, retries included: the scan's rate limiter. Its
	// context is canceled by Close. An error other than that cancellation ends the query with LocalError.
	Pace func(ctx context.Context) error
	// Window is the congestion window's start: how many queries may wait for the answer to their first try at
	// once; zero means DefaultWindow. MinWindow and MaxWindow bound it (zero: DefaultMinWindow, DefaultMaxWindow).
	Window, MinWindow, MaxWindow int

	// send, when set, replaces the send of a datagram for fault injection: it may return an error or call send.
	send func(dst netip.AddrPort, payload []byte, send func() error) error
	// pushbackRetries and pushbackDelay bound the retries of a send the kernel pushed back; zero means the defaults.
	pushbackRetries int
	pushbackDelay   time.Duration
}

// The congestion window's defaults.
const (
	DefaultWindow    = 4096
	DefaultMinWindow = 4096
	DefaultMaxWindow = 65536
)

// Stats counts what a Mux did since Open.
type Stats struct {
	// Window is the congestion window now, LowestWindow the smallest it was cut to, and Backoffs how often a loss
	// cut it.
	Window, LowestWindow int
	Backoffs             uint64
	// Sent is the number of datagrams the kernel accepted, counted as each is handed to it (and taken back if it is
	// refused), so an answer is never counted before its datagram.
	Sent uint64
	// Answers is the number of queries Answered.
	Answers uint64
	// Strays is the number of datagrams that answered no pending query (from an address and port nothing was asked,
	// or rejected by Match) and of queued errors about destinations with nothing pending.
	Strays uint64
	// ICMPErrors is the number of queued errors attributed to a pending destination.
	ICMPErrors uint64
	// SendFailures is the number of queries that ended with SendFailed or LocalError.
	SendFailures uint64
	// Pushbacks is the number of sends retried after ENOBUFS, EAGAIN or ENOMEM.
	Pushbacks uint64
	// KernelDrops is the number of datagrams the kernel dropped for a full receive buffer (SO_RXQ_OVFL), as of the
	// latest datagram received, summed over the sockets.
	KernelDrops uint64
	// ReceiveBuffer is the IPv4 socket's receive buffer as the kernel reports it (SO_RCVBUF), in bytes; Linux
	// reports twice the usable size, the other half being its bookkeeping.
	ReceiveBuffer int
}

// Mux sends the queries of a whole scan over one UDP socket per address family and matches their answers.
type Mux struct {
	cfg    Config
	epoch  time.Time
	ctx    context.Context
	cancel context.CancelFunc
	quit   chan struct{}

	sendWake  chan struct{}
	timerWake chan struct{}
	wg        sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	pending map[netip.AddrPort]*query // by destination without zone; a list through query.next
	timers  timeheap.Heap[*query]
	sendq   []*query // retries, sent as soon as the sender gets to them
	firstq  []*query // first tries, sent while the congestion window has room

	// The congestion window (see doc.go): flight counts the queries whose first try is out and neither answered
	// nor timed out; cwnd and ssthresh grow and shrink as TCP's do; lastCut is when a loss last cut the window.
	flight         int
	cwnd, ssthresh float64
	lowest         float64
	lastCut        int64
	backoffs       uint64
	// srtt is the smoothed round trip of answers to first tries, in nanoseconds (0: none yet).
	srtt int64

	sockMu     sync.Mutex
	sockClosed bool
	v4, v6     *socket
	v6err      error // a permanent failure to open the IPv6 socket

	sent, answers, strays, icmpErrors, sendFailures, pushbacks atomic.Uint64
}

// query is a pending Query and its state, guarded by Mux.mu.
type query struct {
	Query
	next   *query // the next query pending for the same destination
	sentAt int64  // nanoseconds since Mux.epoch of the latest try
	// Timed holds when the latest try times out (nanoseconds since Mux.epoch) and the place in Mux.timers.
	timeheap.Timed
	attempts int32
	done     bool
	// firstOut says the first try is out and holds a place in the congestion window.
	firstOut bool
}

// finished is a query that ended and the result its Done is to receive, once the mux is unlocked.
type finished struct {
	q *query
	r Result
}

// Open opens the IPv4 socket and starts the sender, the timer and the IPv4 receiver; the IPv6 socket is opened on
// the first IPv6 query.
func Open(cfg Config) (*Mux, error) {
	if cfg.ReceiveBuffer <= 0 {
		cfg.ReceiveBuffer = DefaultReceiveBuffer
	}
	if cfg.pushbackRetries <= 0 {
		cfg.pushbackRetries = 10
	}
	if cfg.pushbackDelay <= 0 {
		cfg.pushbackDelay = time.Millisecond
	}
	if cfg.MinWindow <= 0 {
		cfg.MinWindow = DefaultMinWindow
	}
	if cfg.MaxWindow <= 0 {
		cfg.MaxWindow = DefaultMaxWindow
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	cfg.Window = min(max(cfg.Window, cfg.MinWindow), cfg.MaxWindow)
	v4, err := openSocket(false, cfg.ReceiveBuffer)
	if err != nil {
		return nil, fmt.Errorf("datagram: open udp4 socket: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mux{
		cfg:       cfg,
		epoch:     time.Now(),
		ctx:       ctx,
		cancel:    cancel,
		quit:      make(chan struct{}),
		sendWake:  make(chan struct{}, 1),
		timerWake: make(chan struct{}, 1),
		pending:   make(map[netip.AddrPort]*query),
		v4:        v4,
		cwnd:      float64(cfg.Window),
		ssthresh:  float64(cfg.MaxWindow),
		lowest:    float64(cfg.Window),
	}
	m.wg.Add(3)
	go m.runSender()
	go m.runTimers()
	go m.receive(v4)
	return m, nil
}

// Submit queues q and returns at once; q.Done receives the result later. After Close, q.Done receives Canceled
// before Submit returns.
func (m *Mux) Submit(q Query) {
	if q.Done == nil {
		q.Done = func(Result) {}
	}
	if q.Tries < 1 {
		q.Tries = 1
	}
	if q.Timeout <= 0 {
		q.Timeout = DefaultTimeout
	}
	q.Dst = netip.AddrPortFrom(q.Dst.Addr().Unmap(), q.Dst.Port())
	p := &query{Query: q}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		q.Done(Result{Outcome: Canceled, Err: ErrClosed})
		return
	}
	k := key(q.Dst) // an invalid destination too: Close finds it here if the sender has not failed it yet
	if head := m.pending[k]; head == nil {
		m.pending[k] = p
	} else {
		for head.next != nil {
			head = head.next
		}
		head.next = p
	}
	m.firstq = append(m.firstq, p)
	m.mu.Unlock()
	wake(m.sendWake)
}

// Stats returns the counters as of now.
func (m *Mux) Stats() Stats {
	s := Stats{
		Sent:          m.sent.Load(),
		Answers:       m.answers.Load(),
		Strays:        m.strays.Load(),
		ICMPErrors:    m.icmpErrors.Load(),
		SendFailures:  m.sendFailures.Load(),
		Pushbacks:     m.pushbacks.Load(),
		KernelDrops:   m.v4.drops.Load(),
		ReceiveBuffer: m.v4.rcvbuf,
	}
	m.mu.Lock()
	s.Window, s.LowestWindow, s.Backoffs = int(m.cwnd), int(m.lowest), m.backoffs
	m.mu.Unlock()
	m.sockMu.Lock()
	if m.v6 != nil {
		s.KernelDrops += m.v6.drops.Load()
	}
	m.sockMu.Unlock()
	return s
}

// Close ends the mux's goroutines, closes its sockets and gives Canceled to every query still pending. It waits for
// a Done running on a mux goroutine to return.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	close(m.quit)

	m.sockMu.Lock()
	m.sockClosed = true
	err := m.v4.close()
	if m.v6 != nil {
		err = errors.Join(err, m.v6.close())
	}
	m.sockMu.Unlock()
	m.wg.Wait()

	var canceled []*query
	m.mu.Lock()
	for _, head := range m.pending {
		for q := head; q != nil; q = q.next {
			canceled = append(canceled, q)
		}
	}
	results := make([]Result, len(canceled))
	for i, q := range canceled {
		q.done = true
		results[i] = Result{Outcome: Canceled, Attempts: int(q.attempts), Err: ErrClosed}
	}
	m.pending, m.sendq, m.firstq, m.timers = nil, nil, nil, nil
	m.mu.Unlock()
	for i, q := range canceled {
		q.Done(results[i])
	}
	if err != nil {
		return fmt.Errorf("datagram: close: %w", err)
	}
	return nil
}

// now is the monotonic time since the mux opened, in nanoseconds.
func (m *Mux) now() int64 { return int64(time.Since(m.epoch)) }

// key is the index of a destination in Mux.pending: the address without its zone, and the port.
func key(dst netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(dst.Addr().WithZone(""), dst.Port())
}

func validDestination(dst netip.AddrPort) bool {
	return dst.Addr().IsValid() && !dst.Addr().IsUnspecified() && dst.Port() != 0
}

// wake signals a goroutine that waits on c without blocking.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// finishLocked ends q: it leaves the pending index and the timer heap. It reports false when q had already ended.
func (m *Mux) finishLocked(q *query) bool {
	if q.done {
		return false
	}
	q.done = true
	m.releaseLocked(q)
	m.timers.Remove(q)
	k := key(q.Dst)
	head := m.pending[k]
	if head == q {
		if q.next == nil {
			delete(m.pending, k)
		} else {
			m.pending[k] = q.next
		}
	} else {
		for p := head; p != nil; p = p.next {
			if p.next == q {
				p.next = q.next
				break
			}
		}
	}
	q.next = nil
	return true
}

// end finishes q with r unless it already ended, and calls its Done. The mux must not be locked.
func (m *Mux) end(q *query, r Result) {
	m.mu.Lock()
	ok := m.finishLocked(q)
	r.Attempts = int(q.attempts)
	m.mu.Unlock()
	if !ok {
		return
	}
	if r.Outcome == SendFailed || r.Outcome == LocalError {
		m.sendFailures.Add(1)
	}
	q.Done(r)
}

// runSender sends the queued tries, one at a time, paced by Config.Pace: every retry at once, then first tries while
// the congestion window has room.
func (m *Mux) runSender() {
	defer m.wg.Done()
	var batch []*query
	backoff := time.NewTimer(time.Hour)
	backoff.Stop()
	for {
		select {
		case <-m.sendWake:
		case <-m.quit:
			return
		}
		for {
			m.mu.Lock()
			batch, m.sendq = m.sendq, batch[:0]
			if len(batch) == 0 {
				// No retry waits: take the first tries the window has room for.
				room := int(m.cwnd) - m.flight
				n := min(max(room, 0), len(m.firstq))
				for _, q := range m.firstq[:n] {
					if !q.done {
						q.firstOut = true
						m.flight++
					}
					batch = append(batch, q)
				}
				clear(m.firstq[:n])
				m.firstq = m.firstq[n:]
			}
			m.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for i, q := range batch {
				if m.ctx.Err() != nil {
					return
				}
				m.sendTry(q, backoff)
				batch[i] = nil
			}
		}
	}
}

// releaseLocked gives back q's place in the congestion window, if it holds one, and wakes the sender.
func (m *Mux) releaseLocked(q *query) {
	if !q.firstOut {
		return
	}
	q.firstOut = false
	m.flight--
	if len(m.firstq) > 0 {
		wake(m.sendWake)
	}
}

// minCutInterval spaces the window's cuts, at least: the losses of one burst are one signal, not many. The spacing
// is two smoothed round trips when that is longer, as TCP cuts once per window of data.
const minCutInterval = 200 * time.Millisecond

// answeredLocked moves the congestion window on an answer (or an ICMP error) to q that came now. An answer to a first
// try grows it, as TCP's slow start and congestion avoidance do, and is a round-trip sample. An answer that came
// only after a retry means the first try or its answer was lost on the way, and halves the window, unless it came
// so soon after the retry (within half a smoothed round trip) that it must be the first try's answer, late: a slow
// network, which the adaptive timeouts handle, not a loss. Silence moves nothing: a host that never answers is a
// firewall's doing, not congestion.
func (m *Mux) answeredLocked(q *query, now int64) {
	rtt := now - q.sentAt
	if q.attempts <= 1 {
		if m.srtt == 0 {
			m.srtt = rtt
		} else {
			m.srtt += (rtt - m.srtt) / 8
		}
		if m.cwnd < m.ssthresh {
			m.cwnd++
		} else {
			m.cwnd += 1 / m.cwnd
		}
		m.cwnd = min(m.cwnd, float64(m.cfg.MaxWindow))
		return
	}
	if now-m.lastCut < max(int64(minCutInterval), 2*m.srtt) {
		return
	}
	m.lastCut = now
	m.backoffs++
	m.ssthresh = max(m.cwnd/2, float64(m.cfg.MinWindow))
	m.cwnd = m.ssthresh
	m.lowest = min(m.lowest, m.cwnd)
}

// sendTry sends one try of q, retrying kernel pushback, and arms its timeout.
func (m *Mux) sendTry(q *query, backoff *time.Timer) {
	m.mu.Lock()
	done := q.done
	m.mu.Unlock()
	if done {
		return
	}
	if !validDestination(q.Dst) {
		m.end(q, Result{Outcome: SendFailed, Err: fmt.Errorf("%w %s", errInvalidDestination, q.Dst)})
		return
	}
	if m.cfg.Pace != nil {
		if err := m.cfg.Pace(m.ctx); err != nil {
			if m.ctx.Err() == nil {
				m.end(q, Result{Outcome: LocalError, Err: fmt.Errorf("datagram: pace %s: %w", q.Dst, err)})
			}
			return // closed: Close cancels q
		}
	}
	s, err := m.socketFor(q.Dst)
	if err != nil {
		outcome := LocalError
		if errors.Is(err, syscall.EAFNOSUPPORT) || errors.Is(err, syscall.EPROTONOSUPPORT) {
			outcome = SendFailed
		}
		if m.ctx.Err() == nil {
			m.end(q, Result{Outcome: outcome, Err: fmt.Errorf("datagram: open udp6 socket: %w", err)})
		}
		return
	}
	delay := m.cfg.pushbackDelay
	m.sent.Add(1) // before the send, so that it counts before the answer can; undone if the send fails
	for retry := 0; ; retry++ {
		m.mu.Lock()
		if q.done {
			m.mu.Unlock()
			return
		}
		if retry == 0 {
			q.attempts++
		}
		q.sentAt = m.now()
		m.mu.Unlock()

		err = m.sendDatagram(s, q)
		if err == nil || !isPushback(err) || retry >= m.cfg.pushbackRetries {
			break
		}
		m.pushbacks.Add(1)
		if !m.sleep(backoff, delay) {
			break // closed: err stays the pushback, and Close cancels q
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
	if err != nil {
		m.sent.Add(^uint64(0))
		m.mu.Lock()
		q.attempts--
		m.mu.Unlock()
		if m.ctx.Err() != nil {
			return // the socket closed under Close, which cancels q
		}
		outcome := SendFailed
		if isPushback(err) {
			outcome = LocalError
		}
		m.end(q, Result{Outcome: outcome, Err: fmt.Errorf("datagram: send %s: %w", q.Dst, err)})
		return
	}
	timeout := q.Timeout
	m.mu.Lock()
	try := int(q.attempts)
	m.mu.Unlock()
	if q.TryTimeout != nil {
		if t := q.TryTimeout(try); t > 0 {
			timeout = t
		}
	}
	m.mu.Lock()
	if !q.done && !q.Queued() {
		q.At = q.sentAt + int64(timeout)
		m.timers.Push(q)
		if q.Index() == 0 {
			wake(m.timerWake)
		}
	}
	m.mu.Unlock()
}

// sleep waits for d on t and reports false when the mux closes first.
func (m *Mux) sleep(t *time.Timer, d time.Duration) bool {
	t.Reset(d)
	select {
	case <-t.C:
		return true
	case <-m.quit:
		t.Stop()
		return false
	}
}

// sendDatagram sends q's payload on s, through Config.send when a test injects faults.
func (m *Mux) sendDatagram(s *socket, q *query) error {
	if m.cfg.send != nil {
		return m.cfg.send(q.Dst, q.Payload, func() error { return s.send(q.Dst, q.Payload) })
	}
	return s.send(q.Dst, q.Payload)
}

// isPushback reports whether err is the kernel's short-lived refusal of a send: no buffer space or memory, or a
// full send buffer.
func isPushback(err error) bool {
	return errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.ENOMEM)
}

// socketFor returns the socket of dst's family, opening the IPv6 socket on first use.
func (m *Mux) socketFor(dst netip.AddrPort) (*socket, error) {
	if dst.Addr().Is4() {
		return m.v4, nil
	}
	m.sockMu.Lock()
	defer m.sockMu.Unlock()
	if m.v6 != nil {
		return m.v6, nil
	}
	if m.sockClosed {
		return nil, ErrClosed
	}
	if m.v6err != nil {
		return nil, m.v6err
	}
	s, err := openSocket(true, m.cfg.ReceiveBuffer)
	if err != nil {
		if errors.Is(err, syscall.EAFNOSUPPORT) || errors.Is(err, syscall.EPROTONOSUPPORT) {
			m.v6err = err
		}
		return nil, err
	}
	m.v6 = s
	m.wg.Add(1)
	go m.receive(s)
	return s, nil
}

// runTimers ends the tries whose timeout passed: it queues the next try, or ends the query Silent after the last.
func (m *Mux) runTimers() {
	defer m.wg.Done()
	t := time.NewTimer(time.Hour)
	t.Stop()
	var silent []finished
	for {
		resend := false
		m.mu.Lock()
		now := m.now()
		for len(m.timers) > 0 && m.timers[0].At <= now {
			q := m.timers.Pop()
			m.releaseLocked(q) // its first try timed out: lost, or a silent port; either way it no longer holds a place
			if int(q.attempts) < q.Tries {
				m.sendq = append(m.sendq, q)
				resend = true
				continue
			}
			m.finishLocked(q)
			silent = append(silent, finished{q, Result{Outcome: Silent, Attempts: int(q.attempts)}})
		}
		wait := time.Duration(-1)
		if len(m.timers) > 0 {
			wait = time.Duration(m.timers[0].At - now)
		}
		m.mu.Unlock()
		if resend {
			wake(m.sendWake)
		}
		for i, f := range silent {
			f.q.Done(f.r)
			silent[i] = finished{}
		}
		silent = silent[:0]
		if wait >= 0 {
			t.Reset(wait)
		} else {
			t.Stop()
		}
		select {
		case <-t.C:
		case <-m.timerWake:
		case <-m.quit:
			t.Stop()
			return
		}
	}
}

// answer handles a datagram from src: the first pending query for exactly src that Match accepts is Answered, and a
// datagram that answers nothing is a stray. It returns the query answered, if any, and its result.
func (m *Mux) answer(src netip.AddrPort, data []byte) (finished, bool) {
	m.mu.Lock()
	now := m.now() // under the lock: a retry's sentAt is never after it
	for q := m.pending[src]; q != nil; q = q.next {
		if q.attempts == 0 || (q.Match != nil && !q.Match(data)) {
			continue
		}
		m.answeredLocked(q, now)
		m.finishLocked(q)
		r := Result{Outcome: Answered, RTT: time.Duration(now - q.sentAt), Attempts: int(q.attempts)}
		m.mu.Unlock()
		r.Reply = append([]byte(nil), data[:min(len(data), MaxReply)]...)
		m.answers.Add(1)
		return finished{q, r}, true
	}
	m.mu.Unlock()
	m.strays.Add(1)
	return finished{}, false
}

// fail handles a queued error about dst: every query pending for exactly dst that has been sent ends with it (a port
// unreachable is about the port, whichever query caused it). It appends the queries ended to out.
func (m *Mux) fail(dst netip.AddrPort, e ICMP, out []finished) []finished {
	outcome := ICMPError
	if e.Origin == OriginLocal || e.Origin == OriginNone {
		outcome = SendFailed
	}
	n := len(out)
	m.mu.Lock()
	now := m.now()
	for q := m.pending[dst]; q != nil; {
		next := q.next
		if q.attempts > 0 {
			if outcome == ICMPError {
				m.answeredLocked(q, now)
			}
			m.finishLocked(q)
			out = append(out, finished{q, Result{
				Outcome: outcome, RTT: time.Duration(now - q.sentAt), Attempts: int(q.attempts),
				Err: e.Errno, ICMP: e,
			}})
		}
		q = next
	}
	m.mu.Unlock()
	switch {
	case len(out) == n:
		m.strays.Add(1)
	case outcome == ICMPError:
		m.icmpErrors.Add(1)
	default:
		m.sendFailures.Add(uint64(len(out) - n))
	}
	return out
}
