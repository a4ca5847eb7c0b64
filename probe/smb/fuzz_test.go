package smb

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

// addVectors seeds f with every frame vector of the package.
func addVectors(f *testing.F) {
	for _, v := range []string{
		negotiateRequestVector, negotiateRequest311Vector, negotiateResponseVector, negotiateResponse311Vector,
		wildcardResponseVector, smb1NegotiateVector, smb1ExtendedVector, smb1ChallengeVector, smb1NoDialectVector,
	} {
		f.Add(unhex(f, v))
	}
	f.Add(frameOf(smb2Message(72, 8), smb2Message(0, 9)))
	f.Add(transformFrame(HeaderLen+10, HeaderLen+10))
	f.Add(unhex(f, "00000005 fe534d4240"))
}

func FuzzParseNegotiateResponse(f *testing.F) {
	addVectors(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseNegotiateResponse(b)
		if err != nil {
			return
		}
		msg, _ := message(b, HeaderLen)
		if len(r.SecurityBuffer) > len(msg)-HeaderLen-negotiateRespFixed {
			t.Fatalf("security buffer of %d bytes from a %d-byte message", len(r.SecurityBuffer), len(msg))
		}
		if 8*len(r.Contexts) > len(msg) {
			t.Fatalf("%d contexts from a %d-byte message", len(r.Contexts), len(msg))
		}
		_ = r.String()
	})
}

func FuzzParseMultiProtocolAnswer(f *testing.F) {
	addVectors(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, offered := range [][]string{MultiProtocolDialects, SMB1OnlyDialects} {
			a, err := ParseMultiProtocolAnswer(b, offered)
			if err != nil {
				continue
			}
			switch a.Kind {
			case AnswerSMB2:
				if a.SMB2.Dialect != SMB2Wildcard && a.SMB2.Dialect != SMB202 {
					t.Fatalf("SMB2 answer with %v", a.SMB2.Dialect)
				}
			case AnswerSMB1, AnswerSMB1Only:
				if !slices.Contains(offered, a.SMB1.Dialect) {
					t.Fatalf("dialect %q was not offered", a.SMB1.Dialect)
				}
			case AnswerNoDialect:
			default:
				t.Fatalf("kind %v without error", a.Kind)
			}
			_ = a.String()
		}
	})
}

// splitLikeGoSMB2 walks an accepted SMB2 message the way go-smb2 v1.1.0's receiver does
// (conn.go runReciever and tryHandle) and reads the header fields it reads; on a message that
// CheckFrame wrongly accepted, it panics as go-smb2 would.
func splitLikeGoSMB2(pkt []byte) {
	le := binary.LittleEndian
	for {
		var next []byte
		if off := le.Uint32(pkt[20:24]); off != 0 {
			pkt, next = pkt[:off], pkt[off:]
		}
		_ = le.Uint64(pkt[24:32]) // MessageId
		_ = le.Uint32(pkt[8:12])  // Status
		_ = le.Uint16(pkt[14:16]) // CreditResponse
		_ = le.Uint64(pkt[32:40]) // AsyncId
		_ = le.Uint64(pkt[40:48]) // SessionId
		_ = pkt[48:64]            // Signature
		if next == nil {
			return
		}
		pkt = next
	}
}

func FuzzCheckFrame(f *testing.F) {
	addVectors(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := CheckFrame(b); err != nil {
			return
		}
		msg := b[PrefixLen:]
		if [4]byte(msg[:4]) == magicSMB2 {
			splitLikeGoSMB2(msg)
		}
	})
}

// chunkConn is an in-memory net.Conn whose Read returns at most chunk bytes at a time.
type chunkConn struct {
	r     *bytes.Reader
	chunk int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(p) > c.chunk {
		p = p[:c.chunk]
	}
	return c.r.Read(p)
}
func (c *chunkConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *chunkConn) Close() error                     { return nil }
func (c *chunkConn) LocalAddr() net.Addr              { return nil }
func (c *chunkConn) RemoteAddr() net.Addr             { return nil }
func (c *chunkConn) SetDeadline(time.Time) error      { return nil }
func (c *chunkConn) SetReadDeadline(time.Time) error  { return nil }
func (c *chunkConn) SetWriteDeadline(time.Time) error { return nil }

