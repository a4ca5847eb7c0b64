package smb

// This is the only file that imports go-smb2: it proves that FrameConn turns the frames that
// crash go-smb2 v1.1.0 into errors. Keep it that way, so that replacing the library touches
// one test file.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	smb2 "github.com/hirochachacha/go-smb2"
)

// pipeServe returns the client end of a net.Pipe whose server end writes chunks one after
// the other and then closes.
func pipeServe(t *testing.T, chunks ...[]byte) net.Conn {
	t.Helper()
	client, server := net.Pipe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer server.Close()
		for _, c := range chunks {
			if _, err := server.Write(c); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		client.Close()
		wg.Wait()
	})
	return client
}

// readAll reads c with the buffer sizes in sizes, cycling through them, until an error, and
// returns the bytes read and that error.
func readAll(c net.Conn, sizes ...int) ([]byte, error) {
	var got []byte
	for i := 0; ; i++ {
		buf := make([]byte, sizes[i%len(sizes)])
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return got, err
		}
	}
}

// readFrames reads c as go-smb2 does, a 4-byte prefix and then the message, and returns the
// frames read before the first error.
func readFrames(c net.Conn) ([][]byte, error) {
	var frames [][]byte
	for {
		prefix := make([]byte, 4)
		if _, err := io.ReadFull(c, prefix); err != nil {
			return frames, err
		}
		msg := make([]byte, binary.BigEndian.Uint32(prefix))
		if _, err := io.ReadFull(c, msg); err != nil {
			return frames, err
		}
		frames = append(frames, append(prefix, msg...))
	}
}

func TestFrameConnServesWholeFrames(t *testing.T) {
	f1 := unhex(t, negotiateResponseVector)
	f2 := frameOf(smb2Message(72, 8), smb2Message(0, 9))
	f3 := unhex(t, negotiateResponse311Vector)
	f4 := transformFrame(HeaderLen+10, HeaderLen+10)
	stream := bytes.Join([][]byte{f1, f2, f3, f4}, nil)
	// The server writes the stream in pieces that cut through prefixes and headers.
	chunks := [][]byte{stream[:2], stream[2:7], stream[7:150], stream[150:151], stream[151:]}
	for _, sizes := range [][]int{{1}, {4, 3}, {7, 100, 2}, {4096}} {
		c := NewFrameConn(pipeServe(t, chunks...), 0)
		got, err := readAll(c, sizes...)
		if err != io.EOF {
			t.Fatalf("sizes %v: err = %v, want io.EOF", sizes, err)
		}
		if !bytes.Equal(got, stream) {
			t.Fatalf("sizes %v: read\n%x\nwant\n%x", sizes, got, stream)
		}
	}
	c := NewFrameConn(pipeServe(t, chunks...), 0)
	frames, err := readFrames(c)
	if err != io.EOF {
		t.Fatalf("err = %v, want io.EOF", err)
	}
	if want := [][]byte{f1, f2, f3, f4}; len(frames) != len(want) || !bytes.Equal(bytes.Join(frames, nil), stream) {
		t.Fatalf("frames = %x, want %x", frames, want)
	}
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v; want 0, nil", n, err)
	}
}

func TestFrameConnRejects(t *testing.T) {
	good := unhex(t, negotiateResponseVector)
	tests := []struct {
		name     string
		stream   []byte
		maxFrame int
		want     error
		text     string
	}{
		{"5-byte frame", unhex(t, "00000005 fe534d4240"), 0, ErrFrameLength,
			"smb: frame of 5 bytes, below the 64-byte header: smb: frame length out of range"},
		{"zero-length frame", unhex(t, "00000000"), 0, ErrFrameLength,
			"smb: frame of 0 bytes, below the 64-byte header: smb: frame length out of range"},
		{"netbios keepalive", unhex(t, "85000000"), 0, ErrFramePrefix,
			"smb: frame prefix type 0x85: smb: frame prefix is not a session message"},
		{"16 MiB frame", append(unhex(t, "00ffffff"), good[4:]...), 0, ErrFrameLength,
			"smb: frame of 16777215 bytes, above the 8454144-byte limit: smb: frame length out of range"},
		{"frame above a small limit", good, 100, ErrFrameLength,
			"smb: frame of 138 bytes, above the 100-byte limit: smb: frame length out of range"},
		{"next command past the frame", frameOf(smb2Message(0x1000, 0)), 0, ErrNextCommand,
			"smb: compound message 0 at offset 0: next command 4096 leaves no room for a header in 64 bytes: smb: bad compound chain"},
		{"next command unaligned", frameOf(smb2Message(68, 4), smb2Message(0, 0)), 0, ErrNextCommand,
			"smb: compound message 0 next command 68 is not 8-byte aligned: smb: bad compound chain"},
		{"SMB1 answer", unhex(t, smb1ExtendedVector), 0, ErrMagic,
			"smb: frame starts with an SMB1 header (FF 'SMB'): smb: unexpected protocol identifier"},
		{"http", []byte("HTTP/1.1 400 Bad Request\r\n\r\n"), 0, ErrFramePrefix,
			"smb: frame prefix type 0x48: smb: frame prefix is not a session message"},
		{"half a frame", good[:60], 0, io.ErrUnexpectedEOF, "unexpected EOF"},
		{"half a prefix", good[:2], 0, io.ErrUnexpectedEOF, "unexpected EOF"},
		{"nothing", nil, 0, io.EOF, "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A good frame first, unless the limit refuses it: it must arrive whole before
			// the bad one is refused.
			stream := tt.stream
			if tt.maxFrame == 0 {
				stream = append(append([]byte(nil), good...), tt.stream...)
			}
			c := NewFrameConn(pipeServe(t, stream), tt.maxFrame)
			got, err := readAll(c, 4, 13)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err.Error() != tt.text {
				t.Fatalf("err =\n%s\nwant\n%s", err.Error(), tt.text)
			}
			if wantData := stream[:len(stream)-len(tt.stream)]; !bytes.Equal(got, wantData) {
				t.Fatalf("read %x before the error, want %x", got, wantData)
			}
			// The failure sticks.
			if _, again := c.Read(make([]byte, 64)); !errors.Is(again, tt.want) {
				t.Fatalf("second Read err = %v, want %v", again, tt.want)
			}
		})
	}
}

