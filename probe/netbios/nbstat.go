package netbios

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Name service constants, RFC 1002 §4.2.1.
const (
	// HeaderLen is the length of a name service header.
	HeaderLen = 12
	// NodeStatusRequestLen is the length of the node status request that
	// AppendNodeStatusRequest writes.
	NodeStatusRequestLen = HeaderLen + EncodedNameLen + 4
	// TypeNB is the general name service resource record type.
	TypeNB uint16 = 0x0020
	// TypeNBSTAT is the node status resource record type.
	TypeNBSTAT uint16 = 0x0021
	// ClassIN is the internet class.
	ClassIN uint16 = 0x0001
	// NameEntryLen is the length of one NODE_NAME entry in a node status
	// response: 15 name bytes, the suffix and NAME_FLAGS.
	NameEntryLen = 18
	// StatisticsSize is the length of the STATISTICS field that ends a
	// complete node status response.
	StatisticsSize = 46
)

// Header FLAGS bits, RFC 1002 §4.2.1.1.
const (
	FlagResponse           uint16 = 0x8000 // R: response
	FlagAuthoritative      uint16 = 0x0400 // AA: authoritative answer
	FlagTruncated          uint16 = 0x0200 // TC: truncation
	FlagRecursionDesired   uint16 = 0x0100 // RD: recursion desired
	FlagRecursionAvailable uint16 = 0x0080 // RA: recursion available
	FlagBroadcast          uint16 = 0x0010 // B: broadcast packet
	opcodeShift                   = 11
	opcodeMask             uint16 = 0x0F
	rcodeMask              uint16 = 0x000F
)

// RCode is the result code of a name service response, the low four bits
// of FLAGS (RFC 1002 §4.2.1.1, values from §4.2.6 and §4.2.14).
type RCode uint8

// Result codes.
const (
	RCodeOK          RCode = 0
	RCodeFormatError RCode = 1
	RCodeServerError RCode = 2
	RCodeNameError   RCode = 3
	RCodeUnsupported RCode = 4
	RCodeRefused     RCode = 5
	RCodeActive      RCode = 6
	RCodeConflict    RCode = 7
)

// String describes the result code.
func (r RCode) String() string {
	switch r {
	case RCodeOK:
		return "no error"
	case RCodeFormatError:
		return "format error: request was invalidly formatted"
	case RCodeServerError:
		return "server failure: cannot process name"
	case RCodeNameError:
		return "name error: name does not exist"
	case RCodeUnsupported:
		return "unsupported request"
	case RCodeRefused:
		return "refused"
	case RCodeActive:
		return "active error: name is owned by another node"
	case RCodeConflict:
		return "name in conflict"
	}
	return fmt.Sprintf("unknown rcode %d", uint8(r))
}

// NodeType is the owner node type of a name (RFC 1002 §4.2.1.3 NB_FLAGS ONT).
type NodeType uint8

// Owner node types.
const (
	BNode NodeType = 0 // broadcast
	PNode NodeType = 1 // point-to-point
	MNode NodeType = 2 // mixed
	HNode NodeType = 3 // hybrid (Microsoft)
)

// String returns the one-letter node type: B, P, M or H.
func (t NodeType) String() string {
	return string("BPMH"[t&3])
}

// NameFlags is the NAME_FLAGS field of a node status name entry
// (RFC 1002 §4.2.18).
type NameFlags uint16

// NAME_FLAGS bits.
const (
	NameGroup         NameFlags = 0x8000 // G: group name
	NameDeregistering NameFlags = 0x1000 // DRG: being deleted
	NameConflict      NameFlags = 0x0800 // CNF: in conflict
	NameActive        NameFlags = 0x0400 // ACT: active (always set)
	NamePermanent     NameFlags = 0x0200 // PRM: the permanent node name
	nodeTypeShift               = 13
)

// Group reports whether the name is a group name rather than a unique one.
func (f NameFlags) Group() bool { return f&NameGroup != 0 }

// NodeType returns the owner node type.
func (f NameFlags) NodeType() NodeType { return NodeType(f>>nodeTypeShift) & 3 }

// Deregistering reports whether the name is being deleted.
func (f NameFlags) Deregistering() bool { return f&NameDeregistering != 0 }

// Conflict reports whether the name is in conflict.
func (f NameFlags) Conflict() bool { return f&NameConflict != 0 }

// Active reports whether the name is active.
func (f NameFlags) Active() bool { return f&NameActive != 0 }

