package tcp

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/engine/connect"
	"github.com/ofmprobe/ofmprobe/probe/status"
)

// HopsStepName is the name of the step that finds where filtered ports are dropped.
const HopsStepName = "tcp hops"

// DefaultMaxHops is how many hops the hop finder tries by default: enough for a site's routers and firewalls
// between a console and its servers, few enough that a port costs at most that many attempts.
const DefaultMaxHops = 4

// Path is where one filtered TCP port's SYN stops: the routers that answered with ICMP time exceeded, hop by hop,
// and what ended the trace.
type Path struct {
	Port int `json:"port"`
	// Hops lists the routers that answered, the first hop first ("" for a hop that stayed silent).
	Hops []string `json:"hops"`
	// DroppedAfter is the number of hops that forwarded the SYN before it met silence, when it did.
	DroppedAfter int `json:"dropped_after,omitempty"`
	// Outcome is how the trace ended: dropped (silence), rejected (ICMP prohibited), reached (the host answered:
	// the earlier silence was lost packets), unreachable, or not found (every hop forwarded it).
	Outcome  string `json:"outcome"`
	Evidence string `json:"evidence"`
}

// Paths is the hop finder's result for a host.
type Paths []Path

// HopsStep traces, on a host that answered at least one TCP port, each filtered port with SYNs of a growing TTL,
// one try per hop and at most maxHops, as tcptraceroute does but per port: the routers answer with ICMP time
// exceeded until the one that drops the SYN. ports are the connect steps' ports.
func HopsStep(ports []int, maxHops int) engine.Step {
	after := make([]string, 0, len(ports))
	for _, p := range ports {
		after = append(after, StepName(p))
	}
	return engine.Step{
		Name:  HopsStepName,
		Key:   "hops",
		After: after,
		When: func(h *engine.Host) (bool, string) {
			if len(silentPorts(h, ports)) == 0 {
				return false, "no TCP port was silent"
			}
			if !answeredTCP(h, ports) {
				return false, "the host answered no TCP port: a trace would say nothing of a port"
			}
			return true, ""
		},
		Start: func(ctx context.Context, env *engine.Env, h *engine.Host, done func(engine.Result)) {
			var out Paths
			var rest []int
			for _, port := range silentPorts(h, ports) {
				if v, ok := h.Take(traceKey(port)); ok {
					out = append(out, v.(Path)) // traced while the port's silence was verified
					continue
				}
				rest = append(rest, port)
			}
			traceAll(ctx, env, h, rest, maxHops, func(p Paths) { done(append(out, p...)) })
		},
		Internal: func(why string) engine.Result { return Paths{{Hops: []string{}, Outcome: "error", Evidence: why}} },
	}
}

// PathsOf returns the hop finder's result for a host.
func PathsOf(h *engine.Host) (Paths, bool) {
	r, ok := h.Result(HopsStepName)
	p, _ := r.(Paths)
	return p, ok
}

// silentPorts are the host's TCP ports that met silence (filtered, no firewall answered). The host is still in
// flight: its ports are read one by one.
func silentPorts(h *engine.Host, ports []int) []int {
	var out []int
	for _, port := range ports {
		if p, ok := h.Port(port); ok && p.State == status.Filtered && !p.Rejected {
			out = append(out, port)
		}
	}
	return out
}

// answeredTCP says whether the host answered a TCP port itself: open, or refused.
func answeredTCP(h *engine.Host, ports []int) bool {
	for _, port := range ports {
		if p, ok := h.Port(port); ok && (p.State == status.Open || p.State == status.Closed) {
			return true
		}
	}
	return false
}

// Tracing while verifying. A port whose silence is verified (its host answered another TCP port) is the kind of
// port the hop finder traces if it stays silent. So its trace starts with the verification round, beside it, rather
// than after the host's connect steps have all ended: its SYNs of a limited TTL and the round's full ones are
// attributed by their own sockets, and neither waits for the other, so a firewalled port of a host that answers
// costs one timeout and the round's pauses in all (the trace waits the host's round trip a hop). The port's result
// waits for the trace when the port ends silent; the trace is left on the host for the hop finder, which then only
// collects it. A port that answers when verified ends at once; its trace, no longer wanted, ends on its own and is
// never read. Each trace is the one the hop finder would have made: the same SYNs, one per hop.

// earlyTrace is a port's trace made beside its verification: then runs a function once the trace has ended.
type earlyTrace struct {
	mu    sync.Mutex
	ended bool
	after func()
}

func (t *earlyTrace) end() {
	t.mu.Lock()
	t.ended = true
	f := t.after
	t.mu.Unlock()
	if f != nil {
		f()
	}
}

