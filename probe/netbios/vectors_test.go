package netbios

import (
	"encoding/hex"
	"strings"
)

// x decodes hex digits, ignoring spaces, into a string of bytes. It panics
// on bad input: the vectors are constants.
func x(s string) string {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return string(b)
}

// cat joins vector pieces into one message.
func cat(parts ...string) []byte {
	return []byte(strings.Join(parts, ""))
}

// Encoded names used by the vectors (RFC 1002 §4.1), as 32 letters.
const (
	lettersWildcard  = "CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" // "*" + 15 NULs
	lettersSMBServer = "CKFDENECFDEFFCFGEFFCCACACACACACA" // *SMBSERVER<20>
	lettersLabSamba  = "EMEBECCNFDEBENECEBCACACACACACACA" // LAB-SAMBA<20>
	lettersOFMProbe  = "EPEGENFAFCEPECEFCACACACACACACAAA" // OFMPROBE<00>
)

// Name table entries: 15 name bytes padded with spaces, suffix, NAME_FLAGS.
var (
	entryLabSamba00 = x("4c41422d53414d4241 202020202020 00 6600") // LAB-SAMBA<00> unique, H, active, permanent
	entryLabSamba03 = x("4c41422d53414d4241 202020202020 03 0400") // LAB-SAMBA<03> unique, B, active
	entryLabSamba20 = x("4c41422d53414d4241 202020202020 20 0400") // LAB-SAMBA<20> unique, B, active
	entryMSBrowse01 = x("01025f5f4d5342524f5753455f5f02 01 8400")  // \x01\x02__MSBROWSE__\x02<01> group
	entryOFMLab00   = x("4f464d4c4142 202020202020202020 00 8400") // OFMLAB<00> group
	entryOFMLab1D   = x("4f464d4c4142 202020202020202020 1d 0400") // OFMLAB<1D> unique
)

// statsCounting is a complete STATISTICS field: MAC 52:54:00:12:34:56,
// then counters holding 01, 02, 0304, … so that field order shows.
var statsCounting = x(`
	525400123456
	01 02 0304 0506 0708 090a 0b0c 0d0e 0f101112 13141516
	1718 191a 1b1c 1d1e 1f20 2122 2324 2526 2728`)

// Name service header pieces.
var (
	hdrResponse = x("1337 8400 0000 0001 0000 0000") // TRN_ID 0x1337, R|AA, ANCOUNT 1
	rrWildcard  = x("20") + lettersWildcard + x("00")
	rrNBSTAT    = x("0021 0001 00000000") // TYPE NBSTAT, CLASS IN, TTL 0
)

// respFull is a node status response from a Samba-like host with six names
// and complete statistics (derived from RFC 1002 §4.2.18, not captured).
var respFull = cat(
	hdrResponse, rrWildcard, rrNBSTAT,
	x("009b"), // RDLENGTH 155 = 1 + 6×18 + 46
	x("06"),
	entryLabSamba00, entryLabSamba03, entryLabSamba20, entryMSBrowse01, entryOFMLab00, entryOFMLab1D,
	statsCounting,
)

// respFullNames is the name table of respFull, decoded.
var respFullNames = []NodeName{
	{Name: "LAB-SAMBA", Suffix: 0x00, Flags: 0x6600},
	{Name: "LAB-SAMBA", Suffix: 0x03, Flags: 0x0400},
	{Name: "LAB-SAMBA", Suffix: 0x20, Flags: 0x0400},
	{Name: MSBrowse, Suffix: 0x01, Flags: 0x8400},
	{Name: "OFMLAB", Suffix: 0x00, Flags: 0x8400},
	{Name: "OFMLAB", Suffix: 0x1D, Flags: 0x0400},
}

// statsCountingDecoded is statsCounting, decoded.
var statsCountingDecoded = Statistics{
	UnitID:                MAC{0x52, 0x54, 0x00, 0x12, 0x34, 0x56},
	Jumpers:               0x01,
	TestResult:            0x02,
	VersionNumber:         0x0304,
	PeriodOfStatistics:    0x0506,
	CRCs:                  0x0708,
	AlignmentErrors:       0x090a,
	Collisions:            0x0b0c,
	SendAborts:            0x0d0e,
	GoodSends:             0x0f101112,
	GoodReceives:          0x13141516,
	Retransmits:           0x1718,
	NoResourceConditions:  0x191a,
	FreeCommandBlocks:     0x1b1c,
	TotalCommandBlocks:    0x1d1e,
	MaxTotalCommandBlocks: 0x1f20,
	PendingSessions:       0x2122,
	MaxPendingSessions:    0x2324,
	MaxTotalSessions:      0x2526,
	SessionDataPacketSize: 0x2728,
}

// respZeroMAC has one name and 46 zero bytes of statistics, as Samba sends.
var respZeroMAC = cat(
	hdrResponse, rrWildcard, rrNBSTAT,
	x("0041"), // RDLENGTH 65 = 1 + 18 + 46
	x("01"), entryLabSamba20,
	strings.Repeat("\x00", StatisticsSize),
)

// respShortStats has three names and only 4 bytes of statistics: too few
// for the MAC.
var respShortStats = cat(
	hdrResponse, rrWildcard, rrNBSTAT,
	x("003b"), // RDLENGTH 59 = 1 + 3×18 + 4
	x("03"), entryLabSamba00, entryLabSamba20, entryOFMLab00,
	x("52540012"),
)

// respCutStats claims complete statistics in RDLENGTH but the datagram ends
// 10 bytes into them.
var respCutStats = cat(
	hdrResponse, rrWildcard, rrNBSTAT,
	x("0065"), // RDLENGTH 101 = 1 + 3×18 + 46
	x("03"), entryLabSamba00, entryLabSamba20, entryOFMLab00,
	x("525400123456 01 02 0304"),
)

// respNoStats has one name and no statistics at all.
var respNoStats = cat(
	hdrResponse, rrWildcard, rrNBSTAT,
	x("0013"), // RDLENGTH 19 = 1 + 18
	x("01"), entryLabSamba20,
)

// requestNBSTAT is the 50-byte node status request of PROTOCOLS.md with
// TRN_ID 0x1337.
var requestNBSTAT = cat(
	x("1337 0000 0001 0000 0000 0000"),
	x("20"), lettersWildcard, x("00"),
	x("0021 0001"),
)