// Permanent reports whether the name is the permanent node name.
func (f NameFlags) Permanent() bool { return f&NamePermanent != 0 }

// String lists the flags as nbtstat does, for example "GROUP H ACTIVE".
func (f NameFlags) String() string {
	parts := make([]string, 0, 6)
	if f.Group() {
		parts = append(parts, "GROUP")
	} else {
		parts = append(parts, "UNIQUE")
	}
	parts = append(parts, f.NodeType().String())
	if f.Active() {
		parts = append(parts, "ACTIVE")
	}
	if f.Permanent() {
		parts = append(parts, "PERMANENT")
	}
	if f.Conflict() {
		parts = append(parts, "CONFLICT")
	}
	if f.Deregistering() {
		parts = append(parts, "DEREGISTERING")
	}
	return strings.Join(parts, " ")
}

// NodeName is one entry of a node's name table (RFC 1002 §4.2.18
// NODE_NAME): the name without its padding spaces, its suffix and flags.
type NodeName struct {
	Name   string
	Suffix byte
	Flags  NameFlags
}

// String returns the entry as NAME<XX> followed by its flags.
func (n NodeName) String() string {
	return Name{Name: n.Name, Suffix: n.Suffix}.String() + " " + n.Flags.String()
}

// Meaning describes the entry's suffix; see SuffixMeaning.
func (n NodeName) Meaning() string { return SuffixMeaning(n.Suffix, n.Flags.Group()) }

// MAC is an adapter address, the UNIT_ID of node status statistics.
type MAC [6]byte

// IsZero reports whether the address is all zeros, as Samba and some
// other stacks send it.
func (m MAC) IsZero() bool { return m == MAC{} }

// String formats the address as six colon-separated hex pairs.
func (m MAC) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// Statistics is the STATISTICS field of a node status response
// (RFC 1002 §4.2.18). When a node sends fewer than 46 bytes, the missing
// bytes read as zero: fields past the end are zero, and a field cut short
// holds the bytes that were sent followed by zeros.
type Statistics struct {
	UnitID                MAC
	Jumpers               uint8
	TestResult            uint8
	VersionNumber         uint16
	PeriodOfStatistics    uint16
	CRCs                  uint16
	AlignmentErrors       uint16
	Collisions            uint16
	SendAborts            uint16
	GoodSends             uint32
	GoodReceives          uint32
	Retransmits           uint16
	NoResourceConditions  uint16
	FreeCommandBlocks     uint16
	TotalCommandBlocks    uint16
	MaxTotalCommandBlocks uint16
	PendingSessions       uint16
	MaxPendingSessions    uint16
	MaxTotalSessions      uint16
	SessionDataPacketSize uint16
}

// NodeStatus is a decoded node status response (RFC 1002 §4.2.18).
type NodeStatus struct {
	// TxID is NAME_TRN_ID, copied from the request.
	TxID uint16
	// Flags is the whole FLAGS field of the header, RCODE included.
	Flags uint16
	// Name is RR_NAME, the name the node echoed from the request.
	Name Name
	// TTL is the answer record's time to live in seconds.
	TTL uint32
	// Names is the node's name table, in the order the node sent it.
	Names []NodeName
	// Statistics holds the fields of STATISTICS that were present.
	Statistics Statistics
	// StatisticsLen is the number of STATISTICS bytes present: 0 when the
	// node sent none, StatisticsSize (46) or more when they are complete.
	StatisticsLen int
	// RDataTruncated reports that RDLENGTH claimed more bytes than the
	// message held; the names and statistics present were still decoded.
	RDataTruncated bool
}

// RCode returns the result code from the header flags.
func (s *NodeStatus) RCode() RCode { return RCode(s.Flags & rcodeMask) }

// MAC returns the adapter address (UNIT_ID) and whether the statistics
// were long enough to hold it; when they were not it returns a zero MAC
// and false. A known address may still be all zeros; see MAC.IsZero.
func (s *NodeStatus) MAC() (MAC, bool) {
	if s.StatisticsLen < len(MAC{}) {
		return MAC{}, false
	}
	return s.Statistics.UnitID, true
}

// StatisticsComplete reports whether all 46 bytes of STATISTICS were present.
func (s *NodeStatus) StatisticsComplete() bool { return s.StatisticsLen >= StatisticsSize }

// Find returns the first name-table entry with the given suffix that is a
// group name (group true) or a unique name (group false).
func (s *NodeStatus) Find(suffix byte, group bool) (NodeName, bool) {
	for _, n := range s.Names {
		if n.Suffix == suffix && n.Flags.Group() == group {
			return n, true
		}
	}
	return NodeName{}, false
}

