package smb_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/internal/probetest"
	smbwire "github.com/ofmprobe/ofmprobe/probe/smb"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/steps/smb"
)

func TestSMBNegotiate(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name     string
		script   func(n int, c net.Conn)
		state    status.State
		evidence string
		smb1     *bool
		smb1Ev   string
		conns    int64
	}{
		{"SMB2, SMB1 refused with 0xFFFF (Samba)", smb2Server(func(c net.Conn) { readFrame(c); c.Write(smb1Answer(0xFFFF)) }), status.SMB2,
			"smb negotiate %d: speaks SMB2: SMB 3.0.2, signing required, capabilities DFS, leasing, large MTU, first answer in ", &no,
			"smb1 check: SMB1 disabled: the server answered that no offered dialect is common (dialect index 0xFFFF)", 2},
		// Windows with SMB1 off hangs up; so do an IPS and a connection limit: not proof, so not a pass.
		{"SMB2, SMB1 offer met with a reset (Windows, or an IPS)", smb2Server(func(c net.Conn) { readFrame(c); probetest.HangUp(c) }), status.SMB2,
			"smb negotiate %d: speaks SMB2: SMB 3.0.2", nil, "smb1 check: unknown, the server closed the connection when offered SMB1 alone (Windows does that with SMB1 off, and so do an IPS or a connection limit)", 2},
		{"SMB2, SMB1 accepted beside it", smb2Server(func(c net.Conn) { readFrame(c); c.Write(smb1Answer(0)) }), status.SMB2,
			"smb negotiate %d: speaks SMB2: SMB 3.0.2", &yes, "smb1 check: SMB1 accepted beside SMB2: NT LM 0.12, extended security, signing enabled", 2},
		{"SMB2, SMB1 check unanswered", smb2Server(func(c net.Conn) { readFrame(c) }), status.SMB2,
			"smb negotiate %d: speaks SMB2: SMB 3.0.2", nil, "smb1 check: unknown, no answer in 200ms when offered SMB1 alone", 2},
		{"SMB2, SMB1 check answered with garbage", smb2Server(func(c net.Conn) { readFrame(c); c.Write([]byte("HTTP/1.0 400\r\n\r\n")) }), status.SMB2,
			"smb negotiate %d: speaks SMB2", nil, "smb1 check: unknown, the answer to an SMB1-only negotiate is not valid: protocol error: not an SMB frame: 48 54 54 50", 2},
		{"SMB 2.0.2 chosen at once (Windows Vista, SMB1 on)", func(n int, c net.Conn) {
			if n == 1 {
				c.Write(negotiateAnswer(readFrame(c), smbwire.SMB202, smbwire.SigningEnabled))
				return
			}
			readFrame(c)
			c.Write(smb1Answer(0))
		}, status.SMB2, "smb negotiate %d: speaks SMB2: SMB 2.0.2, signing enabled, capabilities DFS, leasing, large MTU, first answer in ", &yes,
			"smb1 check: SMB1 accepted beside SMB2", 2},
		{"SMB2 answer to SMB1 alone", smb2Server(func(c net.Conn) { c.Write(negotiateAnswer(readFrame(c), smbwire.SMB202, 1)) }), status.SMB2,
			"smb negotiate %d: speaks SMB2", nil, "smb1 check: unknown, an SMB1-only negotiate was answered with SMB2", 2},
		{"SMB1 only (Windows 2003)", func(_ int, c net.Conn) { readFrame(c); c.Write(smb1Answer(0)) }, status.SMB1Only,
			"smb negotiate %d: speaks SMB1 only: NT LM 0.12, extended security, signing enabled, answered in ", &yes,
			"smb1 check: SMB1 is the only protocol the server offered", 1},
		{"no common dialect", func(_ int, c net.Conn) { readFrame(c); c.Write(smb1Answer(0xFFFF)) }, status.NoDialect,
			"smb negotiate %d: an SMB server that shares none of the offered dialects", nil, "", 1},
		{"silence", func(_ int, c net.Conn) { readFrame(c) }, status.Timeout,
			"smb negotiate %d: connected, but no answer to the SMB negotiate in 200ms", nil, "", 1},
		{"reset", func(_ int, c net.Conn) { readFrame(c); probetest.HangUp(c) }, status.ProtocolError,
			"smb negotiate %d: the server reset the connection without answering the SMB negotiate", nil, "", 1},
		{"closed without a word", func(_ int, c net.Conn) { readFrame(c); c.(*net.TCPConn).CloseWrite() }, status.ProtocolError,
			"smb negotiate %d: the server closed the connection without answering the SMB negotiate", nil, "", 1},
		{"garbage", func(_ int, c net.Conn) { readFrame(c); c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")) }, status.ProtocolError,
			"smb negotiate %d: not an SMB answer to the SMB negotiate: protocol error: not an SMB frame: 48 54 54 50", nil, "", 1},
		{"5-byte frame", func(_ int, c net.Conn) { readFrame(c); c.Write([]byte{0, 0, 0, 5, 0xfe, 'S', 'M', 'B', 0x40}) }, status.ProtocolError,
			"smb negotiate %d: not an SMB negotiate answer (smb2 negotiate: message of 5 bytes, need 64: smb: message too short): 00 00 00 05 fe 53 4d 42 40", nil, "", 1},
		{"16 MiB length claim", func(_ int, c net.Conn) { readFrame(c); c.Write([]byte{0, 0xff, 0xff, 0xff, 0xfe, 'S', 'M', 'B'}) }, status.ProtocolError,
			"smb negotiate %d: not an SMB answer to the SMB negotiate: protocol error: frame claims 16777215 bytes, above the 65536-byte limit: 00 ff ff ff", nil, "", 1},
		{"half a frame, then close", func(_ int, c net.Conn) {
			a := negotiateAnswer(readFrame(c), smbwire.SMB2Wildcard, 1)
			c.Write(a[:40])
			c.(*net.TCPConn).CloseWrite()
		}, status.ProtocolError, "smb negotiate %d: not an SMB answer to the SMB negotiate: protocol error: frame of 128 bytes ended after 36: 00 00 00 80 fe 53 4d 42", nil, "", 1},
		{"slow drip", func(_ int, c net.Conn) {
			for _, b := range negotiateAnswer(readFrame(c), smbwire.SMB2Wildcard, 1) {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(25 * time.Millisecond)
			}
		}, status.Timeout, "smb negotiate %d: connected, but the answer to the SMB negotiate stopped after ", nil, "", 1},
		{"SMB2 answer with another MessageId", func(_ int, c net.Conn) {
			answerWildcard(c)
			req := readFrame(c)
			req[4+24] = 9
			c.Write(negotiateAnswer(req, smbwire.SMB302, 1))
		}, status.ProtocolError, "smb negotiate %d: SMB2 negotiate answer with MessageId 9, sent 1: ", nil, "", 1},
		{"SMB2 answer with a dialect not offered", func(_ int, c net.Conn) {
			answerWildcard(c)
			c.Write(negotiateAnswer(readFrame(c), smbwire.Dialect(0x0222), 1))
		}, status.ProtocolError, "smb negotiate %d: SMB2 negotiate answer chose dialect 0x0222, which was not offered", nil, "", 1},
		{"SMB2 negotiate refused with a status", func(_ int, c net.Conn) {
			answerWildcard(c)
			c.Write(smb2Reply(readFrame(c), 0xC00000BB, []byte{9, 0, 0, 0, 0, 0, 0, 0, 0}))
		}, status.ProtocolError, "smb negotiate %d: not an SMB2 negotiate answer (smb2 negotiate: server returned status 0xc00000bb (STATUS_NOT_SUPPORTED))", nil, "", 1},
		{"SMB2 server silent after the wildcard", func(_ int, c net.Conn) { answerWildcard(c); readFrame(c) }, status.Timeout,
			"smb negotiate %d: connected, but no answer to the SMB2 negotiate that followed its SMB 2.??? answer in 200ms", nil, "", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := probetest.StartFake(t, tc.script)
			r := smb.Negotiate(context.Background(), testEnv(t, 200*time.Millisecond), loopback, f.Port())
			evidence := fmt.Sprintf(tc.evidence, f.Port())
			if r.State != tc.state || !strings.HasPrefix(r.Evidence, evidence) {
				t.Errorf("got %s: %q\nwant %s: %q...", r.State, r.Evidence, tc.state, evidence)
			}
			if (r.SMB1Accepted == nil) != (tc.smb1 == nil) || (r.SMB1Accepted != nil && *r.SMB1Accepted != *tc.smb1) || !strings.HasPrefix(r.SMB1Evidence, tc.smb1Ev) {
				t.Errorf("SMB1Accepted %v (%q), want %v (%q)", fmtBool(r.SMB1Accepted), r.SMB1Evidence, fmtBool(tc.smb1), tc.smb1Ev)
			}
			f.Stop()
			if got := f.Accepted.Load(); got != tc.conns {
				t.Errorf("%d connections, want %d", got, tc.conns)
			}
		})
	}
}

