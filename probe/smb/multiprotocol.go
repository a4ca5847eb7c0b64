package smb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf16"
)

// SMB1 dialect strings (MS-CIFS §2.2.4.52.1, MS-SMB2 §3.3.5.3.1).
const (
	DialectNTLM012      = "NT LM 0.12"
	DialectSMB2002      = "SMB 2.002"
	DialectSMB2Wildcard = "SMB 2.???"
)

// MultiProtocolDialects is the dialect list that makes an SMB1 NEGOTIATE tell SMB1-only
// servers from SMB2 servers: an SMB2 server answers in SMB2, an SMB1-only one picks
// "NT LM 0.12" and answers in SMB1.
var MultiProtocolDialects = []string{DialectNTLM012, DialectSMB2002, DialectSMB2Wildcard}

// SMB1OnlyDialects offers SMB1 alone. An SMB2 server that still allows SMB1 answers it in
// SMB1; one with SMB1 disabled closes the connection or answers that no dialect is common.
var SMB1OnlyDialects = []string{DialectNTLM012}

// SMB1 header fields and values used here (MS-CIFS §2.2.3.1).
const (
	smb1HeaderLen    = 32
	smb1CmdNegotiate = 0x72
	smb1FlagsReply   = 0x80
	// smb1RequestFlags: SMB_FLAGS_CASE_INSENSITIVE | SMB_FLAGS_CANONICALIZED_PATHS.
	smb1RequestFlags = 0x18
	// smb1RequestFlags2: SMB_FLAGS2_UNICODE | SMB_FLAGS2_NT_STATUS |
	// SMB_FLAGS2_EXTENDED_SECURITY | SMB_FLAGS2_IS_LONG_NAME | SMB_FLAGS2_EAS |
	// SMB_FLAGS2_LONG_NAMES.
	smb1RequestFlags2 = 0xC843
	smb1Flags2Unicode = 0x8000
	// smb1NTLMWordCount is the word count of an NT LM 0.12 NEGOTIATE response.
	smb1NTLMWordCount = 17
	// noDialect is the DialectIndex of a server that shares no offered dialect.
	noDialect = 0xFFFF
)

// SMB1 capability bits worth naming (MS-CIFS §2.2.4.52.2).
const (
	SMB1CapUnicode          uint32 = 0x00000004
	SMB1CapNTSMBs           uint32 = 0x00000010
	SMB1CapStatus32         uint32 = 0x00000040
	SMB1CapDFS              uint32 = 0x00001000
	SMB1CapExtendedSecurity uint32 = 0x80000000
)

// SMB1 SecurityMode bits (MS-CIFS §2.2.4.52.2).
const (
	SMB1UserSecurity       uint8 = 0x01
	SMB1EncryptPasswords   uint8 = 0x02
	SMB1SignaturesEnabled  uint8 = 0x04
	SMB1SignaturesRequired uint8 = 0x08
)

// AppendSMB1Negotiate appends to b the direct-TCP frame of an SMB1 SMB_COM_NEGOTIATE request
// (MS-CIFS §2.2.4.52.1) offering dialects in order; nil offers MultiProtocolDialects. Each
// dialect is sent as 0x02, the string, and a NUL, so the strings must not contain NUL. The
// header asks for Unicode, NT status codes and extended security, as Windows clients do.
func AppendSMB1Negotiate(b []byte, dialects []string) []byte {
	le := binary.LittleEndian
	if dialects == nil {
		dialects = MultiProtocolDialects
	}
	b, start := beginFrame(b)
	b = append(b, magicSMB1[:]...)
	b = append(b, smb1CmdNegotiate)
	b = le.AppendUint32(b, 0) // Status
	b = append(b, smb1RequestFlags)
	b = le.AppendUint16(b, smb1RequestFlags2)
	b = le.AppendUint16(b, 0)         // PIDHigh
	b = append(b, make([]byte, 8)...) // SecurityFeatures
	b = le.AppendUint16(b, 0)         // Reserved
	b = le.AppendUint16(b, 0)         // TID
	b = le.AppendUint16(b, 0xFEFF)    // PIDLow
	b = le.AppendUint16(b, 0)         // UID
	b = le.AppendUint16(b, 0)         // MID
	b = append(b, 0)                  // WordCount
	count := len(b)
	b = le.AppendUint16(b, 0) // ByteCount, set below
	for _, d := range dialects {
		b = append(b, 0x02)
		b = append(b, d...)
		b = append(b, 0)
	}
	le.PutUint16(b[count:], uint16(len(b)-count-2))
	return endFrame(b, start)
}

