package smb

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// Dialect is an SMB2 dialect revision number (MS-SMB2 §2.2.3, §2.2.4).
type Dialect uint16

// SMB2 dialects.
const (
	SMB202 Dialect = 0x0202
	SMB210 Dialect = 0x0210
	SMB300 Dialect = 0x0300
	SMB302 Dialect = 0x0302
	SMB311 Dialect = 0x0311
	// SMB2Wildcard is the DialectRevision a server returns to an SMB1 NEGOTIATE offering
	// "SMB 2.???": it speaks SMB 2.1 or later and expects a fresh SMB2 NEGOTIATE
	// (MS-SMB2 §3.3.5.3.1).
	SMB2Wildcard Dialect = 0x02FF
)

// String names d as MS-SMB2 does, such as "SMB 3.0.2", or "dialect 0x1234" when unknown.
func (d Dialect) String() string {
	switch d {
	case SMB202:
		return "SMB 2.0.2"
	case SMB210:
		return "SMB 2.1"
	case SMB300:
		return "SMB 3.0"
	case SMB302:
		return "SMB 3.0.2"
	case SMB311:
		return "SMB 3.1.1"
	case SMB2Wildcard:
		return "SMB 2.???"
	}
	return fmt.Sprintf("dialect 0x%04x", uint16(d))
}

// SecurityMode is the SecurityMode field of an SMB2 NEGOTIATE (MS-SMB2 §2.2.3, §2.2.4).
type SecurityMode uint16

// SecurityMode bits.
const (
	SigningEnabled  SecurityMode = 0x0001
	SigningRequired SecurityMode = 0x0002
)

// Enabled reports whether the signing-enabled bit is set.
func (m SecurityMode) Enabled() bool { return m&SigningEnabled != 0 }

// Required reports whether the signing-required bit is set.
func (m SecurityMode) Required() bool { return m&SigningRequired != 0 }

// String describes m as "signing required", "signing enabled" or "signing disabled".
func (m SecurityMode) String() string {
	switch {
	case m.Required():
		return "signing required"
	case m.Enabled():
		return "signing enabled"
	}
	return "signing disabled"
}

// Capabilities is the SMB2_GLOBAL_CAP bit set of an SMB2 NEGOTIATE (MS-SMB2 §2.2.3, §2.2.4).
type Capabilities uint32

// Capability bits.
const (
	CapDFS               Capabilities = 0x00000001
	CapLeasing           Capabilities = 0x00000002
	CapLargeMTU          Capabilities = 0x00000004
	CapMultiChannel      Capabilities = 0x00000008
	CapPersistentHandles Capabilities = 0x00000010
	CapDirectoryLeasing  Capabilities = 0x00000020
	CapEncryption        Capabilities = 0x00000040
	CapNotifications     Capabilities = 0x00000080
)

var capabilityNames = [...]string{
	"DFS", "leasing", "large MTU", "multi-channel", "persistent handles", "directory leasing", "encryption", "notifications",
}

// Names lists the set bits of c in bit order, such as ["DFS", "leasing"]; unknown bits appear
// as hex values.
func (c Capabilities) Names() []string {
	var names []string
	for bit := range 32 {
		if c&(1<<bit) == 0 {
			continue
		}
		if bit < len(capabilityNames) {
			names = append(names, capabilityNames[bit])
		} else {
			names = append(names, fmt.Sprintf("0x%08x", uint32(1)<<bit))
		}
	}
	return names
}

// String joins Names with ", ", or returns "none".
func (c Capabilities) String() string {
	if c == 0 {
		return "none"
	}
	return strings.Join(c.Names(), ", ")
}

// Cipher is an SMB 3.1.1 encryption algorithm identifier (MS-SMB2 §2.2.3.1.2).
type Cipher uint16

// Ciphers.
const (
	AES128CCM Cipher = 0x0001
	AES128GCM Cipher = 0x0002
	AES256CCM Cipher = 0x0003
	AES256GCM Cipher = 0x0004
)

// String names c, such as "AES-128-GCM"; zero, which a server sends when no offered cipher
// suits it, is "no common cipher".
func (c Cipher) String() string {
	switch c {
	case 0:
		return "no common cipher"
	case AES128CCM:
		return "AES-128-CCM"
	case AES128GCM:
		return "AES-128-GCM"
	case AES256CCM:
		return "AES-256-CCM"
	case AES256GCM:
		return "AES-256-GCM"
	}
	return fmt.Sprintf("cipher 0x%04x", uint16(c))
}

// HashAlgorithm is an SMB 3.1.1 preauthentication integrity hash identifier
// (MS-SMB2 §2.2.3.1.1).
type HashAlgorithm uint16

// SHA512 is the only preauthentication integrity hash MS-SMB2 defines.
const SHA512 HashAlgorithm = 0x0001

// String names h, such as "SHA-512".
func (h HashAlgorithm) String() string {
	switch h {
	case 0:
		return "none"
	case SHA512:
		return "SHA-512"
	}
	return fmt.Sprintf("hash 0x%04x", uint16(h))
}

// SigningAlgorithm is an SMB 3.1.1 signing algorithm identifier (MS-SMB2 §2.2.3.1.7).
type SigningAlgorithm uint16

