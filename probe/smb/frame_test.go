package smb

import (
	"encoding/binary"
	"errors"
	"testing"
)

// smb2Message returns an SMB2 response header with NextCommand next followed by bodyLen
// bytes of 0xAB.
func smb2Message(next uint32, bodyLen int) []byte {
	m := make([]byte, HeaderLen, HeaderLen+bodyLen)
	copy(m, magicSMB2[:])
	binary.LittleEndian.PutUint16(m[4:], HeaderLen)
	binary.LittleEndian.PutUint32(m[16:], flagServerToRedir)
	binary.LittleEndian.PutUint32(m[20:], next)
	for range bodyLen {
		m = append(m, 0xAB)
	}
	return m
}

// frameOf joins messages into one direct-TCP frame.
func frameOf(msgs ...[]byte) []byte {
	b := []byte{0, 0, 0, 0}
	for _, m := range msgs {
		b = append(b, m...)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-PrefixLen))
	return b
}

// transformFrame returns an encrypted frame with a payload of payloadLen bytes and the given
// OriginalMessageSize.
func transformFrame(payloadLen int, originalSize uint32) []byte {
	m := make([]byte, TransformHeaderLen+payloadLen)
	copy(m, magicTransform[:])
	binary.LittleEndian.PutUint32(m[36:], originalSize)
	binary.LittleEndian.PutUint16(m[42:], 1) // Flags: encrypted
	return frameOf(m)
}

// withByte returns a copy of b with b[i] set to v.
func withByte(b []byte, i int, v byte) []byte {
	c := append([]byte(nil), b...)
	c[i] = v
	return c
}

func TestCheckFrameAccepts(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
	}{
		{"negotiate request", unhex(t, negotiateRequestVector)},
		{"3.1.1 negotiate request", unhex(t, negotiateRequest311Vector)},
		{"negotiate response", unhex(t, negotiateResponseVector)},
		{"3.1.1 negotiate response", unhex(t, negotiateResponse311Vector)},
		{"bare header", frameOf(smb2Message(0, 0))},
		{"two compounded messages", frameOf(smb2Message(72, 8), smb2Message(0, 9))},
		{"three compounded messages, the last a bare header", frameOf(smb2Message(80, 16), smb2Message(64, 0), smb2Message(0, 0))},
		{"encrypted message", transformFrame(HeaderLen+10, HeaderLen+10)},
		{"encrypted message shorter than its frame", transformFrame(200, HeaderLen)},
	}
	for _, tt := range tests {
		if err := CheckFrame(tt.frame); err != nil {
			t.Errorf("%s: CheckFrame = %v", tt.name, err)
		}
	}
}

