// Package status is ofmprobe's one vocabulary for how a probe ended, shared by every step, the catalog, the report
// schema and the writers, with the one classifier that maps Go errors and ICMP errors into it.
//
// A State is what a report prints. Some states are port states (open, closed, filtered, unreachable, open|filtered),
// some are the outcome of one protocol step (answered, positive, smb2, mounted, ...), and some are causes that a step
// meets on the way and turns into one of those (timeout, reset, refused by this machine, ...). Each step documents
// which it reports; catalog.Kinds lists them per check kind, from the constants here.
package status

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// State is one word of the vocabulary.
type State string

// Port and reachability states, as nmap names them.
const (
	// Open: the port accepted a connection, or a UDP port answered.
	Open State = "open"
	// Closed: the host refused (TCP RST, ICMP port unreachable).
	Closed State = "closed"
	// Filtered: no answer to any attempt, or a firewall answered for the host (ICMP administratively, host or
	// network prohibited).
	Filtered State = "filtered"
	// Unreachable: the network said the host or network cannot be reached (ICMP host or network unreachable, no ARP
	// answer on the local link).
	Unreachable State = "unreachable"
	// OpenFiltered: a UDP port or query that met silence after every try. A UDP service need not answer a datagram it
	// does not understand, and ICMP errors are rate-limited, so silence proves nothing.
	OpenFiltered State = "open|filtered"
	// Error: this machine could not probe (out of descriptors, a send its own firewall refused, a cancelled scan):
	// never a property of the host.
	Error State = "error"
)

// Exchange outcomes: how a protocol exchange on an open connection ended, when it did not end with an answer.
const (
	Timeout       State = "timeout"
	ProtocolError State = "protocol error"
	Cancelled     State = "cancelled"
	Internal      State = "internal"
)

// Causes that Classify returns and that steps turn into the states above; they never appear in a report.
const (
	OK State = "ok"
	// Reset: the peer reset or closed the connection in the middle of an exchange.
	Reset State = "reset"
	// Local: this machine ran short (descriptors, buffers, ports, memory): the engine retries, and never reports it
	// as a property of the host.
	Local State = "local resource"
	// Denied: the operation was refused with a permission error (EACCES, EPERM): on a connect or a send, this
	// machine's own firewall or a broadcast address; on a file, access denied.
	Denied State = "denied"
	// Missing: the thing asked for does not exist.
	Missing State = "missing"
)

// Step outcomes: the positive (and some negative) answers of each protocol step.
const (
	// Answered: node status on UDP 137 returned a name table.
	Answered State = "answered"
	// Positive and Negative: the NetBIOS session service accepted or refused a session request.
	Positive State = "positive"
	Negative State = "negative"
	// SMB2, SMB1Only, NoDialect: what an SMB negotiate found. SessionRefused: SMB over 139 could not start because
	// every NetBIOS session request was refused.
	SMB2           State = "smb2"
	SMB1Only       State = "smb1 only"
	NoDialect      State = "no common dialect"
	SessionRefused State = "session refused"
	// Accepted and Disabled: whether a server that speaks SMB2 still accepts SMB1.
	Accepted State = "accepted"
	Disabled State = "disabled"
	// Bound and Rejected: the RPC endpoint mapper answered a bind with bind_ack or bind_nak.
	Bound    State = "bound"
	Rejected State = "rejected"
	// Share outcomes: OFMLOG$ mounted, or why not. Refused is any other NTSTATUS from the server.
	Mounted         State = "mounted"
	AccessDenied    State = "access denied"
	LogonFailure    State = "logon failure"
	GuestRefused    State = "guest refused"
	SigningRequired State = "signing required"
	Refused         State = "refused"
	// Present: an OFM file exists on the share. Connected: IPC$ accepted a tree connect.
	Present   State = "present"
	Connected State = "connected"
)

// ErrProtocol marks an answer that is not what the protocol allows. Steps wrap it so that Classify can tell a peer
// speaking garbage from one that does not speak at all.
var ErrProtocol = errors.New("protocol error")

