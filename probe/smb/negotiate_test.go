package smb

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

// guid11 is the ClientGuid of the request vectors.
var guid11 = GUID(bytes.Repeat([]byte{0x11}, 16))

func TestAppendNegotiateRequest(t *testing.T) {
	tests := []struct {
		name string
		req  NegotiateRequest
		want string
	}{
		{"default dialects", NegotiateRequest{ClientGUID: guid11}, negotiateRequestVector},
		{"explicit 2.x and 3.0 dialects", NegotiateRequest{ClientGUID: guid11, Dialects: []Dialect{SMB202, SMB210, SMB300, SMB302}}, negotiateRequestVector},
		{"with 3.1.1", NegotiateRequest{
			ClientGUID: guid11,
			Dialects:   []Dialect{SMB202, SMB210, SMB300, SMB302, SMB311},
			Salt:       bytes.Repeat([]byte{0x22}, 32),
		}, negotiateRequest311Vector},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendNegotiateRequest(nil, tt.req)
			want := unhex(t, tt.want)
			if !bytes.Equal(got, want) {
				t.Fatalf("AppendNegotiateRequest =\n%x\nwant\n%x", got, want)
			}
			if err := CheckFrame(got); err != nil {
				t.Fatalf("CheckFrame(request) = %v", err)
			}
		})
	}
}

func TestAppendNegotiateRequestFields(t *testing.T) {
	prefix := []byte{0xAA, 0xBB}
	got := AppendNegotiateRequest(prefix, NegotiateRequest{
		MessageID:    0x0102030405060708,
		ClientGUID:   guid11,
		Dialects:     []Dialect{SMB302},
		Capabilities: CapEncryption | CapLargeMTU,
	})
	want := unhex(t, `aabb 00000066 fe534d42 4000 0000 00000000 0000 0100 00000000 00000000 0807060504030201
		fffe0000 00000000 0000000000000000 00000000000000000000000000000000
		2400 0100 0100 0000 44000000 11111111111111111111111111111111 0000000000000000 0203`)
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendNegotiateRequest =\n%x\nwant\n%x", got, want)
	}
	// A lone 3.1.1 dialect with no salt and one cipher still aligns its contexts.
	got = AppendNegotiateRequest(nil, NegotiateRequest{Dialects: []Dialect{SMB311}, Ciphers: []Cipher{AES256GCM}})
	want = unhex(t, `00000084 `+reqHeader+`
		2400 0100 0100 0000 00000000 00000000000000000000000000000000 68000000 0200 0000
		1103 0000
		0100 0600 00000000 0100 0000 0100 0000
		0200 0400 00000000 0100 0400`)
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendNegotiateRequest(3.1.1 only) =\n%x\nwant\n%x", got, want)
	}
}

