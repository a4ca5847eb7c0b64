package smb_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/internal/probetest"
	smbwire "github.com/ofmprobe/ofmprobe/probe/smb"
)

// The scripted SMB server behaviours of the step tests. Each reads the request it answers.

var loopback = probetest.Loopback

// testEnv is the environment of a step run alone, with the given scan timeout.
func testEnv(t testing.TB, timeout time.Duration) *engine.Env {
	return probetest.NewEnv(t, engine.Options{Timeout: timeout})
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
func negotiateBody(dialect smbwire.Dialect, mode smbwire.SecurityMode) []byte {
	le := binary.LittleEndian
	b := make([]byte, 64)
	le.PutUint16(b[0:], 65)
	le.PutUint16(b[2:], uint16(mode))
	le.PutUint16(b[4:], uint16(dialect))
	copy(b[8:24], "OFMPROBE-TESTSRV")
	le.PutUint32(b[24:], uint32(smbwire.CapDFS|smbwire.CapLeasing|smbwire.CapLargeMTU))
	for _, at := range []int{28, 32, 36} {
		le.PutUint32(b[at:], 8<<20)
	}
	le.PutUint64(b[40:], 133590384000000000)
	le.PutUint16(b[56:], 128)
	return b
}

// negotiateAnswer answers the request req with an SMB2 NEGOTIATE response.
func negotiateAnswer(req []byte, dialect smbwire.Dialect, mode smbwire.SecurityMode) []byte {
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

func answerWildcard(c net.Conn) {
	c.Write(negotiateAnswer(readFrame(c), smbwire.SMB2Wildcard, smbwire.SigningEnabled))
}

func answerSMB302(c net.Conn) {
	c.Write(negotiateAnswer(readFrame(c), smbwire.SMB302, smbwire.SigningEnabled|smbwire.SigningRequired))
}

// smb2Server answers the first connection as an SMB2 server (wildcard, then 3.0.2 with signing required, then an
// NTLM challenge from "FAKE" to the first session setup) and the SMB1-only check with second.
func smb2Server(second func(c net.Conn)) func(int, net.Conn) {
	return func(n int, c net.Conn) {
		if n == 1 {
			answerWildcard(c)
			answerSMB302(c)
			if req := readFrame(c); req != nil {
				c.Write(smb2Reply(req, 0xC0000016, sessionSetupBody(spnegoNTLMChallenge)))
			}
			return
		}
		second(c)
	}
}

// nbssThen answers a session request (positive when accept says so for the called name) and then runs smb.
func nbssThen(accept func(called string) bool, smbScript func(n int, c net.Conn)) func(int, net.Conn) {
	var sessions atomic.Int64
	return func(_ int, c net.Conn) {
		called := probetest.ReadSessionRequest(c)
		if !accept(called) {
			c.Write([]byte{0x83, 0, 0, 1, 0x82})
			return
		}
		c.Write([]byte{0x82, 0, 0, 0})
		smbScript(int(sessions.Add(1)), c)
	}
}

func fmtBool(b *bool) string {
	if b == nil {
		return "nil"
	}
	return fmt.Sprint(*b)
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
	c.Write(negotiateAnswer(readFrame(c), smbwire.SMB210, smbwire.SigningEnabled))
	req := readFrame(c)
	if req == nil {
		return
	}
	c.Write(smb2Reply(req, 0xC0000016, sessionSetupBody(spnegoNTLMChallenge)))
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

// sessionSetupBody is a SESSION_SETUP response body (MS-SMB2 §2.2.6) carrying the hex security token.
func sessionSetupBody(tokenHex string) []byte {
	token := unhex(tokenHex)
	body := binary.LittleEndian.AppendUint16([]byte{9, 0, 0, 0}, 72)
	body = binary.LittleEndian.AppendUint16(body, uint16(len(token)))
	return append(body, token...)
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

// unhex decodes a hex vector of the tests.
func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic("bad test vector: " + err.Error())
	}
	return b
}
