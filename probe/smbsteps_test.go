package probe

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/ofmprobe/ofmprobe/probe/smb"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// connFake is a loopback TCP server that runs script on each connection (numbered from 1) and then waits for the
// client to close it. It counts the connections the client closed, so tests can prove the steps close every one.
type connFake struct {
	ln       net.Listener
	wg       sync.WaitGroup
	accepted atomic.Int64
	// clientClosed counts connections that ended with the client's close (EOF or reset) after the script.
	clientClosed atomic.Int64
	stopOnce     sync.Once
}

func startFake(t *testing.T, script func(n int, c net.Conn)) *connFake {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	must(t, err)
	f := &connFake{ln: ln}
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(f.accepted.Add(1))
			f.wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				script(n, c)
				_, err := io.Copy(io.Discard, c)
				if err == nil || errors.Is(err, syscall.ECONNRESET) {
					f.clientClosed.Add(1)
				}
			})
		}
	})
	t.Cleanup(f.stop)
	return f
}

func (f *connFake) port() uint16 { return uint16(f.ln.Addr().(*net.TCPAddr).Port) }

// stop closes the listener and waits for every connection's handler.
func (f *connFake) stop() {
	f.stopOnce.Do(func() {
		f.ln.Close()
		f.wg.Wait()
	})
}

// readFrame reads one length-prefixed request (direct TCP or NetBIOS session message).
func readFrame(c net.Conn) []byte {
	prefix := make([]byte, 4)
	if _, err := io.ReadFull(c, prefix); err != nil {
		return nil
	}
	b := make([]byte, 4+binary.BigEndian.Uint32(prefix)&0x1FFFF)
	copy(b, prefix)
	if _, err := io.ReadFull(c, b[4:]); err != nil {
		return nil
	}
	return b
}

// hangUp closes c with a reset, as Windows does to an SMB1 negotiate when SMB1 is off.
func hangUp(c net.Conn) {
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
}

func frame(msg []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(msg))), msg...)
}

// smb2Reply answers the SMB2 request req (with its prefix) with status and body (MS-SMB2 §2.2.1.2).
func smb2Reply(req []byte, status uint32, body []byte) []byte {
	le := binary.LittleEndian
	h := make([]byte, 64)
	copy(h, "\xfeSMB")
	le.PutUint16(h[4:], 64)
	le.PutUint16(h[6:], 1)
	le.PutUint32(h[8:], status)
	copy(h[12:14], req[4+12:4+14])
	le.PutUint16(h[14:], 8)
	le.PutUint32(h[16:], 1) // SMB2_FLAGS_SERVER_TO_REDIR
	copy(h[24:32], req[4+24:4+32])
	le.PutUint64(h[40:], 0x4000_0001)
	return frame(append(h, body...))
}

// negotiateBody is an SMB2 NEGOTIATE response body (MS-SMB2 §2.2.4) with no security buffer.
func negotiateBody(dialect smb.Dialect, mode smb.SecurityMode) []byte {
	le := binary.LittleEndian
	b := make([]byte, 64)
	le.PutUint16(b[0:], 65)
	le.PutUint16(b[2:], uint16(mode))
	le.PutUint16(b[4:], uint16(dialect))
	copy(b[8:24], "OFMPROBE-TESTSRV")
	le.PutUint32(b[24:], uint32(smb.CapDFS|smb.CapLeasing|smb.CapLargeMTU))
	for _, at := range []int{28, 32, 36} {
		le.PutUint32(b[at:], 8<<20)
	}
	le.PutUint64(b[40:], 133590384000000000)
	le.PutUint16(b[56:], 128)
	return b
}

// negotiateAnswer answers the request req with an SMB2 NEGOTIATE response.
func negotiateAnswer(req []byte, dialect smb.Dialect, mode smb.SecurityMode) []byte {
	return smb2Reply(req, 0, negotiateBody(dialect, mode))
}

// smb1Answer is an SMB1 NEGOTIATE reply (MS-CIFS §2.2.4.52.2) choosing dialect index i: for "NT LM 0.12", 17
// parameter words with extended security and a server GUID; for 0xFFFF one word.
func smb1Answer(i uint16) []byte {
	le := binary.LittleEndian
	h := make([]byte, 32)
	copy(h, "\xffSMB")
	h[4], h[9] = 0x72, 0x98
	le.PutUint16(h[10:], 0xC853)
	le.PutUint16(h[26:], 0xFEFF)
	if i == 0xFFFF {
		return frame(append(h, 1, 0xff, 0xff, 0, 0))
	}
	w := []byte{17}
	w = le.AppendUint16(w, i)
	w = append(w, 0x07) // user security, encrypted passwords, signatures enabled
	w = le.AppendUint16(w, 50)
	w = le.AppendUint16(w, 1)
	w = le.AppendUint32(w, 4356)
	w = le.AppendUint32(w, 65536)
	w = le.AppendUint32(w, 0)
	w = le.AppendUint32(w, 0x8000f3fc)
	w = le.AppendUint64(w, 127868022001234567)
	w = le.AppendUint16(w, 0)
	w = append(w, 0)
	w = le.AppendUint16(w, 16)
	w = append(w, "WINDOWS-2003-SRV"...)
	return frame(append(h, w...))
}

