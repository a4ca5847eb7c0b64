package netbios

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// SessionHeaderLen is the length of a session service header
// (RFC 1002 §4.3.1): TYPE, FLAGS and LENGTH.
const SessionHeaderLen = 4

// MaxSessionLength is the largest LENGTH a session header can carry: 17
// bits, with the FLAGS extension bit as the top bit.
const MaxSessionLength = 0x1FFFF

// sessionLengthExt is the FLAGS bit that extends LENGTH to 17 bits.
const sessionLengthExt = 0x01

// SessionType is the TYPE of a session service message (RFC 1002 §4.3.1).
type SessionType uint8

// Session message types.
const (
	SessionMessage          SessionType = 0x00
	SessionRequest          SessionType = 0x81
	SessionPositiveResponse SessionType = 0x82
	SessionNegativeResponse SessionType = 0x83
	SessionRetargetResponse SessionType = 0x84
	SessionKeepAlive        SessionType = 0x85
)

// String names the message type.
func (t SessionType) String() string {
	switch t {
	case SessionMessage:
		return "session message"
	case SessionRequest:
		return "session request"
	case SessionPositiveResponse:
		return "positive session response"
	case SessionNegativeResponse:
		return "negative session response"
	case SessionRetargetResponse:
		return "retarget session response"
	case SessionKeepAlive:
		return "session keepalive"
	}
	return fmt.Sprintf("session type 0x%02x", uint8(t))
}

// SessionHeader is the 4-byte header of every session service message
// (RFC 1002 §4.3.1). Length counts the bytes that follow the header.
type SessionHeader struct {
	Type   SessionType
	Flags  uint8
	Length uint32
}

// ParseSessionHeader decodes the session service header (RFC 1002 §4.3.1)
// at the start of b. Bit 0 of FLAGS is the top bit of the 17-bit LENGTH;
// the other flag bits are reserved and must be zero. Bytes after the
// header are not examined.
func ParseSessionHeader(b []byte) (SessionHeader, error) {
	if len(b) < SessionHeaderLen {
		return SessionHeader{}, fmt.Errorf("%w: session header is %d bytes, need %d", ErrShort, len(b), SessionHeaderLen)
	}
	h := SessionHeader{Type: SessionType(b[0]), Flags: b[1]}
	if h.Flags&^sessionLengthExt != 0 {
		return SessionHeader{}, fmt.Errorf("%w: flags 0x%02x", ErrBadFlags, h.Flags)
	}
	h.Length = uint32(h.Flags&sessionLengthExt)<<16 | uint32(binary.BigEndian.Uint16(b[2:]))
	return h, nil
}

// AppendSessionHeader appends a session service header (RFC 1002 §4.3.1)
// with h's type and length to b, setting the FLAGS extension bit when the
// length needs 17 bits. h.Flags is ignored. On error b is returned unchanged.
func AppendSessionHeader(b []byte, h SessionHeader) ([]byte, error) {
	if h.Length > MaxSessionLength {
		return b, fmt.Errorf("%w: length %d exceeds %d", ErrBadLength, h.Length, MaxSessionLength)
	}
	return append(b, byte(h.Type), byte(h.Length>>16), byte(h.Length>>8), byte(h.Length)), nil
}

// AppendSessionRequest appends a session request (RFC 1002 §4.3.2) to b:
// type 0x81, then the called name and the calling name, each encoded as
// AppendName does. Without scopes the length is 0x44 and 72 bytes are
// added. The called name is usually the server's <20> name or *SMBSERVER
// with suffix 0x20; the calling name is the client's own name with suffix
// 0x00. On error b is returned unchanged.
func AppendSessionRequest(b []byte, called, calling Name) ([]byte, error) {
	orig := b
	b = append(b, byte(SessionRequest), 0, 0, 0)
	start := len(b)
	b, err := AppendName(b, called)
	if err != nil {
		return orig, fmt.Errorf("called name: %w", err)
	}
	b, err = AppendName(b, calling)
	if err != nil {
		return orig, fmt.Errorf("calling name: %w", err)
	}
	n := len(b) - start // at most 2 × 255: fits 16 bits
	binary.BigEndian.PutUint16(b[start-2:], uint16(n))
	return b, nil
}

// SessionError is the error code of a negative session response
// (RFC 1002 §4.3.4).
type SessionError uint8

// Negative session response error codes.
const (
	NotListeningOnCalledName   SessionError = 0x80
	NotListeningForCallingName SessionError = 0x81
	CalledNameNotPresent       SessionError = 0x82
	InsufficientResources      SessionError = 0x83
	UnspecifiedError           SessionError = 0x8F
)