func (t *earlyTrace) then(f func()) {
	t.mu.Lock()
	if !t.ended {
		t.after = f
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	f()
}

// traceKey is the host note that holds a port's early trace.
func traceKey(port int) string { return fmt.Sprintf("%s %d", HopsStepName, port) }

// traceEarly starts the port's trace beside its verification, when the hop finder is in the plan.
func (p *probe) traceEarly() {
	if p.maxHops <= 0 || !p.h.Planned(HopsStepName) {
		return
	}
	t := &earlyTrace{}
	p.trace = t
	port := p.r.Port
	trace(p.ctx, p.env, p.h, port, p.maxHops, func(path Path) {
		p.h.Leave(traceKey(port), path)
		t.end()
	})
}

// traceAll traces the ports one after another (a host's trace is a handful of attempts) and calls done with all.
func traceAll(ctx context.Context, env *engine.Env, h *engine.Host, ports []int, maxHops int, done func(Paths)) {
	var (
		mu  sync.Mutex
		out Paths
	)
	var next func(i int)
	next = func(i int) {
		if i == len(ports) {
			done(out)
			return
		}
		trace(ctx, env, h, ports[i], maxHops, func(p Path) {
			mu.Lock()
			out = append(out, p)
			mu.Unlock()
			next(i + 1)
		})
	}
	next(0)
}

// trace sends one SYN per TTL from 1 up, each waiting the host's retry timeout, until something other than ICMP
// time exceeded answers or maxHops is reached.
func trace(ctx context.Context, env *engine.Env, h *engine.Host, port, maxHops int, done func(Path)) {
	p := Path{Port: port, Hops: []string{}}
	timeout := env.RetryConnectTimeout(h, env.ConnectTimeout(h))
	var hop func(ttl int)
	hop = func(ttl int) {
		if ctx.Err() != nil {
			p.Outcome, p.Evidence = "error", fmt.Sprintf("tcp %d: hop trace cancelled", port)
			done(p)
			return
		}
		env.ConnectProbeTTL(ctx, h.Addr, uint16(port), ttl, timeout, func(c engine.ConnectResult) {
			if c.Outcome == connect.Unreachable && timeExceeded(c.ICMP) {
				p.Hops = append(p.Hops, c.ICMP.Status().Offender)
				if ttl == maxHops {
					p.Outcome = "not found"
					p.Evidence = fmt.Sprintf("tcp %d: forwarded by all of the first %d hops (%s); dropped further on", port, maxHops, hopList(p.Hops))
					done(p)
					return
				}
				hop(ttl + 1)
				return
			}
			p.Evidence = describeEnd(&p, port, ttl, c)
			done(p)
		})
	}
	hop(1)
}

// timeExceeded says whether an ICMP error is time exceeded in transit (ICMP type 11, ICMPv6 type 3).
func timeExceeded(m connect.ICMPInfo) bool {
	s := m.Status()
	return (s.Origin == status.OriginICMP && s.Type == 11) || (s.Origin == status.OriginICMP6 && s.Type == 3)
}

// describeEnd words how a trace ended at ttl, and sets the path's outcome.
func describeEnd(p *Path, port, ttl int, c engine.ConnectResult) string {
	prefix := fmt.Sprintf("tcp %d", port)
	switch c.Outcome {
	case connect.TimedOut:
		p.Outcome, p.DroppedAfter = "dropped", ttl-1
		if ttl == 1 {
			return fmt.Sprintf("%s: dropped at the first hop (no router answered a TTL of 1: the host itself, or a router or firewall that sends no time exceeded)", prefix)
		}
		return fmt.Sprintf("%s: dropped after hop %d (%s): silence with a TTL of %d", prefix, ttl-1, p.Hops[len(p.Hops)-1], ttl)
	case connect.Connected, connect.Refused:
		p.Outcome = "reached"
		return fmt.Sprintf("%s: reaches the host in %d %s (it answered this time: the earlier silence was lost packets)", prefix, ttl, engine.Plural(ttl, "hop"))
	case connect.Unreachable:
		m := c.ICMP.Status()
		if st, firewall := status.FromICMP(m); firewall && st == status.Filtered {
			p.Outcome = "rejected"
			return fmt.Sprintf("%s: rejected at hop %d (%s)", prefix, ttl, status.ICMPText(m))
		}
		p.Outcome = "unreachable"
		return fmt.Sprintf("%s: unreachable at hop %d (%s)", prefix, ttl, status.ICMPText(m))
	}
	p.Outcome = "error"
	return fmt.Sprintf("%s: hop trace stopped at hop %d: %v", prefix, ttl, c.Err)
}

// hopList words the routers: "198.18.0.30, 198.18.1.2".
func hopList(hops []string) string {
	out := make([]string, len(hops))
	for i, h := range hops {
		out[i] = h
		if h == "" {
			out[i] = "?"
		}
	}
	return strings.Join(out, ", ")
}
