package msrpc

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"reflect"
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

// bindVector is the endpoint mapper bind from PROTOCOLS.md, checked field by field against
// C706 §12.6.4.3 and impacket's rpcrt.py layouts.
const bindVector = `
05000b03100000004800000001000000 b810b81000000000 01000000 00000100
0883afe11f5dc91191a408002b14a0fa 03000000 045d888aeb1cc9119fe808002b104860 02000000`

func TestAppendBind(t *testing.T) {
	want := unhex(t, bindVector)
	got := AppendBind(nil, 1)
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendBind(nil, 1) =\n%x\nwant\n%x", got, want)
	}
	if len(got) != BindLen {
		t.Fatalf("len = %d, want %d", len(got), BindLen)
	}
	// Appending keeps the prefix and puts the call id in place.
	got = AppendBind([]byte{0xAA}, 0x01020304)
	want = append([]byte{0xAA}, want...)
	copy(want[1+12:], []byte{0x04, 0x03, 0x02, 0x01})
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendBind(prefix, 0x01020304) =\n%x\nwant\n%x", got, want)
	}
}

func TestParseHeader(t *testing.T) {
	h, err := ParseHeader(unhex(t, bindVector))
	if err != nil {
		t.Fatal(err)
	}
	want := Header{Version: 5, Type: TypeBind, Flags: 3, DataRep: [4]byte{0x10}, FragLength: 72, CallID: 1}
	if h != want {
		t.Fatalf("ParseHeader = %+v, want %+v", h, want)
	}
	be := unhex(t, "05000c03 00000000 003c0000 00000007")
	h, err = ParseHeader(be)
	if err != nil {
		t.Fatal(err)
	}
	want = Header{Version: 5, Type: TypeBindAck, Flags: 3, FragLength: 60, CallID: 7}
	if h != want {
		t.Fatalf("big-endian ParseHeader = %+v, want %+v", h, want)
	}
}

func TestParseHeaderErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
		text string
	}{
		{"empty", "", ErrShort, "msrpc: header needs 16 bytes, have 0: msrpc: message too short"},
		{"fifteen bytes", "05000c031000000010000000010000", ErrShort, "msrpc: header needs 16 bytes, have 15: msrpc: message too short"},
		{"version 4", "04000c03100000001000000001000000", ErrVersion, "msrpc: version 4.0: msrpc: unsupported rpc version"},
		{"minor 1", "05010c03100000001000000001000000", ErrVersion, "msrpc: version 5.1: msrpc: unsupported rpc version"},
		{"ebcdic", "05000c03110000001000000001000000", ErrDataRepresentation, "msrpc: data representation 11: msrpc: unsupported data representation"},
		{"integer rep 2", "05000c03200000001000000001000000", ErrDataRepresentation, "msrpc: data representation 20: msrpc: unsupported data representation"},
		{"frag below header", "05000c03100000000f00000001000000", ErrFragLength, "msrpc: frag length 15, auth length 0: msrpc: inconsistent fragment length"},
		{"frag zero", "05000c03100000000000000001000000", ErrFragLength, "msrpc: frag length 0, auth length 0: msrpc: inconsistent fragment length"},
		{"auth longer than frag", "05000c03100000002000100001000000", ErrFragLength, "msrpc: frag length 32, auth length 16: msrpc: inconsistent fragment length"},
		{"auth max", "05000c0310000000ffffffff01000000", ErrFragLength, "msrpc: frag length 65535, auth length 65535: msrpc: inconsistent fragment length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseHeader(unhex(t, tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err.Error() != tt.text {
				t.Fatalf("err = %q, want %q", err.Error(), tt.text)
			}
		})
	}
}

// ackVector is a bind_ack shaped as Windows and Samba answer the endpoint mapper bind:
// secondary address "135", two pad bytes, one accepted NDR result. (derived: built from
// C706 §12.6.4.4 and rpcrt.py, not captured; check against the lab's Samba.)
const ackVector = `
05000c03100000003c00000001000000 b810b810f0530000
0400 31333500 0000
01000000
0000 0000 045d888aeb1cc9119fe808002b104860 02000000`

// ndrResult is the result list entry of ackVector.
var ndrResult = ContextResult{Result: ResultAcceptance, Reason: 0, TransferSyntax: NDR}

