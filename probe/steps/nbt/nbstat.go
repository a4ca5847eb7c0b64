// Package nbt is the NetBIOS over TCP/IP family of steps: "nbstat", the node status query on UDP 137, and
// "nbss session", the session request on TCP 139. Both run over IPv4 only.
package nbt

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/engine/datagram"
	"github.com/ofmprobe/ofmprobe/probe/netbios"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/steps/udp"
)

// The step names.
const (
	NodeStatusStep = "nbstat"
	SessionStep    = "nbss session"
)

// Config says where the NetBIOS services listen: 137 and 139, or loopback fakes in tests.
type Config struct {
	NodeStatusPort, SessionPort uint16
}

// DefaultConfig is the well-known ports.
var DefaultConfig = Config{NodeStatusPort: 137, SessionPort: 139}

// NetBIOSName is one entry of a host's NetBIOS name table.
type NetBIOSName struct {
	Name    string `json:"name"`
	Suffix  string `json:"suffix"` // two hex digits, as nbtstat shows them
	Group   bool   `json:"group"`
	Meaning string `json:"meaning"`
	Flags   string `json:"flags"`
}

// NodeStatus is what the "nbstat" step learned from UDP 137. State is answered, open|filtered (silence, which is
// never proof of filtering: the query may have been lost or an ICMP answer rate-limited), closed, filtered (a
// firewall answered), protocol error, unreachable, or error (this machine could not send).
type NodeStatus struct {
	State    status.State  `json:"state"`
	Evidence string        `json:"evidence"`
	Attempts int           `json:"attempts"`
	RTT      time.Duration `json:"-"`
	// LostBefore says the answer came to a later query, far sooner than an earlier one had waited in silence.
	LostBefore bool `json:"-"`
	// RejectedBy is the firewall that rejected the query (State filtered), when the ICMP error named it.
	RejectedBy string        `json:"-"`
	Names      []NetBIOSName `json:"names,omitempty"`
	// ComputerName is the host's unique <00> or <20> name.
	ComputerName string `json:"computer_name,omitempty"`
	// Workgroup is the workgroup or domain (the group <00> name).
	Workgroup string `json:"workgroup,omitempty"`
	// FileServer says the host registered <20>: it runs the server service and shares files.
	FileServer bool `json:"file_server"`
	// MasterBrowser says the host is a (domain) master browser: <1D>, <1B> or __MSBROWSE__.
	MasterBrowser bool `json:"master_browser"`
	// MAC is the adapter address from the statistics; empty when unknown (absent or all zeros, as Samba sends).
	MAC string `json:"mac,omitempty"`
}

// Reach says whether the host answered: a name table, a port unreachable or a malformed answer are answers.
func (ns *NodeStatus) Reach() engine.Reach {
	switch ns.State {
	case status.Answered, status.Closed, status.ProtocolError, status.Filtered:
		// Filtered here is a firewall's ICMP reject: an answer, though not the host's.
		return engine.ReachAnswered
	case status.OpenFiltered, status.Unreachable:
		return engine.ReachSilent
	}
	return engine.ReachNone
}

// AnsweredOnRetry reports a name table that came only to a later query, far sooner than a query's wait: a query or
// its answer was lost.
func (ns *NodeStatus) AnsweredOnRetry() bool { return ns.State == status.Answered && ns.LostBefore }

// NodeStatusOf returns the host's node status result, if the step ran.
func NodeStatusOf(h *engine.Host) (*NodeStatus, bool) {
	r, ok := h.Result(NodeStatusStep)
	ns, _ := r.(*NodeStatus)
	return ns, ok && ns != nil
}

// ServerName is the host's file-server name from node status, when it answered with one: the name a NetBIOS
// session is requested for.
func ServerName(h *engine.Host) string {
	if ns, ok := NodeStatusOf(h); ok && ns.State == status.Answered && ns.FileServer {
		return ns.ComputerName
	}
	return ""
}

// NodeStatusStepFor returns the "nbstat" step.
func NodeStatusStepFor(cfg Config) engine.Step {
	return engine.Step{
		Name:    NodeStatusStep,
		Key:     "nbstat",
		Answers: []string{"nbstat"},
		When:    engine.IPv4,
		Start: func(ctx context.Context, env *engine.Env, h *engine.Host, done func(engine.Result)) {
			QueryHost(env, h, netip.AddrPortFrom(h.Addr, cfg.NodeStatusPort), func(ns *NodeStatus) { done(ns) })
		},
		Internal: func(why string) engine.Result {
			return &NodeStatus{State: status.Error, Evidence: "nbstat 137: " + why}
		},
		Observe: func(h *engine.Host, c catalog.Check) catalog.Observation {
			if why, skipped := h.Skipped(NodeStatusStep); skipped {
				return catalog.Observation{Skipped: why}
			}
			ns, ok := NodeStatusOf(h)
			if !ok {
				return catalog.Observation{Skipped: "node status was not asked"}
			}
			o := engine.StepObservation(ns.State, ns.Evidence)
			if ns.State == status.Filtered {
				o.Cause = engine.RejectedCause("nbstat 137", ns.RejectedBy)
			}
			return o
		},
	}
}

