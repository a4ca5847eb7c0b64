package netbios

import (
	"fmt"
	"strings"
)

// Name lengths, RFC 1002 §4.1.
const (
	// NameLen is the length of a NetBIOS name before encoding: 15 name
	// bytes and one suffix byte.
	NameLen = 16
	// EncodedNameLen is the length of an encoded name without scope:
	// a length byte of 0x20, 32 letters and the 0x00 root label.
	EncodedNameLen = 34
	// maxEncodedLen is the longest encoded name including its scope and
	// the root label, as for domain names.
	maxEncodedLen = 255
	// maxLabelLen is the longest scope label.
	maxLabelLen = 63
)

// Common name suffixes (the sixteenth byte, also called the service type).
const (
	SuffixWorkstation         byte = 0x00 // unique: workstation service; group: domain or workgroup name
	SuffixMasterBrowserGroup  byte = 0x01 // group: __MSBROWSE__, held by local master browsers
	SuffixMessenger           byte = 0x03 // unique: messenger service
	SuffixDomainMasterBrowser byte = 0x1B // unique: domain master browser
	SuffixDomainControllers   byte = 0x1C // group: domain controllers
	SuffixMasterBrowser       byte = 0x1D // unique: local master browser
	SuffixBrowserElections    byte = 0x1E // group: browser service elections
	SuffixNetDDE              byte = 0x1F // unique: NetDDE service
	SuffixFileServer          byte = 0x20 // unique: file server (server service)
)

// MSBrowse is the name a local master browser registers as a group with
// suffix SuffixMasterBrowserGroup.
const MSBrowse = "\x01\x02__MSBROWSE__\x02"

// Name is a NetBIOS name as RFC 1002 §4.1 describes it: up to 15 bytes,
// a suffix byte, and an optional scope in dotted form.
//
// The name "*" is the wildcard: it is padded with NUL bytes rather than
// spaces. Decoded names have their padding spaces removed.
type Name struct {
	Name   string
	Suffix byte
	Scope  string
}

// Wildcard is the name "*" with suffix 0x00, used to ask a node for its
// whole name table (RFC 1002 §4.2.17).
var Wildcard = Name{Name: "*"}

// String returns the name in the usual NAME<XX> notation, with bytes that
// are not printable ASCII written as \xNN and the scope, if any, after a dot.
func (n Name) String() string {
	var sb strings.Builder
	writeEscaped(&sb, n.Name)
	fmt.Fprintf(&sb, "<%02X>", n.Suffix)
	if n.Scope != "" {
		sb.WriteByte('.')
		writeEscaped(&sb, n.Scope)
	}
	return sb.String()
}

func writeEscaped(sb *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '\\' {
			fmt.Fprintf(sb, `\x%02x`, c)
			continue
		}
		sb.WriteByte(c)
	}
}

// EncodeName returns the RFC 1002 §4.1 wire form of n. See AppendName.
func EncodeName(n Name) ([]byte, error) {
	return AppendName(make([]byte, 0, EncodedNameLen+len(n.Scope)+1), n)
}

// AppendName appends the RFC 1002 §4.1 first-level encoding of n to b:
// the length byte 0x20, 32 letters 'A'..'P' for the 16 name bytes, the
// scope labels if any, and the 0x00 root label. Without a scope that is
// EncodedNameLen bytes.
//
// The name must be 1 to 15 bytes long; ASCII letters are upper-cased, as
// NetBIOS names are case-insensitive and sent in upper case. Scope labels
// must be 1 to 63 bytes and the whole encoding at most 255 bytes. On error
// b is returned unchanged.
func AppendName(b []byte, n Name) ([]byte, error) {
	if n.Name == "" {
		return b, fmt.Errorf("%w: empty name", ErrBadName)
	}
	return appendName(b, n.Name, n.Suffix, n.Scope, true)
}

// appendName pads name to 15 bytes, adds the suffix and encodes it with
// scope. With fold set ASCII letters are upper-cased; without it the bytes
// are kept exactly, so that a decoded message re-encodes byte for byte.
func appendName(b []byte, name string, suffix byte, scope string, fold bool) ([]byte, error) {
	if len(name) > NameLen-1 {
		return b, fmt.Errorf("%w: %q is %d bytes, at most %d allowed", ErrBadName, name, len(name), NameLen-1)
	}
	var raw [NameLen]byte
	pad := byte(' ')
	if name == "*" {
		pad = 0
	}
	for i := range NameLen - 1 {
		c := pad
		if i < len(name) {
			c = name[i]
			if fold {
				c = upperASCII(c)
			}
		}
		raw[i] = c
	}
	raw[NameLen-1] = suffix
	return appendRawName(b, &raw, scope)
}

// appendRawName encodes 16 name bytes and a dotted scope.
func appendRawName(b []byte, raw *[NameLen]byte, scope string) ([]byte, error) {
	total := EncodedNameLen
	if scope != "" {
		for label := range strings.SplitSeq(scope, ".") {
			if len(label) == 0 || len(label) > maxLabelLen {
				return b, fmt.Errorf("%w: scope %q has a label of %d bytes, want 1 to %d", ErrBadName, scope, len(label), maxLabelLen)
			}
			total += 1 + len(label)
		}
		if total > maxEncodedLen {
			return b, fmt.Errorf("%w: encoded name with scope %q is %d bytes, at most %d allowed", ErrBadName, scope, total, maxEncodedLen)
		}
	}
	b = append(b, 2*NameLen)
	for _, c := range raw {
		b = append(b, 'A'+c>>4, 'A'+c&0x0F)
	}
	if scope != "" {
		for label := range strings.SplitSeq(scope, ".") {
			b = append(b, byte(len(label)))
			b = append(b, label...)
		}
	}
	return append(b, 0), nil
}

