// Package engine runs a plan of probe steps over a stream of targets. It owns all of a scan's concurrency: the hosts
// in flight (bounded by memory), the sockets in flight (bounded by the open-file limit, shrunk on pushback), the
// rate of new packets, one host's steps in flight, the worker goroutines and the panic guard. It hands each step an
// Env and never knows what a step speaks.
//
// A host in flight is a small struct. The scheduler, one goroutine, starts each step of a host once the steps it
// depends on are decided: a Run step goes to a queue that a dispatcher drains as sockets come free, onto long-lived
// workers; a Start step hands its datagrams to the shared mux. A host that waits (for UDP silence, for a socket, for
// a slow server's answer to another step) holds neither a socket nor a goroutine of its own.
package engine

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"iter"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/targets"
)

// Engine runs a plan.
type Engine struct {
	plan *Plan
	opts Options
	env  *Env
	stop chan struct{}
	once sync.Once
	// workers run the Run steps.
	workers workerPool
	// trace, when set (SetTrace), gets a line per step of every host: when it started and ended.
	trace *bufio.Writer
}

// SetTrace makes Run write to w, for developers, one line per step that ran: the host, the step, and when it
// started and ended, in milliseconds since the host started ("198.18.0.5\ttcp 445\t0.1\t1.2"). Call it before Run;
// Run flushes it at the end. Each step's times are those at which the scheduler started it and saw it end.
func (e *Engine) SetTrace(w io.Writer) { e.trace = bufio.NewWriterSize(w, 1<<16) }

// New checks the options and returns an engine for the plan.
func New(plan *Plan, opts Options) (*Engine, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.HostsInFlight == 0 {
		opts.HostsInFlight = DefaultHostsInFlight
	}
	return &Engine{plan: plan, opts: opts, env: NewEnv(opts), stop: make(chan struct{})}, nil
}

// DefaultHostsInFlight is the bound on hosts in flight when none is given: what DefaultMemory allows
// (HostsInFlightFor).
var DefaultHostsInFlight = HostsInFlightFor(DefaultMemory)

// The memory budget of a scan (ofmprobe scan --memory): DefaultMemory is the default, the runtime's soft memory limit
// too. Of it, MemoryReserve is kept for what does not grow with the hosts in flight: the protocol exchanges' worker
// stacks and buffers (up to 72 MiB measured with 4,096 exchanges waiting on a slow /16), the runtime and the report's
// buffers. Each host in flight takes BytesPerHost while it waits (its struct, its results so far and the pending
// datagram queries of its UDP steps; TestBytesPerHostInFlight measures it), and as much again of the collector's
// headroom (GOGC=100): the rest of the budget divided by twice BytesPerHost is the bound on hosts in flight.
// BENCHMARKS.md has the measurements.
const (
	DefaultMemory = 224 << 20
	MemoryReserve = 96 << 20
	BytesPerHost  = 4 << 10
	// MinMemory is the smallest budget that leaves room for hosts: a sixteenth of the reserve for them.
	MinMemory = MemoryReserve + MemoryReserve/16
)

// HostsInFlightFor is the bound on hosts in flight that a memory budget of memory bytes allows: what is left after
// MemoryReserve, at twice BytesPerHost a host, and at least 64.
func HostsInFlightFor(memory int64) int {
	return int(max(64, (memory-MemoryReserve)/(2*BytesPerHost)))
}

// Env returns the environment the engine hands its steps.
func (e *Engine) Env() *Env { return e.env }

// Stop makes Run start no new hosts; the hosts in flight finish within their timeouts and are emitted.
func (e *Engine) Stop() {
	e.once.Do(func() {
		e.env.stopping.Store(true)
		close(e.stop)
	})
}

// SYNUnavailable is why the raw SYN probes that the options ask for cannot be sent (this process may not open raw
// sockets): the scan's TCP probes are then full connects. Nil when they can, or were not asked for (TCPProbeAuto
// asks for them only where they can be sent).
func (e *Engine) SYNUnavailable() error {
	if e.opts.TCPProbe != TCPProbeSYN {
		return nil
	}
	return e.env.synUnavailable()
}