func (s *NodeStatus) findName(suffix byte, group bool) (string, bool) {
	n, ok := s.Find(suffix, group)
	return n.Name, ok
}

// Workgroup returns the domain or workgroup the node belongs to: its group
// name with suffix 0x00.
func (s *NodeStatus) Workgroup() (string, bool) { return s.findName(SuffixWorkstation, true) }

// FileServer returns the name under which the node runs the server service
// (a unique name with suffix 0x20) and whether it has one. That is the name
// to call in a session request on TCP port 139.
func (s *NodeStatus) FileServer() (string, bool) { return s.findName(SuffixFileServer, false) }

// ComputerName returns the node's own name: its unique name with suffix
// 0x00, or failing that its unique name with suffix 0x20.
func (s *NodeStatus) ComputerName() (string, bool) {
	if n, ok := s.findName(SuffixWorkstation, false); ok {
		return n, true
	}
	return s.findName(SuffixFileServer, false)
}

// MasterBrowser returns the workgroup for which the node is the local
// master browser (its unique name with suffix 0x1D).
func (s *NodeStatus) MasterBrowser() (string, bool) { return s.findName(SuffixMasterBrowser, false) }

// DomainMasterBrowser returns the domain for which the node is the domain
// master browser (its unique name with suffix 0x1B).
func (s *NodeStatus) DomainMasterBrowser() (string, bool) {
	return s.findName(SuffixDomainMasterBrowser, false)
}

// HasMSBrowse reports whether the node holds the group name
// \x01\x02__MSBROWSE__\x02<01> that local master browsers register.
func (s *NodeStatus) HasMSBrowse() bool {
	for _, n := range s.Names {
		if n.Name == MSBrowse && n.Suffix == SuffixMasterBrowserGroup && n.Flags.Group() {
			return true
		}
	}
	return false
}

// AppendNodeStatusRequest appends a node status request (RFC 1002 §4.2.17)
// for the wildcard name "*" with the transaction ID txid to b: a header
// with FLAGS 0x0000 (unicast query) and QDCOUNT 1, then the question with
// QTYPE NBSTAT and QCLASS IN. It adds NodeStatusRequestLen (50) bytes.
func AppendNodeStatusRequest(b []byte, txid uint16) []byte {
	b = binary.BigEndian.AppendUint16(b, txid)
	b = append(b,
		0x00, 0x00, // FLAGS
		0x00, 0x01, // QDCOUNT
		0x00, 0x00, // ANCOUNT
		0x00, 0x00, // NSCOUNT
		0x00, 0x00, // ARCOUNT
	)
	b = append(b, encodedWildcard...)
	b = binary.BigEndian.AppendUint16(b, TypeNBSTAT)
	return binary.BigEndian.AppendUint16(b, ClassIN)
}

// encodedWildcard is the encoded name "*": 0x20, "CK", 30 × 'A', 0x00.
const encodedWildcard = "\x20CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\x00"

