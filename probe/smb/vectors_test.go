package smb

import (
	"encoding/hex"
	"strings"
	"testing"
)

// unhex decodes a hex vector written with spaces and newlines for reading.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad test vector: %v", err)
	}
	return b
}

// patch returns a copy of the vector v with the bytes at frame offset off replaced by p.
func patch(t testing.TB, v string, off int, p string) []byte {
	t.Helper()
	b := unhex(t, v)
	copy(b[off:], unhex(t, p))
	return b
}

// reqHeader is the SMB2 request header of the negotiate vectors: FE 'SMB', StructureSize 64,
// CreditCharge 0, Status 0, Command NEGOTIATE, one credit, no flags, MessageId 0, the 0xFEFF
// process id in Reserved, TreeId 0, SessionId 0, no signature.
const reqHeader = `fe534d42 4000 0000 00000000 0000 0100 00000000 00000000 0000000000000000
fffe0000 00000000 0000000000000000 00000000000000000000000000000000`

// negotiateRequestVector is the 2.x/3.0 request of PROTOCOLS.md with ClientGuid 11×16.
// (derived in PROTOCOLS.md; re-checked field by field against MS-SMB2 §2.2.1.2 and §2.2.3.)
const negotiateRequestVector = `0000006c ` + reqHeader + `
2400 0400 0100 0000 00000000 11111111111111111111111111111111 0000000000000000
0202 1002 0003 0203`

// negotiateRequest311Vector offers 2.0.2 to 3.1.1 with salt 22×32 and the default ciphers.
// The contexts start 8-byte aligned at 112 (0x70): preauth integrity (38 data bytes, ends at
// 158), two bytes of padding, encryption (10 data bytes) ending the 178-byte message.
// (derived from MS-SMB2 §2.2.3 and §2.2.3.1, not captured.)
const negotiateRequest311Vector = `000000b2 ` + reqHeader + `
2400 0500 0100 0000 00000000 11111111111111111111111111111111 70000000 0200 0000
0202 1002 0003 0203 1103 0000
0100 2600 00000000 0100 2000 0100
2222222222222222222222222222222222222222222222222222222222222222 0000
0200 0a00 00000000 0400 0200 0100 0400 0300`

// respHeader is an SMB2 response header: CreditCharge 1, Status 0, NEGOTIATE, one credit
// granted, SMB2_FLAGS_SERVER_TO_REDIR, MessageId 0.
const respHeader = `fe534d42 4000 0100 00000000 0000 0100 01000000 00000000 0000000000000000
00000000 00000000 0000000000000000 00000000000000000000000000000000`

// negotiateResponseVector is a 3.0.2 response shaped as Samba's: signing enabled, DFS,
// leasing and large MTU, 8 MiB limits, system time 2024-05-01T12:00:00Z, a 10-byte security
// buffer at 128. (derived from MS-SMB2 §2.2.4, not captured: check against the lab's Samba.)
const negotiateResponseVector = `0000008a ` + respHeader + `
4100 0100 0203 0000 000102030405060708090a0b0c0d0e0f 07000000
00008000 00008000 00008000 0060ba17bf9bda01 0000000000000000
8000 0a00 00000000
604806062b0601050502`

// negotiateResponse311Vector is a 3.1.1 response with signing required, three contexts at 144
// (0x90): preauth integrity SHA-512 with salt 33×32, encryption AES-128-GCM and signing
// AES-GMAC, each after the first 8-byte aligned. (derived from MS-SMB2 §2.2.4, §2.2.4.1.)
const negotiateResponse311Vector = `000000dc ` + respHeader + `
4100 0300 1103 0300 000102030405060708090a0b0c0d0e0f 2f000000
00008000 00008000 00008000 0060ba17bf9bda01 0000000000000000
8000 0a00 90000000
604806062b0601050502 000000000000
0100 2600 00000000 0100 2000 0100
3333333333333333333333333333333333333333333333333333333333333333 0000
0200 0400 00000000 0100 0200 00000000
0800 0400 00000000 0100 0200`

// wildcardResponseVector is the SMB2 answer to an SMB1 negotiate offering "SMB 2.???":
// DialectRevision 0x02FF, no security buffer. (derived from MS-SMB2 §3.3.5.3.1.)
const wildcardResponseVector = `00000080 ` + respHeader + `
4100 0100 ff02 0000 000102030405060708090a0b0c0d0e0f 07000000
00000100 00000100 00000100 0060ba17bf9bda01 0000000000000000
0000 0000 00000000`

// smb1RequestHeader is the SMB1 NEGOTIATE request header: FF 'SMB', command 0x72, status 0,
// flags 0x18, flags2 0xC843, PIDLow 0xFEFF, everything else zero.
const smb1RequestHeader = `ff534d42 72 00000000 18 43c8 0000 0000000000000000 0000 0000 fffe 0000 0000`

// smb1NegotiateVector offers "NT LM 0.12", "SMB 2.002" and "SMB 2.???" (MS-CIFS
// §2.2.4.52.1): word count 0, 34 data bytes, 69-byte message.
const smb1NegotiateVector = `00000045 ` + smb1RequestHeader + `
00 2200
02 4e54204c4d20302e313200
02 534d4220322e30303200
02 534d4220322e3f3f3f00`

// smb1OnlyNegotiateVector offers "NT LM 0.12" alone.
const smb1OnlyNegotiateVector = `0000002f ` + smb1RequestHeader + `
00 0c00
02 4e54204c4d20302e313200`

// smb1ReplyHeader is an SMB1 reply header: flags 0x98 (reply, canonicalized paths, case
// insensitive), flags2 0xC853.
const smb1ReplyHeader = `ff534d42 72 00000000 98 53c8 0000 0000000000000000 0000 0000 fffe 0000 0000`

// smb1ExtendedVector is an NT LM 0.12 answer with extended security shaped as Windows
// Server 2003's: user-level security with encrypted passwords, MaxMpx 50, one VC, 4356-byte
// buffers, capabilities 0x8001f3fc, system time 2006-03-14T09:30:00.1234567Z, time zone -60,
// server GUID and a 10-byte blob. (derived from MS-CIFS §2.2.4.52.2, not captured.)
const smb1ExtendedVector = `0000005f ` + smb1ReplyHeader + `
11 0000 03 3200 0100 04110000 00000100 78563412 fcf30180 87f283dd4947c601 c4ff 00
1a00 f0e0d0c0b0a090807060504030201000 604806062b0601050502`

// smb1ChallengeVector is an NT LM 0.12 answer without extended security, as Samba or
// Windows 2000 send to a client that does not ask for it: signing enabled, an 8-byte
// challenge, domain "WORKGROUP" and server "SAMBA" in UTF-16LE. (derived from MS-CIFS
// §2.2.4.52.2.)
const smb1ChallengeVector = `0000006d ` + smb1ReplyHeader + `
11 0000 07 3200 0100 04110000 00000100 00000000 fde30000 0060ba17bf9bda01 0000 08
2800 0102030405060708 57004f0052004b00470052004f0055005000 0000 530041004d0042004100 0000`

// smb1NoDialectVector is the SMB1 answer of a server that shares no offered dialect:
// DialectIndex 0xFFFF, as Samba sends when SMB1 is off and only SMB1 was offered.
const smb1NoDialectVector = `00000025 ` + smb1ReplyHeader + ` 01 ffff 0000`
