package engine

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/engine/connect"
	"github.com/ofmprobe/ofmprobe/probe/status"
)

// ConnectResult is how one non-blocking connect ended.
type ConnectResult = connect.Result

// connectorState is the scan's TCP connect paths, opened on first use: the raw SYN prober where it can be opened
// and the connector, for what the prober does not take (IPv6, connects with a TTL of their own) or all of it.
type connectorState struct {
	once sync.Once
	c    *connect.Connector
	syn  *connect.SYN
	err  error
	// synErr is why the SYN prober asked for could not be opened (no raw sockets without root or CAP_NET_RAW).
	synErr error
}

// errScriptedDialer means the options carry a Dialer (a test's scripted one): connects go through it, not the
// connector.
var errScriptedDialer = errors.New("connects go through the configured dialer")

// synFactor is how many more SYNs the raw prober keeps in flight than the connector has sockets: a SYN in flight
// is about 100 bytes and no file descriptor, so it is not the open-file limit that bounds it.
const synFactor = 2

// connector returns the scan's TCP connector: every connect probe in flight is a non-blocking socket in one epoll
// set, with no goroutine of its own. It is unavailable outside Linux and when the options name a Dialer. It also
// opens the raw SYN prober when Options.TCPProbe asks for it and raw sockets are allowed.
func (e *Env) connector() (*connect.Connector, error) {
	e.conn.once.Do(func() {
		if e.opts.Dialer != nil {
			e.conn.err = errScriptedDialer
			return
		}
		e.conn.c, e.conn.err = connect.Open(connect.Config{Pace: e.paceFunc(), MaxInFlight: e.connectBudget()})
		if e.conn.err == nil && (e.opts.TCPProbe == TCPProbeSYN || e.opts.TCPProbe == TCPProbeAuto) {
			e.conn.syn, e.conn.synErr = connect.OpenSYN(connect.Config{Pace: e.paceFunc(), MaxInFlight: synFactor * e.connectBudget()})
		}
	})
	return e.conn.c, e.conn.err
}

// synUnavailable is why the SYN probes asked for (Options.TCPProbe) cannot be made, when they cannot: the connects
// then go through the connector. It opens the connect paths.
func (e *Env) synUnavailable() error {
	e.connector()
	return e.conn.synErr
}

// ConnectStats is what the scan's connector did: its counters and its congestion window.
type ConnectStats = connect.Stats

// connectStats returns the counters of the connector and of the SYN prober; each is zero when it made no connect.
func (e *Env) connectStats() (connector, syn ConnectStats) {
	if e.conn.c != nil {
		connector = e.conn.c.Stats()
	}
	if e.conn.syn != nil {
		syn = e.conn.syn.Stats()
	}
	return connector, syn
}

// Lost reports a packet lost on the way to addr, a host that answers (a port that answered only when tried again, a
// dial to a port that had just accepted that met silence): the scan sends more than the path carries, and the
// congestion window of the connect path that probes addr is cut (the SYN prober's, when it takes addr, else the
// connector's). A window cut for losses it did not carry would stay down: the connector's, with --syn, carries only
// the hop finder's probes, whose ICMP answers do not grow it. Without a connector it does nothing.
func (e *Env) Lost(addr netip.Addr) {
	c, err := e.connector()
	switch {
	case err != nil:
	case e.conn.syn != nil && e.conn.syn.Handles(addr, 0):
		e.conn.syn.Lost()
	default:
		c.Lost()
	}
}

func (e *Env) paceFunc() func(context.Context) error {
	if e.limiter == nil {
		return nil
	}
	return e.Pace
}

// ConnectProbe starts a connect to addr:port that waits at most timeout (ConnectTimeout or RetryConnectTimeout) and
// calls done with the result, from another goroutine. Through the connector it holds a socket but no goroutine while it waits; elsewhere (other
// systems, a test's scripted dialer) it dials on a goroutine of its own, within the socket budget.
func (e *Env) ConnectProbe(ctx context.Context, addr netip.Addr, port uint16, timeout time.Duration, done func(ConnectResult)) {
	e.connectProbe(ctx, addr, port, 0, timeout, nil, done)
}

// ConnectProbeStarted is ConnectProbe that calls started when the connect leaves (not while it waits for a
// socket), so that the caller's own timer for it starts as its timeout does.
func (e *Env) ConnectProbeStarted(ctx context.Context, addr netip.Addr, port uint16, timeout time.Duration, started func(), done func(ConnectResult)) {
	e.connectProbe(ctx, addr, port, 0, timeout, started, done)
}

// ConnectProbeTTL is ConnectProbe with the SYN's time to live set to ttl (0: the system's), for finding the hop
// where a port is dropped. Only the connector sets a TTL; elsewhere ttl is ignored.
func (e *Env) ConnectProbeTTL(ctx context.Context, addr netip.Addr, port uint16, ttl int, timeout time.Duration, done func(ConnectResult)) {
	e.connectProbe(ctx, addr, port, ttl, timeout, nil, done)
}

func (e *Env) connectProbe(ctx context.Context, addr netip.Addr, port uint16, ttl int, timeout time.Duration, started func(), done func(ConnectResult)) {
	if c, err := e.connector(); err == nil {
		a := connect.Attempt{Dst: netip.AddrPortFrom(addr, port), Timeout: timeout, TTL: ttl, Started: started, Done: done}
		if e.conn.syn != nil && e.conn.syn.Handles(addr, ttl) {
			e.conn.syn.Connect(a)
			return
		}
		c.Connect(a)
		return
	}
	go func() {
		if err := e.acquire(ctx); err != nil {
			done(ConnectResult{Outcome: connect.Canceled, Err: err})
			return
		}
		defer e.release()
		if started != nil {
			started()
		}
		conn, rtt, err := e.dialTCP(ctx, addr, port, timeout)
		if err == nil {
			conn.Close()
		}
		done(dialResult(rtt, err))
	}()
}

// dialResult describes a dial as the connector would.
func dialResult(rtt time.Duration, err error) ConnectResult {
	r := ConnectResult{RTT: rtt, Err: err}
	switch status.Classify(err) {
	case status.OK:
		r.Outcome, r.Err = connect.Connected, nil
	case status.Closed, status.Reset:
		r.Outcome = connect.Refused
	case status.Unreachable:
		r.Outcome = connect.Unreachable
	case status.Timeout:
		r.Outcome = connect.TimedOut
	case status.Denied:
		r.Outcome = connect.Denied
	case status.Local:
		r.Outcome = connect.LocalError
	case status.Cancelled:
		r.Outcome = connect.Canceled
	default:
		r.Outcome = connect.Failed
	}
	return r
}

func (e *Env) closeConnector() {
	if e.conn.syn != nil {
		e.conn.syn.Close()
	}
	if e.conn.c != nil {
		e.conn.c.Close()
	}
}

// waitingForSockets is the connect probes queued for a socket of the connector: hosts admitted beyond what the
// budget can start would wait, and cost memory, for nothing.
func (e *Env) waitingForSockets() int {
	if e.conn.c == nil {
		return 0
	}
	n := e.conn.c.Queued()
	if e.conn.syn != nil {
		n += e.conn.syn.Queued() / synFactor // measured against the connector's budget
	}
	return n
}
