package engine

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/targets"
)

// The host statuses. Up: something answered, even if only with refusals. Unreachable: every probe met silence or an
// unreachable answer. Error: no probe learned anything, because each failed on this machine (out of descriptors, its
// own firewall, a cancelled scan) or could not run: nothing is known of the host, which is neither up nor
// unreachable. Internal: a probe failed inside ofmprobe (a bug); the facts gathered before it are kept.
const (
	HostUp          = "up"
	HostUnreachable = "unreachable"
	HostError       = "error"
	HostInternal    = "internal"
)

// PortResult is what one port's probe observed. The TCP and UDP steps return it; the engine reads it to tell whether
// a host answered at all.
type PortResult struct {
	Port     int          `json:"port"`
	Protocol string       `json:"protocol"`
	State    status.State `json:"state"`
	// RTT is the time the deciding attempt took: the connect for open, the refusal for closed.
	RTT time.Duration `json:"-"`
	// Attempts is how many connects or datagrams were sent; more than one only when earlier ones met silence.
	Attempts int    `json:"attempts"`
	Evidence string `json:"evidence"`
	// Rejected says a firewall answered for the port (ICMP administratively, host or network prohibited): the port
	// is filtered, but something answered, so the host is not unreachable.
	Rejected bool `json:"-"`
	// RejectedBy is the address of the firewall that rejected it, when the ICMP error named one.
	RejectedBy string `json:"-"`
	// Retransmitted says the deciding attempt's connection was answered to a SYN the kernel sent again, and
	// LostBefore that an earlier attempt met silence though the answer, when it came, took well less than that
	// attempt had waited: either way the path lost a packet (not merely delayed one).
	Retransmitted bool `json:"-"`
	LostBefore    bool `json:"-"`
	// Late says the answer came to the first attempt after its timeout, while the retry was under way: the path is
	// slow, not lossy. The evidence says so.
	Late bool `json:"-"`
}

// LostBefore reports whether an answer in rtt, after an attempt that waited waited in silence, shows a loss: the
// answer came well within what the silent attempt had waited (four fifths of it), so that attempt's packet or its
// answer was lost. An answer about as slow as the wait (a path slower than the timeout) is no loss: the earlier
// attempt was only too short.
func LostBefore(waited, rtt time.Duration) bool { return 5*rtt < 4*waited }

// CauseOf is the port's state as a root cause: "tcp 445 filtered", or for a firewall that answered, "tcp 445
// rejected by 198.18.1.2".
func (p PortResult) CauseOf() string {
	check := fmt.Sprintf("%s %d", p.Protocol, p.Port)
	if p.Rejected {
		return RejectedCause(check, p.RejectedBy)
	}
	return check + " " + string(p.State)
}

// RejectedCause is the cause of a check a firewall answered with ICMP prohibited: "tcp 445 rejected by 198.18.1.2",
// or "... rejected" when the ICMP named no sender. catalog.Action reads it back.
func RejectedCause(check, by string) string {
	if by == "" {
		return check + " rejected"
	}
	return check + " rejected by " + by
}

// Reach is what a step's result shows of whether the host is there.
type Reach int

// The reaches. None: the result says nothing (this machine failed, or the step did not run). Silent: silence or
// an unreachable answer. Answered: the host (not a router for it) answered, even with a refusal.
const (
	ReachNone Reach = iota
	ReachSilent
	ReachAnswered
)

// Reacher is a result that says whether the host answered. Results that are not Reachers count as ReachNone.
type Reacher interface{ Reach() Reach }

// LossReporter is a result that can tell that the host answered only after a retry: a probe or its answer was lost on
// the way. Only answers that no one rate-limits count (a SYN-ACK, a RST, a NetBIOS reply), not ICMP errors, which
// routers and hosts ration as a matter of course.
type LossReporter interface{ AnsweredOnRetry() bool }

// PortReporter is a result that carries port states.
type PortReporter interface{ PortResults() []PortResult }