// Negotiate behaviours. Each reads the request it answers.
func answerWildcard(c net.Conn) {
	c.Write(negotiateAnswer(readFrame(c), smb.SMB2Wildcard, smb.SigningEnabled))
}

func answerSMB302(c net.Conn) {
	c.Write(negotiateAnswer(readFrame(c), smb.SMB302, smb.SigningEnabled|smb.SigningRequired))
}

// smb2Server answers the first connection as an SMB2 server (wildcard, then 3.0.2 with signing required) and the
// SMB1-only check with second.
func smb2Server(second func(c net.Conn)) func(int, net.Conn) {
	return func(n int, c net.Conn) {
		if n == 1 {
			answerWildcard(c)
			answerSMB302(c)
			return
		}
		second(c)
	}
}

func TestSMBNegotiate(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name     string
		script   func(n int, c net.Conn)
		state    string
		evidence string
		smb1     *bool
		smb1Ev   string
		conns    int64
	}{
		{"SMB2, SMB1 refused with 0xFFFF (Samba)", smb2Server(func(c net.Conn) { readFrame(c); c.Write(smb1Answer(0xFFFF)) }), SMBStateSMB2,
			"smb negotiate %d: speaks SMB2: SMB 3.0.2, signing required, capabilities DFS, leasing, large MTU, first answer in ", &no,
			"smb1 check: SMB1 disabled: the server answered that no offered dialect is common (dialect index 0xFFFF)", 2},
		{"SMB2, SMB1 refused with a reset (Windows)", smb2Server(func(c net.Conn) { readFrame(c); hangUp(c) }), SMBStateSMB2,
			"smb negotiate %d: speaks SMB2: SMB 3.0.2", &no, "smb1 check: SMB1 disabled: the server closed the connection when offered SMB1 alone", 2},
		{"SMB2, SMB1 accepted beside it", smb2Server(func(c net.Conn) { readFrame(c); c.Write(smb1Answer(0)) }), SMBStateSMB2,
			"smb negotiate %d: speaks SMB2: SMB 3.0.2", &yes, "smb1 check: SMB1 accepted beside SMB2: NT LM 0.12, extended security, signing enabled", 2},
		{"SMB2, SMB1 check unanswered", smb2Server(func(c net.Conn) { readFrame(c) }), SMBStateSMB2,
			"smb negotiate %d: speaks SMB2: SMB 3.0.2", nil, "smb1 check: unknown, no answer in 200ms when offered SMB1 alone", 2},
		{"SMB2, SMB1 check answered with garbage", smb2Server(func(c net.Conn) { readFrame(c); c.Write([]byte("HTTP/1.0 400\r\n\r\n")) }), SMBStateSMB2,
			"smb negotiate %d: speaks SMB2", nil, "smb1 check: unknown, the answer to an SMB1-only negotiate is not valid: protocol error: not an SMB frame: 48 54 54 50", 2},
		{"SMB 2.0.2 chosen at once (Windows Vista, SMB1 on)", func(n int, c net.Conn) {
			if n == 1 {
				c.Write(negotiateAnswer(readFrame(c), smb.SMB202, smb.SigningEnabled))
				return
			}
			readFrame(c)
			c.Write(smb1Answer(0))
		}, SMBStateSMB2, "smb negotiate %d: speaks SMB2: SMB 2.0.2, signing enabled, capabilities DFS, leasing, large MTU, first answer in ", &yes,
			"smb1 check: SMB1 accepted beside SMB2", 2},
		{"SMB2 answer to SMB1 alone", smb2Server(func(c net.Conn) { c.Write(negotiateAnswer(readFrame(c), smb.SMB202, 1)) }), SMBStateSMB2,
			"smb negotiate %d: speaks SMB2", nil, "smb1 check: unknown, an SMB1-only negotiate was answered with SMB2", 2},
		{"SMB1 only (Windows 2003)", func(_ int, c net.Conn) { readFrame(c); c.Write(smb1Answer(0)) }, SMBStateSMB1Only,
			"smb negotiate %d: speaks SMB1 only: NT LM 0.12, extended security, signing enabled, answered in ", &yes,
			"smb1 check: SMB1 is the only protocol the server offered", 1},
		{"no common dialect", func(_ int, c net.Conn) { readFrame(c); c.Write(smb1Answer(0xFFFF)) }, SMBStateNoDialect,
			"smb negotiate %d: an SMB server that shares none of the offered dialects", nil, "", 1},
		{"silence", func(_ int, c net.Conn) { readFrame(c) }, SMBStateTimeout,
			"smb negotiate %d: connected, but no answer to the SMB negotiate in 200ms", nil, "", 1},
		{"reset", func(_ int, c net.Conn) { readFrame(c); hangUp(c) }, SMBStateProtocolError,
			"smb negotiate %d: the server reset the connection without answering the SMB negotiate", nil, "", 1},
		{"closed without a word", func(_ int, c net.Conn) { readFrame(c); c.(*net.TCPConn).CloseWrite() }, SMBStateProtocolError,
			"smb negotiate %d: the server closed the connection without answering the SMB negotiate", nil, "", 1},
		{"garbage", func(_ int, c net.Conn) { readFrame(c); c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")) }, SMBStateProtocolError,
			"smb negotiate %d: not an SMB answer to the SMB negotiate: protocol error: not an SMB frame: 48 54 54 50", nil, "", 1},
		{"5-byte frame", func(_ int, c net.Conn) { readFrame(c); c.Write([]byte{0, 0, 0, 5, 0xfe, 'S', 'M', 'B', 0x40}) }, SMBStateProtocolError,
			"smb negotiate %d: not an SMB negotiate answer (smb2 negotiate: message of 5 bytes, need 64: smb: message too short): 00 00 00 05 fe 53 4d 42 40", nil, "", 1},
		{"16 MiB length claim", func(_ int, c net.Conn) { readFrame(c); c.Write([]byte{0, 0xff, 0xff, 0xff, 0xfe, 'S', 'M', 'B'}) }, SMBStateProtocolError,
			"smb negotiate %d: not an SMB answer to the SMB negotiate: protocol error: frame claims 16777215 bytes, above the 65536-byte limit: 00 ff ff ff", nil, "", 1},
		{"half a frame, then close", func(_ int, c net.Conn) {
			a := negotiateAnswer(readFrame(c), smb.SMB2Wildcard, 1)
			c.Write(a[:40])
			c.(*net.TCPConn).CloseWrite()
		}, SMBStateProtocolError, "smb negotiate %d: not an SMB answer to the SMB negotiate: protocol error: frame of 128 bytes ended after 36: 00 00 00 80 fe 53 4d 42", nil, "", 1},
		{"slow drip", func(_ int, c net.Conn) {
			for _, b := range negotiateAnswer(readFrame(c), smb.SMB2Wildcard, 1) {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(25 * time.Millisecond)
			}
		}, SMBStateTimeout, "smb negotiate %d: connected, but the answer to the SMB negotiate stopped after ", nil, "", 1},
		{"SMB2 answer with another MessageId", func(_ int, c net.Conn) {
			answerWildcard(c)
			req := readFrame(c)
			req[4+24] = 9
			c.Write(negotiateAnswer(req, smb.SMB302, 1))
		}, SMBStateProtocolError, "smb negotiate %d: SMB2 negotiate answer with MessageId 9, sent 1: ", nil, "", 1},
		{"SMB2 answer with a dialect not offered", func(_ int, c net.Conn) {
			answerWildcard(c)
			c.Write(negotiateAnswer(readFrame(c), smb.Dialect(0x0222), 1))
		}, SMBStateProtocolError, "smb negotiate %d: SMB2 negotiate answer chose dialect 0x0222, which was not offered", nil, "", 1},
		{"SMB2 negotiate refused with a status", func(_ int, c net.Conn) {
			answerWildcard(c)
			c.Write(smb2Reply(readFrame(c), 0xC00000BB, []byte{9, 0, 0, 0, 0, 0, 0, 0, 0}))
		}, SMBStateProtocolError, "smb negotiate %d: not an SMB2 negotiate answer (smb2 negotiate: server returned status 0xc00000bb (STATUS_NOT_SUPPORTED))", nil, "", 1},
		{"SMB2 server silent after the wildcard", func(_ int, c net.Conn) { answerWildcard(c); readFrame(c) }, SMBStateTimeout,
			"smb negotiate %d: connected, but no answer to the SMB2 negotiate that followed its SMB 2.??? answer in 200ms", nil, "", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, tc.script)
			s := newTestScanner(t, Options{Ports: []int{1}, Timeout: 200 * time.Millisecond})
			r := s.smbNegotiate(context.Background(), loopback, f.port())
			evidence := fmt.Sprintf(tc.evidence, f.port())
			if r.State != tc.state || !strings.HasPrefix(r.Evidence, evidence) {
				t.Errorf("got %s: %q\nwant %s: %q...", r.State, r.Evidence, tc.state, evidence)
			}
			if (r.SMB1Accepted == nil) != (tc.smb1 == nil) || (r.SMB1Accepted != nil && *r.SMB1Accepted != *tc.smb1) || !strings.HasPrefix(r.SMB1Evidence, tc.smb1Ev) {
				t.Errorf("SMB1Accepted %v (%q), want %v (%q)", fmtBool(r.SMB1Accepted), r.SMB1Evidence, fmtBool(tc.smb1), tc.smb1Ev)
			}
			f.stop()
			if got := f.accepted.Load(); got != tc.conns {
				t.Errorf("%d connections, want %d", got, tc.conns)
			}
		})
	}
}