// smbTime is the system time of the response vectors.
var smbTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// vectorGUID is the server GUID of the response vectors.
var vectorGUID = GUID{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

// spnegoStub is the security buffer of the response vectors.
var spnegoStub = []byte{0x60, 0x48, 0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02}

func TestParseNegotiateResponse(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want NegotiateResponse
		desc string
	}{
		{
			name: "3.0.2",
			in:   unhex(t, negotiateResponseVector),
			want: NegotiateResponse{
				Credits: 1, SecurityMode: SigningEnabled, Dialect: SMB302, ServerGUID: vectorGUID,
				Capabilities:    CapDFS | CapLeasing | CapLargeMTU,
				MaxTransactSize: 8 << 20, MaxReadSize: 8 << 20, MaxWriteSize: 8 << 20,
				SystemTime: smbTime, SecurityBuffer: spnegoStub,
			},
			desc: "SMB 3.0.2, signing enabled, capabilities DFS, leasing, large MTU",
		},
		{
			name: "3.0.2 with bytes past the frame",
			in:   append(unhex(t, negotiateResponseVector), 0, 0, 0, 0x44),
			want: NegotiateResponse{
				Credits: 1, SecurityMode: SigningEnabled, Dialect: SMB302, ServerGUID: vectorGUID,
				Capabilities:    CapDFS | CapLeasing | CapLargeMTU,
				MaxTransactSize: 8 << 20, MaxReadSize: 8 << 20, MaxWriteSize: 8 << 20,
				SystemTime: smbTime, SecurityBuffer: spnegoStub,
			},
			desc: "SMB 3.0.2, signing enabled, capabilities DFS, leasing, large MTU",
		},
		{
			name: "3.1.1 with contexts",
			in:   unhex(t, negotiateResponse311Vector),
			want: NegotiateResponse{
				Credits: 1, SecurityMode: SigningEnabled | SigningRequired, Dialect: SMB311, ServerGUID: vectorGUID,
				Capabilities:    CapDFS | CapLeasing | CapLargeMTU | CapMultiChannel | CapDirectoryLeasing,
				MaxTransactSize: 8 << 20, MaxReadSize: 8 << 20, MaxWriteSize: 8 << 20,
				SystemTime: smbTime, SecurityBuffer: spnegoStub,
				Contexts:      []ContextType{ContextPreauthIntegrity, ContextEncryption, ContextSigning},
				HashAlgorithm: SHA512, Cipher: AES128GCM, SigningAlgorithm: AESGMAC,
			},
			desc: "SMB 3.1.1, signing required, capabilities DFS, leasing, large MTU, multi-channel, directory leasing, cipher AES-128-GCM, signing with AES-GMAC",
		},
		{
			name: "3.1.1 without contexts",
			in:   patch(t, negotiateResponse311Vector, 74, "0000"),
			want: NegotiateResponse{
				Credits: 1, SecurityMode: SigningEnabled | SigningRequired, Dialect: SMB311, ServerGUID: vectorGUID,
				Capabilities:    CapDFS | CapLeasing | CapLargeMTU | CapMultiChannel | CapDirectoryLeasing,
				MaxTransactSize: 8 << 20, MaxReadSize: 8 << 20, MaxWriteSize: 8 << 20,
				SystemTime: smbTime, SecurityBuffer: spnegoStub,
			},
			desc: "SMB 3.1.1, signing required, capabilities DFS, leasing, large MTU, multi-channel, directory leasing",
		},
		{
			name: "3.1.1 with no common cipher and an unknown context",
			in:   patch(t, negotiateResponse311Vector, 196, "0200 0400 00000000 0100 0000 00000000 7700"),
			want: NegotiateResponse{
				Credits: 1, SecurityMode: SigningEnabled | SigningRequired, Dialect: SMB311, ServerGUID: vectorGUID,
				Capabilities:    CapDFS | CapLeasing | CapLargeMTU | CapMultiChannel | CapDirectoryLeasing,
				MaxTransactSize: 8 << 20, MaxReadSize: 8 << 20, MaxWriteSize: 8 << 20,
				SystemTime: smbTime, SecurityBuffer: spnegoStub,
				Contexts:      []ContextType{ContextPreauthIntegrity, ContextEncryption, 0x0077},
				HashAlgorithm: SHA512,
			},
			desc: "SMB 3.1.1, signing required, capabilities DFS, leasing, large MTU, multi-channel, directory leasing, cipher no common cipher",
		},
		{
			name: "wildcard without security buffer",
			in:   unhex(t, wildcardResponseVector),
			want: NegotiateResponse{
				Credits: 1, SecurityMode: SigningEnabled, Dialect: SMB2Wildcard, ServerGUID: vectorGUID,
				Capabilities:    CapDFS | CapLeasing | CapLargeMTU,
				MaxTransactSize: 65536, MaxReadSize: 65536, MaxWriteSize: 65536,
				SystemTime: smbTime,
			},
			desc: "SMB 2.???, signing enabled, capabilities DFS, leasing, large MTU",
		},
		{
			name: "unknown dialect, capability bits and zero time",
			in:   patch(t, wildcardResponseVector, 70, "0000 7777 0000 000102030405060708090a0b0c0d0e0f 00010080 00000100 00000100 00000100 0000000000000000"),
			want: NegotiateResponse{
				Credits: 1, Dialect: 0x7777, ServerGUID: vectorGUID,
				Capabilities:    0x80000100,
				MaxTransactSize: 65536, MaxReadSize: 65536, MaxWriteSize: 65536,
			},
			desc: "dialect 0x7777, signing disabled, capabilities 0x00000100, 0x80000000",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNegotiateResponse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseNegotiateResponse =\n%#v\nwant\n%#v", got, tt.want)
			}
			if got.String() != tt.desc {
				t.Fatalf("String() =\n%s\nwant\n%s", got.String(), tt.desc)
			}
		})
	}
}

