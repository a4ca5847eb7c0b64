package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// The TCP port states. Filtered means no answer within the timeout on any attempt; unreachable means the network said
// the host or network cannot be reached (ICMP unreachable, or no ARP answer on the local link).
const (
	StateOpen        = "open"
	StateClosed      = "closed"
	StateFiltered    = "filtered"
	StateUnreachable = "unreachable"
	StateError       = "error"
)

// PortResult is what one port's probe observed.
type PortResult struct {
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
	State    string `json:"state"`
	// RTT is the time the deciding attempt took: the connect for open, the refusal for closed.
	RTT time.Duration `json:"-"`
	// Attempts is how many connects were made; more than one only when earlier ones met silence.
	Attempts int    `json:"attempts"`
	Evidence string `json:"evidence"`
}

// maxLocalRetries bounds how often one probe waits out this machine's own resource shortages (EMFILE, ENOBUFS,
// EADDRNOTAVAIL) before it reports the port as an error rather than as a property of the host.
const maxLocalRetries = 30

// tcpConnect is the "tcp connect" step: it proves whether a port accepts a TCP connection. Silence is retried up to
// retries more times; a refusal or an unreachable answer is final at once. The caller holds a socket of the scan's
// budget.
func (s *Scanner) tcpConnect(ctx context.Context, addr netip.Addr, port int) PortResult {
	r := PortResult{Port: port, Protocol: "tcp"}
	timeouts := 0
	for {
		r.Attempts++
		conn, rtt, err := s.dialTCPTimed(ctx, addr, uint16(port))
		if err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				// Close with a reset: a connect probe leaves no TIME_WAIT behind, on either side.
				_ = tc.SetLinger(0)
			}
			conn.Close()
		}
		if err == nil {
			r.State, r.RTT = StateOpen, rtt
			r.Evidence = fmt.Sprintf("tcp %d: open, connected in %s", port, formatRTT(rtt))
			return r
		}
		switch st := Classify(err); st {
		case StatusRefused, StatusReset:
			r.State, r.RTT = StateClosed, rtt
			r.Evidence = fmt.Sprintf("tcp %d: closed, connection refused in %s", port, formatRTT(rtt))
			return r
		case StatusUnreachable:
			r.State, r.RTT = StateUnreachable, rtt
			r.Evidence = fmt.Sprintf("tcp %d: unreachable, %s after %s", port, errnoText(err), formatRTT(rtt))
			return r
		case StatusAccessDenied:
			r.State = StateFiltered
			r.Evidence = fmt.Sprintf("tcp %d: filtered, this machine's own firewall refused the connect", port)
			return r
		case StatusTimeout, StatusCanceled:
			if ctx.Err() != nil {
				r.State, r.Evidence = StateError, fmt.Sprintf("tcp %d: scan cancelled", port)
				return r
			}
			timeouts++
			if timeouts > s.opts.Retries {
				r.State = StateFiltered
				r.Evidence = fmt.Sprintf("tcp %d: filtered, no answer to %d %s of %s", port, timeouts, plural(timeouts, "attempt"), s.opts.Timeout)
				return r
			}
		case StatusLocal:
			// This machine ran short (file descriptors, buffers, ports) through every retry dialTCPTimed made:
			// not an attempt on the host, and not a property of it.
			r.Attempts--
			r.State, r.Evidence = StateError, fmt.Sprintf("tcp %d: this machine ran out of resources: %v", port, err)
			return r
		default:
			r.State, r.Evidence = StateError, fmt.Sprintf("tcp %d: %v", port, err)
			return r
		}
	}
}

func formatRTT(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

// afterRTT is " after 1.2 ms", or nothing when no packet left (the kernel refused at once).
func afterRTT(d time.Duration) string {
	if d < time.Microsecond {
		return ""
	}
	return " after " + formatRTT(d)
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// errnoText names a network error by its errno ("no route to host"), without the addresses Go's error strings repeat.
func errnoText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if errno == syscall.EACCES {
			return "not sent, the kernel refused (a broadcast address)"
		}
		return errno.Error()
	}
	return err.Error()
}