// loopback returns both ends of a TCP connection over 127.0.0.1.
func loopback(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

func TestFrameConnResumesAfterDeadline(t *testing.T) {
	client, server := loopback(t)
	frame := unhex(t, negotiateResponseVector)
	c := NewFrameConn(client, 0)
	if _, err := server.Write(frame[:70]); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if n, err := c.Read(buf); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read = %d, %v; want 0 and a deadline error", n, err)
	}
	if _, err := server.Write(frame[70:]); err != nil {
		t.Fatal(err)
	}
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(frame))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, frame) {
		t.Fatalf("read %x, want %x", got, frame)
	}
}

func TestFrameConnSlowDrip(t *testing.T) {
	client, server := loopback(t)
	frame := unhex(t, negotiateResponse311Vector)
	go func() {
		for i := range frame {
			if _, err := server.Write(frame[i : i+1]); err != nil {
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	c := NewFrameConn(client, 0)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(frame))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, frame) {
		t.Fatalf("read %x, want %x", got, frame)
	}
}

func TestFrameConnPassesThrough(t *testing.T) {
	client, server := loopback(t)
	c := NewFrameConn(client, 0)
	if c.LocalAddr() != client.LocalAddr() || c.RemoteAddr() != client.RemoteAddr() {
		t.Fatalf("addresses %v %v, want %v %v", c.LocalAddr(), c.RemoteAddr(), client.LocalAddr(), client.RemoteAddr())
	}
	req := unhex(t, negotiateRequestVector)
	if n, err := c.Write(req); n != len(req) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	got := make([]byte, len(req))
	server.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(server, got); err != nil || !bytes.Equal(got, req) {
		t.Fatalf("server read %x, %v; want %x", got, err, req)
	}
	if err := c.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(req); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write past the deadline err = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := server.Read(got); n != 0 || err != io.EOF {
		t.Fatalf("server Read after Close = %d, %v; want 0, EOF", n, err)
	}
	if _, err := c.Read(got); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close err = %v, want net.ErrClosed", err)
	}
}