func TestParseBindResponse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want BindResponse
		desc string
	}{
		{
			name: "ack",
			in:   ackVector,
			want: BindResponse{
				Header:        Header{Version: 5, Type: TypeBindAck, Flags: 3, DataRep: [4]byte{0x10}, FragLength: 60, CallID: 1},
				Kind:          KindAck,
				MaxXmitFrag:   4280,
				MaxRecvFrag:   4280,
				AssocGroup:    0x53f0,
				SecondaryAddr: "135",
				Results:       []ContextResult{ndrResult},
			},
			desc: `bind_ack: context accepted with NDR v2.0, max xmit 4280, max recv 4280, assoc group 0x000053f0, secondary address "135"`,
		},
		{
			name: "ack with trailing bytes past the fragment",
			in:   ackVector + "deadbeef",
			want: BindResponse{
				Header:        Header{Version: 5, Type: TypeBindAck, Flags: 3, DataRep: [4]byte{0x10}, FragLength: 60, CallID: 1},
				Kind:          KindAck,
				MaxXmitFrag:   4280,
				MaxRecvFrag:   4280,
				AssocGroup:    0x53f0,
				SecondaryAddr: "135",
				Results:       []ContextResult{ndrResult},
			},
			desc: `bind_ack: context accepted with NDR v2.0, max xmit 4280, max recv 4280, assoc group 0x000053f0, secondary address "135"`,
		},
		{
			name: "ack without secondary address",
			in: `05000c03100000003800000009000000 d016d01600000100 0000 0000
				01000000 0000 0000 045d888aeb1cc9119fe808002b104860 02000000`,
			want: BindResponse{
				Header:      Header{Version: 5, Type: TypeBindAck, Flags: 3, DataRep: [4]byte{0x10}, FragLength: 56, CallID: 9},
				Kind:        KindAck,
				MaxXmitFrag: 5840,
				MaxRecvFrag: 5840,
				AssocGroup:  0x10000,
				Results:     []ContextResult{ndrResult},
			},
			desc: `bind_ack: context accepted with NDR v2.0, max xmit 5840, max recv 5840, assoc group 0x00010000, secondary address ""`,
		},
		{
			name: "ack rejecting the abstract syntax",
			in: `05000c03100000003c00000002000000 b810b81000000000 0400 31333500 0000
				01000000 0200 0100 0000000000000000000000000000000000000000`,
			want: BindResponse{
				Header:        Header{Version: 5, Type: TypeBindAck, Flags: 3, DataRep: [4]byte{0x10}, FragLength: 60, CallID: 2},
				Kind:          KindAck,
				MaxXmitFrag:   4280,
				MaxRecvFrag:   4280,
				SecondaryAddr: "135",
				Results:       []ContextResult{{Result: ResultProviderRejection, Reason: 1}},
			},
			desc: `bind_ack: context refused: provider rejection (abstract syntax not supported), max xmit 4280, max recv 4280, assoc group 0x00000000, secondary address "135"`,
		},
		{
			name: "ack with zero results",
			in:   `05000c03100000002000000003000000 b810b81000000000 0000 0000 00000000`,
			want: BindResponse{
				Header:      Header{Version: 5, Type: TypeBindAck, Flags: 3, DataRep: [4]byte{0x10}, FragLength: 32, CallID: 3},
				Kind:        KindAck,
				MaxXmitFrag: 4280,
				MaxRecvFrag: 4280,
				Results:     []ContextResult{},
			},
			desc: `bind_ack: no context results, max xmit 4280, max recv 4280, assoc group 0x00000000, secondary address ""`,
		},
		{
			name: "big-endian ack",
			in: `05000c0300000000003c000000000001 10b810b8000053f0 0005 3434353100 00
				01000000 0000 0000 8a885d041ceb11c99fe808002b104860 00000002`,
			want: BindResponse{
				Header:        Header{Version: 5, Type: TypeBindAck, Flags: 3, FragLength: 60, CallID: 1},
				Kind:          KindAck,
				MaxXmitFrag:   4280,
				MaxRecvFrag:   4280,
				AssocGroup:    0x53f0,
				SecondaryAddr: "4451",
				Results:       []ContextResult{ndrResult},
			},
			desc: `bind_ack: context accepted with NDR v2.0, max xmit 4280, max recv 4280, assoc group 0x000053f0, secondary address "4451"`,
		},
		{
			name: "ack with an authentication trailer",
			in: `05000c031000000050000c0004000000 b810b81000000000 0400 31333500 0000
				01000000 0000 0000 045d888aeb1cc9119fe808002b104860 02000000
				0a020000 00000000 4e544c4d0000000000000000`,
			want: BindResponse{
				Header:        Header{Version: 5, Type: TypeBindAck, Flags: 3, DataRep: [4]byte{0x10}, FragLength: 80, AuthLength: 0x0c, CallID: 4},
				Kind:          KindAck,
				MaxXmitFrag:   4280,
				MaxRecvFrag:   4280,
				SecondaryAddr: "135",
				Results:       []ContextResult{ndrResult},
			},
			desc: `bind_ack: context accepted with NDR v2.0, max xmit 4280, max recv 4280, assoc group 0x00000000, secondary address "135"`,
		},
		{
			name: "nak without versions",
			in:   `05000d03100000001200000001000000 0400`,
			want: BindResponse{
				Header:       Header{Version: 5, Type: TypeBindNak, Flags: 3, DataRep: [4]byte{0x10}, FragLength: 18, CallID: 1},
				Kind:         KindNak,
				RejectReason: 4,
			},
			desc: `bind_nak: protocol version not supported`,
		},
		{
			name: "nak with versions and padding",
			in:   `05000d03100000001800000001000000 0000 01 0500 000000`,
			want: BindResponse{
				Header:   Header{Version: 5, Type: TypeBindNak, Flags: 3, DataRep: [4]byte{0x10}, FragLength: 24, CallID: 1},
				Kind:     KindNak,
				Versions: []ProtocolVersion{{5, 0}},
			},
			desc: `bind_nak: reason not specified, supports 5.0`,
		},
		{
			name: "nak with an unknown reason",
			in:   `05000d03100000001200000001000000 3412`,
			want: BindResponse{
				Header:       Header{Version: 5, Type: TypeBindNak, Flags: 3, DataRep: [4]byte{0x10}, FragLength: 18, CallID: 1},
				Kind:         KindNak,
				RejectReason: 0x1234,
			},
			desc: `bind_nak: reason 0x1234`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBindResponse(unhex(t, tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseBindResponse =\n%#v\nwant\n%#v", got, tt.want)
			}
			if got.String() != tt.desc {
				t.Fatalf("String() =\n%s\nwant\n%s", got.String(), tt.desc)
			}
		})
	}
}

