package msrpc

// Benchmarks for the DCE/RPC codecs of the endpoint mapper check on TCP 135: building the bind and decoding the
// bind_ack that proves an RPC server listens. The check runs once per host, so a sweep of 65,536 hosts pays each
// codec up to 65,536 times. Every benchmark checks its result before the timed loop, so a vector that fails to parse
// fails the benchmark instead of timing the error path.

import (
	"bytes"
	"testing"
)

// BenchmarkBind times building the 72-byte endpoint mapper bind into a reused buffer.
func BenchmarkBind(b *testing.B) {
	want := unhex(b, bindVector)
	buf := AppendBind(make([]byte, 0, BindLen), 1)
	if !bytes.Equal(buf, want) {
		b.Fatalf("bind =\n%x\nwant\n%x", buf, want)
	}
	b.ReportAllocs()
	b.SetBytes(BindLen)
	var callID uint32
	for b.Loop() {
		callID++
		buf = AppendBind(buf[:0], callID)
	}
}

// BenchmarkBindAck times decoding bind_acks that accept the NDR transfer syntax: the little-endian answer Windows
// and Samba send, and a big-endian one, which takes the other byte order's path through every field.
func BenchmarkBindAck(b *testing.B) {
	for _, bc := range []struct {
		name   string
		vector string
		addr   string
	}{
		{"little-endian", ackVector, "135"},
		{"big-endian", `05000c0300000000003c000000000001 10b810b8000053f0 0005 3434353100 00
			01000000 0000 0000 8a885d041ceb11c99fe808002b104860 00000002`, "4451"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			in := unhex(b, bc.vector)
			r, err := ParseBindResponse(in)
			if err != nil {
				b.Fatal(err)
			}
			if !r.Accepted() || r.Results[0].TransferSyntax != NDR || r.SecondaryAddr != bc.addr {
				b.Fatalf("decoded %v, want an ack accepting NDR from %q", r, bc.addr)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				r, err = ParseBindResponse(in)
			}
			if err != nil || !r.Accepted() {
				b.Fatalf("last iteration: %v, %v", r, err)
			}
		})
	}
}