// TCPProbeUsed says how the scan's IPv4 connect probes go out: "syn" (raw SYNs) or "connect" (full connects). It
// opens the connect paths.
func (e *Engine) TCPProbeUsed() string {
	if e.env.synUnavailable(); e.env.conn.syn != nil {
		return "syn"
	}
	return "connect"
}

// Stats counts what a run did.
type Stats struct {
	Hosts    int64 // hosts emitted
	Internal int64 // hosts whose probes failed inside ofmprobe
	Stopped  bool  // Stop was called, or ctx ended, before every target was started
	// Pushback counts the times the kernel refused a socket for want of resources and a probe waited to retry;
	// Budget is the socket budget at the end, lower than the configured one after pushback.
	Pushback int64
	Budget   int
	// HostLimit is the bound on hosts in flight, and PeakHosts the most that were in flight at once.
	HostLimit int
	PeakHosts int
	// MemoryWaits counts the times admission waited because the process was over its soft memory limit.
	MemoryWaits int64
	// Connects counts what the scan's TCP connector did, with its congestion window, and SYN what the raw SYN
	// prober did (Options.TCPProbe), with its own; each is zero when no connect went through it. With SYN probes
	// the connector still carries the hop finder's connects and IPv6.
	Connects, SYN ConnectStats
	// Datagrams counts what the scan's UDP mux did: datagrams sent, answers, strays, ICMP errors, local send
	// failures, pushbacks and the kernel's receive drops. Zero when no UDP step ran.
	Datagrams DatagramStats
	// VerifiedPorts and VerifiedQueries count the silent TCP ports and node status queries of hosts that answered
	// other probes, tried again before their silence was reported; Recovered how many of them answered then.
	VerifiedPorts, VerifiedQueries, Recovered int64
}

// hostRun is a host in flight: its results and which of its steps have run.
type hostRun struct {
	h       *Host
	state   []uint8
	running int
	left    int
	// panicked keeps the first panic of a step, with its stack.
	panicked any
	stack    string
	// started holds when each step started, since the host did: only while tracing (Engine.SetTrace).
	started []time.Duration
}

const (
	pending uint8 = iota
	running
	decided
)

// completion is a step that ended.
type completion struct {
	hr       *hostRun
	step     int
	result   Result
	panicked any
	stack    string
}

// task is a Run step ready to take a socket.
type task struct {
	hr   *hostRun
	step int
}

