package smb

// Benchmarks for the SMB negotiate codecs and the frame reader, the work ofmprobe does for every host that answers on
// TCP 445 or 139: build the SMB1 multi-protocol NEGOTIATE, classify its answer, build the SMB2 NEGOTIATE that follows
// an "SMB 2.???" answer and decode the SMB2 response, and pass the frames go-smb2 reads through FrameConn. In a sweep
// of 65,536 hosts each runs up to 65,536 times. Every benchmark checks its result before the timed loop, so a vector
// that fails to parse fails the benchmark instead of timing the error path.

import (
	"bytes"
	"net"
	"testing"
)

// BenchmarkSMB1NegotiateRequest times building the multi-protocol SMB1 NEGOTIATE ("NT LM 0.12", "SMB 2.002",
// "SMB 2.???") into a reused buffer.
func BenchmarkSMB1NegotiateRequest(b *testing.B) {
	want := unhex(b, smb1NegotiateVector)
	buf := AppendSMB1Negotiate(make([]byte, 0, len(want)), MultiProtocolDialects)
	if !bytes.Equal(buf, want) {
		b.Fatalf("request =\n%x\nwant\n%x", buf, want)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(want)))
	for b.Loop() {
		buf = AppendSMB1Negotiate(buf[:0], MultiProtocolDialects)
	}
}

// BenchmarkSMB2NegotiateRequest times building SMB2 NEGOTIATE requests into a reused buffer: the default 2.0.2 to
// 3.0.2 offer without contexts, and the 2.0.2 to 3.1.1 offer with a 32-byte salt and the cipher list, which is the
// request the probe sends after an "SMB 2.???" answer.
func BenchmarkSMB2NegotiateRequest(b *testing.B) {
	for _, bc := range []struct {
		name string
		req  NegotiateRequest
		want string
	}{
		{"2.0.2-3.0.2", NegotiateRequest{ClientGUID: guid11}, negotiateRequestVector},
		{"2.0.2-3.1.1", NegotiateRequest{
			ClientGUID: guid11,
			Dialects:   []Dialect{SMB202, SMB210, SMB300, SMB302, SMB311},
			Salt:       bytes.Repeat([]byte{0x22}, 32),
		}, negotiateRequest311Vector},
	} {
		b.Run(bc.name, func(b *testing.B) {
			want := unhex(b, bc.want)
			buf := AppendNegotiateRequest(make([]byte, 0, len(want)), bc.req)
			if !bytes.Equal(buf, want) {
				b.Fatalf("request =\n%x\nwant\n%x", buf, want)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(want)))
			for b.Loop() {
				buf = AppendNegotiateRequest(buf[:0], bc.req)
			}
		})
	}
}

// BenchmarkSMB2NegotiateAnswer times decoding SMB2 NEGOTIATE responses: 3.0.2 shaped as Samba's, and 3.1.1 with
// three negotiate contexts.
func BenchmarkSMB2NegotiateAnswer(b *testing.B) {
	for _, bc := range []struct {
		name    string
		vector  string
		dialect Dialect
	}{
		{"3.0.2", negotiateResponseVector, SMB302},
		{"3.1.1", negotiateResponse311Vector, SMB311},
	} {
		b.Run(bc.name, func(b *testing.B) {
			in := unhex(b, bc.vector)
			r, err := ParseNegotiateResponse(in)
			if err != nil {
				b.Fatal(err)
			}
			if r.Dialect != bc.dialect || r.ServerGUID != vectorGUID {
				b.Fatalf("decoded dialect %v, GUID %v; want %v, %v", r.Dialect, r.ServerGUID, bc.dialect, vectorGUID)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				r, err = ParseNegotiateResponse(in)
			}
			if err != nil || r.Dialect != bc.dialect {
				b.Fatalf("last iteration: %v, %v", r.Dialect, err)
			}
		})
	}
}

// BenchmarkMultiProtocolAnswer times classifying the answers to the multi-protocol NEGOTIATE: the SMB2 "SMB 2.???"
// answer of every current server, and the two SMB1 "NT LM 0.12" replies of SMB1-only servers, with extended
// security (Windows Server 2003) and with a challenge and domain name (Samba, Windows 2000).
func BenchmarkMultiProtocolAnswer(b *testing.B) {
	for _, bc := range []struct {
		name   string
		vector string
		kind   AnswerKind
	}{
		{"smb2-wildcard", wildcardResponseVector, AnswerSMB2},
		{"smb1-extended", smb1ExtendedVector, AnswerSMB1Only},
		{"smb1-challenge", smb1ChallengeVector, AnswerSMB1Only},
	} {
		b.Run(bc.name, func(b *testing.B) {
			in := unhex(b, bc.vector)
			a, err := ParseMultiProtocolAnswer(in, MultiProtocolDialects)
			if err != nil {
				b.Fatal(err)
			}
			if a.Kind != bc.kind {
				b.Fatalf("classified as %v, want %v", a.Kind, bc.kind)
			}
			if bc.kind == AnswerSMB1Only && a.SMB1.Dialect != DialectNTLM012 {
				b.Fatalf("SMB1 dialect %q, want %q", a.SMB1.Dialect, DialectNTLM012)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				a, err = ParseMultiProtocolAnswer(in, MultiProtocolDialects)
			}
			if err != nil || a.Kind != bc.kind {
				b.Fatalf("last iteration: %v, %v", a.Kind, err)
			}
		})
	}
}

// replayConn is a net.Conn whose Read serves one frame over and over, so that FrameConn can be timed without a
// socket. Only Read is implemented; FrameConn calls nothing else while reading.
type replayConn struct {
	net.Conn
	frame []byte
	off   int
}

func (c *replayConn) Read(p []byte) (int, error) {
	n := copy(p, c.frame[c.off:])
	c.off += n
	if c.off == len(c.frame) {
		c.off = 0
	}
	return n, nil
}

// BenchmarkFrameConnRead times reading one whole SMB2 NEGOTIATE response frame through FrameConn: the prefix, the
// message, CheckFrame's walk of the header chain and the copy to the caller, with FrameConn's buffer reused between
// frames as it is on a live connection.
func BenchmarkFrameConnRead(b *testing.B) {
	frame := unhex(b, negotiateResponse311Vector)
	fc := NewFrameConn(&replayConn{frame: frame}, 0)
	p := make([]byte, len(frame))
	n, err := fc.Read(p)
	if err != nil {
		b.Fatal(err)
	}
	if !bytes.Equal(p[:n], frame) {
		b.Fatalf("read %x, want %x", p[:n], frame)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		n, err = fc.Read(p)
		if err != nil || n != len(frame) {
			b.Fatalf("read %d bytes, %v; want %d", n, err, len(frame))
		}
	}
}