// QueryNodeStatus asks dst for its NetBIOS name table through the scan's mux, up to the scan's UDP tries, and calls
// done with the result. Replies are matched by source address and port and by a random transaction ID; strays and
// spoofed replies are ignored by the mux.
func QueryNodeStatus(env *engine.Env, dst netip.AddrPort, done func(*NodeStatus)) {
	QueryHost(env, nil, dst, done)
}

// QueryHost is QueryNodeStatus for a host of the scan: each try waits the adaptive UDP timeout for h, and an
// answer to the first try is a round-trip sample of h.
func QueryHost(env *engine.Env, h *engine.Host, dst netip.AddrPort, done func(*NodeStatus)) {
	mux, err := env.Datagrams()
	if err != nil {
		done(&NodeStatus{State: status.Error, Evidence: fmt.Sprintf("nbstat 137: not sent, this machine could not open its UDP socket: %v", err)})
		return
	}
	txid := uint16(rand.Uint32())
	tries := udp.NewTries(env, h)
	q := &nodeStatusQuery{env: env, h: h, mux: mux, tries: tries, done: done}
	q.query = datagram.Query{
		Dst:        dst,
		Payload:    netbios.AppendNodeStatusRequest(make([]byte, 0, 50), txid),
		Match:      func(reply []byte) bool { return len(reply) >= 2 && binary.BigEndian.Uint16(reply) == txid },
		Tries:      env.UDPTries(),
		TryTimeout: tries.Timeout,
		Done:       q.result,
	}
	first := q.query
	first.Done = q.firstResult
	mux.Submit(first)
	if h != nil && env.UDPTries() > 1 {
		// When the first try's wait ends (and a short pause), the host may have answered other probes already.
		time.AfterFunc(env.UDPTimeoutFor(h)+earlyPauseMin+rand.N(earlyPauseMax-earlyPauseMin), q.startEarly)
	}
}

// Verifying silence, as the TCP connect step does: node status silent through its tries on a host that answered
// another probe is asked VerifyTries more times, or LossyVerifyTries when one of the host's answers came only on a
// retry (also when that shows only during the verification); meanwhile it waits for the host's other first probes,
// at most peerWait. The lossy count is sized for a path that loses 30 % each way, where a query and its answer both
// pass one time in two (0.7 x 0.7): sixteen queries all fail about once in 50,000 (0.51^16), ten, as before, once
// in 800, which showed as a grade wrong in one of about forty lab runs.
//
// When the host has answered another probe by the end of the first try's wait, the verification does not wait for
// the query's last try: its queries go out then, a short pause after the query's second try, beside the query's own
// (an early verification). The same datagrams are sent, spaced as the tries are, and a silent host of that kind
// costs the query's tries and no more: 3 s at the defaults instead of 3.75 s. An answer goes to the query that
// asked first, while it waits; a silence is the silence of both.
const (
	VerifyTries      = 1
	LossyVerifyTries = 12
	peerWait         = 4 * time.Second
	earlyPauseMin    = 50 * time.Millisecond
	earlyPauseMax    = 150 * time.Millisecond
)

// nodeStatusQuery is one host's node status query between its rounds of tries.
type nodeStatusQuery struct {
	env      *engine.Env
	h        *engine.Host
	mux      *datagram.Mux
	tries    *udp.Tries
	query    datagram.Query
	done     func(*NodeStatus)
	attempts int // tries of the rounds before
	verified int // tries of the verification rounds
	lossy    bool
	// waitUntil bounds the wait for the host's other first probes (peerWait from the first wait).
	waitUntil time.Time
	last      datagram.Result

	// The early verification: mu guards what the two queries' results (which may come from different goroutines)
	// and startEarly share. early says the verification queries went out beside the first query's; firstDone and
	// earlyDone that each ended, with firstRes and earlyRes; joined that their joint result went on.
	mu                   sync.Mutex
	early                bool
	firstDone, earlyDone bool
	joined               bool
	firstRes, earlyRes   datagram.Result
}