// AnswerKind classifies the answer to an SMB1 multi-protocol NEGOTIATE.
type AnswerKind uint8

// Answer kinds.
const (
	// AnswerSMB2 is an SMB2 NEGOTIATE response (DialectRevision 0x02FF or 0x0202): the server
	// speaks SMB2.
	AnswerSMB2 AnswerKind = iota + 1
	// AnswerSMB1Only is an SMB1 response choosing an SMB1 dialect although SMB2 dialects were
	// offered: the server speaks SMB1 only.
	AnswerSMB1Only
	// AnswerSMB1 is an SMB1 response choosing an SMB1 dialect when only SMB1 dialects were
	// offered: SMB1 is enabled, whatever else the server speaks.
	AnswerSMB1
	// AnswerNoDialect is an SMB1 response with DialectIndex 0xFFFF: no offered dialect is
	// acceptable to the server.
	AnswerNoDialect
)

// String describes k, such as "SMB1 only".
func (k AnswerKind) String() string {
	switch k {
	case AnswerSMB2:
		return "SMB2"
	case AnswerSMB1Only:
		return "SMB1 only"
	case AnswerSMB1:
		return "SMB1 enabled"
	case AnswerNoDialect:
		return "no common dialect"
	}
	return fmt.Sprintf("answer(%d)", uint8(k))
}

// SMB1NegotiateResponse is a decoded SMB1 SMB_COM_NEGOTIATE response (MS-CIFS
// §2.2.4.52.2). The fields after Dialect are filled only when the server chose "NT LM 0.12".
type SMB1NegotiateResponse struct {
	Flags  uint8
	Flags2 uint16
	// DialectIndex is the position of the chosen dialect in the request, or 0xFFFF.
	DialectIndex uint16
	// Dialect is the chosen dialect string, empty for 0xFFFF.
	Dialect        string
	SecurityMode   uint8
	MaxMpxCount    uint16
	MaxNumberVcs   uint16
	MaxBufferSize  uint32
	MaxRawSize     uint32
	SessionKey     uint32
	Capabilities   uint32
	SystemTime     time.Time
	ServerTimeZone int16 // minutes to add to local time to get UTC
	// ExtendedSecurity reports CAP_EXTENDED_SECURITY: the bytes carry ServerGUID and a
	// SecurityBlob rather than a challenge and the domain name.
	ExtendedSecurity bool
	ServerGUID       GUID
	SecurityBlob     []byte
	Challenge        []byte
	// DomainName is the server's domain or workgroup when sent without extended security.
	DomainName string
}

// SigningRequired reports whether the server requires SMB1 message signing.
func (r SMB1NegotiateResponse) SigningRequired() bool {
	return r.SecurityMode&SMB1SignaturesRequired != 0
}

// SigningEnabled reports whether the server supports SMB1 message signing.
func (r SMB1NegotiateResponse) SigningEnabled() bool {
	return r.SecurityMode&(SMB1SignaturesEnabled|SMB1SignaturesRequired) != 0
}

// MultiProtocolAnswer is the classified answer to an SMB1 multi-protocol NEGOTIATE. SMB2 is
// set for AnswerSMB2, SMB1 for the other kinds.
type MultiProtocolAnswer struct {
	Kind AnswerKind
	SMB2 NegotiateResponse
	SMB1 SMB1NegotiateResponse
}