// Run probes every target and calls emit once per host as each finishes, from a single goroutine, so emit needs no
// locking. Cancelling ctx aborts the steps in flight; Stop only stops new hosts from starting.
func (e *Engine) Run(ctx context.Context, tgts iter.Seq[targets.Target], emit func(*Host)) Stats {
	stats := Stats{HostLimit: e.opts.HostsInFlight}
	out := make(chan *Host, 256)
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		for h := range out {
			stats.Hosts++
			if h.Status == HostInternal {
				stats.Internal++
			}
			emit(h)
		}
	}()

	done := newQueue[completion]()
	ready := newQueue[task]()
	var dispatch sync.WaitGroup
	dispatch.Add(1)
	go func() {
		defer dispatch.Done()
		e.dispatch(ctx, ready, done)
	}()

	next, stopPull := iter.Pull(tgts)
	defer stopPull()
	inFlight, exhausted, stopped := 0, false, false
	gate := newMemoryGate()
	finish := func(hr *hostRun) {
		inFlight--
		e.finishHost(ctx, hr)
		out <- hr.h
	}
	for {
		// Admit hosts while there is room, and while the steps already queued would not keep a new host waiting for
		// sockets anyway: a host admitted too early only costs memory, and Stop finishes every host admitted.
		// Nor while the process is over its memory budget (a host in flight always finishes, so with none left there
		// is nothing to wait for).
		for !exhausted && !stopped && inFlight < e.opts.HostsInFlight && ready.len() < 2*int(e.env.budget.Load()) &&
			e.env.waitingForSockets() < e.env.connectBudget() && (inFlight == 0 || !gate.shut(time.Now())) {
			select {
			case <-e.stop:
				stopped = true
				continue
			case <-ctx.Done():
				stopped = true
				continue
			default:
			}
			t, ok := next()
			if !ok {
				exhausted = true
				break
			}
			hr := e.newHostRun(t)
			inFlight++
			stats.PeakHosts = max(stats.PeakHosts, inFlight)
			e.advance(ctx, hr, ready, done)
			if hr.left == 0 {
				finish(hr)
			}
		}
		if inFlight == 0 && (exhausted || stopped) {
			break
		}
		stopCh := e.stop
		if stopped {
			stopCh = nil
		}
		select {
		case <-done.signal:
		case <-stopCh:
			stopped = true
		case <-ctx.Done():
			stopped = true
			// Steps in flight see the cancelled context and end soon; keep collecting them.
			<-done.signal
		}
		for _, c := range done.drain() {
			hr := c.hr
			hr.state[c.step] = decided
			hr.running--
			hr.left--
			if c.panicked != nil && hr.panicked == nil {
				hr.panicked, hr.stack = c.panicked, c.stack
			}
			if c.result != nil {
				hr.h.store(c.step, c.result) // counted in Peers already, when the step ended
			}
			if e.trace != nil {
				fmt.Fprintf(e.trace, "%s\t%s\t%.1f\t%.1f\n", hr.h.Addr, e.plan.steps[c.step].Name,
					float64(hr.started[c.step])/1e6, float64(time.Since(hr.h.Started))/1e6)
			}
			e.advance(ctx, hr, ready, done)
			if hr.left == 0 {
				finish(hr)
			}
		}
	}
	stats.Stopped = stopped
	stats.MemoryWaits = gate.Closes
	if e.trace != nil {
		e.trace.Flush()
	}
	stats.VerifiedPorts, stats.VerifiedQueries = e.env.verify.Ports.Load(), e.env.verify.Queries.Load()
	stats.Recovered = e.env.verify.Recovered.Load()
	ready.close()
	dispatch.Wait()
	e.workers.stop()
	stats.Datagrams = e.env.datagramStats()
	stats.Connects, stats.SYN = e.env.connectStats()
	e.env.close()
	close(out)
	<-emitted
	stats.Pushback = e.env.pushback.Load()
	stats.Budget = int(e.env.budget.Load())
	return stats
}

func (e *Engine) newHostRun(t targets.Target) *hostRun {
	n := len(e.plan.steps)
	h := &Host{Target: t, Started: time.Now(), plan: e.plan, results: make([]Result, n), skipped: make([]string, n), rootsLeft: e.plan.roots, tcpLeft: e.plan.tcpRoots}
	hr := &hostRun{h: h, state: make([]uint8, n), left: n}
	if e.trace != nil {
		hr.started = make([]time.Duration, n)
	}
	return hr
}

// advance starts every pending step of hr whose dependencies are decided, in plan order, within the per-host cap;
// a step whose When does not hold is decided at once as skipped. The plan's order puts dependencies first, so one
// pass sees the effect of every skip.
func (e *Engine) advance(ctx context.Context, hr *hostRun, ready *queue[task], done *queue[completion]) {
	for i := range e.plan.steps {
		if hr.state[i] != pending || !e.depsDecided(hr, i) {
			continue
		}
		s := &e.plan.steps[i]
		if s.When != nil {
			if ok, why := s.When(hr.h); !ok {
				hr.state[i] = decided
				hr.left--
				hr.h.skip(i, why)
				continue
			}
		}
		if hr.running >= e.opts.PerHost {
			continue
		}
		hr.state[i] = running
		hr.running++
		if hr.started != nil {
			hr.started[i] = time.Since(hr.h.Started)
		}
		if s.Start == nil {
			ready.push(task{hr: hr, step: i})
			continue
		}
		e.start(ctx, hr, i, done)
	}
}