func TestParseNegotiateResponseErrors(t *testing.T) {
	full := unhex(t, negotiateResponseVector)
	tests := []struct {
		name string
		in   []byte
		want error
		text string
	}{
		{"empty", nil, ErrShort, "smb: frame prefix needs 4 bytes, have 0: smb: message too short"},
		{"netbios keepalive", unhex(t, "85000000"), ErrFramePrefix, "smb: frame prefix type 0x85: smb: frame prefix is not a session message"},
		{"truncated", full[:len(full)-5], ErrShort, "smb: frame of 138 bytes, have 133: smb: message too short"},
		{"16 MiB length", patch(t, negotiateResponseVector, 0, "00ffffff"), ErrShort, "smb: frame of 16777215 bytes, have 138: smb: message too short"},
		{"5-byte message", unhex(t, "00000005 fe534d4240"), ErrShort, "smb: message of 5 bytes, need 64: smb: message too short"},
		{"smb1 magic", patch(t, negotiateResponseVector, 4, "ff"), ErrMagic, "smb2 negotiate: message starts with an SMB1 header (FF 'SMB'): smb: unexpected protocol identifier"},
		{"http", patch(t, negotiateResponseVector, 4, "48545450"), ErrMagic, "smb2 negotiate: message starts with 48 54 54 50: smb: unexpected protocol identifier"},
		{"transform magic", patch(t, negotiateResponseVector, 4, "fd"), ErrMagic, "smb2 negotiate: message starts with a transform header (FD 'SMB'): smb: unexpected protocol identifier"},
		{"header structure size 65", patch(t, negotiateResponseVector, 8, "4100"), ErrStructureSize, "smb2 negotiate: header structure size 65: smb: unexpected structure size"},
		{"request flags", patch(t, negotiateResponseVector, 20, "00000000"), ErrNotResponse, "smb2 negotiate: header flags 0x00000000: smb: message is not a response"},
		{"session setup command", patch(t, negotiateResponseVector, 16, "0100"), ErrCommand, "smb2 negotiate: command 0x0001: smb: unexpected command"},
		{"body cut short", append(unhex(t, "00000078"), full[4:124]...), ErrShort,
			"smb2 negotiate: response body of 56 bytes, need 64: smb: message too short"},
		{"echoed request", unhex(t, negotiateRequestVector), ErrNotResponse, "smb2 negotiate: header flags 0x00000000: smb: message is not a response"},
		{"body structure size 36", patch(t, negotiateResponseVector, 68, "2400"), ErrStructureSize, "smb2 negotiate: response structure size 36: smb: unexpected structure size"},
		{"security buffer inside the header", patch(t, negotiateResponseVector, 124, "0000"), ErrOffset,
			"smb2 negotiate: security buffer at 0 of 10 bytes in a 138-byte message: smb: offset out of bounds"},
		{"security buffer past the end", patch(t, negotiateResponseVector, 124, "8000 ffff"), ErrOffset,
			"smb2 negotiate: security buffer at 128 of 65535 bytes in a 138-byte message: smb: offset out of bounds"},
		{"security buffer offset 65535", patch(t, negotiateResponseVector, 124, "ffff"), ErrOffset,
			"smb2 negotiate: security buffer at 65535 of 10 bytes in a 138-byte message: smb: offset out of bounds"},
		{"context offset unaligned", patch(t, negotiateResponse311Vector, 128, "91000000"), ErrOffset,
			"smb2 negotiate: negotiate context offset 145 in a 220-byte message: smb: offset out of bounds"},
		{"context offset inside the fixed body", patch(t, negotiateResponse311Vector, 128, "40000000"), ErrOffset,
			"smb2 negotiate: negotiate context offset 64 in a 220-byte message: smb: offset out of bounds"},
		{"context offset past the end", patch(t, negotiateResponse311Vector, 128, "00100000"), ErrOffset,
			"smb2 negotiate: negotiate context offset 4096 in a 220-byte message: smb: offset out of bounds"},
		{"context offset 4 GiB", patch(t, negotiateResponse311Vector, 128, "f8ffffff"), ErrOffset,
			"smb2 negotiate: negotiate context offset 4294967288 in a 220-byte message: smb: offset out of bounds"},
		{"65535 contexts", patch(t, negotiateResponse311Vector, 74, "ffff"), ErrShort,
			"smb2 negotiate: negotiate context 3 of 65535 at offset 224: smb: message too short"},
		{"context data past the end", patch(t, negotiateResponse311Vector, 150, "ffff"), ErrShort,
			"smb2 negotiate: negotiate context 0 type 0x0001 with 65535 data bytes: smb: message too short"},
		{"preauth data too short for its header", patch(t, negotiateResponse311Vector, 150, "0200"), ErrShort,
			"smb2 negotiate: negotiate context 0 type 0x0001: smb: message too short"},
		{"32767 hash algorithms", patch(t, negotiateResponse311Vector, 156, "ff7f"), ErrShort,
			"smb2 negotiate: negotiate context 0 type 0x0001: 32767 hash algorithms and a 32-byte salt in 38 bytes: smb: message too short"},
		{"salt past its context", patch(t, negotiateResponse311Vector, 158, "2100"), ErrShort,
			"smb2 negotiate: negotiate context 0 type 0x0001: 1 hash algorithms and a 33-byte salt in 38 bytes: smb: message too short"},
		{"256 ciphers", patch(t, negotiateResponse311Vector, 204, "0001"), ErrShort,
			"smb2 negotiate: negotiate context 1 type 0x0002: 256 identifiers in 2 bytes: smb: message too short"},
		{"empty signing context", patch(t, negotiateResponse311Vector, 214, "0000"), ErrShort,
			"smb2 negotiate: negotiate context 2 type 0x0008: smb: message too short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseNegotiateResponse(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err.Error() != tt.text {
				t.Fatalf("err =\n%s\nwant\n%s", err.Error(), tt.text)
			}
		})
	}
}