// startEarly sends the verification's queries beside the first query's last tries, if the host has answered
// another probe by now and the first query still waits.
func (q *nodeStatusQuery) startEarly() {
	q.mu.Lock()
	if q.firstDone || q.early || q.env.Stopping() {
		q.mu.Unlock()
		return
	}
	v := q.h.Peers()
	if !v.Answered {
		q.mu.Unlock()
		return
	}
	q.early, q.lossy, q.verified = true, v.Lossy, verifyTries(v)
	next := q.query
	next.Tries, next.Done = q.verified, q.earlyResult
	q.mu.Unlock()
	q.env.VerifyingQuery()
	q.mux.Submit(next)
}

// firstResult is the end of the first query: its own result unless an early verification runs beside it.
func (q *nodeStatusQuery) firstResult(r datagram.Result) {
	q.mu.Lock()
	q.firstDone, q.firstRes = true, r
	early := q.early
	q.mu.Unlock()
	if !early {
		q.result(r)
		return
	}
	q.tries.Sample(r)
	q.join()
}

func (q *nodeStatusQuery) earlyResult(r datagram.Result) {
	q.mu.Lock()
	q.earlyDone, q.earlyRes = true, r
	q.mu.Unlock()
	q.join()
}

// join ends an early-verified query: at once on an answer (or an ICMP error) to either query, or once both met
// silence, when it goes on as a verification that met silence (waiting for the host's other probes, growing when
// the path shows loss meanwhile).
func (q *nodeStatusQuery) join() {
	q.mu.Lock()
	f, e := q.firstRes, q.earlyRes
	firstDecided, earlyDecided := q.firstDone && f.Outcome != datagram.Silent, q.earlyDone && e.Outcome != datagram.Silent
	if q.joined || (!firstDecided && !earlyDecided && !(q.firstDone && q.earlyDone)) {
		q.mu.Unlock()
		return
	}
	q.joined = true
	q.mu.Unlock()
	switch {
	case firstDecided:
		ns := nodeStatusResult(f, q.tries.Last())
		ns.LostBefore = f.Outcome == datagram.Answered && f.Attempts > 1 && engine.LostBefore(q.tries.Last(), f.RTT)
		q.done(ns)
	case earlyDecided:
		// The mux gives an answer to the query that asked first while it waits: the first query had ended.
		e.Attempts += f.Attempts
		ns := nodeStatusResult(e, q.tries.Last())
		if e.Outcome == datagram.Answered {
			ns.LostBefore = true // silent through the first query's tries, answered to a later one
			ns.Evidence += q.env.Recovered(e.Attempts)
		}
		q.done(ns)
	default:
		q.last = f
		q.last.Attempts += e.Attempts
		q.afterEarly()
	}
}

// afterEarly is an early verification met by silence: it waits for the host's other first probes while they run,
// makes it the longer verification when the path showed loss meanwhile, or reports the silence.
func (q *nodeStatusQuery) afterEarly() {
	v, waiting := q.peersOrWait(q.afterEarly)
	if waiting {
		return
	}
	if !q.lossy && v.Lossy {
		q.growVerification(q.last.Attempts)
		return
	}
	ns := nodeStatusResult(q.last, q.tries.Last())
	ns.Evidence += engine.VerifiedSilence(q.verified)
	q.done(ns)
}

func (q *nodeStatusQuery) result(r datagram.Result) {
	q.tries.Sample(r)
	if r.Outcome == datagram.Silent && q.verified > 0 && !q.lossy && q.h.Lossy() && !q.env.Stopping() {
		// A loss seen meanwhile (a TCP answer to a retransmitted SYN, say) makes it the longer verification.
		q.growVerification(q.attempts + r.Attempts)
		return
	}
	r.Attempts += q.attempts
	if r.Outcome != datagram.Silent || q.h == nil || q.verified > 0 {
		ns := nodeStatusResult(r, q.tries.Last())
		ns.LostBefore = r.Outcome == datagram.Answered && r.Attempts > 1 && engine.LostBefore(q.tries.Last(), r.RTT)
		if q.verified > 0 {
			switch r.Outcome {
			case datagram.Answered:
				ns.Evidence += q.env.Recovered(r.Attempts)
			case datagram.Silent:
				ns.Evidence += engine.VerifiedSilence(q.verified)
			}
		}
		q.done(ns)
		return
	}
	q.last = r
	q.decide()
}

// verifyTries is how many queries the verification of a host whose probes showed v makes.
func verifyTries(v engine.PeerView) int {
	if v.Lossy {
		return LossyVerifyTries
	}
	return VerifyTries
}

// growVerification makes a verification that met silence the longer one, when the path showed loss only meanwhile:
// the queries LossyVerifyTries adds, after attempts in all so far. Their result goes to result.
func (q *nodeStatusQuery) growVerification(attempts int) {
	q.lossy, q.attempts = true, attempts
	next := q.query
	next.Tries = LossyVerifyTries - VerifyTries
	q.verified += next.Tries
	q.mux.Submit(next)
}