// Reach classifies a port state.
func (p PortResult) Reach() Reach {
	if p.Rejected {
		return ReachAnswered
	}
	switch p.State {
	case status.Open, status.Closed:
		return ReachAnswered
	case status.Filtered, status.Unreachable, status.OpenFiltered:
		return ReachSilent
	}
	return ReachNone
}

// AnsweredOnRetry reports a TCP answer (a connection or a refusal) that came only to a later attempt, far sooner
// than the earlier attempt had waited, or to a SYN the kernel had to send again.
func (p PortResult) AnsweredOnRetry() bool {
	return p.Protocol == "tcp" && (p.LostBefore || p.Retransmitted) && (p.State == status.Open || p.State == status.Closed)
}

// PortResults makes a single port result a PortReporter.
func (p PortResult) PortResults() []PortResult { return []PortResult{p} }

// PortList is the result of a step that probes several ports (the UDP ports).
type PortList []PortResult

// PortResults returns the list.
func (l PortList) PortResults() []PortResult { return l }

// AnsweredOnRetry reports whether one of the list's ports answered only on a retry.
func (l PortList) AnsweredOnRetry() bool {
	for _, p := range l {
		if p.AnsweredOnRetry() {
			return true
		}
	}
	return false
}

// Reach is the best reach of the list's ports.
func (l PortList) Reach() Reach {
	r := ReachNone
	for _, p := range l {
		r = max(r, p.Reach())
	}
	return r
}

// Host is one target while it is probed and after: the results of its steps, in plan order. Between steps it is
// only this struct; nothing of it holds a socket or a goroutine. It implements catalog.Facts.
type Host struct {
	targets.Target
	Status   string
	Started  time.Time
	Duration time.Duration
	// Aborted says the scan was aborted (a second Ctrl-C) while this host was probed: its later steps did not run.
	Aborted bool
	// Error is the internal failure behind HostInternal; Stack its goroutine stack, for debug output only.
	Error string
	Stack string

	plan *Plan
	// rtt estimates the round trip to this host from its answers.
	rtt RTT
	// mu guards results and skipped: the scheduler writes a step's slot while other steps of the host read theirs.
	mu      sync.Mutex
	results []Result
	skipped []string
	ports   []PortResult
	// rootsLeft counts the plan's root steps (those that wait for no other) not decided yet; answered says one of
	// the host's results got an answer from it, lossy that one came only on a retry. Peers reads them.
	rootsLeft   int
	tcpLeft     int
	tcpParked   int
	answered    bool
	tcpAnswered bool
	lossy       bool
	// notes holds what steps left for later steps of the host (Host.Leave); nil until one does.
	notes map[string]any
	// waiters are the steps waiting for what Peers shows to change (WhenPeersChange); peersGen counts the changes.
	waiters  []*peerWaiter
	peersGen uint64
}

// peerWaiter is a step waiting for the host's peers: f runs once, on the first change or at the deadline.
type peerWaiter struct {
	fired atomic.Bool
	timer atomic.Pointer[time.Timer]
	f     func()
}

func (w *peerWaiter) fire() {
	if !w.fired.CompareAndSwap(false, true) {
		return
	}
	if t := w.timer.Load(); t != nil {
		t.Stop()
	}
	w.f()
}

// WhenPeersChange calls f once, on a goroutine of its own, when what Peers shows may have changed since the view v
// was read (one of the host's steps ended or was skipped, a connect parked or unparked), or after wait at the
// latest. A step that waits for the host's other probes before it decides what its silence means reads Peers again
// then, instead of polling it. A change between the Peers call that gave v and this call calls f at once: no
// change is missed.
func (h *Host) WhenPeersChange(v PeerView, wait time.Duration, f func()) {
	w := &peerWaiter{f: f}
	h.mu.Lock()
	if h.peersGen != v.gen {
		h.mu.Unlock()
		go w.fire()
		return
	}
	h.waiters = append(h.waiters, w)
	h.mu.Unlock()
	w.timer.Store(time.AfterFunc(max(wait, 0), w.fire))
}

