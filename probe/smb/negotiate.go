package smb

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"
)

// DefaultDialects are the dialects a NegotiateRequest offers when it names none: every SMB2
// dialect that needs no negotiate contexts.
var DefaultDialects = []Dialect{SMB202, SMB210, SMB300, SMB302}

// DefaultCiphers are the ciphers an SMB 3.1.1 NegotiateRequest offers when it names none.
var DefaultCiphers = []Cipher{AES128GCM, AES128CCM, AES256GCM, AES256CCM}

// NegotiateRequest holds the choices for an SMB2 NEGOTIATE request (MS-SMB2 §2.2.3). The
// request always sets SecurityMode to signing enabled, asks for one credit and carries no
// ClientStartTime.
type NegotiateRequest struct {
	MessageID  uint64
	ClientGUID GUID
	// Dialects lists the dialects to offer, in order; nil offers DefaultDialects.
	Dialects []Dialect
	// Capabilities are the client's SMB2_GLOBAL_CAP bits. MS-SMB2 §2.2.3 wants zero unless
	// an SMB 3.x dialect is offered; a 3.0 or 3.0.2 server announces CapEncryption only to a
	// client that sets it (MS-SMB2 §3.3.5.4).
	Capabilities Capabilities
	// Salt is the preauthentication integrity salt sent when Dialects includes SMB311
	// (MS-SMB2 §2.2.3.1.1). Fill it with random bytes; Windows sends 32. Like Dialects and
	// Ciphers it must be small enough for its 16-bit count.
	Salt []byte
	// Ciphers lists the ciphers offered in the encryption context when Dialects includes
	// SMB311 (MS-SMB2 §2.2.3.1.2); nil offers DefaultCiphers.
	Ciphers []Cipher
}

// AppendNegotiateRequest appends to b the direct-TCP frame of the SMB2 NEGOTIATE request req
// (MS-SMB2 §2.2.1.2, §2.2.3). When req offers SMB311 the request carries, 8-byte aligned
// after the dialects, a preauthentication integrity context (SHA-512 and req.Salt) and an
// encryption context (MS-SMB2 §2.2.3.1), as MS-SMB2 §3.2.4.2.2.2 requires.
func AppendNegotiateRequest(b []byte, req NegotiateRequest) []byte {
	le := binary.LittleEndian
	dialects := req.Dialects
	if dialects == nil {
		dialects = DefaultDialects
	}
	ciphers := req.Ciphers
	if ciphers == nil {
		ciphers = DefaultCiphers
	}
	with311 := slices.Contains(dialects, SMB311)

	b, start := beginFrame(b)
	msg := start + PrefixLen
	b = appendHeader(b, commandNegotiate, 1, req.MessageID)
	b = le.AppendUint16(b, negotiateReqSize)
	b = le.AppendUint16(b, uint16(len(dialects)))
	b = le.AppendUint16(b, uint16(SigningEnabled))
	b = le.AppendUint16(b, 0) // Reserved
	b = le.AppendUint32(b, uint32(req.Capabilities))
	b = append(b, req.ClientGUID[:]...)
	contextFields := len(b)
	b = le.AppendUint64(b, 0) // ClientStartTime, or the negotiate context fields
	for _, d := range dialects {
		b = le.AppendUint16(b, uint16(d))
	}
	if with311 {
		b = pad8(b, msg)
		le.PutUint32(b[contextFields:], uint32(len(b)-msg)) // NegotiateContextOffset
		le.PutUint16(b[contextFields+4:], 2)                // NegotiateContextCount

		b = appendContextHeader(b, ContextPreauthIntegrity, 4+2+len(req.Salt))
		b = le.AppendUint16(b, 1) // HashAlgorithmCount
		b = le.AppendUint16(b, uint16(len(req.Salt)))
		b = le.AppendUint16(b, uint16(SHA512))
		b = append(b, req.Salt...)

		b = pad8(b, msg)
		b = appendContextHeader(b, ContextEncryption, 2+2*len(ciphers))
		b = le.AppendUint16(b, uint16(len(ciphers)))
		for _, c := range ciphers {
			b = le.AppendUint16(b, uint16(c))
		}
	}
	return endFrame(b, start)
}

// appendContextHeader appends the fixed part of an SMB2_NEGOTIATE_CONTEXT (MS-SMB2 §2.2.3.1).
func appendContextHeader(b []byte, t ContextType, dataLen int) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(t))
	b = binary.LittleEndian.AppendUint16(b, uint16(dataLen))
	return binary.LittleEndian.AppendUint32(b, 0)
}