// Classify maps a Go error from a network operation to the cause it shows: OK for nil, Closed for a refused connect,
// Timeout, Unreachable, Reset, Local, Denied, Missing, ProtocolError, Cancelled, or Error for anything else.
func Classify(err error) State {
	if err == nil {
		return OK
	}
	switch {
	case errors.Is(err, ErrProtocol):
		return ProtocolError
	case errors.Is(err, context.Canceled):
		return Cancelled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, syscall.ETIMEDOUT):
		return Timeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return Closed
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EHOSTDOWN), errors.Is(err, syscall.ENETDOWN):
		return Unreachable
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return Reset
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE), errors.Is(err, syscall.ENOBUFS),
		errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.ENOMEM), errors.Is(err, syscall.EAGAIN):
		return Local
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		// The peer closed the connection in the middle of an exchange.
		return Reset
	case errors.Is(err, os.ErrPermission):
		return Denied
	case errors.Is(err, os.ErrNotExist):
		return Missing
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return Timeout
	}
	return Error
}

// ICMP origins, types and codes that FromICMP reads (RFC 792, RFC 1812 §5.2.7.1, RFC 4443; linux/errqueue.h).
const (
	OriginICMP  = 2
	OriginICMP6 = 3

	icmpDestUnreachable  = 3
	icmp6DestUnreachable = 1
)

// ICMP is an ICMP error the kernel queued for a socket (IP_RECVERR): who sent it and what it said.
type ICMP struct {
	Origin, Type, Code uint8
	// Errno is the error the kernel mapped it to.
	Errno syscall.Errno
	// Offender is the address of the host or router that sent it; invalid when the kernel gave none.
	Offender string
}

// FromICMP maps an ICMP error to a state: port unreachable is Closed; administratively, host or network prohibited
// (a firewall that answers) is Filtered; any other destination unreachable is Unreachable. The second result says
// whether a firewall rejected the probe.
func FromICMP(m ICMP) (State, bool) {
	switch m.Origin {
	case OriginICMP:
		if m.Type == icmpDestUnreachable {
			switch m.Code {
			case 3: // port unreachable
				return Closed, false
			case 9, 10, 13: // network, host, communication administratively prohibited
				return Filtered, true
			}
			return Unreachable, false
		}
	case OriginICMP6:
		if m.Type == icmp6DestUnreachable {
			switch m.Code {
			case 4: // port unreachable
				return Closed, false
			case 1, 5, 6: // administratively prohibited, source address failed policy, reject route
				return Filtered, true
			}
			return Unreachable, false
		}
	}
	// Not an ICMP error (a local one), or another type (time exceeded): the errno tells.
	st := Classify(m.Errno)
	if st == Denied {
		return Filtered, true
	}
	return st, false
}

// ICMPText words an ICMP error for evidence: "ICMP administratively prohibited from 198.18.0.1".
func ICMPText(m ICMP) string {
	name := icmpName(m)
	if m.Offender != "" {
		return name + " from " + m.Offender
	}
	return name
}

func icmpName(m ICMP) string {
	switch m.Origin {
	case OriginICMP:
		if m.Type == icmpDestUnreachable {
			switch m.Code {
			case 0:
				return "ICMP network unreachable"
			case 1:
				return "ICMP host unreachable"
			case 2:
				return "ICMP protocol unreachable"
			case 3:
				return "ICMP port unreachable"
			case 9:
				return "ICMP network administratively prohibited"
			case 10:
				return "ICMP host administratively prohibited"
			case 13:
				return "ICMP administratively prohibited"
			}
			return "ICMP destination unreachable (code " + itoa(int(m.Code)) + ")"
		}
		if m.Type == 11 {
			return "ICMP time exceeded"
		}
		return "ICMP type " + itoa(int(m.Type)) + " code " + itoa(int(m.Code))
	case OriginICMP6:
		if m.Type == icmp6DestUnreachable {
			switch m.Code {
			case 0:
				return "ICMPv6 no route to destination"
			case 1:
				return "ICMPv6 administratively prohibited"
			case 3:
				return "ICMPv6 address unreachable"
			case 4:
				return "ICMPv6 port unreachable"
			case 5:
				return "ICMPv6 source address failed policy"
			case 6:
				return "ICMPv6 reject route"
			}
			return "ICMPv6 destination unreachable (code " + itoa(int(m.Code)) + ")"
		}
		return "ICMPv6 type " + itoa(int(m.Type)) + " code " + itoa(int(m.Code))
	}
	if m.Errno != 0 {
		return m.Errno.Error()
	}
	return "an error without ICMP details"
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [4]byte
	i := len(b)
	for n > 0 && i > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
