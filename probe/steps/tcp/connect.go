// Package tcp is the "tcp connect" step: it proves whether a TCP port accepts a connection, and answers the catalog's
// tcp and ofm-port checks.
package tcp

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/engine/connect"
	"github.com/ofmprobe/ofmprobe/probe/status"
)

// StepName is the name of the connect step for a port: "tcp 445".
func StepName(port int) string { return fmt.Sprintf("tcp %d", port) }

// Steps returns one connect step per port. ofmPort is the OFM service port the user named (0: none), which the
// ofm-port check reads; maxHops is the hop finder's (HopsStep), which a port traces while its silence is verified
// when the hop finder is in the plan.
func Steps(ports []int, ofmPort, maxHops int) []engine.Step {
	steps := make([]engine.Step, 0, len(ports))
	for _, p := range ports {
		steps = append(steps, engine.Step{
			Name:    StepName(p),
			Key:     "tcp",
			Connect: true,
			Answers: []string{"tcp", "ofm-port"},
			Start: func(ctx context.Context, env *engine.Env, h *engine.Host, done func(engine.Result)) {
				probePort(ctx, env, h, p, maxHops, func(r engine.PortResult) { done(r) })
			},
			Internal: func(why string) engine.Result {
				return engine.PortResult{Port: p, Protocol: "tcp", State: status.Error, Evidence: why}
			},
			Observe: func(h *engine.Host, c catalog.Check) catalog.Observation { return observe(h, c, ofmPort) },
		})
	}
	return steps
}

// Probe is the "tcp connect" step: it proves whether a port accepts a TCP connection, and calls done with the
// result. Silence is retried env.Retries() more times, each attempt with the adaptive timeout for h; a refusal, an
// ICMP error or an unreachable answer is final at once. While a connect waits it holds a socket of the scan's
// connector and nothing else: no goroutine, no stack.
func Probe(ctx context.Context, env *engine.Env, h *engine.Host, port int, done func(engine.PortResult)) {
	probePort(ctx, env, h, port, 0, done)
}

func probePort(ctx context.Context, env *engine.Env, h *engine.Host, port, maxHops int, done func(engine.PortResult)) {
	p := &probe{ctx: ctx, env: env, h: h, r: engine.PortResult{Port: port, Protocol: "tcp"}, maxHops: maxHops, done: done}
	p.attempt()
}

// A late answer. The first attempt's socket stays open while the retry runs: at its timeout the probe goes on as if
// it had met silence (the retry leaves), but an answer that then comes to the first SYN still decides the port. It
// was late, not lost: the port is reported from it, its round trip is a sample that lengthens the host's timeouts,
// and it is no loss. An answer to the retry while the first socket still waits is the sign of a loss: the first SYN
// or its answer did not arrive in all that time. nmap keeps a probe outstanding past its timeout the same way. The
// retry's socket is the only extra cost: the whole wait stays the sum of the attempts' timeouts. Where the measured
// round trips are far shorter than the timeout (Env.LateAnswerGrace), a late answer is not plausible and the first
// socket closes at its timeout, as before.

// Verifying silence. A port silent through its retries on a host that answered on another TCP port is tried again
// before it is called filtered, each attempt with the scan's full timeout (long enough for the kernel's own SYN
// retransmission at 1 s): VerifyTries more attempts, or LossyVerifyTries when one of the host's answers came only on
// a retry or a retransmitted SYN (the path loses packets, so silence proves little), also when that shows only
// during the verification. The attempts of a verification run together, each leaving a short random pause after
// the one before (a round: see verifyRound), so a firewalled port of a host that answers costs one more timeout and
// the pauses; a host whose TCP ports are all silent costs nothing more. When the host has answered on another TCP
// port by the time the first attempt meets silence (the common case: a refusal or a connection takes a round trip),
// the retries are not made first, each its own timeout: they join the round, as attempts of the full timeout.
// While no other TCP port has answered, the decision waits for the host's other connects, at most peerWaitFactor
// first timeouts, reading them again whenever one of them ends or parks (Host.AwaitPeers). On a path that loses
// 30 % each way, an attempt (a SYN and the kernel's second one) fails about one time in four (0.51^2): the lossy
// count makes eight attempts, which all fail about once in 50,000 (0.26^8), where six, as before, failed once in
// 3,000 for each open port.
const (
	VerifyTries      = 2
	LossyVerifyTries = 6
	peerWaitFactor   = 4
	verifyPauseMin   = 50 * time.Millisecond
	verifyPauseMax   = 150 * time.Millisecond
)