// NegotiateResponse is a decoded SMB2 NEGOTIATE response (MS-SMB2 §2.2.4).
type NegotiateResponse struct {
	MessageID    uint64
	Credits      uint16
	SecurityMode SecurityMode
	Dialect      Dialect
	ServerGUID   GUID
	Capabilities Capabilities
	// MaxTransactSize, MaxReadSize and MaxWriteSize bound a single request's buffers.
	MaxTransactSize uint32
	MaxReadSize     uint32
	MaxWriteSize    uint32
	// SystemTime is the server's clock; ServerStartTime is zero on modern servers.
	SystemTime      time.Time
	ServerStartTime time.Time
	// SecurityBuffer is the GSS token (usually SPNEGO) the server offers; nil when empty.
	SecurityBuffer []byte

	// The negotiate contexts of an SMB 3.1.1 response (MS-SMB2 §2.2.4.1).
	Contexts         []ContextType
	HashAlgorithm    HashAlgorithm
	Cipher           Cipher
	SigningAlgorithm SigningAlgorithm
}

// String describes r in one line, such as
// "SMB 3.0.2, signing enabled, capabilities DFS, leasing, large MTU".
func (r NegotiateResponse) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "%v, %v, capabilities %v", r.Dialect, r.SecurityMode, r.Capabilities)
	if slices.Contains(r.Contexts, ContextEncryption) {
		fmt.Fprintf(&s, ", cipher %v", r.Cipher)
	}
	if slices.Contains(r.Contexts, ContextSigning) {
		fmt.Fprintf(&s, ", signing with %v", r.SigningAlgorithm)
	}
	return s.String()
}

// ParseNegotiateResponse decodes the direct-TCP frame at the start of b as an SMB2 NEGOTIATE
// response. Bytes past the frame are ignored. It checks the header (FE 'SMB', StructureSize
// 64, the response flag, command NEGOTIATE), returns a *StatusError for a non-zero status,
// checks the body StructureSize (65), and bounds-checks the security buffer and, for SMB 3.1.1,
// every negotiate context before reading it. The dialect is not checked against any request.
func ParseNegotiateResponse(b []byte) (NegotiateResponse, error) {
	msg, err := message(b, HeaderLen)
	if err != nil {
		return NegotiateResponse{}, err
	}
	return parseNegotiateMessage(msg)
}

// parseNegotiateMessage decodes the SMB2 NEGOTIATE response message msg, which holds at least
// HeaderLen bytes.
func parseNegotiateMessage(msg []byte) (NegotiateResponse, error) {
	le := binary.LittleEndian
	var r NegotiateResponse
	if [4]byte(msg[:4]) != magicSMB2 {
		return r, fmt.Errorf("smb2 negotiate: message starts with %s: %w", describeMagic(msg), ErrMagic)
	}
	if size := le.Uint16(msg[4:6]); size != HeaderLen {
		return r, fmt.Errorf("smb2 negotiate: header structure size %d: %w", size, ErrStructureSize)
	}
	if flags := le.Uint32(msg[16:20]); flags&flagServerToRedir == 0 {
		return r, fmt.Errorf("smb2 negotiate: header flags 0x%08x: %w", flags, ErrNotResponse)
	}
	if cmd := le.Uint16(msg[12:14]); cmd != commandNegotiate {
		return r, fmt.Errorf("smb2 negotiate: command 0x%04x: %w", cmd, ErrCommand)
	}
	if status := le.Uint32(msg[8:12]); status != 0 {
		return r, &StatusError{Command: "smb2 negotiate", Status: status}
	}
	r.Credits = le.Uint16(msg[14:16])
	r.MessageID = le.Uint64(msg[24:32])
	if len(msg) < HeaderLen+negotiateRespFixed {
		return r, fmt.Errorf("smb2 negotiate: response body of %d bytes, need %d: %w", len(msg)-HeaderLen, negotiateRespFixed, ErrShort)
	}
	body := msg[HeaderLen:]
	if size := le.Uint16(body[0:2]); size != negotiateRespSize {
		return r, fmt.Errorf("smb2 negotiate: response structure size %d: %w", size, ErrStructureSize)
	}
	r.SecurityMode = SecurityMode(le.Uint16(body[2:4]))
	r.Dialect = Dialect(le.Uint16(body[4:6]))
	r.ServerGUID = GUID(body[8:24])
	r.Capabilities = Capabilities(le.Uint32(body[24:28]))
	r.MaxTransactSize = le.Uint32(body[28:32])
	r.MaxReadSize = le.Uint32(body[32:36])
	r.MaxWriteSize = le.Uint32(body[36:40])
	r.SystemTime = filetime(le.Uint64(body[40:48]))
	r.ServerStartTime = filetime(le.Uint64(body[48:56]))

	secOff, secLen := int(le.Uint16(body[56:58])), int(le.Uint16(body[58:60]))
	if secLen > 0 {
		if secOff < HeaderLen+negotiateRespFixed || secOff+secLen > len(msg) {
			return r, fmt.Errorf("smb2 negotiate: security buffer at %d of %d bytes in a %d-byte message: %w",
				secOff, secLen, len(msg), ErrOffset)
		}
		r.SecurityBuffer = slices.Clone(msg[secOff : secOff+secLen])
	}
	if r.Dialect == SMB311 {
		count := int(le.Uint16(body[6:8]))
		off := int(le.Uint32(body[60:64]))
		if err := parseContexts(&r, msg, off, count); err != nil {
			return r, err
		}
	}
	return r, nil
}