func TestNewFrameConnLimit(t *testing.T) {
	tests := []struct{ in, want int }{
		{0, DefaultMaxFrame},
		{-1, DefaultMaxFrame},
		{1000, 1000},
		{MaxFrameLen, MaxFrameLen},
		{1 << 30, MaxFrameLen},
	}
	for _, tt := range tests {
		if got := NewFrameConn(nil, tt.in).maxFrame; got != tt.want {
			t.Errorf("NewFrameConn(_, %d) limit = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// fakeReply builds the answer to one request message (prefix removed).
type fakeReply func(req []byte) []byte

// serveFake starts a one-connection SMB server on 127.0.0.1 that answers successive requests
// with replies, then waits for the client to hang up; a nil reply hangs up at once. It
// returns the address.
func serveFake(t *testing.T, replies ...fakeReply) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		for _, reply := range replies {
			if reply == nil {
				return
			}
			prefix := make([]byte, 4)
			if _, err := io.ReadFull(c, prefix); err != nil {
				return
			}
			req := make([]byte, binary.BigEndian.Uint32(prefix)&0xFFFFFF)
			if _, err := io.ReadFull(c, req); err != nil {
				return
			}
			if _, err := c.Write(reply(req)); err != nil {
				return
			}
		}
		io.Copy(io.Discard, c) // until the client closes
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// replyBytes answers with fixed bytes.
func replyBytes(b []byte) fakeReply { return func([]byte) []byte { return b } }

// replyNegotiate answers with negotiateResponseVector carrying the request's MessageId and
// the given NextCommand.
func replyNegotiate(t *testing.T, next uint32) fakeReply {
	return func(req []byte) []byte {
		b := unhex(t, negotiateResponseVector)
		copy(b[4+24:4+32], req[24:32])
		binary.LittleEndian.PutUint32(b[4+20:], next)
		return b
	}
}

// replyStatus answers with an SMB2 error response carrying status.
func replyStatus(status uint32) fakeReply {
	return func(req []byte) []byte {
		m := smb2Message(0, 0)
		copy(m[12:14], req[12:14]) // Command
		binary.LittleEndian.PutUint32(m[8:], status)
		binary.LittleEndian.PutUint16(m[14:], 1) // one credit
		copy(m[24:32], req[24:32])               // MessageId
		m = append(m, 9, 0, 0, 0, 0, 0, 0, 0, 0) // SMB2 ERROR: StructureSize 9, no data
		return frameOf(m)
	}
}

// dialGoSMB2 runs go-smb2's negotiate and session setup against addr, through FrameConn
// when wrap is set, and returns DialContext's error.
func dialGoSMB2(t *testing.T, addr string, wrap bool) error {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var conn net.Conn = c
	if wrap {
		conn = NewFrameConn(c, 0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := &smb2.Dialer{Initiator: &smb2.NTLMInitiator{User: "guest"}}
	s, err := d.DialContext(ctx, conn)
	if s != nil {
		s.Logoff()
	}
	return err
}

func TestGoSMB2FailsCleanlyWithFrameConn(t *testing.T) {
	tests := []struct {
		name    string
		replies []fakeReply
		want    error
		text    string
	}{
		{"5-byte frame", []fakeReply{replyBytes(unhex(t, "00000005 fe534d4240"))}, ErrFrameLength,
			"smb: frame of 5 bytes, below the 64-byte header: smb: frame length out of range"},
		{"next command past the frame", []fakeReply{replyNegotiate(t, 0x1000)}, ErrNextCommand,
			"smb: compound message 0 at offset 0: next command 4096 leaves no room for a header in 138 bytes: smb: bad compound chain"},
		{"next command inside the header", []fakeReply{replyNegotiate(t, 8)}, ErrNextCommand,
			"smb: compound message 0 next command 8 is inside its own header: smb: bad compound chain"},
		{"next command unaligned", []fakeReply{replyNegotiate(t, 66)}, ErrNextCommand,
			"smb: compound message 0 next command 66 is not 8-byte aligned: smb: bad compound chain"},
		{"SMB1 answer", []fakeReply{replyBytes(unhex(t, smb1ExtendedVector))}, ErrMagic,
			"smb: frame starts with an SMB1 header (FF 'SMB'): smb: unexpected protocol identifier"},
		{"half a frame, then hang up", []fakeReply{replyBytes(unhex(t, negotiateResponseVector)[:40]), nil}, io.ErrUnexpectedEOF, "unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := dialGoSMB2(t, serveFake(t, tt.replies...), true)
			var te *smb2.TransportError
			if !errors.As(err, &te) {
				t.Fatalf("err = %#v, want a *smb2.TransportError", err)
			}
			// go-smb2's TransportError has no Unwrap: the cause is in its Err field.
			if !errors.Is(te.Err, tt.want) {
				t.Fatalf("cause = %v, want %v", te.Err, tt.want)
			}
			if te.Err.Error() != tt.text {
				t.Fatalf("cause =\n%s\nwant\n%s", te.Err.Error(), tt.text)
			}
		})
	}
}

func TestGoSMB2WorksThroughFrameConn(t *testing.T) {
	addr := serveFake(t, replyNegotiate(t, 0), replyStatus(0xC000006D))
	err := dialGoSMB2(t, addr, true)
	var ie *smb2.InvalidResponseError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %#v, want a *smb2.InvalidResponseError", err)
	}
	// go-smb2 got past negotiate over FrameConn and read the session setup answer.
	want := "invalid response error: expected status: {Still Busy} The specified I/O request packet (IRP) cannot be disposed of" +
		" because the I/O operation is not complete., got The attempted logon is invalid." +
		" This is either due to a bad username or authentication information."
	if err.Error() != want {
		t.Fatalf("err =\n%s\nwant\n%s", err.Error(), want)
	}
}

// crashHelperEnv makes TestGoSMB2PanicsWithoutFrameConn, run as a child, do the crash.
const crashHelperEnv = "OFMPROBE_GO_SMB2_CRASH_HELPER"

// TestGoSMB2PanicsWithoutFrameConn shows why FrameConn exists: in a child process, go-smb2
// reading a 5-byte frame from a bare connection panics in its receiver goroutine and takes
// the whole process down.
func TestGoSMB2PanicsWithoutFrameConn(t *testing.T) {
	if os.Getenv(crashHelperEnv) == "1" {
		err := dialGoSMB2(t, serveFake(t, replyBytes(unhex(t, "00000005 fe534d4240"))), false)
		t.Fatalf("go-smb2 returned %v instead of crashing", err)
	}
	if testing.Short() {
		t.Skip("runs a child process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestGoSMB2PanicsWithoutFrameConn$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashHelperEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("child err = %v, want exit status 2; stderr:\n%s", err, stderr.String())
	}
	first, _, _ := strings.Cut(stderr.String(), "\n")
	if want := "panic: runtime error: slice bounds out of range [:24] with capacity 5"; first != want {
		t.Fatalf("child's first stderr line = %q, want %q", first, want)
	}
}