func fmtBool(b *bool) string {
	if b == nil {
		return "nil"
	}
	return fmt.Sprint(*b)
}

// TestSMBNegotiateFacts checks every field of an SMB2 and an SMB1-only result, and their JSON.
func TestSMBNegotiateFacts(t *testing.T) {
	s := newTestScanner(t, Options{Ports: []int{1}, Timeout: 200 * time.Millisecond})
	f := startFake(t, smb2Server(func(c net.Conn) { readFrame(c); c.Write(smb1Answer(0xFFFF)) }))
	r := s.smbNegotiate(context.Background(), loopback, f.port())
	r.Evidence, r.RTT = "", 0
	no := false
	want := SMBResult{State: SMBStateSMB2, Port: int(f.port()), Dialect: "SMB 3.0.2", SigningEnabled: true, SigningRequired: true,
		ServerGUID: "504d464f-4f52-4542-2d54-455354535256", Capabilities: []string{"DFS", "leasing", "large MTU"}, SMB1Accepted: &no,
		SMB1Evidence: "smb1 check: SMB1 disabled: the server answered that no offered dialect is common (dialect index 0xFFFF)"}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got  %+v\nwant %+v", r, want)
	}
	js, _ := json.Marshal(r)
	wantJSON := fmt.Sprintf(`{"state":"smb2","evidence":"","port":%d,"dialect":"SMB 3.0.2","signing_enabled":true,"signing_required":true,`+
		`"server_guid":"504d464f-4f52-4542-2d54-455354535256","capabilities":["DFS","leasing","large MTU"],"smb1_accepted":false,`+
		`"smb1_evidence":"smb1 check: SMB1 disabled: the server answered that no offered dialect is common (dialect index 0xFFFF)"}`, f.port())
	if string(js) != wantJSON {
		t.Errorf("JSON\n%s\nwant\n%s", js, wantJSON)
	}

	f1 := startFake(t, func(_ int, c net.Conn) { readFrame(c); c.Write(smb1Answer(0)) })
	r = s.smbNegotiate(context.Background(), loopback, f1.port())
	if r.Dialect != "NT LM 0.12" || !r.SigningEnabled || r.SigningRequired || r.ServerGUID != "444e4957-574f-2d53-3230-30332d535256" ||
		strings.Join(r.Capabilities, ",") != "unicode,NT SMBs,NT status codes,DFS,extended security" {
		t.Errorf("SMB1 facts %+v", r)
	}
}

