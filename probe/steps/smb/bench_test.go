package smb_test

// A benchmark of the per-host decoding the negotiate step does between the socket and the wire codec: reading one
// negotiate answer frame (from TCP 445, or from TCP 139 behind a NetBIOS keepalive). It runs once per host that
// answers. The reader is fed from memory, so no packet is sent, and the result is checked before the timed loop,
// so an input that is refused fails the benchmark instead of timing the error path.

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ofmprobe/ofmprobe/probe/netbios"
	smbwire "github.com/ofmprobe/ofmprobe/probe/smb"
	"github.com/ofmprobe/ofmprobe/probe/steps/smb"
)

// benchWildcardAnswer is the SMB2 NEGOTIATE response with DialectRevision 0x02FF that an SMB2 server sends to the
// multi-protocol NEGOTIATE (MS-SMB2 §3.3.5.3.1): the 4-byte prefix, the 64-byte header and the 65-byte body.
const benchWildcardAnswer = `00000080
fe534d42 4000 0100 00000000 0000 0100 01000000 00000000 0000000000000000
00000000 00000000 0000000000000000 00000000000000000000000000000000
4100 0100 ff02 0000 000102030405060708090a0b0c0d0e0f 07000000
00000100 00000100 00000100 0060ba17bf9bda01 0000000000000000
0000 0000 00000000`

// BenchmarkReadSMBFrame times reading one negotiate answer frame, prefix included, from a reader: straight from
// TCP 445, and from TCP 139 where a NetBIOS keepalive comes first and is skipped.
func BenchmarkReadSMBFrame(b *testing.B) {
	frame := unhex(strings.Join(strings.Fields(benchWildcardAnswer), ""))
	a, err := smbwire.ParseMultiProtocolAnswer(frame, smbwire.MultiProtocolDialects)
	if err != nil || a.Kind != smbwire.AnswerSMB2 {
		b.Fatalf("vector decodes as %v, %v; want an SMB2 answer", a.Kind, err)
	}
	keepalive := []byte{byte(netbios.SessionKeepAlive), 0, 0, 0}
	for _, bc := range []struct {
		name string
		in   []byte
		nbss bool
	}{
		{"direct-445", frame, false},
		{"nbss-139-keepalive", append(append([]byte(nil), keepalive...), frame...), true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := bytes.NewReader(bc.in)
			got, err := smb.ReadSMBFrame(r, smb.NegotiateFrameLimit, bc.nbss)
			if err != nil {
				b.Fatal(err)
			}
			if !bytes.Equal(got, frame) {
				b.Fatalf("read %x, want %x", got, frame)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.in)))
			for b.Loop() {
				r.Reset(bc.in)
				got, err = smb.ReadSMBFrame(r, smb.NegotiateFrameLimit, bc.nbss)
			}
			if err != nil || len(got) != len(frame) {
				b.Fatalf("last iteration: %d bytes, %v", len(got), err)
			}
		})
	}
}