func TestAccepted(t *testing.T) {
	tests := []struct {
		name string
		in   BindResponse
		want bool
	}{
		{"accepted ack", BindResponse{Kind: KindAck, Results: []ContextResult{ndrResult}}, true},
		{"refused ack", BindResponse{Kind: KindAck, Results: []ContextResult{{Result: ResultUserRejection}}}, false},
		{"empty ack", BindResponse{Kind: KindAck}, false},
		{"nak", BindResponse{Kind: KindNak, Results: []ContextResult{ndrResult}}, false},
	}
	for _, tt := range tests {
		if got := tt.in.Accepted(); got != tt.want {
			t.Errorf("%s: Accepted() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestParseBindResponseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
		text string
	}{
		{"truncated header", "05000c0310000000", ErrShort, "msrpc: header needs 16 bytes, have 8: msrpc: message too short"},
		{"fragment longer than input", ackVector[:len(ackVector)-8], ErrShort, "msrpc: bind_ack of 60 bytes, have 56: msrpc: message too short"},
		{"frag length 65535", "05000c0310000000ffff000001000000", ErrFragLength, "msrpc: bind_ack of 65535 bytes, above the 4280 the bind accepts: msrpc: inconsistent fragment length"},
		{"frag length 4281", "05000d0310000000b910000001000000", ErrFragLength, "msrpc: bind_nak of 4281 bytes, above the 4280 the bind accepts: msrpc: inconsistent fragment length"},
		{"frag length 4280 on 16 bytes", "05000c0310000000b810000001000000", ErrShort, "msrpc: bind_ack of 4280 bytes, have 16: msrpc: message too short"},
		{"ack without fixed fields", "05000c03100000001400000001000000 b810b810", ErrShort, "msrpc: bind_ack fixed fields: msrpc: message too short"},
		{"secondary address past the fragment", "05000c03100000001c00000001000000 b810b81000000000 ff00 0000", ErrShort, "msrpc: bind_ack secondary address of 255 bytes: msrpc: message too short"},
		{"secondary address length 65535", "05000c03100000001c00000001000000 b810b81000000000 ffff 0000", ErrShort, "msrpc: bind_ack secondary address of 65535 bytes: msrpc: message too short"},
		{"no result list", "05000c03100000001e00000001000000 b810b81000000000 0400 31333500", ErrShort, "msrpc: bind_ack result list: msrpc: message too short"},
		{"padding runs past the fragment", "05000c03100000001e00000001000000 b810b81000000000 0100 35 00 0000", ErrShort, "msrpc: bind_ack result list: msrpc: message too short"},
		{"255 results", "05000c03100000002000000001000000 b810b81000000000 0000 0000 ff000000", ErrShort, "msrpc: bind_ack 255 results: msrpc: message too short"},
		{"result cut by the auth trailer", `05000c03100000003800100001000000 b810b81000000000 0000 0000
			01000000 0000 0000 045d888aeb1cc9119fe808002b104860 02000000`, ErrShort, "msrpc: bind_ack 1 results: msrpc: message too short"},
		{"nak without reason", "05000d03100000001100000001000000 04", ErrShort, "msrpc: bind_nak reject reason: msrpc: message too short"},
		{"nak with 200 versions", "05000d03100000001700000001000000 0400 c8 0500 0000", ErrShort, "msrpc: bind_nak 200 protocol versions: msrpc: message too short"},
		{"fault", "05000303100000002000000001000000 0000000000000000 1c010000 00000000", ErrUnexpectedType, "msrpc: fault: msrpc: unexpected packet type"},
		{"bind echoed back", bindVector, ErrUnexpectedType, "msrpc: bind: msrpc: unexpected packet type"},
		{"unknown type", "05007f03100000001000000001000000", ErrUnexpectedType, "msrpc: 0x7f: msrpc: unexpected packet type"},
		{"http", "485454502f312e3120343030204261642052657175657374", ErrVersion, "msrpc: version 72.84: msrpc: unsupported rpc version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseBindResponse(unhex(t, tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err.Error() != tt.text {
				t.Fatalf("err = %q, want %q", err.Error(), tt.text)
			}
		})
	}
}

