package smb

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestAppendSMB1Negotiate(t *testing.T) {
	tests := []struct {
		name     string
		dialects []string
		want     string
	}{
		{"nil offers the multi-protocol list", nil, smb1NegotiateVector},
		{"multi-protocol", MultiProtocolDialects, smb1NegotiateVector},
		{"SMB1 only", SMB1OnlyDialects, smb1OnlyNegotiateVector},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendSMB1Negotiate(nil, tt.dialects)
			want := unhex(t, tt.want)
			if !bytes.Equal(got, want) {
				t.Fatalf("AppendSMB1Negotiate =\n%x\nwant\n%x", got, want)
			}
		})
	}
	got := AppendSMB1Negotiate([]byte{0x01}, []string{"PC NETWORK PROGRAM 1.0", ""})
	want := unhex(t, `01 0000003d `+smb1RequestHeader+` 00 1a00
		02 5043204e4554574f524b2050524f4752414d20312e3000 02 00`)
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendSMB1Negotiate(custom) =\n%x\nwant\n%x", got, want)
	}
}

// extendedAnswer is smb1ExtendedVector decoded.
var extendedAnswer = SMB1NegotiateResponse{
	Flags: 0x98, Flags2: 0xC853, Dialect: DialectNTLM012,
	SecurityMode: SMB1UserSecurity | SMB1EncryptPasswords,
	MaxMpxCount:  50, MaxNumberVcs: 1, MaxBufferSize: 4356, MaxRawSize: 65536, SessionKey: 0x12345678,
	Capabilities:     0x8001f3fc,
	SystemTime:       time.Date(2006, 3, 14, 9, 30, 0, 123456700, time.UTC),
	ServerTimeZone:   -60,
	ExtendedSecurity: true,
	ServerGUID:       GUID{0xf0, 0xe0, 0xd0, 0xc0, 0xb0, 0xa0, 0x90, 0x80, 0x70, 0x60, 0x50, 0x40, 0x30, 0x20, 0x10, 0x00},
	SecurityBlob:     spnegoStub,
}

// challengeAnswer is smb1ChallengeVector decoded.
var challengeAnswer = SMB1NegotiateResponse{
	Flags: 0x98, Flags2: 0xC853, Dialect: DialectNTLM012,
	SecurityMode: SMB1UserSecurity | SMB1EncryptPasswords | SMB1SignaturesEnabled,
	MaxMpxCount:  50, MaxNumberVcs: 1, MaxBufferSize: 4356, MaxRawSize: 65536,
	Capabilities: 0xe3fd,
	SystemTime:   smbTime,
	Challenge:    []byte{1, 2, 3, 4, 5, 6, 7, 8},
	DomainName:   "WORKGROUP",
}

