package msrpc

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// BindLen is the length of the PDU that AppendBind builds.
const BindLen = 72

// MaxFrag is the max_xmit_frag and max_recv_frag that AppendBind offers, as Windows and
// impacket do.
const MaxFrag = 4280

// AppendBind appends to b a bind PDU (C706 §12.6.4.3) with call id callID that proposes one
// presentation context: the endpoint mapper interface v3.0 with the NDR v2.0 transfer syntax.
// It offers MaxFrag for both fragment sizes, asks for a new association group and carries no
// authentication. The result is BindLen bytes long.
func AppendBind(b []byte, callID uint32) []byte {
	le := binary.LittleEndian
	b = append(b, 5, 0, byte(TypeBind), FlagFirstFrag|FlagLastFrag, 0x10, 0, 0, 0)
	b = le.AppendUint16(b, BindLen)
	b = le.AppendUint16(b, 0) // auth_length
	b = le.AppendUint32(b, callID)
	b = le.AppendUint16(b, MaxFrag) // max_xmit_frag
	b = le.AppendUint16(b, MaxFrag) // max_recv_frag
	b = le.AppendUint32(b, 0)       // assoc_group_id: a new group
	// p_cont_list_t: n_context_elem, reserved, reserved2.
	b = append(b, 1, 0, 0, 0)
	// p_cont_elem_t: p_cont_id, n_transfer_syn, reserved, abstract syntax, transfer syntaxes.
	b = le.AppendUint16(b, 0)
	b = append(b, 1, 0)
	b = EndpointMapper.appendWire(b)
	return NDR.appendWire(b)
}

// Kind says which answer to a bind a BindResponse holds.
type Kind uint8

// Kinds of bind answer.
const (
	// KindAck is a bind_ack (PTYPE 0x0C).
	KindAck Kind = iota + 1
	// KindNak is a bind_nak (PTYPE 0x0D).
	KindNak
)