// Signing algorithms.
const (
	HMACSHA256 SigningAlgorithm = 0x0000
	AESCMAC    SigningAlgorithm = 0x0001
	AESGMAC    SigningAlgorithm = 0x0002
)

// String names s, such as "AES-GMAC".
func (s SigningAlgorithm) String() string {
	switch s {
	case HMACSHA256:
		return "HMAC-SHA256"
	case AESCMAC:
		return "AES-CMAC"
	case AESGMAC:
		return "AES-GMAC"
	}
	return fmt.Sprintf("signing 0x%04x", uint16(s))
}

// ContextType is the type of an SMB 3.1.1 negotiate context (MS-SMB2 §2.2.3.1).
type ContextType uint16

// Negotiate context types.
const (
	ContextPreauthIntegrity ContextType = 0x0001
	ContextEncryption       ContextType = 0x0002
	ContextCompression      ContextType = 0x0003
	ContextNetname          ContextType = 0x0005
	ContextTransport        ContextType = 0x0006
	ContextRDMATransform    ContextType = 0x0007
	ContextSigning          ContextType = 0x0008
)

// GUID is a 16-byte GUID in its wire layout (MS-DTYP §2.3.4.2): the first three fields are
// little-endian.
type GUID [16]byte

// String formats g in the registry form, such as "6ba7b810-9dad-11d1-80b4-00c04fd430c8".
func (g GUID) String() string {
	le := binary.LittleEndian
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", le.Uint32(g[0:4]), le.Uint16(g[4:6]), le.Uint16(g[6:8]), g[8:10], g[10:16])
}

// filetimeEpochDelta is the number of seconds from 1601-01-01 to 1970-01-01.
const filetimeEpochDelta = 11644473600

// filetime converts a FILETIME (MS-DTYP §2.3.3: 100-nanosecond intervals since 1601-01-01
// UTC) to a time.Time; zero stays the zero Time.
func filetime(ft uint64) time.Time {
	if ft == 0 {
		return time.Time{}
	}
	return time.Unix(int64(ft/1e7)-filetimeEpochDelta, int64(ft%1e7)*100).UTC()
}

// StatusError is a response whose header carries a non-zero NTSTATUS (MS-ERREF §2.3).
type StatusError struct {
	// Command names the answered request, such as "smb2 negotiate".
	Command string
	Status  uint32
}

var statusNames = map[uint32]string{
	0xC0000002: "STATUS_NOT_IMPLEMENTED",
	0xC000000D: "STATUS_INVALID_PARAMETER",
	0xC0000022: "STATUS_ACCESS_DENIED",
	0xC000009A: "STATUS_INSUFFICIENT_RESOURCES",
	0xC00000BB: "STATUS_NOT_SUPPORTED",
	0xC00000D0: "STATUS_REQUEST_NOT_ACCEPTED",
	0xC0000205: "STATUS_INSUFF_SERVER_RESOURCES",
}

// Error returns text such as "smb2 negotiate: server returned status 0xc00000bb
// (STATUS_NOT_SUPPORTED)".
func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s: server returned status 0x%08x", e.Command, e.Status)
	if name, ok := statusNames[e.Status]; ok {
		s += " (" + name + ")"
	}
	return s
}

// SMB2 header fields and values used here (MS-SMB2 §2.2.1).
const (
	commandNegotiate   = 0x0000
	flagServerToRedir  = 0x00000001
	negotiateRespSize  = 65
	negotiateReqSize   = 36
	negotiateRespFixed = 64 // the body without its variable buffer
)

// appendHeader appends a synchronous SMB2 request header (MS-SMB2 §2.2.1.2) for command.
func appendHeader(b []byte, command uint16, credits uint16, messageID uint64) []byte {
	le := binary.LittleEndian
	b = append(b, magicSMB2[:]...)
	b = le.AppendUint16(b, HeaderLen) // StructureSize
	b = le.AppendUint16(b, 0)         // CreditCharge
	b = le.AppendUint32(b, 0)         // Status
	b = le.AppendUint16(b, command)
	b = le.AppendUint16(b, credits)
	b = le.AppendUint32(b, 0) // Flags
	b = le.AppendUint32(b, 0) // NextCommand
	b = le.AppendUint64(b, messageID)
	b = le.AppendUint32(b, 0xFEFF) // Reserved: the process id Windows puts here
	b = le.AppendUint32(b, 0)      // TreeId
	b = le.AppendUint64(b, 0)      // SessionId
	return append(b, make([]byte, 16)...)
}

// beginFrame appends a direct-TCP prefix to be completed by endFrame and returns the offset
// of the prefix.
func beginFrame(b []byte) ([]byte, int) {
	return append(b, 0, 0, 0, 0), len(b)
}

// endFrame writes the length of the message after the prefix at start.
func endFrame(b []byte, start int) []byte {
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-PrefixLen))
	return b
}

// pad8 appends zero bytes until the message that starts at start has a length that is a
// multiple of 8.
func pad8(b []byte, start int) []byte {
	for (len(b)-start)%8 != 0 {
		b = append(b, 0)
	}
	return b
}