// probe is one port's connect probe between its attempts.
type probe struct {
	ctx     context.Context
	env     *engine.Env
	h       *engine.Host
	r       engine.PortResult
	silent  int           // attempts that met silence
	timeout time.Duration // this attempt's
	// timeouts holds every attempt's, for the evidence: at most MaxRetries+1+LossyVerifyTries, in the probe itself,
	// so a connect probe allocates nothing more for them.
	timeouts [engine.MaxRetries + 1 + LossyVerifyTries]time.Duration
	tried    int
	// verifying says the verification started, verified how many attempts it made (its rounds'), round how many the
	// round under way makes; waitUntil is how long the probe may wait for the host's other connects.
	verifying bool
	lossy     bool
	round     int
	verified  int
	waitUntil time.Time
	// maxHops, when the hop finder is in the plan, makes the verification trace the port's hops beside its round
	// (see "Tracing while verifying"); trace is that trace, while it runs.
	maxHops int
	trace   *earlyTrace
	done    func(engine.PortResult)
	// first is the first attempt's soft timeout, when its socket waits on through the retry; decided makes the
	// first of the two ways to an end (the probe's own, a late answer to the first attempt) the only one.
	first   *time.Timer
	sent    atomic.Int32 // attempts made, for a late answer's result
	decided atomic.Bool
}

// finish hands r on, unless the probe already ended (a late answer to the first attempt won). A port found silent
// while its hops were traced waits for the trace, so that the hop finder finds it done.
func (p *probe) finish(r engine.PortResult) {
	if !p.decided.CompareAndSwap(false, true) {
		return
	}
	if r.State == status.Filtered && !r.Rejected && p.trace != nil { // (a late answer, open or closed, is never traced)
		p.trace.then(func() { p.done(r) })
		return
	}
	p.done(r)
}

func (p *probe) attempt() {
	if p.decided.Load() {
		return // a late answer to the first attempt decided the port
	}
	if p.ctx.Err() != nil {
		p.r.State, p.r.Evidence = status.Error, fmt.Sprintf("tcp %d: scan cancelled", p.r.Port)
		p.finish(p.r)
		return
	}
	p.r.Attempts++
	p.sent.Store(int32(p.r.Attempts))
	switch {
	case p.r.Attempts == 1:
		p.timeout = p.env.ConnectTimeout(p.h)
	case p.verifying:
		p.timeout = max(p.timeouts[0], p.env.Timeout())
	default:
		p.timeout = p.env.RetryConnectTimeout(p.h, p.timeouts[0])
	}
	if p.tried < len(p.timeouts) {
		p.timeouts[p.tried] = p.timeout
		p.tried++
	}
	if grace := p.lateAnswerGrace(); grace > 0 {
		// The first socket waits on through the retry: as long again as the retry will (see "A late answer").
		// The soft timeout starts when the SYN leaves, as the connect's own timeout does, not while the connect
		// waits for a socket.
		soft := p.timeout
		p.first = time.AfterFunc(time.Hour, p.firstSilent)
		p.env.ConnectProbeStarted(p.ctx, p.h.Addr, uint16(p.r.Port), soft+grace, func() { p.first.Reset(soft) }, p.firstResult)
		return
	}
	p.env.ConnectProbe(p.ctx, p.h.Addr, uint16(p.r.Port), p.timeout, p.result)
}

// lateAnswerGrace is how long this attempt's socket waits on past its timeout: only a first attempt that will be
// retried has one.
func (p *probe) lateAnswerGrace() time.Duration {
	if p.r.Attempts != 1 || p.env.Retries() == 0 {
		return 0
	}
	return p.env.LateAnswerGrace(p.h, p.timeout)
}

// sample gives h's round-trip estimate the round trip of c, an answer to the first attempt, when it is one: a
// connection or a refusal, to a SYN the kernel did not send again (Karn's rule: an answer to a SYN sent again says
// nothing of the round trip).
func (p *probe) sample(r *engine.PortResult, c engine.ConnectResult) {
	if (r.State == status.Open || r.State == status.Closed) && !c.Retransmitted {
		p.env.SampleRTT(p.h, c.RTT)
	}
}