// TestSMBNegotiateRequests checks what the step sends: the multi-protocol SMB1 negotiate, then an SMB2 NEGOTIATE
// with MessageId 1 offering 2.0.2 to 3.1.1, then SMB1 alone on a second connection.
func TestSMBNegotiateRequests(t *testing.T) {
	var mu sync.Mutex
	var got [][]byte
	keep := func(b []byte) []byte {
		mu.Lock()
		got = append(got, b)
		mu.Unlock()
		return b
	}
	f := startFake(t, func(n int, c net.Conn) {
		if n == 1 {
			c.Write(negotiateAnswer(keep(readFrame(c)), smb.SMB2Wildcard, 1))
			c.Write(negotiateAnswer(keep(readFrame(c)), smb.SMB311, 1))
			return
		}
		keep(readFrame(c))
		c.Write(smb1Answer(0xFFFF))
	})
	s := newTestScanner(t, Options{Ports: []int{1}, Timeout: 200 * time.Millisecond})
	if r := s.smbNegotiate(context.Background(), loopback, f.port()); r.State != SMBStateSMB2 || r.Dialect != "SMB 3.1.1" {
		t.Fatalf("got %+v", r)
	}
	f.stop()
	if len(got) != 3 {
		t.Fatalf("%d requests", len(got))
	}
	if want := smb.AppendSMB1Negotiate(nil, smb.MultiProtocolDialects); !bytes.Equal(got[0], want) {
		t.Errorf("first request % x, want % x", got[0], want)
	}
	req := got[1]
	le := binary.LittleEndian
	if !bytes.Equal(req[4:8], []byte("\xfeSMB")) || le.Uint16(req[4+12:]) != 0 || le.Uint64(req[4+24:]) != 1 {
		t.Errorf("second request is not an SMB2 NEGOTIATE with MessageId 1: % x", req[:40])
	}
	if n := le.Uint16(req[4+64+2:]); n != 5 || !bytes.Equal(req[4+100:4+110], []byte{0x02, 0x02, 0x10, 0x02, 0x00, 0x03, 0x02, 0x03, 0x11, 0x03}) {
		t.Errorf("dialects: %d, % x", n, req[4+100:4+110])
	}
	if want := smb.AppendSMB1Negotiate(nil, smb.SMB1OnlyDialects); !bytes.Equal(got[2], want) {
		t.Errorf("SMB1 check % x, want % x", got[2], want)
	}
}

// nbssThen answers a session request (positive when accept says so for the called name) and then runs smb.
func nbssThen(accept func(called string) bool, smbScript func(n int, c net.Conn)) func(int, net.Conn) {
	var sessions atomic.Int64
	return func(_ int, c net.Conn) {
		called := readRequest(c)
		if !accept(called) {
			c.Write([]byte{0x83, 0, 0, 1, 0x82})
			return
		}
		c.Write([]byte{0x82, 0, 0, 0})
		smbScript(int(sessions.Add(1)), c)
	}
}