// parseContexts decodes the count negotiate contexts that start at offset off of msg
// (MS-SMB2 §2.2.4, §2.2.4.1). Each context after the first starts at the next 8-byte boundary.
func parseContexts(r *NegotiateResponse, msg []byte, off, count int) error {
	le := binary.LittleEndian
	if count == 0 {
		return nil
	}
	if off%8 != 0 || off < HeaderLen+negotiateRespFixed || off > len(msg) {
		return fmt.Errorf("smb2 negotiate: negotiate context offset %d in a %d-byte message: %w", off, len(msg), ErrOffset)
	}
	r.Contexts = make([]ContextType, 0, min(count, len(msg)/8))
	for i := range count {
		if i > 0 {
			off = (off + 7) &^ 7
		}
		if len(msg)-off < 8 {
			return fmt.Errorf("smb2 negotiate: negotiate context %d of %d at offset %d: %w", i, count, off, ErrShort)
		}
		t := ContextType(le.Uint16(msg[off : off+2]))
		n := int(le.Uint16(msg[off+2 : off+4]))
		off += 8
		if len(msg)-off < n {
			return fmt.Errorf("smb2 negotiate: negotiate context %d type 0x%04x with %d data bytes: %w", i, uint16(t), n, ErrShort)
		}
		data := msg[off : off+n]
		off += n
		r.Contexts = append(r.Contexts, t)
		var err error
		switch t {
		case ContextPreauthIntegrity:
			err = parsePreauthContext(r, data)
		case ContextEncryption:
			var first uint16
			first, err = firstOfList(data)
			r.Cipher = Cipher(first)
		case ContextSigning:
			var first uint16
			first, err = firstOfList(data)
			r.SigningAlgorithm = SigningAlgorithm(first)
		}
		if err != nil {
			return fmt.Errorf("smb2 negotiate: negotiate context %d type 0x%04x: %w", i, uint16(t), err)
		}
	}
	return nil
}

// parsePreauthContext decodes SMB2_PREAUTH_INTEGRITY_CAPABILITIES (MS-SMB2 §2.2.3.1.1).
func parsePreauthContext(r *NegotiateResponse, data []byte) error {
	le := binary.LittleEndian
	if len(data) < 4 {
		return ErrShort
	}
	count, salt := int(le.Uint16(data[0:2])), int(le.Uint16(data[2:4]))
	if len(data)-4 < 2*count+salt {
		return fmt.Errorf("%d hash algorithms and a %d-byte salt in %d bytes: %w", count, salt, len(data), ErrShort)
	}
	if count > 0 {
		r.HashAlgorithm = HashAlgorithm(le.Uint16(data[4:6]))
	}
	return nil
}

// firstOfList decodes a list of 2-byte identifiers led by a 2-byte count, the layout of the
// encryption and signing contexts (MS-SMB2 §2.2.3.1.2, §2.2.3.1.7), and returns the first
// identifier, or zero for an empty list.
func firstOfList(data []byte) (uint16, error) {
	if len(data) < 2 {
		return 0, ErrShort
	}
	count := int(binary.LittleEndian.Uint16(data[0:2]))
	list := data[2:]
	if len(list) < 2*count {
		return 0, fmt.Errorf("%d identifiers in %d bytes: %w", count, len(list), ErrShort)
	}
	if count == 0 {
		return 0, nil
	}
	return binary.LittleEndian.Uint16(list[0:2]), nil
}