func (e *Engine) depsDecided(hr *hostRun, i int) bool {
	for _, d := range e.plan.deps[i] {
		if hr.state[d] != decided {
			return false
		}
	}
	return true
}

// start begins a Start step under the panic guard; its done may be called from any goroutine, at most once counts.
func (e *Engine) start(ctx context.Context, hr *hostRun, i int, done *queue[completion]) {
	var called atomic.Bool
	finish := func(r Result) {
		if called.CompareAndSwap(false, true) {
			hr.h.decided(i, r)
			done.push(completion{hr: hr, step: i, result: r})
		}
	}
	defer func() {
		if r := recover(); r != nil {
			if called.CompareAndSwap(false, true) {
				c := e.panicked(hr, i, r)
				hr.h.decided(i, c.result)
				done.push(c)
			}
		}
	}()
	e.plan.steps[i].Start(ctx, e.env, hr.h, finish)
}

// dispatch gives each ready Run step a socket of the budget and a worker. When the scan is cancelled a step still
// runs, without a socket, and reports itself cancelled at once.
func (e *Engine) dispatch(ctx context.Context, ready *queue[task], done *queue[completion]) {
	for {
		t, ok := ready.pop()
		if !ok {
			return
		}
		held := e.env.acquire(ctx) == nil
		e.workers.do(func() {
			c := completion{hr: t.hr, step: t.step}
			func() {
				defer func() {
					if r := recover(); r != nil {
						c = e.panicked(t.hr, t.step, r)
					}
				}()
				c.result = e.plan.steps[t.step].Run(withHost(ctx, t.hr.h), e.env, t.hr.h)
			}()
			if held {
				e.env.release()
			}
			t.hr.h.decided(t.step, c.result)
			done.push(c)
		})
	}
}

// panicked is the completion of a step that panicked: its Internal result, and the panic with its stack for the host.
func (e *Engine) panicked(hr *hostRun, i int, r any) completion {
	s := &e.plan.steps[i]
	c := completion{hr: hr, step: i, panicked: fmt.Sprintf("%s: %v", s.Name, r), stack: string(debug.Stack())}
	if s.Internal != nil {
		c.result = s.Internal("internal error in this step")
	}
	return c
}

// finishHost sets a finished host's status and duration.
func (e *Engine) finishHost(ctx context.Context, hr *hostRun) {
	h := hr.h
	h.Duration = time.Since(h.Started)
	h.Aborted = ctx.Err() != nil
	h.mu.Lock()
	h.collectPorts()
	h.mu.Unlock()
	switch {
	case hr.panicked != nil:
		h.Status, h.Error, h.Stack = HostInternal, fmt.Sprintf("panic: %v", hr.panicked), hr.stack
	case h.Unreachable():
		h.Status = HostUnreachable
	case !h.learned():
		h.Status, h.Error = HostError, "no probe learned anything of the host: each failed on this machine or could not run (see the ports' evidence)"
	default:
		h.Status = HostUp
	}
}

// queue is an unbounded FIFO that never blocks its producers: a datagram callback or a worker that finishes must
// not wait for the scheduler. signal has room for one wake-up.
type queue[T any] struct {
	mu     sync.Mutex
	items  []T
	n      atomic.Int64
	closed bool
	signal chan struct{}
}

func newQueue[T any]() *queue[T] { return &queue[T]{signal: make(chan struct{}, 1)} }

func (q *queue[T]) push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.n.Add(1)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *queue[T]) len() int { return int(q.n.Load()) }

// drain takes every item.
func (q *queue[T]) drain() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	q.n.Store(0)
	return items
}

// pop waits for the first item; false once the queue is closed and empty.
func (q *queue[T]) pop() (T, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			v := q.items[0]
			var zero T
			q.items[0] = zero
			q.items = q.items[1:]
			q.n.Add(-1)
			q.mu.Unlock()
			return v, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			var zero T
			return zero, false
		}
		<-q.signal
	}
}

func (q *queue[T]) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}