// ParseNodeStatusResponse decodes a node status response (RFC 1002 §4.2.18).
//
// It walks the message rather than assuming offsets: the 12-byte header
// must have the response bit, opcode query, RCODE 0 and ANCOUNT at least 1;
// any questions are skipped; the first answer must be an NBSTAT record of
// class IN. If RDLENGTH claims more bytes than the message holds, what is
// present is decoded and RDataTruncated is set, but every name entry must
// be whole. STATISTICS may be short or missing: the names are kept and
// StatisticsLen says how much was there.
//
// On error the returned NodeStatus holds what was decoded before the error,
// so TxID and Flags are set whenever the header was complete: a caller can
// match a negative or malformed answer to its request.
func ParseNodeStatusResponse(b []byte) (NodeStatus, error) {
	var s NodeStatus
	if len(b) < HeaderLen {
		return s, fmt.Errorf("%w: header is %d bytes, need %d", ErrShort, len(b), HeaderLen)
	}
	s.TxID = binary.BigEndian.Uint16(b[0:])
	s.Flags = binary.BigEndian.Uint16(b[2:])
	qdcount := int(binary.BigEndian.Uint16(b[4:]))
	ancount := binary.BigEndian.Uint16(b[6:])
	if s.Flags&FlagResponse == 0 {
		return s, fmt.Errorf("%w: flags 0x%04x", ErrNotResponse, s.Flags)
	}
	if op := s.Flags >> opcodeShift & opcodeMask; op != 0 {
		return s, fmt.Errorf("%w: opcode %d, want 0 (query)", ErrOpcode, op)
	}
	if rc := s.RCode(); rc != RCodeOK {
		return s, fmt.Errorf("%w: rcode %d (%v)", ErrRCode, uint8(rc), rc)
	}
	if ancount == 0 {
		return s, fmt.Errorf("%w: ancount 0", ErrNoAnswer)
	}

	off := HeaderLen
	for i := range qdcount {
		_, n, err := ParseName(b[off:])
		if err != nil {
			return s, fmt.Errorf("question %d name: %w", i+1, err)
		}
		off += n
		if len(b)-off < 4 {
			return s, fmt.Errorf("%w: question %d: %d bytes for type and class, need 4", ErrShort, i+1, len(b)-off)
		}
		off += 4
	}

	name, n, err := ParseName(b[off:])
	if err != nil {
		return s, fmt.Errorf("answer name: %w", err)
	}
	s.Name = name
	off += n
	if len(b)-off < 10 {
		return s, fmt.Errorf("%w: answer record: %d bytes for type, class, ttl and rdlength, need 10", ErrShort, len(b)-off)
	}
	rrType := binary.BigEndian.Uint16(b[off:])
	rrClass := binary.BigEndian.Uint16(b[off+2:])
	if rrType != TypeNBSTAT {
		return s, fmt.Errorf("%w: type 0x%04x, want 0x%04x", ErrWrongType, rrType, TypeNBSTAT)
	}
	if rrClass != ClassIN {
		return s, fmt.Errorf("%w: class 0x%04x, want 0x%04x", ErrWrongClass, rrClass, ClassIN)
	}
	s.TTL = binary.BigEndian.Uint32(b[off+4:])
	rdlen := int(binary.BigEndian.Uint16(b[off+8:]))
	off += 10

	rdata := b[off:]
	if rdlen <= len(rdata) {
		rdata = rdata[:rdlen]
	} else {
		s.RDataTruncated = true
	}
	if len(rdata) == 0 {
		return s, fmt.Errorf("%w: rdata has no NUM_NAMES byte (rdlength %d, %d bytes present)", ErrShort, rdlen, len(b)-off)
	}
	count := int(rdata[0])
	end := 1 + count*NameEntryLen
	if len(rdata) < end {
		return s, fmt.Errorf("%w: %d names need %d bytes of rdata, have %d (rdlength %d)", ErrShort, count, end, len(rdata), rdlen)
	}
	if count > 0 {
		// One string for the whole table; the names are substrings of it.
		table := string(rdata[1:end])
		s.Names = make([]NodeName, count)
		for i := range s.Names {
			e := table[i*NameEntryLen : (i+1)*NameEntryLen]
			s.Names[i] = NodeName{
				Name:   strings.TrimRight(e[:NameLen-1], " "),
				Suffix: e[NameLen-1],
				Flags:  NameFlags(uint16(e[NameLen])<<8 | uint16(e[NameLen+1])),
			}
		}
	}
	stats := rdata[end:]
	s.StatisticsLen = len(stats)
	s.Statistics = parseStatistics(stats)
	return s, nil
}

// parseStatistics decodes STATISTICS from b. Missing bytes read as zero,
// so a field cut short keeps the bytes that were sent.
func parseStatistics(b []byte) Statistics {
	var buf [StatisticsSize]byte
	copy(buf[:], b)
	be := binary.BigEndian
	st := Statistics{
		Jumpers:               buf[6],
		TestResult:            buf[7],
		VersionNumber:         be.Uint16(buf[8:]),
		PeriodOfStatistics:    be.Uint16(buf[10:]),
		CRCs:                  be.Uint16(buf[12:]),
		AlignmentErrors:       be.Uint16(buf[14:]),
		Collisions:            be.Uint16(buf[16:]),
		SendAborts:            be.Uint16(buf[18:]),
		GoodSends:             be.Uint32(buf[20:]),
		GoodReceives:          be.Uint32(buf[24:]),
		Retransmits:           be.Uint16(buf[28:]),
		NoResourceConditions:  be.Uint16(buf[30:]),
		FreeCommandBlocks:     be.Uint16(buf[32:]),
		TotalCommandBlocks:    be.Uint16(buf[34:]),
		MaxTotalCommandBlocks: be.Uint16(buf[36:]),
		PendingSessions:       be.Uint16(buf[38:]),
		MaxPendingSessions:    be.Uint16(buf[40:]),
		MaxTotalSessions:      be.Uint16(buf[42:]),
		SessionDataPacketSize: be.Uint16(buf[44:]),
	}
	copy(st.UnitID[:], buf[:6])
	return st
}