// peersOrWait returns what the host's other probes have shown, or, while one of its other first probes still runs
// (at most peerWait in all), calls then again when one of them ends (Host.AwaitPeers) and reports that it waits. A
// stopping scan does not wait and sees nothing: no more queries.
func (q *nodeStatusQuery) peersOrWait(then func()) (engine.PeerView, bool) {
	if q.env.Stopping() {
		return engine.PeerView{}, false
	}
	return q.h.AwaitPeers(&q.waitUntil, peerWait, pending, then)
}

// pending says whether another of the host's first probes still runs.
func pending(v engine.PeerView) bool { return v.Pending }

// decide verifies the silence of a host that answered another probe, waits for the host's other first probes while
// they run, or reports the silence.
func (q *nodeStatusQuery) decide() {
	v, waiting := q.peersOrWait(q.decide)
	if waiting {
		return
	}
	if !v.Answered {
		q.done(nodeStatusResult(q.last, q.tries.Last()))
		return
	}
	q.verified, q.lossy = verifyTries(v), v.Lossy
	q.env.VerifyingQuery()
	q.attempts = q.last.Attempts
	next := q.query
	next.Tries = q.verified
	q.mux.Submit(next)
}

func nodeStatusResult(r datagram.Result, timeout time.Duration) *NodeStatus {
	ns := &NodeStatus{Attempts: r.Attempts, RTT: r.RTT}
	const prefix = "nbstat 137"
	switch r.Outcome {
	case datagram.Answered:
		st, err := netbios.ParseNodeStatusResponse(r.Reply)
		if err != nil {
			ns.State = status.ProtocolError
			ns.Evidence = fmt.Sprintf("%s: the answer is not a valid node status (%v): % x", prefix, err, r.Reply[:min(len(r.Reply), 24)])
			return ns
		}
		fillNodeStatus(ns, &st)
		return ns
	case datagram.Silent:
		ns.State = status.OpenFiltered
		ns.Evidence = fmt.Sprintf("%s: open|filtered, no answer to %d %s of %s (silence is not proof of filtering)",
			prefix, r.Attempts, map[bool]string{true: "query", false: "queries"}[r.Attempts == 1], timeout.Round(time.Millisecond))
		return ns
	}
	if st, evidence, ok := udp.Final(prefix, r); ok {
		ns.State, ns.Evidence = st, evidence
		if st == status.Filtered {
			ns.RejectedBy = r.ICMP.Status().Offender
		}
		return ns
	}
	ns.State, ns.Evidence = status.Error, udp.LocalFailure(prefix, r)
	return ns
}

// fillNodeStatus copies what a node status answer says into the host's facts.
func fillNodeStatus(ns *NodeStatus, st *netbios.NodeStatus) {
	ns.State = status.Answered
	for _, n := range st.Names {
		ns.Names = append(ns.Names, NetBIOSName{
			Name: engine.Printable(n.Name), Suffix: fmt.Sprintf("%02X", n.Suffix), Group: n.Flags.Group(),
			Meaning: n.Meaning(), Flags: n.Flags.String(),
		})
	}
	if name, ok := st.ComputerName(); ok {
		ns.ComputerName = engine.Printable(name)
	}
	if wg, ok := st.Workgroup(); ok {
		ns.Workgroup = engine.Printable(wg)
	}
	_, ns.FileServer = st.FileServer()
	_, mb := st.MasterBrowser()
	_, dmb := st.DomainMasterBrowser()
	ns.MasterBrowser = mb || dmb || st.HasMSBrowse()
	if mac, ok := st.MAC(); ok && !mac.IsZero() {
		ns.MAC = mac.String()
	}
	ns.Evidence = "nbstat 137: answered in " + engine.FormatRTT(ns.RTT) + ", leaks " + ns.Leaks()
}

// Leaks says what an answered node status gives away without authentication.
func (ns *NodeStatus) Leaks() string {
	var parts []string
	var names []string
	for _, n := range ns.Names {
		names = append(names, fmt.Sprintf("%s<%s>", n.Name, n.Suffix))
	}
	parts = append(parts, fmt.Sprintf("%d names (%s)", len(ns.Names), strings.Join(names, " ")))
	if ns.Workgroup != "" {
		parts = append(parts, "workgroup "+ns.Workgroup)
	}
	if ns.MAC != "" {
		parts = append(parts, "MAC "+ns.MAC)
	} else {
		parts = append(parts, "MAC unknown")
	}
	return strings.Join(parts, ", ")
}
