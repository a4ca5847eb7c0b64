// Package tcp is the "tcp connect" step: it proves whether a TCP port accepts a connection, and answers the catalog's
// tcp and ofm-port checks.
package tcp

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/status"
)

// StepName is the name of the connect step for a port: "tcp 445".
func StepName(port int) string { return fmt.Sprintf("tcp %d", port) }

// Steps returns one connect step per port. ofmPort is the OFM service port the user named (0: none), which the
// ofm-port check reads.
func Steps(ports []int, ofmPort int) []engine.Step {
	steps := make([]engine.Step, 0, len(ports))
	for _, p := range ports {
		steps = append(steps, engine.Step{
			Name:    StepName(p),
			Key:     "tcp",
			Answers: []string{"tcp", "ofm-port"},
			Run: func(ctx context.Context, env *engine.Env, h *engine.Host) engine.Result {
				return Connect(ctx, env, h.Addr, p)
			},
			Internal: func(why string) engine.Result {
				return engine.PortResult{Port: p, Protocol: "tcp", State: status.Error, Evidence: why}
			},
			Observe: func(h *engine.Host, c catalog.Check) catalog.Observation { return observe(h, c, ofmPort) },
		})
	}
	return steps
}

// Connect is the "tcp connect" step: silence is retried env.Retries() more times; a refusal or an unreachable
// answer is final at once. The caller holds a socket of the scan's budget.
func Connect(ctx context.Context, env *engine.Env, addr netip.Addr, port int) engine.PortResult {
	r := engine.PortResult{Port: port, Protocol: "tcp"}
	timeouts := 0
	for {
		r.Attempts++
		conn, rtt, err := env.DialTCP(ctx, addr, uint16(port))
		if err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				// Close with a reset: a connect probe leaves no TIME_WAIT behind, on either side.
				_ = tc.SetLinger(0)
			}
			conn.Close()
			r.State, r.RTT = status.Open, rtt
			r.Evidence = fmt.Sprintf("tcp %d: open, connected in %s", port, engine.FormatRTT(rtt))
			return r
		}
		switch st := status.Classify(err); st {
		case status.Closed, status.Reset:
			r.State, r.RTT = status.Closed, rtt
			r.Evidence = fmt.Sprintf("tcp %d: closed, connection refused in %s", port, engine.FormatRTT(rtt))
			return r
		case status.Unreachable:
			r.State, r.RTT = status.Unreachable, rtt
			r.Evidence = fmt.Sprintf("tcp %d: unreachable, %s after %s", port, engine.ErrnoText(err), engine.FormatRTT(rtt))
			return r
		case status.Denied:
			r.State = status.Filtered
			r.Evidence = fmt.Sprintf("tcp %d: filtered, this machine's own firewall refused the connect", port)
			return r
		case status.Timeout, status.Cancelled:
			if ctx.Err() != nil {
				r.State, r.Evidence = status.Error, fmt.Sprintf("tcp %d: scan cancelled", port)
				return r
			}
			timeouts++
			if timeouts > env.Retries() {
				r.State = status.Filtered
				r.Evidence = fmt.Sprintf("tcp %d: filtered, no answer to %d %s of %s", port, timeouts, engine.Plural(timeouts, "attempt"), env.Timeout())
				return r
			}
		case status.Local:
			// This machine ran short (file descriptors, buffers, ports) through every retry DialTCP made: not an
			// attempt on the host, and not a property of it.
			r.Attempts--
			r.State, r.Evidence = status.Error, fmt.Sprintf("tcp %d: this machine ran out of resources: %v", port, err)
			return r
		default:
			r.State, r.Evidence = status.Error, fmt.Sprintf("tcp %d: %v", port, err)
			return r
		}
	}
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
	return catalog.Observation{State: string(p.State), Evidence: p.Evidence}
}