// AwaitPeers is the wait of a step that must know what the host's other probes show before it decides: it returns
// what Peers shows and false, unless wait holds for that view and the deadline *until (set on the first call, to
// most from now) has not passed; then it arranges for then to run again when the view changes (WhenPeersChange) or
// at the deadline, and returns true.
func (h *Host) AwaitPeers(until *time.Time, most time.Duration, wait func(PeerView) bool, then func()) (PeerView, bool) {
	v := h.Peers()
	if until.IsZero() {
		*until = time.Now().Add(most)
	}
	if left := time.Until(*until); left > 0 && wait(v) {
		h.WhenPeersChange(v, left, then)
		return v, true
	}
	return v, false
}

// peersChangedLocked records a change of what Peers shows and takes the waiters for the caller to wake (wakePeers)
// once it has unlocked h.mu.
func (h *Host) peersChangedLocked() []*peerWaiter {
	h.peersGen++
	ws := h.waiters
	h.waiters = nil
	return ws
}

func wakePeers(ws []*peerWaiter) {
	for _, w := range ws {
		go w.fire()
	}
}

// Planned reports whether the named step is in the host's plan.
func (h *Host) Planned(name string) bool { return h.plan.Has(name) }

// Leave keeps v under key for a later step of the same host, which takes it with Take: something a step learned on
// the way that another step would otherwise go and learn (the connect step traces a port's hops while it verifies
// the port's silence, so that the hop finder need not trace it again afterwards). Notes are not results: no report
// shows them, and they go with the host.
func (h *Host) Leave(key string, v any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.notes == nil {
		h.notes = make(map[string]any, 1)
	}
	h.notes[key] = v
}

// Take returns the note left under key, and removes it.
func (h *Host) Take(key string) (any, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.notes[key]
	delete(h.notes, key)
	return v, ok
}

// PeerView is what a host's other probes have shown so far: see Host.Peers.
type PeerView struct {
	// Answered: one of them got an answer from the host; TCPAnswered: one of its TCP ports answered.
	Answered, TCPAnswered bool
	// Lossy: an answer came only on a retry, or the kernel retransmitted on a connection to it.
	Lossy bool
	// Pending: another root step still runs, whose answer may yet come; TCPPending: another TCP port's connect
	// still runs (not counting those parked, as the caller is, deciding what their own silence means).
	Pending, TCPPending bool
	// gen is the host's count of changes when the view was read, for WhenPeersChange.
	gen uint64
}

// ParkSilence marks a TCP connect whose attempts met silence as deciding what that means; UnparkSilence ends it.
// Connects that wait for the host's other connects do not wait for each other: the parked ones are not pending.
func (h *Host) ParkSilence() {
	h.mu.Lock()
	h.tcpParked++
	ws := h.peersChangedLocked()
	h.mu.Unlock()
	wakePeers(ws)
}

// UnparkSilence ends ParkSilence.
func (h *Host) UnparkSilence() {
	h.mu.Lock()
	h.tcpParked--
	ws := h.peersChangedLocked()
	h.mu.Unlock()
	wakePeers(ws)
}

func (h *Host) markLossy() {
	h.mu.Lock()
	h.lossy = true
	ws := h.peersChangedLocked()
	h.mu.Unlock()
	wakePeers(ws)
}

// Lossy reports whether one of the host's answers came only on a retry, or the kernel had to retransmit on a
// connection to it: the path to it loses packets.
func (h *Host) Lossy() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lossy
}