// String describes a in one line, such as "SMB1 only: NT LM 0.12, extended security,
// signing enabled" or "SMB2: SMB 2.???, signing enabled, capabilities none".
func (a MultiProtocolAnswer) String() string {
	switch a.Kind {
	case AnswerSMB2:
		return "SMB2: " + a.SMB2.String()
	case AnswerNoDialect:
		return a.Kind.String()
	}
	var s strings.Builder
	fmt.Fprintf(&s, "%v: %s", a.Kind, a.SMB1.Dialect)
	if a.SMB1.Dialect != DialectNTLM012 {
		return s.String()
	}
	if a.SMB1.ExtendedSecurity {
		s.WriteString(", extended security")
	}
	switch {
	case a.SMB1.SigningRequired():
		s.WriteString(", signing required")
	case a.SMB1.SigningEnabled():
		s.WriteString(", signing enabled")
	default:
		s.WriteString(", signing disabled")
	}
	if a.SMB1.DomainName != "" {
		fmt.Fprintf(&s, ", domain %q", a.SMB1.DomainName)
	}
	return s.String()
}

// ParseMultiProtocolAnswer decodes and classifies the direct-TCP frame at the start of b,
// the answer to an SMB1 NEGOTIATE that offered the dialects offered (nil meaning
// MultiProtocolDialects). Bytes past the frame are ignored.
//
// An SMB2 answer must be a valid NEGOTIATE response with DialectRevision 0x02FF or 0x0202
// (MS-SMB2 §3.3.5.3.1). An SMB1 answer must be a NEGOTIATE reply with status zero (else a
// *StatusError) whose DialectIndex is 0xFFFF or names an offered SMB1 dialect; for
// "NT LM 0.12" it must have 17 parameter words. Word and byte counts are bounds-checked
// before use.
func ParseMultiProtocolAnswer(b []byte, offered []string) (MultiProtocolAnswer, error) {
	if offered == nil {
		offered = MultiProtocolDialects
	}
	var a MultiProtocolAnswer
	msg, err := message(b, 4)
	if err != nil {
		return a, err
	}
	switch [4]byte(msg[:4]) {
	case magicSMB2:
		if len(msg) < HeaderLen {
			return a, fmt.Errorf("smb2 negotiate: message of %d bytes, need %d: %w", len(msg), HeaderLen, ErrShort)
		}
		r, err := parseNegotiateMessage(msg)
		if err != nil {
			return a, err
		}
		if r.Dialect != SMB2Wildcard && r.Dialect != SMB202 {
			return a, fmt.Errorf("smb2 negotiate: %v in answer to an SMB1 negotiate: %w", r.Dialect, ErrDialect)
		}
		a.Kind, a.SMB2 = AnswerSMB2, r
		return a, nil
	case magicSMB1:
		return parseSMB1Answer(msg, offered)
	}
	return a, fmt.Errorf("smb negotiate: message starts with %s: %w", describeMagic(msg), ErrMagic)
}