func TestParseNegotiateResponseStatus(t *testing.T) {
	// An error response: status STATUS_NOT_SUPPORTED and the 9-byte ERROR body.
	in := unhex(t, `00000049 fe534d42 4000 0100 bb0000c0 0000 0100 01000000 00000000 0000000000000000
		00000000 00000000 0000000000000000 00000000000000000000000000000000 0900 0000 00000000 00`)
	_, err := ParseNegotiateResponse(in)
	var se *StatusError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a *StatusError", err)
	}
	if want := (StatusError{Command: "smb2 negotiate", Status: 0xC00000BB}); *se != want {
		t.Fatalf("StatusError = %+v, want %+v", *se, want)
	}
	if want := "smb2 negotiate: server returned status 0xc00000bb (STATUS_NOT_SUPPORTED)"; err.Error() != want {
		t.Fatalf("err = %q, want %q", err.Error(), want)
	}
	unknown := &StatusError{Command: "smb2 negotiate", Status: 0xC0001234}
	if want := "smb2 negotiate: server returned status 0xc0001234"; unknown.Error() != want {
		t.Fatalf("err = %q, want %q", unknown.Error(), want)
	}
}

func TestNegotiateNames(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{SMB202.String(), "SMB 2.0.2"},
		{SMB210.String(), "SMB 2.1"},
		{SMB300.String(), "SMB 3.0"},
		{SMB302.String(), "SMB 3.0.2"},
		{SMB311.String(), "SMB 3.1.1"},
		{SMB2Wildcard.String(), "SMB 2.???"},
		{Dialect(0x0100).String(), "dialect 0x0100"},
		{SecurityMode(0).String(), "signing disabled"},
		{SigningEnabled.String(), "signing enabled"},
		{(SigningEnabled | SigningRequired).String(), "signing required"},
		{SigningRequired.String(), "signing required"},
		{Capabilities(0).String(), "none"},
		{Capabilities(0xff).String(), "DFS, leasing, large MTU, multi-channel, persistent handles, directory leasing, encryption, notifications"},
		{Cipher(0).String(), "no common cipher"},
		{AES128CCM.String(), "AES-128-CCM"},
		{AES256CCM.String(), "AES-256-CCM"},
		{AES256GCM.String(), "AES-256-GCM"},
		{Cipher(9).String(), "cipher 0x0009"},
		{HashAlgorithm(0).String(), "none"},
		{SHA512.String(), "SHA-512"},
		{HashAlgorithm(2).String(), "hash 0x0002"},
		{HMACSHA256.String(), "HMAC-SHA256"},
		{AESCMAC.String(), "AES-CMAC"},
		{SigningAlgorithm(5).String(), "signing 0x0005"},
		{vectorGUID.String(), "03020100-0504-0706-0809-0a0b0c0d0e0f"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	if !(SigningEnabled | SigningRequired).Enabled() || SigningEnabled.Required() {
		t.Errorf("SecurityMode bits misread")
	}
}

func TestFiletime(t *testing.T) {
	tests := []struct {
		in   uint64
		want time.Time
	}{
		{0, time.Time{}},
		{116444736000000000, time.Unix(0, 0).UTC()},
		{133590384000000000, smbTime},
		{127868022001234567, time.Date(2006, 3, 14, 9, 30, 0, 123456700, time.UTC)},
		{1, time.Date(1601, 1, 1, 0, 0, 0, 100, time.UTC)},
	}
	for _, tt := range tests {
		if got := filetime(tt.in); !got.Equal(tt.want) {
			t.Errorf("filetime(%d) = %v, want %v", tt.in, got, tt.want)
		}
	}
	// The largest FILETIME must not wrap around.
	if got := filetime(^uint64(0)); got.Year() != 60056 {
		t.Errorf("filetime(max) = %v, want the year 60056", got)
	}
}

func BenchmarkParseNegotiateResponse(b *testing.B) {
	for _, bench := range []struct {
		name string
		in   []byte
	}{
		{"3.0.2", unhex(b, negotiateResponseVector)},
		{"3.1.1", unhex(b, negotiateResponse311Vector)},
	} {
		b.Run(bench.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bench.in)))
			for b.Loop() {
				if _, err := ParseNegotiateResponse(bench.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