// Peers is what the host's other probes have shown so far, for a root step (a port's connect, node status) about to
// call silence final: whether the host answered one of them (on a TCP port, in particular), whether an answer came
// only on a retry (the path loses packets), and whether another root step is still running, whose answer may yet
// come. A port silent on a host that answers is worth probing again; silence on a host that answers nothing is the
// host's.
func (h *Host) Peers() PeerView {
	h.mu.Lock()
	defer h.mu.Unlock()
	// The caller is a root step that has not decided: it is one of rootsLeft, and, a TCP connect, a parked one.
	return PeerView{Answered: h.answered, TCPAnswered: h.tcpAnswered, Lossy: h.lossy, Pending: h.rootsLeft > 1, TCPPending: h.tcpLeft-h.tcpParked > 0, gen: h.peersGen}
}

// NewHost returns a host whose results are given (nil for a step that did not run), for tests and for reading back
// a report: results maps step names to results, skipped to the reasons steps did not run.
func NewHost(p *Plan, t targets.Target, results map[string]Result, skipped map[string]string) *Host {
	h := &Host{Target: t, plan: p, results: make([]Result, len(p.steps)), skipped: make([]string, len(p.steps))}
	for name, r := range results {
		if i, ok := p.index[name]; ok {
			h.results[i] = r
		}
	}
	for name, why := range skipped {
		if i, ok := p.index[name]; ok {
			h.skipped[i] = why
		}
	}
	h.collectPorts()
	return h
}

// Result returns the named step's result; false when the step is not in the plan, did not run, or has not finished.
func (h *Host) Result(name string) (Result, bool) {
	i, ok := h.plan.index[name]
	if !ok {
		return nil, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.results[i]
	return r, r != nil
}

// Skipped returns why the named step did not run: the reason its When gave, or that it is not in the plan.
func (h *Host) Skipped(name string) (string, bool) {
	i, ok := h.plan.index[name]
	if !ok {
		return "not in this scan's plan", true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.skipped[i], h.skipped[i] != ""
}

// store keeps step i's result, for the steps that read it and for the report; the scheduler calls it once it has
// taken the step's completion.
func (h *Host) store(i int, r Result) {
	h.mu.Lock()
	h.results[i] = r
	h.mu.Unlock()
}

// decided counts the end of step i, with its result r (nil when it has none), in what Peers shows, and wakes the
// steps waiting for that. The engine calls it as the step ends, on the step's own goroutine, before the completion
// waits in the scheduler's queue: under load that queue takes a second or more to reach, and a silent port waiting
// for its host's other connects to decide would otherwise wait that long for each of them in turn.
func (h *Host) decided(i int, r Result) {
	h.mu.Lock()
	if rc, ok := r.(Reacher); ok && rc.Reach() == ReachAnswered {
		h.answered = true
		if p, ok := r.(PortResult); ok && p.Protocol == "tcp" {
			h.tcpAnswered = true
		}
	}
	if lr, ok := r.(LossReporter); ok && lr.AnsweredOnRetry() {
		h.lossy = true
	}
	h.rootDecidedLocked(i)
	ws := h.peersChangedLocked()
	h.mu.Unlock()
	wakePeers(ws)
}

func (h *Host) rootDecidedLocked(i int) {
	if len(h.plan.deps[i]) == 0 {
		h.rootsLeft--
		if h.plan.steps[i].Connect {
			h.tcpLeft--
		}
	}
}

func (h *Host) skip(i int, why string) {
	h.mu.Lock()
	h.skipped[i] = why
	h.rootDecidedLocked(i)
	ws := h.peersChangedLocked()
	h.mu.Unlock()
	wakePeers(ws)
}

// collectPorts gathers the port results of finished steps, in plan order (TCP ports, then UDP).
func (h *Host) collectPorts() {
	h.ports = h.ports[:0]
	for _, r := range h.results {
		if pr, ok := r.(PortReporter); ok {
			h.ports = append(h.ports, pr.PortResults()...)
		}
	}
}

// Ports lists every port result of a finished host.
func (h *Host) Ports() []PortResult { return h.ports }

// Port returns the result for a TCP port, if it was probed and has finished.
func (h *Host) Port(port int) (PortResult, bool) { return h.portProto(port, "tcp") }

// UDPPort returns the result for a UDP port, if it was probed and has finished.
func (h *Host) UDPPort(port int) (PortResult, bool) { return h.portProto(port, "udp") }

func (h *Host) portProto(port int, proto string) (PortResult, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.results {
		switch r := r.(type) {
		case PortResult:
			if r.Port == port && r.Protocol == proto {
				return r, true
			}
		case PortReporter:
			for _, p := range r.PortResults() {
				if p.Port == port && p.Protocol == proto {
					return p, true
				}
			}
		}
	}
	return PortResult{}, false
}

// learned reports whether some step's result says anything of the host, an answer or silence.
func (h *Host) learned() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.results {
		if rc, ok := r.(Reacher); ok && rc.Reach() != ReachNone {
			return true
		}
	}
	return false
}

// Unreachable reports whether nothing answered: every step that learned anything met silence or an unreachable
// answer. A refusal, an ICMP port unreachable or any reply means the host is there.
func (h *Host) Unreachable() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	probed := false
	for _, r := range h.results {
		if rc, ok := r.(Reacher); ok {
			switch rc.Reach() {
			case ReachAnswered:
				return false
			case ReachSilent:
				probed = true
			}
		}
	}
	return probed
}

