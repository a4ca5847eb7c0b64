package smb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"
)

// Who a server says it is, without credentials: the NTLMSSP CHALLENGE (MS-NLMP §2.2.1.2) that answers the first
// SMB2 SESSION_SETUP of an NTLM logon carries the server's NetBIOS and DNS names, its domain, its clock and often its
// Windows version. Windows and Samba send it to any client before any password is checked. nmap reads the same
// fields over SMB1 (smb-os-discovery); here it is SMB2, on the connection the negotiate used.

// NTLMIdentity is what an NTLMSSP CHALLENGE says about the server.
type NTLMIdentity struct {
	// TargetName is the challenge's TargetName: the domain, or the server's name when it is not in one.
	TargetName string `json:"target_name,omitempty"`
	// NetBIOSComputer and NetBIOSDomain are MsvAvNbComputerName and MsvAvNbDomainName.
	NetBIOSComputer string `json:"netbios_computer,omitempty"`
	NetBIOSDomain   string `json:"netbios_domain,omitempty"`
	// DNSComputer, DNSDomain and DNSTree are MsvAvDnsComputerName, MsvAvDnsDomainName and MsvAvDnsTreeName (the
	// forest).
	DNSComputer string `json:"dns_computer,omitempty"`
	DNSDomain   string `json:"dns_domain,omitempty"`
	DNSTree     string `json:"dns_tree,omitempty"`
	// ServerTime is MsvAvTimestamp, the server's clock when it answered.
	ServerTime time.Time `json:"server_time,omitzero"`
	// Version is the Version structure, sent when both sides negotiated NTLMSSP_NEGOTIATE_VERSION.
	Version *NTLMVersion `json:"version,omitempty"`
}

// NTLMVersion is the NTLMSSP Version structure (MS-NLMP §2.2.2.10): Windows' major and minor version and build.
type NTLMVersion struct {
	Major        uint8  `json:"major"`
	Minor        uint8  `json:"minor"`
	Build        uint16 `json:"build"`
	NTLMRevision uint8  `json:"ntlm_revision"`
}

// String is "10.0 build 20348".
func (v NTLMVersion) String() string { return fmt.Sprintf("%d.%d build %d", v.Major, v.Minor, v.Build) }

// String summarises the identity: "OFM90 in OFMLAB (ofm90.lab.example, Windows 10.0 build 20348)".
func (id NTLMIdentity) String() string {
	name := cmpOr(id.NetBIOSComputer, id.DNSComputer, id.TargetName, "?")
	var s strings.Builder
	s.WriteString(name)
	if d := cmpOr(id.NetBIOSDomain, id.DNSDomain); d != "" && !strings.EqualFold(d, name) {
		s.WriteString(" in " + d)
	}
	var extra []string
	if id.DNSComputer != "" && !strings.EqualFold(id.DNSComputer, name) {
		extra = append(extra, id.DNSComputer)
	}
	if id.Version != nil {
		extra = append(extra, "version "+id.Version.String())
	}
	if len(extra) > 0 {
		s.WriteString(" (" + strings.Join(extra, ", ") + ")")
	}
	return s.String()
}

