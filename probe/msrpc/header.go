// Package msrpc encodes and decodes the few DCE/RPC connection-oriented PDUs that ofmprobe
// needs to prove that an RPC endpoint mapper listens on TCP 135: a bind to the endpoint
// mapper interface and the bind_ack or bind_nak that answers it.
//
// The package is pure: its functions work on byte slices and never touch the network. The
// formats come from The Open Group's DCE 1.1 RPC specification (C706, chapter 12) and
// Microsoft's extensions in MS-RPCE §2.2.2.
package msrpc

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderLen is the length of the connection-oriented common header (C706 §12.6.3.1).
const HeaderLen = 16

// authTrailerLen is the length of the sec_trailer that precedes auth_value (MS-RPCE §2.2.2.11).
const authTrailerLen = 8

// PacketType is the PTYPE field of the common header (C706 §12.6.4).
type PacketType uint8

// Packet types used by this package (C706 §12.6.4).
const (
	TypeRequest  PacketType = 0x00
	TypeResponse PacketType = 0x02
	TypeFault    PacketType = 0x03
	TypeBind     PacketType = 0x0B
	TypeBindAck  PacketType = 0x0C
	TypeBindNak  PacketType = 0x0D
)

var packetTypeNames = map[PacketType]string{
	TypeRequest:  "request",
	0x01:         "ping",
	TypeResponse: "response",
	TypeFault:    "fault",
	0x04:         "working",
	0x05:         "nocall",
	0x06:         "reject",
	0x07:         "ack",
	0x08:         "cl_cancel",
	0x09:         "fack",
	0x0A:         "cancel_ack",
	TypeBind:     "bind",
	TypeBindAck:  "bind_ack",
	TypeBindNak:  "bind_nak",
	0x0E:         "alter_context",
	0x0F:         "alter_context_resp",
	0x10:         "auth3",
	0x11:         "shutdown",
	0x12:         "co_cancel",
	0x13:         "orphaned",
}

// String returns the C706 name of t, such as "bind_ack", or its hex value when unknown.
func (t PacketType) String() string {
	if n, ok := packetTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("0x%02x", uint8(t))
}

// PFC flags of the common header (C706 §12.6.3.1).
const (
	FlagFirstFrag = 0x01
	FlagLastFrag  = 0x02
)

// Sentinel errors returned, wrapped, by the parsers.
var (
	// ErrShort means the input ends before a field or structure it declares.
	ErrShort = errors.New("msrpc: message too short")
	// ErrVersion means the common header does not carry RPC version 5.0.
	ErrVersion = errors.New("msrpc: unsupported rpc version")
	// ErrDataRepresentation means the data representation label is one this package cannot decode.
	ErrDataRepresentation = errors.New("msrpc: unsupported data representation")
	// ErrFragLength means FRAG_LENGTH or AUTH_LENGTH cannot describe a valid PDU.
	ErrFragLength = errors.New("msrpc: inconsistent fragment length")
	// ErrUnexpectedType means the PDU is neither a bind_ack nor a bind_nak.
	ErrUnexpectedType = errors.New("msrpc: unexpected packet type")
)

// Header is the connection-oriented common header (C706 §12.6.3.1). FragLength counts the whole
// PDU, header included; a reader that has the 16 header bytes reads FragLength-16 more.
type Header struct {
	Version      uint8
	MinorVersion uint8
	Type         PacketType
	Flags        uint8
	// DataRep is the NDR format label (C706 §14.1): DataRep[0] high nibble 1 little-endian,
	// 0 big-endian; low nibble 0 ASCII characters.
	DataRep    [4]byte
	FragLength uint16
	AuthLength uint16
	CallID     uint32
}

// ByteOrder returns the integer byte order that h's data representation label declares.
func (h Header) ByteOrder() binary.ByteOrder {
	if h.DataRep[0]>>4 == 0 {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// ParseHeader decodes the 16-byte common header at the start of b. It checks the version
// (5.0), the data representation (little- or big-endian integers, ASCII characters) and that
// FRAG_LENGTH can hold the header and any authentication trailer. It does not require b to
// hold the whole fragment, so a reader can call it on the first 16 bytes to learn how many
// more to read.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderLen {
		return h, fmt.Errorf("msrpc: header needs %d bytes, have %d: %w", HeaderLen, len(b), ErrShort)
	}
	h.Version, h.MinorVersion = b[0], b[1]
	h.Type, h.Flags = PacketType(b[2]), b[3]
	copy(h.DataRep[:], b[4:8])
	if h.Version != 5 || h.MinorVersion != 0 {
		return h, fmt.Errorf("msrpc: version %d.%d: %w", h.Version, h.MinorVersion, ErrVersion)
	}
	integer, char := h.DataRep[0]>>4, h.DataRep[0]&0x0F
	if integer > 1 || char != 0 {
		return h, fmt.Errorf("msrpc: data representation %02x: %w", h.DataRep[0], ErrDataRepresentation)
	}
	order := h.ByteOrder()
	h.FragLength = order.Uint16(b[8:10])
	h.AuthLength = order.Uint16(b[10:12])
	h.CallID = order.Uint32(b[12:16])
	need := HeaderLen
	if h.AuthLength > 0 {
		need += authTrailerLen + int(h.AuthLength)
	}
	if int(h.FragLength) < need {
		return h, fmt.Errorf("msrpc: frag length %d, auth length %d: %w", h.FragLength, h.AuthLength, ErrFragLength)
	}
	return h, nil
}

// bodyEnd returns the offset where h's PDU body ends: the end of the fragment less any
// authentication trailer.
func (h Header) bodyEnd() int {
	end := int(h.FragLength)
	if h.AuthLength > 0 {
		end -= authTrailerLen + int(h.AuthLength)
	}
	return end
}