func TestSMBNegotiate139(t *testing.T) {
	any := func(string) bool { return true }
	keepalives := func(n int, c net.Conn) {
		c.Write([]byte{0x85, 0, 0, 0, 0x85, 0, 0, 0})
		smb2Server(func(c net.Conn) { readFrame(c); c.Write(smb1Answer(0xFFFF)) })(n, c)
	}
	tests := []struct {
		name     string
		server   string
		script   func(int, net.Conn)
		state    string
		called   string
		evidence string
		conns    int64
	}{
		{"session to the real name", "OFM90", nbssThen(func(n string) bool { return n == "OFM90<20>" }, keepalives), SMBStateSMB2, "OFM90<20>",
			"smb negotiate %d (OFM90<20>): speaks SMB2: SMB 3.0.2", 2},
		{"real name refused, *SMBSERVER accepted", "WRONG", nbssThen(func(n string) bool { return n == "*SMBSERVER<20>" }, keepalives), SMBStateSMB2,
			"*SMBSERVER<20>", "smb negotiate %d (*SMBSERVER<20>): speaks SMB2", 3},
		{"SMB1 only over NetBIOS (NT 4)", "", nbssThen(any, func(_ int, c net.Conn) { readFrame(c); c.Write(smb1Answer(0)) }), SMBStateSMB1Only,
			"*SMBSERVER<20>", "smb negotiate %d (*SMBSERVER<20>): speaks SMB1 only: NT LM 0.12", 1},
		{"every name refused", "OFM90", nbssThen(func(string) bool { return false }, nil), SMBStateSessionRefused, "",
			"smb negotiate %d: nbss 139 (*SMBSERVER<20>): negative session response: ", 2},
		{"no answer to the session request", "", func(_ int, c net.Conn) { readRequest(c) }, SMBStateTimeout, "",
			"smb negotiate %d: nbss 139 (*SMBSERVER<20>): connected, but no answer to the session request in 200ms", 1},
		{"silent after the session", "", nbssThen(any, func(_ int, c net.Conn) { readFrame(c) }), SMBStateTimeout, "*SMBSERVER<20>",
			"smb negotiate %d (*SMBSERVER<20>): connected, but no answer to the SMB negotiate in 200ms", 1},
		{"only keepalives", "", nbssThen(any, func(_ int, c net.Conn) {
			readFrame(c)
			c.Write(bytes.Repeat([]byte{0x85, 0, 0, 0}, 10))
		}), SMBStateProtocolError, "*SMBSERVER<20>", "smb negotiate %d (*SMBSERVER<20>): not an SMB answer to the SMB negotiate: protocol error: only NetBIOS keepalives, no answer", 1},
		{"16 MiB claim after the session", "", nbssThen(any, func(_ int, c net.Conn) { readFrame(c); c.Write([]byte{0, 0xff, 0xff, 0xff}) }),
			SMBStateProtocolError, "*SMBSERVER<20>", "smb negotiate %d (*SMBSERVER<20>): not an SMB answer to the SMB negotiate: protocol error: frame claims 16777215 bytes", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, tc.script)
			s := newTestScanner(t, Options{Ports: []int{1}, Timeout: 200 * time.Millisecond})
			s.nbssPort = f.port()
			r := s.smbNegotiate139(context.Background(), loopback, tc.server)
			evidence := fmt.Sprintf(tc.evidence, f.port())
			if r.State != tc.state || r.Called != tc.called || r.Port != int(f.port()) || !strings.HasPrefix(r.Evidence, evidence) {
				t.Errorf("got %s to %q: %q\nwant %s to %q: %q...", r.State, r.Called, r.Evidence, tc.state, tc.called, evidence)
			}
			f.stop()
			if got := f.accepted.Load(); got != tc.conns {
				t.Errorf("%d connections, want %d", got, tc.conns)
			}
		})
	}
}

func TestSMBNegotiateConnectFailures(t *testing.T) {
	s := newTestScanner(t, Options{Ports: []int{1}, Timeout: 200 * time.Millisecond})
	if r := s.smbNegotiate(context.Background(), loopback, uint16(closedPort(t))); r.State != StateClosed || !strings.Contains(r.Evidence, "connect failed: connection refused") {
		t.Errorf("closed port: %+v", r)
	}
	if r := s.smbNegotiate(context.Background(), loopback, uint16(silentPort(t))); r.State != StateFiltered {
		t.Errorf("silent port: %+v", r)
	}
	s.dialer = &scriptedDialer{script: func(int, string) error { return os.NewSyscallError("connect", syscall.EHOSTUNREACH) }}
	if r := s.smbNegotiate(context.Background(), loopback, 445); r.State != StateUnreachable || r.Evidence != "smb negotiate 445: connect failed: no route to host" {
		t.Errorf("unreachable: %+v", r)
	}
}

// spnegoNTLMChallenge is a SPNEGO NegTokenResp (RFC 4178 §4.2.2: accept-incomplete, NTLMSSP) carrying an NTLM
// CHALLENGE_MESSAGE (MS-NLMP §2.2.1.2) with target name "FAKE" and an empty target info list; built by
// probe/smb's share_test.go helpers.
const spnegoNTLMChallenge = "a15d305ba0030a0101a10c060a2b06010401823702020aa24604444e544c4d53535000020000000800080038000000" +
	"158288e26368616c656e6765000000000000000004000400400000000000000000000000460041004b00450000000000"

// logonServer answers negotiate with SMB 2.1 and the first session setup with an NTLM challenge, and hands the
// second session setup (the one that carries the user and proves the password) to final. It counts those.
type logonServer struct {
	final func(c net.Conn, req []byte)
	delay time.Duration
	// users lists the user names of the AUTHENTICATE messages seen, "guest" included.
	mu    sync.Mutex
	users []string
}