func cmpOr(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// NTLMSSP message fields (MS-NLMP §2.2).
var ntlmSignature = []byte("NTLMSSP\x00")

const (
	ntlmNegotiateMessage = 1
	ntlmChallengeMessage = 2
	ntlmChallengeFixed   = 48 // through TargetInfoFields; Version follows when negotiated

	ntlmFlagUnicode      = 0x00000001
	ntlmFlagOEM          = 0x00000002
	ntlmFlagRequestTgt   = 0x00000004
	ntlmFlagNTLM         = 0x00000200
	ntlmFlagAlwaysSign   = 0x00008000
	ntlmFlagExtendedSec  = 0x00080000
	ntlmFlagTargetInfo   = 0x00800000
	ntlmFlagVersion      = 0x02000000
	ntlmFlag128          = 0x20000000
	ntlmFlagKeyExchange  = 0x40000000
	ntlmFlag56           = 0x80000000
	ntlmNegotiateFlags   = ntlmFlagUnicode | ntlmFlagOEM | ntlmFlagRequestTgt | ntlmFlagNTLM | ntlmFlagAlwaysSign | ntlmFlagExtendedSec | ntlmFlagTargetInfo | ntlmFlagVersion | ntlmFlag128 | ntlmFlagKeyExchange | ntlmFlag56
	maxAVPairs           = 64
	avEOL                = 0
	avNbComputerName     = 1
	avNbDomainName       = 2
	avDNSComputerName    = 3
	avDNSDomainName      = 4
	avDNSTreeName        = 5
	avTimestamp          = 7
	sessionSetupReqSize  = 25
	sessionSetupRespSize = 9
)

// AppendNTLMNegotiate appends an NTLMSSP NEGOTIATE_MESSAGE (MS-NLMP §2.2.1.1) asking for the target's name and
// information and for the Version structure, with no domain or workstation of its own and the version Windows 10
// clients send.
func AppendNTLMNegotiate(b []byte) []byte {
	le := binary.LittleEndian
	b = append(b, ntlmSignature...)
	b = le.AppendUint32(b, ntlmNegotiateMessage)
	b = le.AppendUint32(b, ntlmNegotiateFlags)
	b = append(b, make([]byte, 16)...)                 // DomainNameFields, WorkstationFields: empty
	return append(b, 10, 0, 0x00, 0x00, 0, 0, 0, 0x0f) // Version: 10.0, build 0, NTLMSSP_REVISION_W2K3
}

// spnegoInit wraps an NTLMSSP token in a GSS-API InitialContextToken holding an SPNEGO NegTokenInit (RFC 4178 §4.2.1)
// that offers NTLMSSP (1.3.6.1.4.1.311.2.2.10) alone, in DER.
func spnegoInit(token []byte) []byte {
	ntlmOID := []byte{0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a}
	mechTypes := derTLV(0xa0, derTLV(0x30, ntlmOID))
	mechToken := derTLV(0xa2, derTLV(0x04, token))
	negTokenInit := derTLV(0xa0, derTLV(0x30, append(mechTypes, mechToken...)))
	spnegoOID := []byte{0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02}
	return derTLV(0x60, append(spnegoOID, negTokenInit...))
}

// derTLV encodes one DER tag, length and value; the lengths here stay below 64 KiB.
func derTLV(tag byte, value []byte) []byte {
	n := len(value)
	var b []byte
	switch {
	case n < 0x80:
		b = []byte{tag, byte(n)}
	case n < 0x100:
		b = []byte{tag, 0x81, byte(n)}
	default:
		b = []byte{tag, 0x82, byte(n >> 8), byte(n)}
	}
	return append(b, value...)
}

// AppendSessionSetupNegotiate appends a direct-TCP frame with the first SMB2 SESSION_SETUP request (MS-SMB2
// §2.2.5) of an NTLM logon: signing enabled, no previous session, and an SPNEGO NegTokenInit carrying an NTLMSSP
// NEGOTIATE_MESSAGE. The server's answer (STATUS_MORE_PROCESSING_REQUIRED) carries its CHALLENGE; ofmprobe never
// sends the third message, so no logon is attempted and nothing reaches the server's failed-logon count.
func AppendSessionSetupNegotiate(b []byte, messageID uint64) []byte {
	le := binary.LittleEndian
	blob := spnegoInit(AppendNTLMNegotiate(nil))
	b, start := beginFrame(b)
	b = appendHeader(b, commandSessionSetup, 1, messageID)
	b = le.AppendUint16(b, sessionSetupReqSize)
	b = append(b, 0, byte(SigningEnabled)) // Flags, SecurityMode
	b = le.AppendUint32(b, 0)              // Capabilities
	b = le.AppendUint32(b, 0)              // Channel
	b = le.AppendUint16(b, HeaderLen+24)   // SecurityBufferOffset
	b = le.AppendUint16(b, uint16(len(blob)))
	b = le.AppendUint64(b, 0) // PreviousSessionId
	b = append(b, blob...)
	return endFrame(b, start)
}

// ErrNoChallenge is returned for a SESSION_SETUP answer that carries no NTLMSSP CHALLENGE.
var ErrNoChallenge = errors.New("smb: no NTLMSSP challenge in the session setup answer")

// ParseSessionSetupChallenge parses the answer to AppendSessionSetupNegotiate, a whole direct-TCP frame: an SMB2
// SESSION_SETUP response with STATUS_MORE_PROCESSING_REQUIRED whose security buffer holds an NTLMSSP CHALLENGE,
// found by its signature inside the SPNEGO NegTokenResp. Another status is a *StatusError.
func ParseSessionSetupChallenge(frame []byte) (NTLMIdentity, error) {
	msg, err := message(frame, HeaderLen+sessionSetupRespSize-1)
	if err != nil {
		return NTLMIdentity{}, err
	}
	le := binary.LittleEndian
	if !bytes.Equal(msg[:4], magicSMB2[:]) || le.Uint16(msg[4:]) != HeaderLen {
		return NTLMIdentity{}, fmt.Errorf("smb: not an SMB2 header: % x", msg[:8])
	}
	if cmd := le.Uint16(msg[12:]); cmd != commandSessionSetup {
		return NTLMIdentity{}, fmt.Errorf("smb: answer to command 0x%04x, not session setup", cmd)
	}
	if st := le.Uint32(msg[8:]); st != statusMoreProcessingRequired {
		return NTLMIdentity{}, &StatusError{Command: "smb2 session setup", Status: st}
	}
	body := msg[HeaderLen:]
	if le.Uint16(body) != sessionSetupRespSize {
		return NTLMIdentity{}, fmt.Errorf("smb: session setup answer with StructureSize %d", le.Uint16(body))
	}
	off, n := int(le.Uint16(body[4:])), int(le.Uint16(body[6:]))
	if off < HeaderLen+sessionSetupRespSize-1 || off+n > len(msg) {
		return NTLMIdentity{}, fmt.Errorf("smb: security buffer of %d bytes at %d outside the %d-byte answer: %w", n, off, len(msg), ErrShort)
	}
	blob := msg[off : off+n]
	i := bytes.Index(blob, ntlmSignature)
	if i < 0 {
		return NTLMIdentity{}, ErrNoChallenge
	}
	return ParseNTLMChallenge(blob[i:])
}

// ParseNTLMChallenge parses an NTLMSSP CHALLENGE_MESSAGE (MS-NLMP §2.2.1.2) and its AV_PAIRs (§2.2.2.1). Every
// offset and length is checked against b; names are UTF-16LE (OEM bytes for the target name when the server chose
// OEM).
func ParseNTLMChallenge(b []byte) (NTLMIdentity, error) {
	var id NTLMIdentity
	if len(b) < ntlmChallengeFixed {
		return id, fmt.Errorf("smb: NTLMSSP challenge of %d bytes, need %d: %w", len(b), ntlmChallengeFixed, ErrShort)
	}
	le := binary.LittleEndian
	if !bytes.Equal(b[:8], ntlmSignature) {
		return id, fmt.Errorf("smb: not an NTLMSSP message: % x", b[:8])
	}
	if t := le.Uint32(b[8:]); t != ntlmChallengeMessage {
		return id, fmt.Errorf("smb: NTLMSSP message type %d, not a challenge", t)
	}
	flags := le.Uint32(b[20:])
	field := func(at int, what string) ([]byte, error) {
		n, off := int(le.Uint16(b[at:])), int(le.Uint32(b[at+4:]))
		if n == 0 {
			return nil, nil
		}
		if off < ntlmChallengeFixed || off > len(b) || n > len(b)-off {
			return nil, fmt.Errorf("smb: NTLMSSP %s of %d bytes at %d outside the %d-byte challenge: %w", what, n, off, len(b), ErrShort)
		}
		return b[off : off+n], nil
	}
	target, err := field(12, "target name")
	if err != nil {
		return id, err
	}
	if flags&ntlmFlagUnicode != 0 {
		if id.TargetName, err = decodeUTF16LE(target); err != nil {
			return id, fmt.Errorf("smb: NTLMSSP target name: %w", err)
		}
	} else {
		id.TargetName = string(bytes.ToValidUTF8(target, []byte("\uFFFD")))
	}
	info, err := field(40, "target information")
	if err != nil {
		return id, err
	}
	// The Version sits between the fixed fields and the payload, when negotiated: never where a field's bytes are.
	payload := len(b)
	for _, at := range []int{12, 40} {
		if le.Uint16(b[at:]) > 0 {
			payload = min(payload, int(le.Uint32(b[at+4:])))
		}
	}
	// A Version of zeros says nothing (some servers set the flag and send it so).
	if flags&ntlmFlagVersion != 0 && payload >= ntlmChallengeFixed+8 && le.Uint32(b[ntlmChallengeFixed:]) != 0 {
		v := b[ntlmChallengeFixed:]
		id.Version = &NTLMVersion{Major: v[0], Minor: v[1], Build: le.Uint16(v[2:]), NTLMRevision: v[7]}
	}
	return id, parseAVPairs(info, &id)
}

// parseAVPairs reads the AV_PAIRs of a challenge's TargetInfo until MsvAvEOL.
func parseAVPairs(b []byte, id *NTLMIdentity) error {
	le := binary.LittleEndian
	for pairs := 0; len(b) > 0; pairs++ {
		if pairs == maxAVPairs {
			return fmt.Errorf("smb: more than %d NTLMSSP AV_PAIRs", maxAVPairs)
		}
		if len(b) < 4 {
			return fmt.Errorf("smb: NTLMSSP AV_PAIR header of %d bytes: %w", len(b), ErrShort)
		}
		avID, n := le.Uint16(b), int(le.Uint16(b[2:]))
		if n > len(b)-4 {
			return fmt.Errorf("smb: NTLMSSP AV_PAIR %d of %d bytes, %d left: %w", avID, n, len(b)-4, ErrShort)
		}
		v := b[4 : 4+n]
		b = b[4+n:]
		var dst *string
		switch avID {
		case avEOL:
			return nil
		case avNbComputerName:
			dst = &id.NetBIOSComputer
		case avNbDomainName:
			dst = &id.NetBIOSDomain
		case avDNSComputerName:
			dst = &id.DNSComputer
		case avDNSDomainName:
			dst = &id.DNSDomain
		case avDNSTreeName:
			dst = &id.DNSTree
		case avTimestamp:
			if n != 8 {
				return fmt.Errorf("smb: NTLMSSP timestamp of %d bytes", n)
			}
			id.ServerTime = filetime(le.Uint64(v))
			continue
		default:
			continue
		}
		s, err := decodeUTF16LE(v)
		if err != nil {
			return fmt.Errorf("smb: NTLMSSP AV_PAIR %d: %w", avID, err)
		}
		*dst = s
	}
	return nil
}

// decodeUTF16LE decodes UTF-16LE text; an odd length is an error, an unpaired surrogate becomes U+FFFD.
func decodeUTF16LE(b []byte) (string, error) {
	if len(b)%2 != 0 {
		return "", fmt.Errorf("%d bytes of UTF-16", len(b))
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u)), nil
}