func TestSyntaxID(t *testing.T) {
	tests := []struct {
		in   SyntaxID
		want string
	}{
		{EndpointMapper, "EPM v3.0"},
		{NDR, "NDR v2.0"},
		{NDR64, "NDR64 v1.0"},
		{SyntaxID{UUID: UUID{0x12, 0x34, 0x57, 0x78, 0x12, 0x34, 0xab, 0xcd, 0xef, 0x00, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab}, Major: 1, Minor: 2},
			"12345778-1234-abcd-ef00-0123456789ab v1.2"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
		wire := tt.in.appendWire(nil)
		for _, order := range []binary.ByteOrder{binary.LittleEndian} {
			if back := syntaxIDFromWire(wire, order); back != tt.in {
				t.Errorf("round trip of %v = %v", tt.in, back)
			}
		}
	}
	if got := EndpointMapper.UUID.String(); got != "e1af8308-5d1f-11c9-91a4-08002b14a0fa" {
		t.Errorf("EndpointMapper = %s", got)
	}
	if got := NDR.UUID.String(); got != "8a885d04-1ceb-11c9-9fe8-08002b104860" {
		t.Errorf("NDR = %s", got)
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{TypeBindAck.String(), "bind_ack"},
		{PacketType(0x99).String(), "0x99"},
		{KindAck.String(), "bind_ack"},
		{KindNak.String(), "bind_nak"},
		{Kind(0).String(), "kind(0)"},
		{ResultNegotiateAck.String(), "negotiate ack"},
		{ResultCode(9).String(), "result 0x0009"},
		{ProviderReason(2).String(), "proposed transfer syntaxes not supported"},
		{ProviderReason(7).String(), "reason 0x0007"},
		{RejectReason(9).String(), "invalid checksum"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