// TestSMBNegotiateFacts checks every field of an SMB2 and an SMB1-only result, and their JSON.
func TestSMBNegotiateFacts(t *testing.T) {
	env := testEnv(t, 200*time.Millisecond)
	f := probetest.StartFake(t, smb2Server(func(c net.Conn) { readFrame(c); c.Write(smb1Answer(0xFFFF)) }))
	r := smb.Negotiate(context.Background(), env, loopback, f.Port())
	r.Evidence, r.RTT = "", 0
	no := false
	want := smb.SMBResult{State: status.SMB2, Port: int(f.Port()), Dialect: "SMB 3.0.2", SigningEnabled: true, SigningRequired: true,
		ServerGUID: "504d464f-4f52-4542-2d54-455354535256", Capabilities: []string{"DFS", "leasing", "large MTU"}, SMB1Accepted: &no,
		SMB1Evidence:     "smb1 check: SMB1 disabled: the server answered that no offered dialect is common (dialect index 0xFFFF)",
		Identity:         &smbwire.NTLMIdentity{TargetName: "FAKE"},
		IdentityEvidence: "ntlm: the server says it is FAKE"}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got  %+v\nwant %+v", r, want)
	}
	js, _ := json.Marshal(r)
	wantJSON := fmt.Sprintf(`{"state":"smb2","evidence":"","port":%d,"dialect":"SMB 3.0.2","signing_enabled":true,"signing_required":true,`+
		`"server_guid":"504d464f-4f52-4542-2d54-455354535256","capabilities":["DFS","leasing","large MTU"],"smb1_accepted":false,`+
		`"smb1_evidence":"smb1 check: SMB1 disabled: the server answered that no offered dialect is common (dialect index 0xFFFF)",`+
		`"identity":{"target_name":"FAKE"},"identity_evidence":"ntlm: the server says it is FAKE"}`, f.Port())
	if string(js) != wantJSON {
		t.Errorf("JSON\n%s\nwant\n%s", js, wantJSON)
	}

	f1 := probetest.StartFake(t, func(_ int, c net.Conn) { readFrame(c); c.Write(smb1Answer(0)) })
	r = smb.Negotiate(context.Background(), env, loopback, f1.Port())
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
	f := probetest.StartFake(t, func(n int, c net.Conn) {
		if n == 1 {
			c.Write(negotiateAnswer(keep(readFrame(c)), smbwire.SMB2Wildcard, 1))
			c.Write(negotiateAnswer(keep(readFrame(c)), smbwire.SMB311, 1))
			return
		}
		keep(readFrame(c))
		c.Write(smb1Answer(0xFFFF))
	})
	if r := smb.Negotiate(context.Background(), testEnv(t, 200*time.Millisecond), loopback, f.Port()); r.State != status.SMB2 || r.Dialect != "SMB 3.1.1" {
		t.Fatalf("got %+v", r)
	}
	f.Stop()
	if len(got) != 3 {
		t.Fatalf("%d requests", len(got))
	}
	if want := smbwire.AppendSMB1Negotiate(nil, smbwire.MultiProtocolDialects); !bytes.Equal(got[0], want) {
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
	if want := smbwire.AppendSMB1Negotiate(nil, smbwire.SMB1OnlyDialects); !bytes.Equal(got[2], want) {
		t.Errorf("SMB1 check % x, want % x", got[2], want)
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
		state    status.State
		called   string
		evidence string
		conns    int64
	}{
		{"session to the real name", "OFM90", nbssThen(func(n string) bool { return n == "OFM90<20>" }, keepalives), status.SMB2, "OFM90<20>",
			"smb negotiate %d (OFM90<20>): speaks SMB2: SMB 3.0.2", 2},
		{"real name refused, *SMBSERVER accepted", "WRONG", nbssThen(func(n string) bool { return n == "*SMBSERVER<20>" }, keepalives), status.SMB2,
			"*SMBSERVER<20>", "smb negotiate %d (*SMBSERVER<20>): speaks SMB2", 3},
		{"SMB1 only over NetBIOS (NT 4)", "", nbssThen(any, func(_ int, c net.Conn) { readFrame(c); c.Write(smb1Answer(0)) }), status.SMB1Only,
			"*SMBSERVER<20>", "smb negotiate %d (*SMBSERVER<20>): speaks SMB1 only: NT LM 0.12", 1},
		{"every name refused", "OFM90", nbssThen(func(string) bool { return false }, nil), status.SessionRefused, "",
			"smb negotiate %d: nbss 139 (*SMBSERVER<20>): negative session response: ", 2},
		{"no answer to the session request", "", func(_ int, c net.Conn) { probetest.ReadSessionRequest(c) }, status.Timeout, "",
			"smb negotiate %d: nbss 139 (*SMBSERVER<20>): connected, but no answer to the session request in 200ms", 1},
		{"silent after the session", "", nbssThen(any, func(_ int, c net.Conn) { readFrame(c) }), status.Timeout, "*SMBSERVER<20>",
			"smb negotiate %d (*SMBSERVER<20>): connected, but no answer to the SMB negotiate in 200ms", 1},
		{"only keepalives", "", nbssThen(any, func(_ int, c net.Conn) {
			readFrame(c)
			c.Write(bytes.Repeat([]byte{0x85, 0, 0, 0}, 10))
		}), status.ProtocolError, "*SMBSERVER<20>", "smb negotiate %d (*SMBSERVER<20>): not an SMB answer to the SMB negotiate: protocol error: only NetBIOS keepalives, no answer", 1},
		{"16 MiB claim after the session", "", nbssThen(any, func(_ int, c net.Conn) { readFrame(c); c.Write([]byte{0, 0xff, 0xff, 0xff}) }),
			status.ProtocolError, "*SMBSERVER<20>", "smb negotiate %d (*SMBSERVER<20>): not an SMB answer to the SMB negotiate: protocol error: frame claims 16777215 bytes", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := probetest.StartFake(t, tc.script)
			r := smb.Negotiate139(context.Background(), testEnv(t, 200*time.Millisecond), loopback, f.Port(), tc.server)
			evidence := fmt.Sprintf(tc.evidence, f.Port())
			if r.State != tc.state || r.Called != tc.called || r.Port != int(f.Port()) || !strings.HasPrefix(r.Evidence, evidence) {
				t.Errorf("got %s to %q: %q\nwant %s to %q: %q...", r.State, r.Called, r.Evidence, tc.state, tc.called, evidence)
			}
			f.Stop()
			if got := f.Accepted.Load(); got != tc.conns {
				t.Errorf("%d connections, want %d", got, tc.conns)
			}
		})
	}
}