func upperASCII(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// ParseName decodes the RFC 1002 §4.1 name at the start of b and returns
// it with the number of bytes it took.
//
// The first label must be 32 letters 'A'..'P'. Scope labels that follow
// are returned joined by dots. Trailing padding spaces are removed from
// the name; "*" followed by NUL bytes decodes as "*". A label string
// pointer (a length byte with its top two bits set) is rejected with
// ErrNamePointer, and the other reserved label types with ErrBadName.
func ParseName(b []byte) (Name, int, error) {
	var raw [NameLen]byte
	scope, n, err := parseRawName(b, &raw)
	if err != nil {
		return Name{}, 0, err
	}
	return Name{Name: trimName(raw[:NameLen-1]), Suffix: raw[NameLen-1], Scope: scope}, n, nil
}

// parseRawName decodes the name at the start of b into raw and returns
// its scope and length.
func parseRawName(b []byte, raw *[NameLen]byte) (string, int, error) {
	if len(b) == 0 {
		return "", 0, fmt.Errorf("%w: name: no length byte", ErrShort)
	}
	if err := checkLabelType(b[0], 0); err != nil {
		return "", 0, err
	}
	if b[0] != 2*NameLen {
		return "", 0, fmt.Errorf("%w: first label is %d bytes, want %d", ErrBadName, b[0], 2*NameLen)
	}
	if len(b) < 1+2*NameLen {
		return "", 0, fmt.Errorf("%w: name: %d bytes, need %d", ErrShort, len(b), EncodedNameLen)
	}
	for i := range NameLen {
		hi, lo := b[1+2*i]-'A', b[2+2*i]-'A'
		if hi > 0x0F || lo > 0x0F {
			return "", 0, fmt.Errorf("%w: byte %d (%q) is not a letter 'A'..'P'", ErrBadName, 1+2*i, b[1+2*i:3+2*i])
		}
		raw[i] = hi<<4 | lo
	}
	off := 1 + 2*NameLen
	scopeStart := off
	for {
		if off >= len(b) {
			return "", 0, fmt.Errorf("%w: name: no root label after %d bytes", ErrShort, off)
		}
		l := int(b[off])
		if l == 0 {
			off++
			break
		}
		if err := checkLabelType(b[off], off); err != nil {
			return "", 0, err
		}
		if off+1+l+1 > maxEncodedLen {
			return "", 0, fmt.Errorf("%w: name longer than %d bytes", ErrBadName, maxEncodedLen)
		}
		if off+1+l > len(b) {
			return "", 0, fmt.Errorf("%w: scope label at byte %d is %d bytes, %d left", ErrShort, off, l, len(b)-off-1)
		}
		off += 1 + l
	}
	if off == scopeStart+1 {
		return "", off, nil
	}
	// Join the scope labels with dots; the length bytes become the dots.
	scope := make([]byte, 0, off-scopeStart-2)
	for i := scopeStart; b[i] != 0; i += 1 + int(b[i]) {
		if len(scope) > 0 {
			scope = append(scope, '.')
		}
		scope = append(scope, b[i+1:i+1+int(b[i])]...)
	}
	return string(scope), off, nil
}

// checkLabelType rejects label length bytes that are not plain labels.
func checkLabelType(l byte, off int) error {
	switch l & 0xC0 {
	case 0x00:
		return nil
	case 0xC0:
		return fmt.Errorf("%w: label string pointer at byte %d", ErrNamePointer, off)
	default:
		return fmt.Errorf("%w: reserved label type 0x%02x at byte %d", ErrBadName, l, off)
	}
}

// trimName removes the padding from the 15 name bytes: trailing spaces,
// and the NULs after a wildcard "*".
func trimName(b []byte) string {
	end := len(b)
	for end > 0 && b[end-1] == ' ' {
		end--
	}
	if end > 0 && b[0] == '*' {
		wild := true
		for _, c := range b[1:end] {
			if c != 0 {
				wild = false
				break
			}
		}
		if wild {
			return "*"
		}
	}
	return string(b[:end])
}

// SuffixMeaning describes what a name with the given suffix stands for in
// a node status name table, or returns "" for a suffix it does not know.
// The meaning depends on whether the name is a group name. Sources:
// impacket nmb.py NAME_TYPES, nmap nselib/netbios.lua.
func SuffixMeaning(suffix byte, group bool) string {
	if group {
		switch suffix {
		case SuffixWorkstation:
			return "domain or workgroup name"
		case SuffixMasterBrowserGroup:
			return "master browser (__MSBROWSE__)"
		case SuffixDomainControllers:
			return "domain controllers"
		case SuffixBrowserElections:
			return "browser service elections"
		}
		return ""
	}
	switch suffix {
	case SuffixWorkstation:
		return "workstation service"
	case SuffixMessenger:
		return "messenger service"
	case SuffixDomainMasterBrowser:
		return "domain master browser"
	case SuffixMasterBrowser:
		return "master browser"
	case SuffixNetDDE:
		return "NetDDE service"
	case SuffixFileServer:
		return "file server service"
	}
	return ""
}
