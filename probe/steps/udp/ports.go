// Package udp is the "udp ports" step for UDP ports without a safe query (the NetBIOS datagram service on 138, DHCP
// on 67, SMB on UDP 445), and the wording every UDP step shares for how a datagram query ended.
package udp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/engine/datagram"
	"github.com/ofmprobe/ofmprobe/probe/status"
)

// StepName is the step's name.
const StepName = "udp ports"

// Step returns the "udp ports" step for ports. Each port gets an empty datagram, up to the scan's UDP tries, through
// the scan's shared mux: a datagram from the host's port is "open", an ICMP port unreachable "closed", an ICMP
// prohibited "filtered" (a firewall answered), another unreachable "unreachable", and silence after every try
// "open|filtered", because a UDP service need not answer a datagram it does not understand and ICMP errors are
// rate-limited. While it waits the host holds no socket and no goroutine.
func Step(ports []int) engine.Step {
	return engine.Step{
		Name:    StepName,
		Key:     "udp",
		Answers: []string{"udp"},
		Start: func(ctx context.Context, env *engine.Env, h *engine.Host, done func(engine.Result)) {
			Probe(ctx, env, h, ports, func(l engine.PortList) { done(l) })
		},
		Internal: func(why string) engine.Result {
			l := make(engine.PortList, len(ports))
			for i, p := range ports {
				l[i] = engine.PortResult{Port: p, Protocol: "udp", State: status.Error, Evidence: why}
			}
			return l
		},
		Observe: observe,
	}
}

// Probe sends to every port of h through the mux and calls done once with all their results. Each try waits the
// adaptive UDP timeout for h, and an answer (or ICMP error) to a first try is a round-trip sample of h.
func Probe(ctx context.Context, env *engine.Env, h *engine.Host, ports []int, done func(engine.PortList)) {
	addr := h.Addr
	results := make(engine.PortList, len(ports))
	mux, err := env.Datagrams()
	if err != nil {
		for i, p := range ports {
			results[i] = engine.PortResult{Port: p, Protocol: "udp", State: status.Error,
				Evidence: fmt.Sprintf("udp %d: not sent, this machine could not open its UDP socket: %v", p, err)}
		}
		done(results)
		return
	}
	left := newCountdown(len(ports), func() { done(results) })
	for i, p := range ports {
		tries := NewTries(env, h)
		mux.Submit(datagram.Query{
			Dst:        netip.AddrPortFrom(addr, uint16(p)),
			Tries:      env.UDPTries(),
			TryTimeout: tries.Timeout,
			Done: func(r datagram.Result) {
				tries.Sample(r)
				results[i] = portResult(p, r, tries.Last())
				left.done()
			},
		})
	}
}

// Tries gives each try of a query to h the adaptive UDP timeout, remembers the latest for the evidence, and takes a
// first try's answer as a round-trip sample of h (Karn's rule: a later try's answer could be any try's).
type Tries struct {
	env  *engine.Env
	h    *engine.Host
	last atomic.Int64
}

// NewTries returns the tries of one query to h (nil h: the scan's estimate alone).
func NewTries(env *engine.Env, h *engine.Host) *Tries { return &Tries{env: env, h: h} }

// Timeout is a datagram.Query's TryTimeout.
func (t *Tries) Timeout(int) time.Duration {
	d := t.env.UDPTimeoutFor(t.h)
	t.last.Store(int64(d))
	return d
}

// Last is the wait of the latest try.
func (t *Tries) Last() time.Duration { return time.Duration(t.last.Load()) }

// Sample records the round trip of a first try's answer or ICMP error.
func (t *Tries) Sample(r datagram.Result) {
	if r.Attempts == 1 && (r.Outcome == datagram.Answered || r.Outcome == datagram.ICMPError) {
		t.env.SampleRTT(t.h, r.RTT)
	}
}

