package probe

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// The UDP port states, as nmap names them: a reply is open; an ICMP port unreachable is closed; silence after every
// try is open|filtered, because a UDP service need not answer a datagram it does not understand.
const (
	StateOpenFiltered = "open|filtered"
)

// udpPort is the "udp port" step for ports without a safe query (the NetBIOS datagram service on 138, DHCP on 67, SMB
// on UDP 445): it sends an empty datagram on a connected socket and waits for an answer or an ICMP error, up to
// UDPRetries+1 times, because Linux and others rate-limit ICMP unreachables.
func (s *Scanner) udpPort(ctx context.Context, addr netip.Addr, port int) PortResult {
	r := PortResult{Port: port, Protocol: "udp"}
	conn, err := s.dialUDP(ctx, addr, port)
	if err != nil {
		return udpSendFailure(r, err)
	}
	defer conn.Close()
	buf := make([]byte, 512)
	for r.Attempts < s.opts.UDPRetries+1 && ctx.Err() == nil {
		if s.pace(ctx) != nil {
			break
		}
		r.Attempts++
		start := time.Now()
		conn.SetDeadline(start.Add(s.opts.UDPTimeout))
		_, err := conn.Write(nil)
		if err == nil {
			_, err = conn.Read(buf)
		}
		if err == nil {
			r.State, r.RTT = StateOpen, time.Since(start)
			r.Evidence = fmt.Sprintf("udp %d: open, answered in %s", port, formatRTT(r.RTT))
			return r
		}
		if st, done := udpErrorState(err); done {
			return udpFinal(r, st, err, time.Since(start))
		}
	}
	r.State = StateOpenFiltered
	r.Evidence = fmt.Sprintf("udp %d: open|filtered, no answer and no ICMP error to %d %s of %s (no safe query exists for this port)",
		port, r.Attempts, plural(r.Attempts, "datagram"), s.opts.UDPTimeout)
	return r
}

// udpSendFailure is the result of a UDP port whose datagram could not be sent: the kernel's refusal when it says
// something about the host (unreachable, a broadcast address), else an error of this machine.
func udpSendFailure(r PortResult, err error) PortResult {
	if st, done := udpErrorState(err); done {
		return udpFinal(r, st, err, 0)
	}
	r.State, r.Evidence = StateError, fmt.Sprintf("udp %d: could not send: %v", r.Port, err)
	return r
}

func udpFinal(r PortResult, state string, err error, rtt time.Duration) PortResult {
	r.RTT = rtt
	if state == NBClosed {
		r.State = StateClosed
		r.Evidence = fmt.Sprintf("udp %d: closed, ICMP port unreachable after %s", r.Port, formatRTT(rtt))
	} else {
		r.State = StateUnreachable
		r.Evidence = fmt.Sprintf("udp %d: unreachable, %s%s", r.Port, errnoText(err), afterRTT(rtt))
	}
	return r
}