func FuzzFrameConn(f *testing.F) {
	for _, v := range []string{negotiateResponseVector, negotiateResponse311Vector, smb1ExtendedVector} {
		f.Add(uint8(3), uint16(4), unhex(f, v))
	}
	f.Add(uint8(1), uint16(1), append(unhex(f, negotiateResponseVector), unhex(f, "00000005 fe534d4240")...))
	f.Fuzz(func(t *testing.T, chunk uint8, readSize uint16, stream []byte) {
		c := NewFrameConn(&chunkConn{r: bytes.NewReader(stream), chunk: int(chunk) + 1}, 4096)
		// Read as go-smb2 does, then split what came into frames again.
		var got []byte
		for {
			prefix := make([]byte, 4)
			if _, err := io.ReadFull(c, prefix); err != nil {
				break
			}
			msg := make([]byte, binary.BigEndian.Uint32(prefix))
			n, err := io.ReadFull(c, msg)
			if err != nil {
				t.Fatalf("FrameConn delivered a prefix for %d bytes and then %d bytes and %v", len(msg), n, err)
			}
			frame := append(prefix, msg...)
			if err := CheckFrame(frame); err != nil {
				t.Fatalf("FrameConn delivered a frame that fails CheckFrame: %v", err)
			}
			if len(msg) > 4096 {
				t.Fatalf("FrameConn delivered %d bytes over its 4096-byte limit", len(msg))
			}
			got = append(got, frame...)
		}
		if !bytes.HasPrefix(stream, got) {
			t.Fatalf("FrameConn delivered bytes that were not sent")
		}
		// Arbitrary read sizes see the same bytes.
		c = NewFrameConn(&chunkConn{r: bytes.NewReader(stream), chunk: int(chunk) + 1}, 4096)
		var again []byte
		buf := make([]byte, int(readSize)%5000+1)
		for {
			n, err := c.Read(buf)
			again = append(again, buf[:n]...)
			if err != nil {
				break
			}
		}
		if !bytes.Equal(again, got) {
			t.Fatalf("reads of %d bytes delivered %d bytes, frame reads %d", len(buf), len(again), len(got))
		}
	})
}

func FuzzAppendNegotiateRequest(f *testing.F) {
	f.Add(uint64(0), []byte{0x02, 0x02, 0x03, 0x11}, []byte("salt"), []byte{0, 2})
	f.Fuzz(func(t *testing.T, id uint64, dialectBytes, salt, cipherBytes []byte) {
		if len(dialectBytes) > 200 || len(salt) > 200 || len(cipherBytes) > 200 {
			return
		}
		var dialects []Dialect
		for i := 0; i+1 < len(dialectBytes); i += 2 {
			dialects = append(dialects, Dialect(binary.BigEndian.Uint16(dialectBytes[i:])))
		}
		var ciphers []Cipher
		for i := 0; i+1 < len(cipherBytes); i += 2 {
			ciphers = append(ciphers, Cipher(binary.BigEndian.Uint16(cipherBytes[i:])))
		}
		b := AppendNegotiateRequest(nil, NegotiateRequest{MessageID: id, Dialects: dialects, Salt: salt, Ciphers: ciphers})
		if err := CheckFrame(b); err != nil {
			t.Fatalf("CheckFrame(request) = %v", err)
		}
		msg := b[PrefixLen:]
		le := binary.LittleEndian
		if dialects == nil {
			dialects = DefaultDialects
		}
		if got := int(le.Uint16(msg[66:68])); got != len(dialects) {
			t.Fatalf("DialectCount %d, want %d", got, len(dialects))
		}
		if le.Uint64(msg[24:32]) != id {
			t.Fatalf("MessageId %d, want %d", le.Uint64(msg[24:32]), id)
		}
		if slices.Contains(dialects, SMB311) {
			off := int(le.Uint32(msg[92:96]))
			if off%8 != 0 || off < 100+2*len(dialects) || off > len(msg) {
				t.Fatalf("NegotiateContextOffset %d in a %d-byte request", off, len(msg))
			}
		}
	})
}