// portResult words one port's query outcome.
func portResult(port int, r datagram.Result, timeout time.Duration) engine.PortResult {
	pr := engine.PortResult{Port: port, Protocol: "udp", Attempts: r.Attempts, RTT: r.RTT}
	prefix := fmt.Sprintf("udp %d", port)
	if r.Outcome == datagram.Answered {
		pr.State = status.Open
		pr.Evidence = fmt.Sprintf("%s: open, answered in %s", prefix, engine.FormatRTT(r.RTT))
		return pr
	}
	if st, evidence, ok := Final(prefix, r); ok {
		pr.State, pr.Evidence = st, evidence
		pr.Rejected = st == status.Filtered
		if pr.Rejected {
			pr.RejectedBy = r.ICMP.Status().Offender
		}
		return pr
	}
	if r.Outcome == datagram.Silent {
		pr.State = status.OpenFiltered
		pr.Evidence = fmt.Sprintf("%s: open|filtered, no answer and no ICMP error to %d %s of %s (no safe query exists for this port)",
			prefix, r.Attempts, engine.Plural(r.Attempts, "datagram"), timeout.Round(time.Millisecond))
		return pr
	}
	pr.State, pr.Evidence = status.Error, LocalFailure(prefix, r)
	return pr
}

// Final words a query that ended with an ICMP error or a refused send: closed (port unreachable), filtered (a
// firewall answered: administratively, host or network prohibited), or unreachable (with the errno and, when a
// router sent it, who). It returns false for an answer, silence, and failures of this machine.
func Final(prefix string, r datagram.Result) (status.State, string, bool) {
	switch r.Outcome {
	case datagram.ICMPError:
		m := icmpOf(r)
		st, firewall := status.FromICMP(m)
		switch {
		case st == status.Closed:
			return status.Closed, fmt.Sprintf("%s: closed, ICMP port unreachable after %s", prefix, engine.FormatRTT(r.RTT)), true
		case firewall:
			return status.Filtered, fmt.Sprintf("%s: filtered, rejected by a firewall (%s)", prefix, status.ICMPText(m)), true
		}
		return status.Unreachable, fmt.Sprintf("%s: unreachable, %s%s%s", prefix, engine.ErrnoText(r.Err), engine.AfterRTT(r.RTT), offender(m)), true
	case datagram.SendFailed:
		switch {
		case errors.Is(r.Err, syscall.EACCES), status.Classify(r.Err) == status.Unreachable:
			// A broadcast address (never broadcast to), or no route from this machine.
			return status.Unreachable, fmt.Sprintf("%s: unreachable, %s%s", prefix, engine.ErrnoText(r.Err), engine.AfterRTT(r.RTT)), true
		}
	}
	return "", "", false
}

// LocalFailure words a query that this machine could not carry out: its firewall refused the send, the kernel
// pushed back, the scan ended. It is an error of this machine, never silence and never a property of the host.
func LocalFailure(prefix string, r datagram.Result) string {
	switch {
	case r.Outcome == datagram.Canceled:
		return prefix + ": scan cancelled"
	case errors.Is(r.Err, syscall.EPERM):
		return prefix + ": not sent, this machine's own firewall refused the datagram"
	case r.Outcome == datagram.LocalError:
		return fmt.Sprintf("%s: not sent, this machine ran out of resources: %v", prefix, r.Err)
	}
	return fmt.Sprintf("%s: not sent: %v", prefix, r.Err)
}

// icmpOf is the result's queued error in the vocabulary's terms, with the errno of the result when the queue gave
// none.
func icmpOf(r datagram.Result) status.ICMP {
	m := r.ICMP.Status()
	if m.Errno == 0 {
		var errno syscall.Errno
		if errors.As(r.Err, &errno) {
			m.Errno = errno
		}
	}
	return m
}

func offender(m status.ICMP) string {
	if m.Offender == "" || m.Origin == 0 || m.Origin == 1 {
		return ""
	}
	return " (" + status.ICMPText(m) + ")"
}

// countdown calls fn once n calls of done have come, from whichever goroutine makes the last.
type countdown struct {
	left atomic.Int64
	fn   func()
}

func newCountdown(n int, fn func()) *countdown {
	c := &countdown{fn: fn}
	c.left.Store(int64(n))
	if n == 0 {
		fn()
	}
	return c
}

func (c *countdown) done() {
	if c.left.Add(-1) == 0 {
		c.fn()
	}
}

func observe(h *engine.Host, c catalog.Check) catalog.Observation {
	p, ok := h.UDPPort(c.Port)
	switch {
	case !ok:
		return catalog.Observation{Skipped: fmt.Sprintf("udp %d was not probed", c.Port)}
	case p.State == status.Error:
		return catalog.Observation{Skipped: p.Evidence}
	}
	o := catalog.Observation{State: string(p.State), Evidence: p.Evidence}
	if p.Rejected {
		o.Cause = p.CauseOf()
	}
	return o
}