// parseSMB1Answer decodes the SMB1 NEGOTIATE reply msg, which starts with FF 'SMB'.
func parseSMB1Answer(msg []byte, offered []string) (MultiProtocolAnswer, error) {
	le := binary.LittleEndian
	var a MultiProtocolAnswer
	if len(msg) < smb1HeaderLen+1 {
		return a, fmt.Errorf("smb1 negotiate: message of %d bytes, need %d: %w", len(msg), smb1HeaderLen+1, ErrShort)
	}
	if msg[4] != smb1CmdNegotiate {
		return a, fmt.Errorf("smb1 negotiate: command 0x%02x: %w", msg[4], ErrCommand)
	}
	r := &a.SMB1
	r.Flags, r.Flags2 = msg[9], le.Uint16(msg[10:12])
	if r.Flags&smb1FlagsReply == 0 {
		return a, fmt.Errorf("smb1 negotiate: header flags 0x%02x: %w", r.Flags, ErrNotResponse)
	}
	if status := le.Uint32(msg[5:9]); status != 0 {
		return a, &StatusError{Command: "smb1 negotiate", Status: status}
	}
	wc := int(msg[smb1HeaderLen])
	words := msg[smb1HeaderLen+1:]
	if len(words) < 2*wc+2 {
		return a, fmt.Errorf("smb1 negotiate: %d parameter words in %d bytes: %w", wc, len(words), ErrShort)
	}
	bc := int(le.Uint16(words[2*wc:]))
	data := words[2*wc+2:]
	words = words[:2*wc]
	if len(data) < bc {
		return a, fmt.Errorf("smb1 negotiate: %d data bytes, have %d: %w", bc, len(data), ErrShort)
	}
	data = data[:bc]
	if wc < 1 {
		return a, fmt.Errorf("smb1 negotiate: word count 0: %w", ErrStructureSize)
	}
	r.DialectIndex = le.Uint16(words[0:2])
	if r.DialectIndex == noDialect {
		a.Kind = AnswerNoDialect
		return a, nil
	}
	if int(r.DialectIndex) >= len(offered) {
		return a, fmt.Errorf("smb1 negotiate: dialect index %d of %d offered: %w", r.DialectIndex, len(offered), ErrDialect)
	}
	r.Dialect = offered[r.DialectIndex]
	if strings.HasPrefix(r.Dialect, "SMB 2.") {
		return a, fmt.Errorf("smb1 negotiate: SMB1 answer choosing %q: %w", r.Dialect, ErrDialect)
	}
	a.Kind = AnswerSMB1
	if slices.ContainsFunc(offered, func(d string) bool { return strings.HasPrefix(d, "SMB 2.") }) {
		a.Kind = AnswerSMB1Only
	}
	if r.Dialect != DialectNTLM012 {
		return a, nil
	}
	if wc != smb1NTLMWordCount {
		return a, fmt.Errorf("smb1 negotiate: NT LM 0.12 answer with word count %d: %w", wc, ErrStructureSize)
	}
	r.SecurityMode = words[2]
	r.MaxMpxCount = le.Uint16(words[3:5])
	r.MaxNumberVcs = le.Uint16(words[5:7])
	r.MaxBufferSize = le.Uint32(words[7:11])
	r.MaxRawSize = le.Uint32(words[11:15])
	r.SessionKey = le.Uint32(words[15:19])
	r.Capabilities = le.Uint32(words[19:23])
	r.SystemTime = filetime(le.Uint64(words[23:31]))
	r.ServerTimeZone = int16(le.Uint16(words[31:33]))
	challengeLen := int(words[33])
	r.ExtendedSecurity = r.Capabilities&SMB1CapExtendedSecurity != 0
	if r.ExtendedSecurity {
		if len(data) < 16 {
			return a, fmt.Errorf("smb1 negotiate: server GUID in %d data bytes: %w", len(data), ErrShort)
		}
		r.ServerGUID = GUID(data[:16])
		if len(data) > 16 {
			r.SecurityBlob = slices.Clone(data[16:])
		}
		return a, nil
	}
	if len(data) < challengeLen {
		return a, fmt.Errorf("smb1 negotiate: %d-byte challenge in %d data bytes: %w", challengeLen, len(data), ErrShort)
	}
	if challengeLen > 0 {
		r.Challenge = slices.Clone(data[:challengeLen])
	}
	r.DomainName = smb1String(data[challengeLen:], r.Flags2&smb1Flags2Unicode != 0)
	return a, nil
}

// smb1String decodes a NUL-terminated string at the start of b: UTF-16LE when unicode is set,
// otherwise bytes taken as they are. A missing terminator ends the string at the end of b.
func smb1String(b []byte, unicode bool) string {
	if !unicode {
		if i := bytes.IndexByte(b, 0); i >= 0 {
			b = b[:i]
		}
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}