func (l *logonServer) script(_ int, c net.Conn) {
	c.Write(negotiateAnswer(readFrame(c), smb.SMB210, smb.SigningEnabled))
	req := readFrame(c)
	if req == nil {
		return
	}
	token, _ := hex.DecodeString(spnegoNTLMChallenge)
	body := binary.LittleEndian.AppendUint16([]byte{9, 0, 0, 0}, 72)
	body = binary.LittleEndian.AppendUint16(body, uint16(len(token)))
	c.Write(smb2Reply(req, 0xC0000016, append(body, token...)))
	req = readFrame(c)
	if req == nil {
		return
	}
	l.mu.Lock()
	l.users = append(l.users, authUser(req))
	l.mu.Unlock()
	time.Sleep(l.delay)
	l.final(c, req)
}

func (l *logonServer) seen() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.users...)
}

// authUser finds the user name in an AUTHENTICATE message (MS-NLMP §2.2.1.3) inside a session setup request.
func authUser(req []byte) string {
	i := bytes.Index(req, []byte("NTLMSSP\x00\x03\x00\x00\x00"))
	if i < 0 || len(req) < i+44 {
		return ""
	}
	m := req[i:]
	n, off := binary.LittleEndian.Uint16(m[36:]), binary.LittleEndian.Uint32(m[40:])
	if int(off)+int(n) > len(m) {
		return ""
	}
	u := make([]uint16, n/2)
	for k := range u {
		u[k] = binary.LittleEndian.Uint16(m[int(off)+2*k:])
	}
	return string(utf16.Decode(u))
}

func failWith(status uint32) func(net.Conn, []byte) {
	return func(c net.Conn, req []byte) { c.Write(smb2Reply(req, status, []byte{9, 0, 0, 0, 0, 0, 0, 0, 0})) }
}

const testSecret = "Xy7#probe-Secret!pw"

// TestShareCheckStopsCredentials: after maxFailures logon failures the credentials are not sent again; the check
// runs as guest and says why.
func TestShareCheckStopsCredentials(t *testing.T) {
	srv := &logonServer{final: failWith(0xC000006D)}
	f := startFake(t, srv.script)
	s := newTestScanner(t, Options{Ports: []int{1}, Timeout: 200 * time.Millisecond})
	creds := NewCredentials("ofmlab", "OFMLAB", testSecret, 2)
	var results []ShareResult
	for range 4 {
		results = append(results, s.shareCheck(context.Background(), loopback, f.port(), creds))
	}
	for i, r := range results[:2] {
		if r.State != smb.StateLogonFailure || r.Step != smb.StepSessionSetup || r.Login != `OFMLAB\ofmlab` || r.NTStatus != "0xc000006d" || r.CredentialsNote != "" {
			t.Errorf("check %d: %+v", i, r)
		}
	}
	note := "credentials not used: 2 logon failures already, stopped to avoid locking the account out"
	for i, r := range results[2:] {
		if r.State != smb.StateGuestRefused || r.Login != "guest" || r.CredentialsNote != note || !strings.HasSuffix(r.Evidence, "("+note+")") {
			t.Errorf("check %d: %+v", i+2, r)
		}
	}
	if got := strings.Join(srv.seen(), " "); got != "ofmlab ofmlab guest guest" {
		t.Errorf("the server saw logons of %q", got)
	}
	if !creds.Disabled() || creds.Failures() != 2 {
		t.Errorf("Disabled %v, Failures %d", creds.Disabled(), creds.Failures())
	}
}

// TestShareCheckCredentialsConcurrent: many hosts at once with a wrong password; no more logons than the limit
// reach any server before the password is proven, whatever the concurrency.
func TestShareCheckCredentialsConcurrent(t *testing.T) {
	srv := &logonServer{final: failWith(0xC000006D), delay: 30 * time.Millisecond}
	f := startFake(t, srv.script)
	s := newTestScanner(t, Options{Ports: []int{1}, Timeout: 300 * time.Millisecond, Concurrency: 64})
	creds := NewCredentials("ofmlab", "", testSecret, 3)
	var wg sync.WaitGroup
	results := make([]ShareResult, 20)
	for i := range results {
		wg.Go(func() { results[i] = s.shareCheck(context.Background(), loopback, f.port(), creds) })
	}
	wg.Wait()
	users := 0
	for _, u := range srv.seen() {
		if u == "ofmlab" {
			users++
		}
	}
	if users != 3 || creds.Failures() != 3 {
		t.Errorf("%d logons as ofmlab reached the server, %d failures counted; want 3", users, creds.Failures())
	}
	failures := 0
	for _, r := range results {
		if r.State == smb.StateLogonFailure {
			failures++
		}
	}
	if failures != 3 {
		t.Errorf("%d results say logon failure, want 3", failures)
	}
}