// String describes the error code.
func (e SessionError) String() string {
	switch e {
	case NotListeningOnCalledName:
		return "not listening on called name"
	case NotListeningForCallingName:
		return "not listening for calling name"
	case CalledNameNotPresent:
		return "called name not present"
	case InsufficientResources:
		return "called name present, but insufficient resources"
	case UnspecifiedError:
		return "unspecified error"
	}
	return fmt.Sprintf("unknown session error 0x%02x", uint8(e))
}

// SessionResponse is a decoded answer to a session request
// (RFC 1002 §4.3.3 to §4.3.6, §4.3.7 for keepalives).
type SessionResponse struct {
	// Type is SessionPositiveResponse, SessionNegativeResponse,
	// SessionRetargetResponse or SessionKeepAlive.
	Type SessionType
	// Error is the error code of a negative response.
	Error SessionError
	// Retarget is the address and port a retarget response points to.
	Retarget netip.AddrPort
}

// String describes the answer, for example
// "negative session response: called name not present (0x82)".
func (r SessionResponse) String() string {
	switch r.Type {
	case SessionNegativeResponse:
		return fmt.Sprintf("%v: %v (0x%02x)", r.Type, r.Error, uint8(r.Error))
	case SessionRetargetResponse:
		return fmt.Sprintf("%v to %v", r.Type, r.Retarget)
	}
	return r.Type.String()
}

// sessionAnswerLength returns the LENGTH each answer type must carry.
func sessionAnswerLength(t SessionType) (uint32, bool) {
	switch t {
	case SessionPositiveResponse, SessionKeepAlive:
		return 0, true
	case SessionNegativeResponse:
		return 1, true
	case SessionRetargetResponse:
		return 6, true
	}
	return 0, false
}

// ParseSessionResponse decodes b, which must hold exactly one session
// service message, as the answer to a session request: a positive response
// (RFC 1002 §4.3.3, length 0), a negative response (§4.3.4, length 1, the
// error code), a retarget response (§4.3.5, length 6, IPv4 address and
// port) or a keepalive (§4.3.7, length 0), which the caller skips while it
// waits. A negative response is decoded without error; its code is in
// Error. Any other type is ErrNotSessionAnswer, a LENGTH that does not fit
// the type or the bytes given is ErrBadLength, and fewer bytes than LENGTH
// announces is ErrShort.
func ParseSessionResponse(b []byte) (SessionResponse, error) {
	if len(b) == 0 {
		return SessionResponse{}, fmt.Errorf("%w: empty session message", ErrShort)
	}
	want, ok := sessionAnswerLength(SessionType(b[0]))
	if !ok {
		return SessionResponse{}, fmt.Errorf("%w: %v", ErrNotSessionAnswer, SessionType(b[0]))
	}
	h, err := ParseSessionHeader(b)
	if err != nil {
		return SessionResponse{}, fmt.Errorf("%v: %w", SessionType(b[0]), err)
	}
	if h.Length != want {
		return SessionResponse{}, fmt.Errorf("%w: %v has length %d, want %d", ErrBadLength, h.Type, h.Length, want)
	}
	body := b[SessionHeaderLen:]
	if uint32(len(body)) < want {
		return SessionResponse{}, fmt.Errorf("%w: %v body is %d bytes, need %d", ErrShort, h.Type, len(body), want)
	}
	if uint32(len(body)) > want {
		return SessionResponse{}, fmt.Errorf("%w: %d bytes after a %d-byte %v", ErrBadLength, uint32(len(body))-want, want, h.Type)
	}
	r := SessionResponse{Type: h.Type}
	switch h.Type {
	case SessionNegativeResponse:
		r.Error = SessionError(body[0])
	case SessionRetargetResponse:
		ip := netip.AddrFrom4([4]byte(body[:4]))
		r.Retarget = netip.AddrPortFrom(ip, binary.BigEndian.Uint16(body[4:]))
	}
	return r, nil
}

// AppendSessionResponse appends r as a session service message
// (RFC 1002 §4.3.3 to §4.3.7) to b, for test servers and round trips.
// Only the four answer types are accepted, and a retarget address must
// be IPv4. On error b is returned unchanged.
func AppendSessionResponse(b []byte, r SessionResponse) ([]byte, error) {
	n, ok := sessionAnswerLength(r.Type)
	if !ok {
		return b, fmt.Errorf("%w: %v", ErrNotSessionAnswer, r.Type)
	}
	b = append(b, byte(r.Type), 0, 0, byte(n))
	switch r.Type {
	case SessionNegativeResponse:
		b = append(b, byte(r.Error))
	case SessionRetargetResponse:
		ip := r.Retarget.Addr().Unmap()
		if !ip.Is4() {
			return b[:len(b)-SessionHeaderLen], fmt.Errorf("%w: retarget address %v", ErrNotIPv4, r.Retarget.Addr())
		}
		a := ip.As4()
		b = append(b, a[:]...)
		b = binary.BigEndian.AppendUint16(b, r.Retarget.Port())
	}
	return b, nil
}