func TestParseMultiProtocolAnswer(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		offered []string
		want    MultiProtocolAnswer
		desc    string
	}{
		{
			name: "SMB2 server, wildcard",
			in:   unhex(t, wildcardResponseVector),
			want: MultiProtocolAnswer{Kind: AnswerSMB2, SMB2: NegotiateResponse{
				Credits: 1, SecurityMode: SigningEnabled, Dialect: SMB2Wildcard, ServerGUID: vectorGUID,
				Capabilities:    CapDFS | CapLeasing | CapLargeMTU,
				MaxTransactSize: 65536, MaxReadSize: 65536, MaxWriteSize: 65536, SystemTime: smbTime,
			}},
			desc: "SMB2: SMB 2.???, signing enabled, capabilities DFS, leasing, large MTU",
		},
		{
			name: "SMB 2.0.2 server",
			in:   patch(t, wildcardResponseVector, 70, "0000 0202 0000 000102030405060708090a0b0c0d0e0f 01000000"),
			want: MultiProtocolAnswer{Kind: AnswerSMB2, SMB2: NegotiateResponse{
				Credits: 1, Dialect: SMB202, ServerGUID: vectorGUID, Capabilities: CapDFS,
				MaxTransactSize: 65536, MaxReadSize: 65536, MaxWriteSize: 65536, SystemTime: smbTime,
			}},
			desc: "SMB2: SMB 2.0.2, signing disabled, capabilities DFS",
		},
		{
			name: "SMB1-only server with extended security",
			in:   unhex(t, smb1ExtendedVector),
			want: MultiProtocolAnswer{Kind: AnswerSMB1Only, SMB1: extendedAnswer},
			desc: "SMB1 only: NT LM 0.12, extended security, signing disabled",
		},
		{
			name:    "SMB1 accepted when offered alone",
			in:      unhex(t, smb1ExtendedVector),
			offered: SMB1OnlyDialects,
			want:    MultiProtocolAnswer{Kind: AnswerSMB1, SMB1: extendedAnswer},
			desc:    "SMB1 enabled: NT LM 0.12, extended security, signing disabled",
		},
		{
			name: "SMB1-only server with a challenge",
			in:   unhex(t, smb1ChallengeVector),
			want: MultiProtocolAnswer{Kind: AnswerSMB1Only, SMB1: challengeAnswer},
			desc: `SMB1 only: NT LM 0.12, signing enabled, domain "WORKGROUP"`,
		},
		{
			name: "signing required, GUID without a blob",
			in: unhex(t, `00000055 `+smb1ReplyHeader+`
				11 0000 0f 3200 0100 04110000 00000100 00000000 00000080 0000000000000000 0000 00
				1000 00000000000000000000000000000000`),
			want: MultiProtocolAnswer{Kind: AnswerSMB1Only, SMB1: SMB1NegotiateResponse{
				Flags: 0x98, Flags2: 0xC853, Dialect: DialectNTLM012, SecurityMode: 0x0f,
				MaxMpxCount: 50, MaxNumberVcs: 1, MaxBufferSize: 4356, MaxRawSize: 65536,
				Capabilities: SMB1CapExtendedSecurity, ExtendedSecurity: true,
			}},
			desc: "SMB1 only: NT LM 0.12, extended security, signing required",
		},
		{
			name: "OEM domain name without terminator",
			in: unhex(t, `0000004f `+ff534d42NoUnicode+`
				11 0000 03 3200 0100 04110000 00000100 00000000 00000000 0000000000000000 0000 00
				0a00 574f524b47524f5550ff`),
			want: MultiProtocolAnswer{Kind: AnswerSMB1Only, SMB1: SMB1NegotiateResponse{
				Flags: 0x98, Flags2: 0x4001, Dialect: DialectNTLM012, SecurityMode: 0x03,
				MaxMpxCount: 50, MaxNumberVcs: 1, MaxBufferSize: 4356, MaxRawSize: 65536,
				DomainName: "WORKGROUP\uFFFD",
			}},
			desc: "SMB1 only: NT LM 0.12, signing disabled, domain \"WORKGROUP\uFFFD\"",
		},
		{
			name: "no common dialect",
			in:   unhex(t, smb1NoDialectVector),
			want: MultiProtocolAnswer{Kind: AnswerNoDialect, SMB1: SMB1NegotiateResponse{Flags: 0x98, Flags2: 0xC853, DialectIndex: 0xFFFF}},
			desc: "no common dialect",
		},
		{
			name:    "another SMB1 dialect chosen",
			in:      unhex(t, `00000025 `+smb1ReplyHeader+` 01 0100 0000`),
			offered: []string{"NT LM 0.12", "LANMAN2.1"},
			want:    MultiProtocolAnswer{Kind: AnswerSMB1, SMB1: SMB1NegotiateResponse{Flags: 0x98, Flags2: 0xC853, DialectIndex: 1, Dialect: "LANMAN2.1"}},
			desc:    "SMB1 enabled: LANMAN2.1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMultiProtocolAnswer(tt.in, tt.offered)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseMultiProtocolAnswer =\n%#v\nwant\n%#v", got, tt.want)
			}
			if got.String() != tt.desc {
				t.Fatalf("String() =\n%s\nwant\n%s", got.String(), tt.desc)
			}
		})
	}
}

// ff534d42NoUnicode is an SMB1 reply header whose flags2 has NT status and long names but
// not Unicode.
const ff534d42NoUnicode = `ff534d42 72 00000000 98 0140 0000 0000000000000000 0000 0000 fffe 0000 0000`

func TestParseMultiProtocolAnswerErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		offered []string
		want    error
		text    string
	}{
		{"empty", nil, nil, ErrShort, "smb: frame prefix needs 4 bytes, have 0: smb: message too short"},
		{"3-byte message", unhex(t, "00000003 ff534d"), nil, ErrShort, "smb: message of 3 bytes, need 4: smb: message too short"},
		{"truncated frame", unhex(t, smb1ExtendedVector)[:50], nil, ErrShort, "smb: frame of 95 bytes, have 46: smb: message too short"},
		{"16 MiB length", patch(t, smb1ExtendedVector, 0, "00ffffff"), nil, ErrShort, "smb: frame of 16777215 bytes, have 95: smb: message too short"},
		{"http", unhex(t, "00000004 48545450"), nil, ErrMagic, "smb negotiate: message starts with 48 54 54 50: smb: unexpected protocol identifier"},
		{"transform", unhex(t, "00000004 fd534d42"), nil, ErrMagic, "smb negotiate: message starts with a transform header (FD 'SMB'): smb: unexpected protocol identifier"},
		{"short SMB2 answer", unhex(t, "0000000a fe534d42400000000000"), nil, ErrShort, "smb2 negotiate: message of 10 bytes, need 64: smb: message too short"},
		{"SMB2 answer choosing 3.0.2", patch(t, wildcardResponseVector, 72, "0203"), nil, ErrDialect,
			"smb2 negotiate: SMB 3.0.2 in answer to an SMB1 negotiate: smb: unexpected dialect"},
		{"SMB2 answer with a bad security buffer", patch(t, wildcardResponseVector, 124, "8000 0100"), nil, ErrOffset,
			"smb2 negotiate: security buffer at 128 of 1 bytes in a 128-byte message: smb: offset out of bounds"},
		{"SMB1 header only", unhex(t, "00000020 "+smb1ReplyHeader), nil, ErrShort, "smb1 negotiate: message of 32 bytes, need 33: smb: message too short"},
		{"word count 255", patch(t, smb1ExtendedVector, 36, "ff"), nil, ErrShort, "smb1 negotiate: 255 parameter words in 62 bytes: smb: message too short"},
		{"word count 31", patch(t, smb1ExtendedVector, 36, "1f"), nil, ErrShort, "smb1 negotiate: 31 parameter words in 62 bytes: smb: message too short"},
		{"word count 30 leaves a byte count from the blob", patch(t, smb1ExtendedVector, 36, "1e"), nil, ErrShort, "smb1 negotiate: 517 data bytes, have 0: smb: message too short"},
		{"no byte count", unhex(t, "00000023 "+smb1ReplyHeader+" 01 ffff"), nil, ErrShort, "smb1 negotiate: 1 parameter words in 2 bytes: smb: message too short"},
		{"byte count 65535", patch(t, smb1ExtendedVector, 71, "ffff"), nil, ErrShort, "smb1 negotiate: 65535 data bytes, have 26: smb: message too short"},
		{"word count 0", unhex(t, "00000023 "+smb1ReplyHeader+" 00 0000"), nil, ErrStructureSize, "smb1 negotiate: word count 0: smb: unexpected structure size"},
		{"session setup command", patch(t, smb1ExtendedVector, 8, "73"), nil, ErrCommand, "smb1 negotiate: command 0x73: smb: unexpected command"},
		{"echoed request", unhex(t, smb1NegotiateVector), nil, ErrNotResponse, "smb1 negotiate: header flags 0x18: smb: message is not a response"},
		{"dialect index 5", patch(t, smb1ExtendedVector, 37, "0500"), nil, ErrDialect, "smb1 negotiate: dialect index 5 of 3 offered: smb: unexpected dialect"},
		{"dialect index 1 when one was offered", patch(t, smb1ExtendedVector, 37, "0100"), SMB1OnlyDialects, ErrDialect,
			"smb1 negotiate: dialect index 1 of 1 offered: smb: unexpected dialect"},
		{"SMB1 answer choosing SMB 2.???", patch(t, smb1ExtendedVector, 37, "0200"), nil, ErrDialect,
			`smb1 negotiate: SMB1 answer choosing "SMB 2.???": smb: unexpected dialect`},
		{"NT LM 0.12 with one word", unhex(t, "00000025 "+smb1ReplyHeader+" 01 0000 0000"), nil, ErrStructureSize,
			"smb1 negotiate: NT LM 0.12 answer with word count 1: smb: unexpected structure size"},
		{"GUID cut short", patch(t, smb1ExtendedVector, 71, "0a00"), nil, ErrShort, "smb1 negotiate: server GUID in 10 data bytes: smb: message too short"},
		{"challenge longer than the data", patch(t, smb1ChallengeVector, 70, "ff"), nil, ErrShort,
			"smb1 negotiate: 255-byte challenge in 40 data bytes: smb: message too short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMultiProtocolAnswer(tt.in, tt.offered)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err.Error() != tt.text {
				t.Fatalf("err =\n%s\nwant\n%s", err.Error(), tt.text)
			}
		})
	}
}

func TestParseMultiProtocolAnswerStatus(t *testing.T) {
	in := unhex(t, "00000023 ff534d42 72 020000c0 98 53c8 0000 0000000000000000 0000 0000 fffe 0000 0000 00 0000")
	_, err := ParseMultiProtocolAnswer(in, nil)
	var se *StatusError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a *StatusError", err)
	}
	if want := "smb1 negotiate: server returned status 0xc0000002 (STATUS_NOT_IMPLEMENTED)"; err.Error() != want {
		t.Fatalf("err = %q, want %q", err.Error(), want)
	}
	in = unhex(t, wildcardResponseVector)
	copy(in[12:], []byte{0x0d, 0, 0, 0xc0})
	_, err = ParseMultiProtocolAnswer(in, nil)
	if want := "smb2 negotiate: server returned status 0xc000000d (STATUS_INVALID_PARAMETER)"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

func TestSMB1String(t *testing.T) {
	tests := []struct {
		in      string
		unicode bool
		want    string
	}{
		{"", false, ""},
		{"", true, ""},
		{"41424300 444500", false, "ABC"},
		{"414243", false, "ABC"},
		{"41004200 0000 4300", true, "AB"},
		{"410042", true, "A"},
		{"3dd8 00de 0000", true, "\U0001F600"},
		{"00d8 4100", true, "\uFFFDA"},
	}
	for _, tt := range tests {
		if got := smb1String(unhex(t, tt.in), tt.unicode); got != tt.want {
			t.Errorf("smb1String(%s, %v) = %q, want %q", tt.in, tt.unicode, got, tt.want)
		}
	}
}

func TestAnswerKindString(t *testing.T) {
	tests := []struct {
		in   AnswerKind
		want string
	}{
		{AnswerSMB2, "SMB2"},
		{AnswerSMB1Only, "SMB1 only"},
		{AnswerSMB1, "SMB1 enabled"},
		{AnswerNoDialect, "no common dialect"},
		{0, "answer(0)"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}