// TestShareCheckLockedOut: a locked-out answer stops the credentials at once.
func TestShareCheckLockedOut(t *testing.T) {
	f := startFake(t, (&logonServer{final: failWith(0xC0000234)}).script)
	s := newTestScanner(t, Options{Ports: []int{1}, Timeout: 200 * time.Millisecond})
	creds := NewCredentials("ofmlab", "OFMLAB", testSecret, 3)
	r := s.shareCheck(context.Background(), loopback, f.port(), creds)
	if r.State != smb.StateLogonFailure || !strings.Contains(r.Evidence, "the account is locked out") || !creds.Disabled() {
		t.Errorf("got %+v, disabled %v", r, creds.Disabled())
	}
	r = s.shareCheck(context.Background(), loopback, f.port(), creds)
	if r.Login != "guest" || r.CredentialsNote != `credentials not used: a server answered that the account OFMLAB\ofmlab is locked out` {
		t.Errorf("after lockout: %+v", r)
	}
}

func TestShareCheckFailures(t *testing.T) {
	s := newTestScanner(t, Options{Ports: []int{1}, Timeout: 100 * time.Millisecond})
	if r := s.shareCheck(context.Background(), loopback, uint16(closedPort(t)), nil); r.State != StateClosed || r.Step != "connect" {
		t.Errorf("closed: %+v", r)
	}
	hostile := startFake(t, func(_ int, c net.Conn) { readFrame(c); c.Write([]byte{0, 0, 0, 5, 0xfe, 'S', 'M', 'B', 0x40}) })
	r := s.shareCheck(context.Background(), loopback, hostile.port(), nil)
	if r.State != smb.StateProtocolError || r.Step != smb.StepNegotiate || r.IPC == nil || r.IPC.State != smb.StateProtocolError ||
		!strings.HasPrefix(r.Evidence, fmt.Sprintf("share mount %d: negotiate: the server sent a malformed SMB frame", hostile.port())) {
		t.Errorf("hostile: %+v", r)
	}
	// The check of a host whose credentials were given but are disabled, on a closed port, still says why.
	creds := NewCredentials("u", "", testSecret, 1)
	a, _ := creds.begin(context.Background())
	a.end(logonFailed)
	r = s.shareCheck(context.Background(), loopback, uint16(closedPort(t)), creds)
	if r.State != StateClosed || !strings.HasSuffix(r.Evidence, "(credentials not used: 1 logon failure already, stopped to avoid locking the account out)") {
		t.Errorf("closed with disabled credentials: %+v", r)
	}
	js, _ := json.Marshal(r)
	for _, text := range []string{fmt.Sprintf("%+v", r), fmt.Sprintf("%#v", r), string(js), fmt.Sprintf("%+v", creds)} {
		if strings.Contains(text, testSecret) {
			t.Errorf("the password shows in %s", text)
		}
	}
}

