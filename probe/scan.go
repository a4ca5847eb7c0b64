package probe

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
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
}

// Validate checks the options and names the first bad one.
func (o Options) Validate() error {
	switch {
	case len(o.Ports) == 0:
		return errors.New("no ports to probe")
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
	}
	for _, p := range o.Ports {
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
	stop    chan struct{}
	once    sync.Once

	// pushback counts the times the kernel refused a socket for want of resources.
	pushback atomic.Int64
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
	return &Scanner{
		opts:    opts,
		ports:   slices.Compact(ports),
		sockets: semaphore.NewWeighted(int64(opts.Concurrency)),
		// No keep-alives: a connect probe closes at once.
		dialer: &net.Dialer{KeepAlive: -1},
		stop:   make(chan struct{}),
	}, nil
}

// Stop makes Run start no new hosts; the hosts in flight finish within their timeouts and are emitted.
func (s *Scanner) Stop() { s.once.Do(func() { close(s.stop) }) }

// Stats counts what a run did.
type Stats struct {
	Hosts    int64 // hosts emitted
	Internal int64 // hosts whose probes failed inside ofmprobe
	Stopped  bool  // Stop was called before every target was started
	// Pushback counts the times the kernel refused a socket for want of resources and a probe waited to retry.
	Pushback int64
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

	// Hosts in flight: enough to keep the socket budget busy when each host's ports run in parallel.
	hostLimit := max(1, (s.opts.Concurrency+min(s.opts.PerHost, len(s.ports))-1)/min(s.opts.PerHost, len(s.ports)))
	var g errgroup.Group
	g.SetLimit(hostLimit)
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
	close(results)
	<-done
	stats.Pushback = s.pushback.Load()
	return stats
}

// probeHost runs every step for one host. A panic in any step becomes an internal status on the host; the facts found
// before it are kept and the scan goes on.
func (s *Scanner) probeHost(ctx context.Context, t Target) (h *Host) {
	h = &Host{Target: t, Started: time.Now(), ofmPort: s.opts.OFMPort}
	defer func() {
		h.Duration = time.Since(h.Started)
		if r := recover(); r != nil {
			h.Status, h.Error, h.Stack = HostInternal, fmt.Sprintf("panic: %v", r), string(debug.Stack())
		}
	}()
	if s.beforeHost != nil {
		s.beforeHost(t)
	}
	h.Ports = make([]PortResult, len(s.ports))
	var wg sync.WaitGroup
	perHost := make(chan struct{}, s.opts.PerHost)
	var panicMu sync.Mutex
	var panicked any
	var panicStack string
	for i, port := range s.ports {
		perHost <- struct{}{}
		wg.Go(func() {
			defer func() {
				<-perHost
				if r := recover(); r != nil {
					panicMu.Lock()
					panicked, panicStack = r, string(debug.Stack())
					panicMu.Unlock()
					h.Ports[i] = PortResult{Port: port, Protocol: "tcp", State: StateError, Evidence: fmt.Sprintf("tcp %d: internal error: %v", port, r)}
				}
			}()
			h.Ports[i] = s.tcpConnect(ctx, t.Addr, port)
		})
	}
	wg.Wait()
	switch {
	case panicked != nil:
		h.Status, h.Error, h.Stack = HostInternal, fmt.Sprintf("panic: %v", panicked), panicStack
	case h.Unreachable():
		h.Status = HostUnreachable
	default:
		h.Status = HostUp
	}
	return h
}
