package datagram

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"syscall"

	"github.com/ofmprobe/ofmprobe/probe/status"
)

// The errors of ParseExtendedError and of the control-message walk, one for each way the bytes can be wrong.
var (
	// ErrNoExtendedError says the control messages hold no IP_RECVERR or IPV6_RECVERR message.
	ErrNoExtendedError = errors.New("datagram: no extended socket error in the control messages")
	// ErrShortControlMessage says a control message header is cut short or gives a length that does not fit.
	ErrShortControlMessage = errors.New("datagram: control message cut short")
	// ErrShortExtendedError says the extended socket error is shorter than struct sock_extended_err.
	ErrShortExtendedError = errors.New("datagram: extended socket error cut short")
	// ErrShortOffender says the offender address after the extended error is shorter than its family's sockaddr.
	ErrShortOffender = errors.New("datagram: offender address cut short")
	// ErrOffenderFamily says the offender address is of a family other than IPv4, IPv6 or none.
	ErrOffenderFamily = errors.New("datagram: offender address of an unknown family")
)

// The origins of an extended socket error (SO_EE_ORIGIN_* in linux/errqueue.h).
const (
	OriginNone  = 0
	OriginLocal = 1
	OriginICMP  = 2
	OriginICMP6 = 3
)

// Linux control message levels and types, the same on every architecture.
const (
	solIP       = 0
	solIPv6     = 41
	ipRecvErr   = 11
	ipv6RecvErr = 25
	afInet      = 2
	afInet6     = 10
)

// The layout of a Linux struct cmsghdr: a size_t length, an int level and an int type, padded to the alignment of a
// long. size_t and long are the size of a pointer, which is the size of a Go int on every platform Go supports.
const (
	wordSize      = strconv.IntSize / 8
	cmsgHeaderLen = (wordSize + 8 + wordSize - 1) &^ (wordSize - 1)
	// sizeofExtendedErr is sizeof(struct sock_extended_err): errno u32, origin, type, code, pad u8, info u32, data u32.
	sizeofExtendedErr = 16
	sizeofSockaddrIn  = 16
	sizeofSockaddrIn6 = 28
)

// ICMP is what the kernel's error queue says about a datagram: a struct sock_extended_err (linux/errqueue.h) and the
// address of the host that sent the error (SO_EE_OFFENDER, the sockaddr that follows the struct).
type ICMP struct {
	// Origin is where the error comes from: OriginICMP, OriginICMP6 or OriginLocal (this machine, no ICMP).
	Origin uint8
	// Type and Code are the ICMP (RFC 792) or ICMPv6 (RFC 4443 section 3.1) type and code.
	Type, Code uint8
	// Errno is the kernel's translation of the error, ECONNREFUSED for a port unreachable.
	Errno syscall.Errno
	// Info is ee_info: the next-hop MTU for "fragmentation needed" and "packet too big".
	Info uint32
	// Offender is the address that sent the ICMP error, which is not the destination when a router or a firewall
	// answers; it is the zero Addr when the kernel names none (a local error).
	Offender netip.Addr
}

// Status is the error in the vocabulary's terms, which status.FromICMP classifies: the one place that reads ICMP
// types and codes.
func (e ICMP) Status() status.ICMP {
	m := status.ICMP{Origin: e.Origin, Type: e.Type, Code: e.Code, Errno: e.Errno}
	if e.Offender.IsValid() {
		m.Offender = e.Offender.String()
	}
	return m
}

// isICMP reports whether the error came in an ICMP or ICMPv6 message, not from this machine.
func (e ICMP) isICMP() bool { return e.Origin == OriginICMP || e.Origin == OriginICMP6 }

// Closed reports whether the error is a port unreachable (ICMP type 3 code 3, ICMPv6 type 1 code 4): the host is up
// and nothing listens on the port.
func (e ICMP) Closed() bool {
	st, _ := status.FromICMP(e.Status())
	return e.isICMP() && st == status.Closed
}

// Filtered reports whether the error says a firewall refused the datagram (ICMP administratively, host or network
// prohibited; ICMPv6 administratively prohibited, source address failed policy, reject route).
func (e ICMP) Filtered() bool {
	_, firewall := status.FromICMP(e.Status())
	return e.isICMP() && firewall
}

// ParseExtendedError finds the IP_RECVERR or IPV6_RECVERR message among the control messages of an MSG_ERRQUEUE read
// (oob, as recvmsg filled it) and decodes the struct sock_extended_err and the offender address after it.
func ParseExtendedError(oob []byte) (ICMP, error) {
	var (
		data  []byte
		found bool
	)
	err := walkControlMessages(oob, func(level, typ int32, d []byte) bool {
		if (level == solIP && typ == ipRecvErr) || (level == solIPv6 && typ == ipv6RecvErr) {
			data, found = d, true
			return false
		}
		return true
	})
	if err != nil {
		return ICMP{}, err
	}
	if !found {
		return ICMP{}, ErrNoExtendedError
	}
	return parseExtendedErr(data)
}

// parseExtendedErr decodes the data of an IP_RECVERR or IPV6_RECVERR control message.
func parseExtendedErr(b []byte) (ICMP, error) {
	if len(b) < sizeofExtendedErr {
		return ICMP{}, ErrShortExtendedError
	}
	ne := binary.NativeEndian
	e := ICMP{
		Errno:  syscall.Errno(ne.Uint32(b[0:4])),
		Origin: b[4],
		Type:   b[5],
		Code:   b[6],
		Info:   ne.Uint32(b[8:12]),
	}
	off := b[sizeofExtendedErr:]
	if len(off) < 2 {
		return e, nil // no offender at all
	}
	switch ne.Uint16(off[0:2]) {
	case 0: // AF_UNSPEC: the kernel names no offender
	case afInet:
		if len(off) < 8 {
			return ICMP{}, ErrShortOffender
		}
		e.Offender = netip.AddrFrom4([4]byte(off[4:8]))
	case afInet6:
		if len(off) < 24 {
			return ICMP{}, ErrShortOffender
		}
		e.Offender = netip.AddrFrom16([16]byte(off[8:24])).Unmap()
	default:
		return ICMP{}, ErrOffenderFamily
	}
	return e, nil
}

// walkControlMessages calls f with the level, type and data of each control message in oob, in order, until f
// returns false. The layout is Linux's (CMSG_FIRSTHDR, CMSG_NXTHDR).
func walkControlMessages(oob []byte, f func(level, typ int32, data []byte) bool) error {
	ne := binary.NativeEndian
	for len(oob) > 0 {
		if len(oob) < cmsgHeaderLen {
			return ErrShortControlMessage
		}
		var n uint64
		if wordSize == 8 {
			n = ne.Uint64(oob[0:8])
		} else {
			n = uint64(ne.Uint32(oob[0:4]))
		}
		if n < cmsgHeaderLen || n > uint64(len(oob)) {
			return ErrShortControlMessage
		}
		level := int32(ne.Uint32(oob[wordSize : wordSize+4]))
		typ := int32(ne.Uint32(oob[wordSize+4 : wordSize+8]))
		if !f(level, typ, oob[cmsgHeaderLen:n]) {
			return nil
		}
		next := (n + wordSize - 1) &^ (wordSize - 1)
		if next >= uint64(len(oob)) {
			return nil
		}
		oob = oob[next:]
	}
	return nil
}