// TestStepsEndCleanly runs each step against a silent and a hostile server, then checks that every connection was
// closed by the step, that no goroutine is left behind, and that silence cost the step's own deadline and not more.
func TestStepsEndCleanly(t *testing.T) {
	const timeout = 150 * time.Millisecond
	s := newTestScanner(t, Options{Ports: []int{1}, Timeout: timeout})
	ctx := context.Background()
	silent := func(_ int, c net.Conn) { readFrame(c) }
	short := func(_ int, c net.Conn) { readFrame(c); c.Write([]byte{0, 0, 0, 5, 0xfe, 'S', 'M', 'B', 0x40}) }
	kerberos := func(_ int, c net.Conn) {
		// A negotiate answer, then a session setup answer naming Kerberos: go-smb2 panics in the caller's goroutine.
		c.Write(negotiateAnswer(readFrame(c), smb.SMB210, 1))
		req := readFrame(c)
		token, _ := hex.DecodeString(strings.Replace(spnegoNTLMChallenge, "060a2b06010401823702020a", "060a2b06010401823702020b", 1))
		body := binary.LittleEndian.AppendUint16([]byte{9, 0, 0, 0}, 72)
		body = binary.LittleEndian.AppendUint16(body, uint16(len(token)))
		c.Write(smb2Reply(req, 0xC0000016, append(body, token...)))
	}
	bigFrag := func(_ int, c net.Conn) {
		readBind(c)
		c.Write([]byte{5, 0, 0x0c, 3, 0x10, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0})
	}
	steps := []struct {
		name    string
		script  func(int, net.Conn)
		run     func(port uint16) string
		min     time.Duration // silence must last at least this: the step's deadline
		max     time.Duration
		silence bool
	}{
		{"smb negotiate, silent", silent, func(p uint16) string { return s.smbNegotiate(ctx, loopback, p).State }, timeout, 3 * timeout, true},
		{"smb negotiate, hostile", short, func(p uint16) string { return s.smbNegotiate(ctx, loopback, p).State }, 0, 3 * timeout, false},
		{"smb negotiate 139, silent", nbssThen(func(string) bool { return true }, silent), func(p uint16) string {
			s.nbssPort = p
			return s.smbNegotiate139(ctx, loopback, "").State
		}, timeout, 3 * timeout, true},
		{"smb negotiate 139, hostile", nbssThen(func(string) bool { return true }, short), func(p uint16) string {
			s.nbssPort = p
			return s.smbNegotiate139(ctx, loopback, "").State
		}, 0, 3 * timeout, false},
		{"epm bind, silent", silent, func(p uint16) string { return s.epmBindPort(ctx, loopback, p).State }, timeout, 3 * timeout, true},
		{"epm bind, hostile", bigFrag, func(p uint16) string { return s.epmBindPort(ctx, loopback, p).State }, 0, 3 * timeout, false},
		{"share mount, silent", silent, func(p uint16) string { return s.shareCheck(ctx, loopback, p, nil).State },
			shareStepBudget * timeout, 3 * shareStepBudget * timeout, true},
		{"share mount, hostile", short, func(p uint16) string { return s.shareCheck(ctx, loopback, p, nil).State }, 0, 3 * timeout, false},
		{"share mount, client panic", kerberos, func(p uint16) string { return s.shareCheck(ctx, loopback, p, nil).State }, 0, 3 * timeout, false},
		{"share mount 139, silent", nbssThen(func(string) bool { return true }, silent), func(p uint16) string {
			s.nbssPort = p
			return s.shareCheck139(ctx, loopback, "", nil).State
		}, shareStepBudget * timeout, 3 * shareStepBudget * timeout, true},
		{"share mount 139, hostile", nbssThen(func(string) bool { return true }, short), func(p uint16) string {
			s.nbssPort = p
			return s.shareCheck139(ctx, loopback, "", nil).State
		}, 0, 3 * timeout, false},
	}
	// Warm up what starts goroutines once per process (the resolver, crypto/rand, timers).
	warm := startFake(t, short)
	s.shareCheck(ctx, loopback, warm.port(), nil)
	warm.stop()
	baseline := settledGoroutines(0)

	for _, st := range steps {
		f := startFake(t, st.script)
		start := time.Now()
		state := st.run(f.port())
		took := time.Since(start)
		f.stop()
		if st.silence && state != SMBStateTimeout {
			t.Errorf("%s: state %s, want timeout", st.name, state)
		}
		if !st.silence && state != SMBStateProtocolError {
			t.Errorf("%s: state %s, want protocol error", st.name, state)
		}
		if took < st.min || took > st.max {
			t.Errorf("%s: took %s, want between %s and %s", st.name, took, st.min, st.max)
		}
		if a, c := f.accepted.Load(), f.clientClosed.Load(); a == 0 || a != c {
			t.Errorf("%s: %d connections, %d closed by the step", st.name, a, c)
		}
	}
	// A silent host: the connect itself gets no answer; each step costs about one timeout.
	port := uint16(silentPort(t))
	for name, run := range map[string]func() string{
		"smb negotiate": func() string { return s.smbNegotiate(ctx, loopback, port).State },
		"epm bind":      func() string { return s.epmBindPort(ctx, loopback, port).State },
		"share mount":   func() string { return s.shareCheck(ctx, loopback, port, nil).State },
	} {
		start := time.Now()
		state := run()
		if took := time.Since(start); state != StateFiltered || took < timeout || took > 3*timeout {
			t.Errorf("%s on a silent host: %s after %s", name, state, took)
		}
	}
	if n := settledGoroutines(baseline); n > baseline {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines left, %d before:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
	}
}

// settledGoroutines waits up to 3 s for the goroutine count to drop to want (or to stop changing, when want is 0)
// and returns it.
func settledGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for range 60 {
		time.Sleep(50 * time.Millisecond)
		m := runtime.NumGoroutine()
		if (want > 0 && m <= want) || (want == 0 && m == n) {
			return m
		}
		n = m
	}
	return n
}

func FuzzReadSMBFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 4, 0xfe, 'S', 'M', 'B'}, false)
	f.Add([]byte{0x85, 0, 0, 0, 0, 0, 0, 1, 0xff}, true)
	f.Add([]byte{0, 0xff, 0xff, 0xff}, false)
	f.Add([]byte{0, 0, 0x10, 0x00, 1, 2}, false)
	f.Add(smb1Answer(0), true)
	f.Fuzz(func(t *testing.T, in []byte, nbss bool) {
		b, err := readSMBFrame(bytes.NewReader(in), 4096, nbss)
		if err != nil {
			if b != nil {
				t.Fatal("a frame and an error")
			}
			return
		}
		if len(b) < 4 || len(b) > 4+4096 || b[0] != 0 || int(binary.BigEndian.Uint32(b)) != len(b)-4 || !bytes.Contains(in, b) {
			t.Fatalf("bad frame % x from % x", b, in)
		}
	})
}

// TestShareCheck139Refused: when TCP 139 refuses a NetBIOS session to every name, the share check over 139 says so
// and reaches no SMB step.
func TestShareCheck139Refused(t *testing.T) {
	f := startFake(t, nbssThen(func(string) bool { return false }, func(int, net.Conn) {}))
	defer f.stop()
	s := newTestScanner(t, Options{Ports: []int{139}})
	s.nbssPort = f.port()
	r := s.shareCheck139(context.Background(), loopback, "FILESRV", nil)
	if r.State != SMBStateSessionRefused || r.Step != "connect" || r.Port != int(f.port()) || !strings.Contains(r.Evidence, "share mount") {
		t.Errorf("got %+v, want session refused at connect", r)
	}
	if n := f.accepted.Load(); n != 2 {
		t.Errorf("%d sessions requested, want 2 (FILESRV<20>, then *SMBSERVER)", n)
	}
}