// String returns "bind_ack" or "bind_nak".
func (k Kind) String() string {
	switch k {
	case KindAck:
		return "bind_ack"
	case KindNak:
		return "bind_nak"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ResultCode is the result of one presentation context in a bind_ack, p_cont_def_result_t
// (C706 §12.6.3.1), extended by MS-RPCE §3.3.1.5.3 with negotiate_ack.
type ResultCode uint16

// Presentation context results.
const (
	ResultAcceptance        ResultCode = 0
	ResultUserRejection     ResultCode = 1
	ResultProviderRejection ResultCode = 2
	ResultNegotiateAck      ResultCode = 3
)

var resultCodeNames = [...]string{"acceptance", "user rejection", "provider rejection", "negotiate ack"}

// String returns the C706 name of r, such as "acceptance".
func (r ResultCode) String() string {
	if int(r) < len(resultCodeNames) {
		return resultCodeNames[r]
	}
	return fmt.Sprintf("result 0x%04x", uint16(r))
}

// ProviderReason explains a rejected presentation context, p_provider_reason_t
// (C706 §12.6.3.1). With ResultNegotiateAck it carries the bind time feature bits instead
// (MS-RPCE §2.2.2.14, §3.3.1.5.3).
type ProviderReason uint16

var providerReasonNames = [...]string{
	"reason not specified",
	"abstract syntax not supported",
	"proposed transfer syntaxes not supported",
	"local limit exceeded",
}

// String returns the C706 text for r, such as "abstract syntax not supported".
func (r ProviderReason) String() string {
	if int(r) < len(providerReasonNames) {
		return providerReasonNames[r]
	}
	return fmt.Sprintf("reason 0x%04x", uint16(r))
}

// ContextResult is one entry of a bind_ack's p_result_list_t (C706 §12.6.3.1): the fate of
// the presentation context proposed at the same position in the bind.
type ContextResult struct {
	Result         ResultCode
	Reason         ProviderReason
	TransferSyntax SyntaxID
}

// contextResultLen is the wire length of a ContextResult.
const contextResultLen = 4 + syntaxIDLen

// RejectReason is a bind_nak's provider_reject_reason, p_reject_reason_t (C706 §12.6.3.1),
// extended by MS-RPCE §2.2.2.5.
type RejectReason uint16

var rejectReasonNames = [...]string{
	"reason not specified",
	"temporary congestion",
	"local limit exceeded",
	"called presentation address unknown",
	"protocol version not supported",
	"default context not supported",
	"user data not readable",
	"no presentation service access point available",
	"authentication type not recognized",
	"invalid checksum",
}

// String returns the text for r, such as "protocol version not supported".
func (r RejectReason) String() string {
	if int(r) < len(rejectReasonNames) {
		return rejectReasonNames[r]
	}
	return fmt.Sprintf("reason 0x%04x", uint16(r))
}

// ProtocolVersion is one RPC protocol version a bind_nak says the server supports,
// version_t (C706 §12.6.3.1).
type ProtocolVersion struct {
	Major, Minor uint8
}

// BindResponse is the decoded answer to a bind: a bind_ack (C706 §12.6.4.4) or a bind_nak
// (C706 §12.6.4.5, MS-RPCE §2.2.2.9, whose optional trailing Signature is ignored). Either
// proves an RPC server listens. The ack fields are zero in a nak and
// the nak fields zero in an ack.
type BindResponse struct {
	Header Header
	Kind   Kind

	MaxXmitFrag uint16
	MaxRecvFrag uint16
	AssocGroup  uint32
	// SecondaryAddr is the server's port as a string, such as "135", without its NUL.
	SecondaryAddr string
	Results       []ContextResult

	RejectReason RejectReason
	// Versions lists the protocol versions a bind_nak offers; often absent.
	Versions []ProtocolVersion
}

// Accepted reports whether r is a bind_ack whose first presentation context was accepted.
func (r BindResponse) Accepted() bool {
	return r.Kind == KindAck && len(r.Results) > 0 && r.Results[0].Result == ResultAcceptance
}

// String describes r in one line, such as
// `bind_ack: context accepted with NDR v2.0, max xmit 4280, max recv 4280, assoc group 0x00001234, secondary address "135"`.
func (r BindResponse) String() string {
	var s strings.Builder
	s.WriteString(r.Kind.String())
	s.WriteString(": ")
	switch r.Kind {
	case KindAck:
		switch {
		case len(r.Results) == 0:
			s.WriteString("no context results")
		case r.Results[0].Result == ResultAcceptance:
			fmt.Fprintf(&s, "context accepted with %v", r.Results[0].TransferSyntax)
		case r.Results[0].Result == ResultNegotiateAck:
			fmt.Fprintf(&s, "negotiate ack, features 0x%04x", uint16(r.Results[0].Reason))
		default:
			fmt.Fprintf(&s, "context refused: %v (%v)", r.Results[0].Result, r.Results[0].Reason)
		}
		fmt.Fprintf(&s, ", max xmit %d, max recv %d, assoc group 0x%08x, secondary address %q",
			r.MaxXmitFrag, r.MaxRecvFrag, r.AssocGroup, r.SecondaryAddr)
	case KindNak:
		s.WriteString(r.RejectReason.String())
		for i, v := range r.Versions {
			if i == 0 {
				s.WriteString(", supports")
			}
			fmt.Fprintf(&s, " %d.%d", v.Major, v.Minor)
		}
	}
	return s.String()
}

// ParseBindResponse decodes the bind_ack or bind_nak PDU at the start of b. b must hold at
// least FRAG_LENGTH bytes; bytes past the fragment are ignored. A FRAG_LENGTH above MaxFrag,
// the max_recv_frag AppendBind announces, is refused (C706 §12.6.4.3), so a reader may refuse
// it too as soon as ParseHeader has it. Every count and length in the PDU is checked against
// the fragment before it is used. Any other packet type is an error wrapping
// ErrUnexpectedType.
func ParseBindResponse(b []byte) (BindResponse, error) {
	var r BindResponse
	h, err := ParseHeader(b)
	if err != nil {
		return r, err
	}
	r.Header = h
	if h.FragLength > MaxFrag {
		return r, fmt.Errorf("msrpc: %v of %d bytes, above the %d the bind accepts: %w", h.Type, h.FragLength, MaxFrag, ErrFragLength)
	}
	if len(b) < int(h.FragLength) {
		return r, fmt.Errorf("msrpc: %v of %d bytes, have %d: %w", h.Type, h.FragLength, len(b), ErrShort)
	}
	body := b[:h.bodyEnd()]
	order := h.ByteOrder()
	switch h.Type {
	case TypeBindAck:
		r.Kind = KindAck
		return r, parseBindAck(&r, body, order)
	case TypeBindNak:
		r.Kind = KindNak
		return r, parseBindNak(&r, body)
	}
	return r, fmt.Errorf("msrpc: %v: %w", h.Type, ErrUnexpectedType)
}

// parseBindAck decodes the bind_ack body; pdu is the PDU up to its authentication trailer.
func parseBindAck(r *BindResponse, pdu []byte, order binary.ByteOrder) error {
	const fixed = HeaderLen + 10 // through sec_addr.length
	if len(pdu) < fixed {
		return fmt.Errorf("msrpc: bind_ack fixed fields: %w", ErrShort)
	}
	r.MaxXmitFrag = order.Uint16(pdu[16:18])
	r.MaxRecvFrag = order.Uint16(pdu[18:20])
	r.AssocGroup = order.Uint32(pdu[20:24])
	addrLen := int(order.Uint16(pdu[24:26]))
	off := fixed
	if len(pdu)-off < addrLen {
		return fmt.Errorf("msrpc: bind_ack secondary address of %d bytes: %w", addrLen, ErrShort)
	}
	addr := pdu[off : off+addrLen]
	if i := strings.IndexByte(string(addr), 0); i >= 0 {
		addr = addr[:i]
	}
	r.SecondaryAddr = string(addr)
	off += addrLen
	off = (off + 3) &^ 3 // pad to 4 from the start of the PDU
	if len(pdu)-off < 4 {
		return fmt.Errorf("msrpc: bind_ack result list: %w", ErrShort)
	}
	n := int(pdu[off])
	off += 4 // n_results, reserved, reserved2
	if len(pdu)-off < n*contextResultLen {
		return fmt.Errorf("msrpc: bind_ack %d results: %w", n, ErrShort)
	}
	r.Results = make([]ContextResult, n)
	for i := range r.Results {
		e := pdu[off : off+contextResultLen]
		r.Results[i] = ContextResult{
			Result:         ResultCode(order.Uint16(e[0:2])),
			Reason:         ProviderReason(order.Uint16(e[2:4])),
			TransferSyntax: syntaxIDFromWire(e[4:], order),
		}
		off += contextResultLen
	}
	return nil
}

// parseBindNak decodes the bind_nak body; pdu is the whole PDU.
func parseBindNak(r *BindResponse, pdu []byte) error {
	if len(pdu) < HeaderLen+2 {
		return fmt.Errorf("msrpc: bind_nak reject reason: %w", ErrShort)
	}
	r.RejectReason = RejectReason(r.Header.ByteOrder().Uint16(pdu[16:18]))
	rest := pdu[HeaderLen+2:]
	if len(rest) == 0 {
		return nil // p_rt_versions_supported is often left out
	}
	n := int(rest[0])
	rest = rest[1:]
	if len(rest) < 2*n {
		return fmt.Errorf("msrpc: bind_nak %d protocol versions: %w", n, ErrShort)
	}
	if n > 0 {
		r.Versions = make([]ProtocolVersion, n)
		for i := range r.Versions {
			r.Versions[i] = ProtocolVersion{Major: rest[2*i], Minor: rest[2*i+1]}
		}
	}
	return nil
}