// appendStatistics appends all 46 bytes of STATISTICS.
func appendStatistics(b []byte, st *Statistics) []byte {
	b = append(b, st.UnitID[:]...)
	b = append(b, st.Jumpers, st.TestResult)
	be := binary.BigEndian
	b = be.AppendUint16(b, st.VersionNumber)
	b = be.AppendUint16(b, st.PeriodOfStatistics)
	b = be.AppendUint16(b, st.CRCs)
	b = be.AppendUint16(b, st.AlignmentErrors)
	b = be.AppendUint16(b, st.Collisions)
	b = be.AppendUint16(b, st.SendAborts)
	b = be.AppendUint32(b, st.GoodSends)
	b = be.AppendUint32(b, st.GoodReceives)
	b = be.AppendUint16(b, st.Retransmits)
	b = be.AppendUint16(b, st.NoResourceConditions)
	b = be.AppendUint16(b, st.FreeCommandBlocks)
	b = be.AppendUint16(b, st.TotalCommandBlocks)
	b = be.AppendUint16(b, st.MaxTotalCommandBlocks)
	b = be.AppendUint16(b, st.PendingSessions)
	b = be.AppendUint16(b, st.MaxPendingSessions)
	b = be.AppendUint16(b, st.MaxTotalSessions)
	return be.AppendUint16(b, st.SessionDataPacketSize)
}

// AppendNodeStatusResponse appends the node status response (RFC 1002
// §4.2.18) that s describes to b, for test servers and round trips: the
// header with s.TxID, s.Flags, QDCOUNT 0 and ANCOUNT 1, then one NBSTAT
// record with RR_NAME s.Name, s.TTL, the name table and s.StatisticsLen
// bytes of statistics (zero-padded beyond 46). Names are written exactly as
// given, without case folding. RDataTruncated is ignored: RDLENGTH always
// matches the data written. On error b is returned unchanged.
func AppendNodeStatusResponse(b []byte, s *NodeStatus) ([]byte, error) {
	if len(s.Names) > 255 {
		return b, fmt.Errorf("%w: %d names, at most 255 fit NUM_NAMES", ErrTooMany, len(s.Names))
	}
	if s.StatisticsLen < 0 {
		return b, fmt.Errorf("%w: negative statistics length %d", ErrBadLength, s.StatisticsLen)
	}
	rdlen := 1 + len(s.Names)*NameEntryLen + s.StatisticsLen
	if rdlen > 0xFFFF {
		return b, fmt.Errorf("%w: rdata is %d bytes, at most 65535 fit RDLENGTH", ErrTooMany, rdlen)
	}
	for i, n := range s.Names {
		if len(n.Name) > NameLen-1 {
			return b, fmt.Errorf("%w: name %d %q is %d bytes, at most %d allowed", ErrBadName, i+1, n.Name, len(n.Name), NameLen-1)
		}
	}
	orig := b
	b = binary.BigEndian.AppendUint16(b, s.TxID)
	b = binary.BigEndian.AppendUint16(b, s.Flags)
	b = append(b, 0, 0, 0, 1, 0, 0, 0, 0) // QDCOUNT 0, ANCOUNT 1, NSCOUNT 0, ARCOUNT 0
	b, err := appendName(b, s.Name.Name, s.Name.Suffix, s.Name.Scope, false)
	if err != nil {
		return orig, fmt.Errorf("answer name: %w", err)
	}
	b = binary.BigEndian.AppendUint16(b, TypeNBSTAT)
	b = binary.BigEndian.AppendUint16(b, ClassIN)
	b = binary.BigEndian.AppendUint32(b, s.TTL)
	b = binary.BigEndian.AppendUint16(b, uint16(rdlen))
	b = append(b, byte(len(s.Names)))
	for _, n := range s.Names {
		b = append(b, n.Name...)
		for range NameLen - 1 - len(n.Name) {
			b = append(b, ' ')
		}
		b = append(b, n.Suffix)
		b = binary.BigEndian.AppendUint16(b, uint16(n.Flags))
	}
	if s.StatisticsLen > 0 {
		start := len(b)
		b = appendStatistics(b, &s.Statistics)
		if s.StatisticsLen <= StatisticsSize {
			b = b[:start+s.StatisticsLen]
		} else {
			b = append(b, make([]byte, s.StatisticsLen-StatisticsSize)...)
		}
	}
	return b, nil
}