func TestCheckFrameRejects(t *testing.T) {
	two := frameOf(smb2Message(72, 8), smb2Message(0, 9))
	tests := []struct {
		name  string
		frame []byte
		want  error
		text  string
	}{
		{"empty", nil, ErrShort, "smb: frame prefix needs 4 bytes, have 0: smb: message too short"},
		{"three bytes", []byte{0, 0, 0}, ErrShort, "smb: frame prefix needs 4 bytes, have 3: smb: message too short"},
		{"5-byte frame", unhex(t, "00000005 fe534d4240"), ErrFrameLength, "smb: frame of 5 bytes, below the 64-byte header: smb: frame length out of range"},
		{"empty frame", unhex(t, "00000000"), ErrFrameLength, "smb: frame of 0 bytes, below the 64-byte header: smb: frame length out of range"},
		{"netbios session request", withByte(frameOf(smb2Message(0, 0)), 0, 0x81), ErrFramePrefix, "smb: frame prefix type 0x81: smb: frame prefix is not a session message"},
		{"frame cut short", frameOf(smb2Message(0, 10))[:70], ErrShort, "smb: frame of 74 bytes, have 66: smb: message too short"},
		{"16 MiB length on a 64-byte message", withByte(withByte(frameOf(smb2Message(0, 0)), 1, 0xff), 2, 0xff), ErrShort,
			"smb: frame of 16777024 bytes, have 64: smb: message too short"},
		{"bytes after the frame", append(frameOf(smb2Message(0, 0)), 0), ErrFrameLength, "smb: frame of 64 bytes followed by 1 more: smb: frame length out of range"},
		{"SMB1 message", unhex(t, smb1ExtendedVector), ErrMagic, "smb: frame starts with an SMB1 header (FF 'SMB'): smb: unexpected protocol identifier"},
		{"compression transform", withByte(frameOf(smb2Message(0, 0)), 4, 0xFC), ErrMagic,
			"smb: frame starts with a compression transform header (FC 'SMB'): smb: unexpected protocol identifier"},
		{"zeros", make([]byte, 4+64), ErrFrameLength, "smb: frame of 0 bytes followed by 64 more: smb: frame length out of range"},
		{"garbage magic", frameOf(make([]byte, 64)), ErrMagic, "smb: frame starts with 00 00 00 00: smb: unexpected protocol identifier"},
		{"header structure size 0", withByte(frameOf(smb2Message(0, 0)), 8, 0), ErrStructureSize,
			"smb: compound message 0 header structure size 0: smb: unexpected structure size"},
		{"next command unaligned", frameOf(smb2Message(68, 4), smb2Message(0, 0)), ErrNextCommand,
			"smb: compound message 0 next command 68 is not 8-byte aligned: smb: bad compound chain"},
		{"next command inside the header", frameOf(smb2Message(8, 0), smb2Message(0, 0)), ErrNextCommand,
			"smb: compound message 0 next command 8 is inside its own header: smb: bad compound chain"},
		{"next command past the frame", frameOf(smb2Message(0x1000, 0)), ErrNextCommand,
			"smb: compound message 0 at offset 0: next command 4096 leaves no room for a header in 64 bytes: smb: bad compound chain"},
		{"next command leaves half a header", frameOf(smb2Message(72, 8), smb2Message(0, 0)[:32]), ErrNextCommand,
			"smb: compound message 0 at offset 0: next command 72 leaves no room for a header in 104 bytes: smb: bad compound chain"},
		{"next command near 4 GiB", frameOf(smb2Message(0xFFFFFFF8, 0)), ErrNextCommand,
			"smb: compound message 0 at offset 0: next command 4294967288 leaves no room for a header in 64 bytes: smb: bad compound chain"},
		{"second message with bad magic", withByte(two, 4+72, 0xFF), ErrMagic,
			"smb: compound message 1 at offset 72 starts with an SMB1 header (FF 'SMB'): smb: unexpected protocol identifier"},
		{"second message with bad structure size", withByte(two, 4+72+4, 65), ErrStructureSize,
			"smb: compound message 1 header structure size 65: smb: unexpected structure size"},
		{"second message pointing past the frame", withByte(two, 4+72+20, 0x40), ErrNextCommand,
			"smb: compound message 1 at offset 72: next command 64 leaves no room for a header in 73 bytes: smb: bad compound chain"},
		{"encrypted frame without room for a header", transformFrame(20, 20), ErrShort, "smb: encrypted message of 72 bytes, need 116: smb: message too short"},
		{"original size larger than the frame", transformFrame(HeaderLen, HeaderLen+1), ErrTransform,
			"smb: original message size 65 in a 116-byte encrypted message: smb: bad transform header"},
		{"original size below a header", transformFrame(HeaderLen, 10), ErrTransform,
			"smb: original message size 10 in a 116-byte encrypted message: smb: bad transform header"},
		{"original size 4 GiB", transformFrame(HeaderLen, 0xFFFFFFFF), ErrTransform,
			"smb: original message size 4294967295 in a 116-byte encrypted message: smb: bad transform header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckFrame(tt.frame)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err.Error() != tt.text {
				t.Fatalf("err =\n%s\nwant\n%s", err.Error(), tt.text)
			}
		})
	}
}

func TestFrameLength(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"00000000", 0},
		{"0000006c", 108},
		{"00ffffff", MaxFrameLen},
		{"00010000 ffff", 65536},
	}
	for _, tt := range tests {
		got, err := FrameLength(unhex(t, tt.in))
		if err != nil || got != tt.want {
			t.Errorf("FrameLength(%s) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func BenchmarkCheckFrame(b *testing.B) {
	var chain [][]byte
	for range 15 {
		chain = append(chain, smb2Message(HeaderLen+64, 64))
	}
	chain = append(chain, smb2Message(0, 64))
	for _, bench := range []struct {
		name  string
		frame []byte
	}{
		{"negotiate response", unhex(b, negotiateResponseVector)},
		{"16-message compound", frameOf(chain...)},
		{"1 MiB read", frameOf(smb2Message(0, 1<<20))},
	} {
		b.Run(bench.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bench.frame)))
			for b.Loop() {
				if err := CheckFrame(bench.frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
