package msrpc

import (
	"encoding/binary"
	"encoding/hex"
	"strconv"
)

// UUID is a DCE UUID held in its canonical (string) byte order, as in
// "e1af8308-5d1f-11c9-91a4-08002b14a0fa" (C706 Appendix A). On the wire its first three
// fields follow the PDU's data representation.
type UUID [16]byte

// String formats u in the canonical 8-4-4-4-12 form.
func (u UUID) String() string {
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], u[10:16])
	return string(s[:])
}

// appendWire appends u in its little-endian wire form.
func (u UUID) appendWire(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, binary.BigEndian.Uint32(u[0:4]))
	b = binary.LittleEndian.AppendUint16(b, binary.BigEndian.Uint16(u[4:6]))
	b = binary.LittleEndian.AppendUint16(b, binary.BigEndian.Uint16(u[6:8]))
	return append(b, u[8:16]...)
}

// uuidFromWire decodes a 16-byte wire UUID whose first three fields are in order.
func uuidFromWire(b []byte, order binary.ByteOrder) UUID {
	var u UUID
	binary.BigEndian.PutUint32(u[0:4], order.Uint32(b[0:4]))
	binary.BigEndian.PutUint16(u[4:6], order.Uint16(b[4:6]))
	binary.BigEndian.PutUint16(u[6:8], order.Uint16(b[6:8]))
	copy(u[8:16], b[8:16])
	return u
}

// SyntaxID is an interface or transfer syntax identifier, p_syntax_id_t (C706 §12.6.3.1):
// a UUID and a version whose low 16 bits are the major and high 16 bits the minor version.
type SyntaxID struct {
	UUID  UUID
	Major uint16
	Minor uint16
}

// syntaxIDLen is the wire length of a SyntaxID.
const syntaxIDLen = 20

// appendWire appends s in its little-endian wire form.
func (s SyntaxID) appendWire(b []byte) []byte {
	b = s.UUID.appendWire(b)
	b = binary.LittleEndian.AppendUint16(b, s.Major)
	return binary.LittleEndian.AppendUint16(b, s.Minor)
}

// syntaxIDFromWire decodes a 20-byte wire SyntaxID.
func syntaxIDFromWire(b []byte, order binary.ByteOrder) SyntaxID {
	v := order.Uint32(b[16:20])
	return SyntaxID{UUID: uuidFromWire(b, order), Major: uint16(v), Minor: uint16(v >> 16)}
}

// Well-known syntaxes.
var (
	// EndpointMapper is the endpoint mapper interface e1af8308-5d1f-11c9-91a4-08002b14a0fa
	// version 3.0 (C706 Appendix O, MS-RPCE §2.2.1.2.4 and 3.1.1).
	EndpointMapper = SyntaxID{
		UUID:  UUID{0xe1, 0xaf, 0x83, 0x08, 0x5d, 0x1f, 0x11, 0xc9, 0x91, 0xa4, 0x08, 0x00, 0x2b, 0x14, 0xa0, 0xfa},
		Major: 3,
	}
	// NDR is the NDR transfer syntax 8a885d04-1ceb-11c9-9fe8-08002b104860 version 2.0
	// (C706 Appendix I).
	NDR = SyntaxID{
		UUID:  UUID{0x8a, 0x88, 0x5d, 0x04, 0x1c, 0xeb, 0x11, 0xc9, 0x9f, 0xe8, 0x08, 0x00, 0x2b, 0x10, 0x48, 0x60},
		Major: 2,
	}
	// NDR64 is the NDR64 transfer syntax 71710533-beba-4937-8319-b5dbef9ccc36 version 1.0
	// (MS-RPCE §2.2.5.1), named here only so that results can be described.
	NDR64 = SyntaxID{
		UUID:  UUID{0x71, 0x71, 0x05, 0x33, 0xbe, 0xba, 0x49, 0x37, 0x83, 0x19, 0xb5, 0xdb, 0xef, 0x9c, 0xcc, 0x36},
		Major: 1,
	}
)

// String names the well-known syntaxes ("NDR v2.0") and prints others as "uuid v1.0".
func (s SyntaxID) String() string {
	name := s.UUID.String()
	switch s.UUID {
	case NDR.UUID:
		name = "NDR"
	case NDR64.UUID:
		name = "NDR64"
	case EndpointMapper.UUID:
		name = "EPM"
	}
	return name + " v" + strconv.Itoa(int(s.Major)) + "." + strconv.Itoa(int(s.Minor))
}