// Observe returns what the host's probes saw for one check, from the step that answers the check's kind. A kind
// whose step is not in the plan says why.
func (h *Host) Observe(c catalog.Check) catalog.Observation {
	if i, ok := h.plan.observer[c.Kind]; ok {
		return h.plan.steps[i].Observe(h, c)
	}
	if o, ok := h.plan.left[c.Kind]; ok {
		return o
	}
	return catalog.Observation{Skipped: fmt.Sprintf("no step of this scan answers %s checks", c.Kind)}
}

// NotOpen reports the state of a TCP port a step needs when it was probed and is not open: the step cannot run,
// and its check's outcome is known without it ("smb 445: not attempted, tcp 445: filtered, ...").
func (h *Host) NotOpen(kind string, port int) (catalog.Observation, bool) {
	p, ok := h.Port(port)
	if !ok || p.State == status.Open || p.State == status.Error {
		return catalog.Observation{}, false
	}
	return catalog.Observation{State: string(p.State), Evidence: fmt.Sprintf("%s %d: not attempted, %s", kind, port, p.Evidence),
		Cause: p.CauseOf()}, true
}

// PortOpen returns a When that holds when the TCP port was found open.
func PortOpen(port int) func(h *Host) (bool, string) {
	return func(h *Host) (bool, string) {
		p, ok := h.Port(port)
		switch {
		case !ok:
			return false, fmt.Sprintf("tcp %d was not probed", port)
		case p.State != status.Open:
			return false, fmt.Sprintf("tcp %d is %s", port, p.State)
		}
		return true, ""
	}
}

// IPv4 is a When for steps that run over IPv4 only (NetBIOS).
func IPv4(h *Host) (bool, string) {
	if h.Addr.Is4() {
		return true, ""
	}
	return false, "NetBIOS runs over IPv4 only"
}

// All combines Whens: the step runs when every one holds, and the first that does not gives the reason.
func All(whens ...func(h *Host) (bool, string)) func(h *Host) (bool, string) {
	return func(h *Host) (bool, string) {
		for _, w := range whens {
			if ok, why := w(h); !ok {
				return false, why
			}
		}
		return true, ""
	}
}

// StepObservation turns a step's state into an observation; an error state (cancelled, internal, this machine's
// failure) is a skip, with the evidence as the reason.
func StepObservation(state status.State, evidence string) catalog.Observation {
	switch state {
	case status.Error, "", status.Cancelled, status.Internal:
		return catalog.Observation{Skipped: evidence}
	}
	return catalog.Observation{State: string(state), Evidence: evidence}
}