// firstSilent is the first attempt's timeout, while its socket waits on: the probe goes on as after silence.
func (p *probe) firstSilent() {
	p.result(engine.ConnectResult{Outcome: connect.TimedOut, RTT: p.timeouts[0]})
}

// firstResult is the end of the first attempt's socket: before its timeout, the attempt's result; after it, a late
// answer that decides the port unless the probe ended first, or the end of the grace, which changes nothing.
func (p *probe) firstResult(c engine.ConnectResult) {
	if p.first.Stop() {
		p.result(c)
		return
	}
	if p.decided.Load() {
		return
	}
	r := engine.PortResult{Port: p.r.Port, Protocol: "tcp", Attempts: int(p.sent.Load())}
	if !p.decide(&r, c) {
		return // silence through the grace too (or a local failure): the probe's own attempts decide
	}
	p.sample(&r, c)
	// An answer inside the timeout that reached the probe only after its timer (a loaded machine) is on time; one to
	// a SYN the kernel sent again is a loss, which the connector counted.
	if c.RTT >= p.timeouts[0] && !c.Retransmitted {
		r.Late = true
		r.Evidence += fmt.Sprintf(", late: the answer to the first attempt came after its %s timeout, while the retry was under way", p.timeouts[0].Round(time.Millisecond))
	}
	p.finish(r)
}

// result decides the port from one attempt, or makes the next.
func (p *probe) result(c engine.ConnectResult) {
	if p.decided.Load() {
		return // a late answer to the first attempt decided the port
	}
	r, port := &p.r, p.r.Port
	first := r.Attempts == 1
	switch {
	case p.decide(r, c):
		if first {
			p.sample(r, c)
		}
	case c.Outcome == connect.TimedOut:
		if p.ctx.Err() != nil {
			r.State, r.Evidence = status.Error, fmt.Sprintf("tcp %d: scan cancelled", port)
			break
		}
		if !p.verifying {
			p.silent++
			if p.silent <= p.env.Retries() && (p.env.Stopping() || !p.h.Peers().TCPAnswered) {
				p.attempt()
				return
			}
			// Spent, or the host already answered on another TCP port: then the retries left join the
			// verification's round (see decideSilence) instead of going first, one timeout each.
			p.h.ParkSilence()
			p.decideSilence()
			return
		}
		// Every attempt of the verification round met silence.
		p.silent += p.round
		if !p.lossy && p.h.Lossy() && !p.env.Stopping() {
			// A loss seen meanwhile (node status answered on a retry, say) makes it the longer verification.
			p.lossy = true
			p.verifyRound(LossyVerifyTries-VerifyTries, false)
			return
		}
		p.filtered()
	case c.Outcome == connect.LocalError:
		// This machine ran short (file descriptors, buffers, ports) through every retry: not an attempt on the
		// host, and not a property of it.
		r.Attempts--
		r.State, r.Evidence = status.Error, fmt.Sprintf("tcp %d: this machine ran out of resources: %v", port, c.Err)
	case c.Outcome == connect.Canceled:
		r.State, r.Evidence = status.Error, fmt.Sprintf("tcp %d: scan cancelled", port)
	default:
		r.State, r.Evidence = status.Error, fmt.Sprintf("tcp %d: %v", port, c.Err)
	}
	if r.Attempts > 1 && r.Reach() == engine.ReachAnswered && p.tried > 0 {
		// The first attempt waited longest before the verification's; an answer far quicker than that wait shows
		// its silence was a loss.
		r.LostBefore = engine.LostBefore(p.timeouts[0], r.RTT)
	}
	if p.verifying && r.Reach() == engine.ReachAnswered {
		r.Evidence += p.env.Recovered(r.Attempts)
	}
	if r.LostBefore || (p.verifying && r.Reach() == engine.ReachAnswered) {
		// A SYN or its answer was lost on the way to a host that answers: the scan may be sending more than the
		// path carries.
		p.env.Lost(p.h.Addr)
	}
	p.finish(*r)
}