func TestSMBNegotiateConnectFailures(t *testing.T) {
	env := testEnv(t, 200*time.Millisecond)
	ctx := context.Background()
	if r := smb.Negotiate(ctx, env, loopback, uint16(probetest.ClosedPort(t))); r.State != status.Closed || !strings.Contains(r.Evidence, "connect failed: connection refused") {
		t.Errorf("closed port: %+v", r)
	}
	if r := smb.Negotiate(ctx, env, loopback, uint16(probetest.SilentPort(t))); r.State != status.Filtered {
		t.Errorf("silent port: %+v", r)
	}
	scripted := probetest.NewEnv(t, engine.Options{Timeout: 200 * time.Millisecond, Dialer: &probetest.ScriptedDialer{
		Script: func(int, string) error { return os.NewSyscallError("connect", syscall.EHOSTUNREACH) }}})
	if r := smb.Negotiate(ctx, scripted, loopback, 445); r.State != status.Unreachable || r.Evidence != "smb negotiate 445: connect failed: no route to host" {
		t.Errorf("unreachable: %+v", r)
	}
}

func FuzzReadSMBFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 4, 0xfe, 'S', 'M', 'B'}, false)
	f.Add([]byte{0x85, 0, 0, 0, 0, 0, 0, 1, 0xff}, true)
	f.Add([]byte{0, 0xff, 0xff, 0xff}, false)
	f.Add([]byte{0, 0, 0x10, 0x00, 1, 2}, false)
	f.Add(smb1Answer(0), true)
	f.Fuzz(func(t *testing.T, in []byte, nbss bool) {
		b, err := smb.ReadSMBFrame(bytes.NewReader(in), 4096, nbss)
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