// decide sets r from an attempt that got a decisive answer (a connection, a refusal, an ICMP error, this machine's
// firewall) and reports whether it did; silence, local failures and cancellation are left to the caller.
func (p *probe) decide(r *engine.PortResult, c engine.ConnectResult) bool {
	port := r.Port
	switch c.Outcome {
	case connect.Connected:
		r.State, r.RTT, r.Retransmitted = status.Open, c.RTT, c.Retransmitted
		r.Evidence = fmt.Sprintf("tcp %d: open, connected in %s", port, engine.FormatRTT(c.RTT))
	case connect.Refused:
		r.State, r.RTT = status.Closed, c.RTT
		r.Evidence = fmt.Sprintf("tcp %d: closed, connection refused in %s", port, engine.FormatRTT(c.RTT))
	case connect.Unreachable:
		r.RTT = c.RTT
		m := c.ICMP.Status()
		if st, firewall := status.FromICMP(m); firewall && st == status.Filtered {
			r.State, r.Rejected, r.RejectedBy = status.Filtered, true, m.Offender
			r.Evidence = fmt.Sprintf("tcp %d: filtered, rejected by a firewall (%s)", port, status.ICMPText(m))
			break
		}
		r.State = status.Unreachable
		r.Evidence = fmt.Sprintf("tcp %d: unreachable, %s after %s%s", port, engine.ErrnoText(c.Err), engine.FormatRTT(c.RTT), offender(m, p.h))
	case connect.Denied:
		r.State = status.Filtered
		r.Evidence = fmt.Sprintf("tcp %d: filtered, this machine's own firewall refused the connect", port)
	default:
		return false
	}
	return true
}

// decideSilence is called when a port's attempts are spent in silence. A host that answered another probe gets the
// port verified; while the host's other first probes still run, it waits for them (their answers are part of the
// evidence); a host that answered nothing keeps the port filtered.
func (p *probe) decideSilence() {
	if p.decided.Load() {
		p.h.UnparkSilence() // a late answer to the first attempt decided the port
		return
	}
	if p.ctx.Err() != nil {
		p.h.UnparkSilence()
		p.r.State, p.r.Evidence = status.Error, fmt.Sprintf("tcp %d: scan cancelled", p.r.Port)
		p.finish(p.r)
		return
	}
	// Only an answer on another TCP port calls for verification: while none came, the decision waits for the
	// host's other connects (they end within a timeout of this one).
	v, waiting := p.h.AwaitPeers(&p.waitUntil, peerWaitFactor*p.timeouts[0], p.waitForPeers, p.decideSilence)
	if waiting {
		return
	}
	if p.env.Stopping() {
		// A stopping scan finishes its hosts within their timeouts: no more attempts.
		v = engine.PeerView{}
	}
	p.h.UnparkSilence()
	p.verifying = true
	// Only a host that answers on another TCP port has its silence verified: a host whose every TCP port is silent
	// (while UDP draws ICMP errors) is a firewall that drops TCP, which losing every SYN of every port would only
	// mimic by a long chance.
	if v.TCPAnswered {
		n := VerifyTries
		if p.lossy = v.Lossy; v.Lossy {
			n = LossyVerifyTries
		}
		p.env.VerifyingPort()
		p.traceEarly()
		// Retries not yet made (the host answered another port before they were due) are part of the round, and
		// its first attempt leaves at once, as the retry would have.
		retries := max(0, p.env.Retries()+1-p.silent)
		p.verifyRound(n+retries, retries > 0)
		return
	}
	p.filtered()
	p.finish(p.r)
}

// waitForPeers says whether the port's silence waits for the host's other connects: while none answered and one
// still runs, unless the scan is stopping.
func (p *probe) waitForPeers(v engine.PeerView) bool {
	return !p.env.Stopping() && !v.TCPAnswered && v.TCPPending
}

// filtered calls the port filtered after its attempts met silence.
func (p *probe) filtered() {
	r := &p.r
	r.State = status.Filtered
	r.Evidence = fmt.Sprintf("tcp %d: filtered, no answer to %d %s %s", r.Port, p.silent, engine.Plural(p.silent, "attempt"), waits(p.timeouts[:p.tried]))
	if p.verified > 0 {
		r.Evidence += engine.VerifiedSilence(p.verified)
	}
}

// verifyRound makes n verification attempts together, each with the full timeout, the first after a short random
// pause (at once when now: it stands for a retry that was due) and each of the others after another one: the same
// SYNs as one attempt after the other, spaced as much (so that the verifications of many ports, or the attempts of
// one, do not leave in one burst), in one timeout and the pauses instead of n timeouts. The first answer decides the port, reported as the attempt it answered; the others'
// results are dropped. Silence through all of them is the round's silence. Their callbacks may come from different
// goroutines: they meet in a verifyJoin, which hands the probe one result, after which the probe goes on alone.
func (p *probe) verifyRound(n int, now bool) {
	timeout := max(p.timeouts[0], p.env.Timeout())
	before := p.r.Attempts
	for range n {
		if p.tried < len(p.timeouts) {
			p.timeouts[p.tried] = timeout
			p.tried++
		}
	}
	p.round = n
	p.verified += n
	p.r.Attempts += n
	p.sent.Store(int32(p.r.Attempts))
	j := &verifyJoin{p: p, left: n}
	var pause time.Duration
	for i := range n {
		if i > 0 || !now {
			pause += verifyPauseMin + rand.N(verifyPauseMax-verifyPauseMin)
		}
		attempt := before + i + 1
		time.AfterFunc(pause, func() {
			if p.decided.Load() || j.ended() {
				j.result(attempt, engine.ConnectResult{Outcome: connect.TimedOut, RTT: timeout}) // decided already: not sent
				return
			}
			p.env.ConnectProbe(p.ctx, p.h.Addr, uint16(p.r.Port), timeout, func(c engine.ConnectResult) { j.result(attempt, c) })
		})
	}
}

// verifyJoin collects the results of a verification round's attempts: the first that is not silence, or the last
// silence, goes to the probe, once.
type verifyJoin struct {
	p    *probe
	mu   sync.Mutex
	left int
	done bool
}

func (j *verifyJoin) ended() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.done
}

func (j *verifyJoin) result(attempt int, c engine.ConnectResult) {
	j.mu.Lock()
	j.left--
	if j.done || (c.Outcome == connect.TimedOut && j.left > 0) {
		j.mu.Unlock()
		return
	}
	j.done = true
	j.mu.Unlock()
	if c.Outcome != connect.TimedOut {
		j.p.r.Attempts = attempt
	}
	j.p.result(c)
}

// waits words the attempts' timeouts: "of 1.5s" when they were all the same, else "of 1.5s, 500ms".
func waits(ts []time.Duration) string {
	same := true
	for _, t := range ts {
		same = same && t == ts[0]
	}
	if same && len(ts) > 0 {
		return "of " + ts[0].Round(time.Millisecond).String()
	}
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = t.Round(time.Millisecond).String()
	}
	return "of " + strings.Join(parts, ", ")
}

// offender names who sent an ICMP error when it was not the host itself: a router.
func offender(m status.ICMP, h *engine.Host) string {
	if m.Offender == "" || m.Offender == h.Addr.String() || (m.Origin != status.OriginICMP && m.Origin != status.OriginICMP6) {
		return ""
	}
	return " (" + status.ICMPText(m) + ")"
}

// NoOFMPort is why the ofm-port check is not requested without --ofm-port.
const NoOFMPort = "no --ofm-port given (no public source names the port OFM 9.1 uses; it is recorded in OFMNT.ADR)"

// observe answers tcp and ofm-port checks from the port's result.
func observe(h *engine.Host, c catalog.Check, ofmPort int) catalog.Observation {
	if c.Kind == "ofm-port" {
		if ofmPort == 0 {
			return catalog.Observation{NotRequested: true, Skipped: NoOFMPort}
		}
		return observePort(h, ofmPort, "--ofm-port")
	}
	return observePort(h, c.Port, "--ports")
}

func observePort(h *engine.Host, port int, flag string) catalog.Observation {
	p, ok := h.Port(port)
	if !ok {
		if why, skipped := h.Skipped(StepName(port)); skipped && why != "not in this scan's plan" {
			return catalog.Observation{Skipped: fmt.Sprintf("tcp %d was not probed: %s", port, why)}
		}
		return catalog.Observation{Skipped: fmt.Sprintf("tcp %d was not probed (not in %s)", port, flag)}
	}
	if p.State == status.Error {
		return catalog.Observation{Skipped: p.Evidence}
	}
	o := catalog.Observation{State: string(p.State), Evidence: p.Evidence}
	if p.Rejected {
		o.Cause = p.CauseOf()
	}
	// The hop finder may know where the silence begins: after a router that forwarded the SYN.
	if paths, ok := PathsOf(h); ok && p.State == status.Filtered && !p.Rejected {
		for _, path := range paths {
			if path.Port == port && path.Outcome == "dropped" && path.DroppedAfter > 0 {
				o.Cause = fmt.Sprintf("tcp %d dropped after %s", port, path.Hops[path.DroppedAfter-1])
				o.Evidence += "; " + path.Evidence
			}
		}
	}
	return o
}
