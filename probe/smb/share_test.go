package smb

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf16"

	smb2 "github.com/hirochachacha/go-smb2"

	vocab "github.com/ofmprobe/ofmprobe/probe/status"
)

// SMB2 commands the fake server answers (MS-SMB2 §2.2.1.2).
const (
	cmdNegotiate    = 0x0000
	cmdSessionSetup = 0x0001
	cmdTreeConnect  = 0x0003
	cmdCreate       = 0x0005
	cmdClose        = 0x0006
	cmdRead         = 0x0008
)

const (
	statusSuccess    = 0x00000000
	statusEndOfFile  = 0xC0000011
	fakeSessionID    = 0x0000_4000_0000_0001
	fakeTreeID       = 7
	testPassword     = "Zq9!unlikely-Secret#pw"
	fakeFiletime2024 = 133590384000000000 // 2024-05-01T12:00:00Z
)

// fakeShareServer is a scripted SMB2 server that speaks just enough for go-smb2 to log on, mount, create, read and
// close: SMB 2.1 negotiate, NTLM session setup (any password is accepted unless a status is scripted), tree
// connect by share name, create by file name, read and close.
type fakeShareServer struct {
	// signingRequired sets SecurityMode "signing required" in the negotiate answer.
	signingRequired bool
	// leg1Status, when set, answers the first session setup with this status instead of the NTLM challenge.
	leg1Status uint32
	// leg2Status answers the second session setup; sessionFlags go with a success.
	leg2Status   uint32
	sessionFlags uint16
	// shares maps a share name to a tree connect status; absent names get STATUS_BAD_NETWORK_NAME.
	shares map[string]uint32
	// files maps a file name to its content; fileStatus overrides the create answer for a name.
	files      map[string][]byte
	fileStatus map[string]uint32
	// readStatus, when set, answers every read with it.
	readStatus uint32
	// challenge replaces the SPNEGO token of the first session setup answer.
	challenge []byte
	// smb311 answers the negotiate with SMB 3.1.1 and an encryption context choosing AES-128-GCM.
	smb311 bool
	// shareFlags go with every successful tree connect answer but IPC$'s.
	shareFlags uint32
	// transform, when set, is asked first for the answer to each request; what it returns, when not nil, is sent
	// instead of the answer, such as an encrypted frame.
	transform func(req []byte) []byte

	mu sync.Mutex
	// received holds every byte the clients sent, to check that no password crosses the wire in the clear.
	received bytes.Buffer
	accepted int
	closed   int
}

// serve starts the server on 127.0.0.1 and returns its address.
func (s *fakeShareServer) serve(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.accepted++
			s.mu.Unlock()
			wg.Go(func() {
				defer func() {
					c.Close()
					s.mu.Lock()
					s.closed++
					s.mu.Unlock()
				}()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				s.handle(t, c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// handle answers the requests of one connection until the client closes it.
func (s *fakeShareServer) handle(t *testing.T, c net.Conn) {
	legs := 0
	for {
		prefix := make([]byte, 4)
		if _, err := io.ReadFull(c, prefix); err != nil {
			return
		}
		req := make([]byte, binary.BigEndian.Uint32(prefix)&0xFFFFFF)
		if _, err := io.ReadFull(c, req); err != nil {
			return
		}
		s.mu.Lock()
		s.received.Write(prefix)
		s.received.Write(req)
		s.mu.Unlock()
		if len(req) < HeaderLen {
			return
		}
		var reply []byte
		if s.transform != nil {
			reply = s.transform(req)
		}
		switch cmd := binary.LittleEndian.Uint16(req[12:14]); {
		case reply != nil:
			if cmd == cmdSessionSetup {
				legs++
			}
		case cmd == cmdNegotiate:
			reply = s.negotiate(t, req)
		case cmd == cmdSessionSetup:
			legs++
			reply = s.sessionSetup(req, legs)
		case cmd == cmdTreeConnect:
			reply = s.treeConnect(req)
		case cmd == cmdCreate:
			reply = s.create(req)
		case cmd == cmdRead:
			reply = s.read(req)
		case cmd == cmdClose:
			reply = answer(req, statusSuccess, 0, closeBody())
		default:
			reply = answer(req, 0xC0000002, 0, errorBody()) // STATUS_NOT_IMPLEMENTED
		}
		if _, err := c.Write(reply); err != nil {
			return
		}
	}
}

// answer frames a response to req with status and body; the tree id is set on tree connect answers.
func answer(req []byte, status uint32, treeID uint32, body []byte) []byte {
	le := binary.LittleEndian
	h := make([]byte, HeaderLen)
	copy(h, magicSMB2[:])
	le.PutUint16(h[4:], HeaderLen)
	le.PutUint16(h[6:], 1) // CreditCharge
	le.PutUint32(h[8:], status)
	copy(h[12:14], req[12:14]) // Command
	le.PutUint16(h[14:], 8)    // credits granted
	le.PutUint32(h[16:], 1)    // SMB2_FLAGS_SERVER_TO_REDIR
	copy(h[24:32], req[24:32]) // MessageId
	le.PutUint32(h[36:], le.Uint32(req[36:40]))
	if treeID != 0 {
		le.PutUint32(h[36:], treeID)
	}
	le.PutUint64(h[40:], fakeSessionID)
	return frameOf(append(h, body...))
}

func errorBody() []byte { return []byte{9, 0, 0, 0, 0, 0, 0, 0, 0} }

func closeBody() []byte {
	b := make([]byte, 60)
	b[0] = 60
	return b
}

// negotiate answers with the 3.0.2 vector turned into SMB 2.1, so that no 3.x key derivation or encryption is
// involved; or, for smb311, with the 3.1.1 vector, whose contexts choose SHA-512 and AES-128-GCM.
func (s *fakeShareServer) negotiate(t testing.TB, req []byte) []byte {
	b := unhex(t, negotiateResponseVector)
	binary.LittleEndian.PutUint16(b[4+64+4:], uint16(SMB210))
	if s.smb311 {
		b = unhex(t, negotiateResponse311Vector)
	}
	copy(b[4+24:4+32], req[24:32])
	mode := SigningEnabled
	if s.signingRequired {
		mode |= SigningRequired
	}
	binary.LittleEndian.PutUint16(b[4+64+2:], uint16(mode))
	return b
}

func (s *fakeShareServer) sessionSetup(req []byte, leg int) []byte {
	le := binary.LittleEndian
	body := func(flags uint16, token []byte) []byte {
		b := make([]byte, 8, 8+len(token)+1)
		b[0] = 9
		le.PutUint16(b[2:], flags)
		le.PutUint16(b[4:], HeaderLen+8)
		le.PutUint16(b[6:], uint16(len(token)))
		b = append(b, token...)
		if len(token) == 0 {
			b = append(b, 0)
		}
		return b
	}
	if leg == 1 {
		if s.leg1Status != 0 {
			return answer(req, s.leg1Status, 0, errorBody())
		}
		token := s.challenge
		if token == nil {
			token = spnegoChallenge(ntlmChallenge(0, 0))
		}
		return answer(req, statusMoreProcessingRequired, 0, body(0, token))
	}
	if s.leg2Status != 0 {
		return answer(req, s.leg2Status, 0, errorBody())
	}
	return answer(req, statusSuccess, 0, body(s.sessionFlags, nil))
}

func (s *fakeShareServer) treeConnect(req []byte) []byte {
	le := binary.LittleEndian
	off, n := le.Uint16(req[HeaderLen+4:]), le.Uint16(req[HeaderLen+6:])
	path := decodeUTF16(req[off : off+n])
	name := path[strings.LastIndexByte(path, '\\')+1:]
	status, ok := s.shares[name]
	if strings.EqualFold(name, "IPC$") && !ok {
		status, ok = statusSuccess, true
	}
	if !ok {
		status = statusBadNetworkName
	}
	if status != statusSuccess {
		return answer(req, status, 0, errorBody())
	}
	b := make([]byte, 16)
	b[0], b[2] = 16, 1 // StructureSize, disk share
	if !strings.EqualFold(name, "IPC$") {
		le.PutUint32(b[4:], s.shareFlags)
	}
	le.PutUint32(b[12:], 0x001F01FF)
	return answer(req, statusSuccess, fakeTreeID, b)
}

// fileNames lists the files in the order create answers give them ids.
var fileNames = []string{LogFile, AddressFile}

func (s *fakeShareServer) create(req []byte) []byte {
	le := binary.LittleEndian
	off, n := le.Uint16(req[HeaderLen+44:]), le.Uint16(req[HeaderLen+46:])
	name := decodeUTF16(req[off : off+n])
	if st, ok := s.fileStatus[name]; ok {
		return answer(req, st, 0, errorBody())
	}
	data, ok := s.files[name]
	if !ok {
		return answer(req, statusObjectNameNotFound, 0, errorBody())
	}
	b := make([]byte, 89)
	b[0] = 89
	le.PutUint32(b[4:], 1) // FILE_OPENED
	for _, at := range []int{8, 16, 24, 32} {
		le.PutUint64(b[at:], fakeFiletime2024)
	}
	le.PutUint64(b[40:], uint64(len(data)))
	le.PutUint64(b[48:], uint64(len(data)))
	le.PutUint32(b[56:], 0x80) // FILE_ATTRIBUTE_NORMAL
	for i, f := range fileNames {
		if f == name {
			b[64] = byte(i + 1) // FileId: the name's index
		}
	}
	return answer(req, statusSuccess, 0, b)
}

func (s *fakeShareServer) read(req []byte) []byte {
	le := binary.LittleEndian
	if s.readStatus != 0 {
		return answer(req, s.readStatus, 0, errorBody())
	}
	length, off, id := le.Uint32(req[HeaderLen+4:]), le.Uint64(req[HeaderLen+8:]), int(req[HeaderLen+16])
	if id < 1 || id > len(fileNames) {
		return answer(req, 0xC0000008, 0, errorBody()) // STATUS_INVALID_HANDLE
	}
	data := s.files[fileNames[id-1]]
	if off >= uint64(len(data)) {
		return answer(req, statusEndOfFile, 0, errorBody())
	}
	data = data[off:min(uint64(len(data)), off+uint64(length))]
	b := make([]byte, 16, 16+len(data))
	b[0], b[2] = 17, HeaderLen+16
	le.PutUint32(b[4:], uint32(len(data)))
	return answer(req, statusSuccess, 0, append(b, data...))
}

func decodeUTF16(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// ntlmChallenge builds an NTLM CHALLENGE_MESSAGE (MS-NLMP §2.2.1.2) with target name "FAKE" and an empty target
// info list. A non-zero nameOffset overrides where the target name is said to be.
func ntlmChallenge(nameOffset uint32, nameLen uint16) []byte {
	le := binary.LittleEndian
	name := []byte{'F', 0, 'A', 0, 'K', 0, 'E', 0}
	b := make([]byte, 56, 56+len(name)+4)
	copy(b, "NTLMSSP\x00")
	le.PutUint32(b[8:], 2)
	le.PutUint16(b[12:], uint16(len(name)))
	le.PutUint16(b[14:], uint16(len(name)))
	le.PutUint32(b[16:], 56)
	if nameOffset != 0 {
		le.PutUint16(b[12:], nameLen)
		le.PutUint16(b[14:], nameLen)
		le.PutUint32(b[16:], nameOffset)
	}
	// UNICODE, REQUEST_TARGET, SIGN, NTLM, ALWAYS_SIGN, EXTENDED_SESSIONSECURITY, TARGET_INFO, VERSION, 128,
	// KEY_EXCH, 56.
	le.PutUint32(b[20:], 0xE2888215)
	copy(b[24:32], "chalenge")
	le.PutUint16(b[40:], 4)
	le.PutUint16(b[42:], 4)
	le.PutUint32(b[44:], 56+uint32(len(name)))
	b = append(b, name...)
	return append(b, 0, 0, 0, 0) // MsvAvEOL
}

// der encodes one DER element with a short or long length.
func der(tag byte, content ...[]byte) []byte {
	body := bytes.Join(content, nil)
	n := len(body)
	switch {
	case n < 0x80:
		return append([]byte{tag, byte(n)}, body...)
	case n < 0x100:
		return append([]byte{tag, 0x81, byte(n)}, body...)
	}
	return append([]byte{tag, 0x82, byte(n >> 8), byte(n)}, body...)
}

// ntlmOID and krb5OID are the DER bodies of the NTLMSSP and Kerberos mechanism OIDs.
var (
	ntlmOID = []byte{0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a}
	krb5OID = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02}
)

// spnegoChallenge wraps an NTLM challenge in a SPNEGO NegTokenResp (RFC 4178 §4.2.2): accept-incomplete, NTLMSSP.
func spnegoChallenge(ntlm []byte) []byte { return spnegoResp(ntlmOID, ntlm) }

func spnegoResp(mech, token []byte) []byte {
	return der(0xa1, der(0x30,
		der(0xa0, der(0x0a, []byte{1})),
		der(0xa1, der(0x06, mech)),
		der(0xa2, der(0x04, token)),
	))
}

// runCheck runs CheckShare against addr as the share step would: the caller dials, sets the deadline and closes.
func runCheck(t *testing.T, addr string, req ShareRequest, budget time.Duration) ShareReport {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(budget))
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	if req.Host == "" {
		req.Host = "127.0.0.1"
	}
	return CheckShare(ctx, c, req)
}

// ofmFiles is a share as OFM keeps it: a log of five lines and an address file with binary bytes.
func ofmFiles() map[string][]byte {
	return map[string][]byte{
		LogFile: []byte("2024-05-01 11:59:01 service start\r\nline 2\r\nline 3\r\nline 4\r\n2024-05-01 12:00:00 ready\r\n"),
		AddressFile: append([]byte{0x4f, 0x46, 0x4d, 0x00, 0x01, 0xff, 0x7f, 0x09},
			"OFMADR host=OFM90 port=10006 proto=tcp\r\n"...),
	}
}

func TestCheckShareMounted(t *testing.T) {
	srv := &fakeShareServer{shares: map[string]uint32{"OFMLOG$": 0}, files: ofmFiles(), sessionFlags: sessionFlagGuest}
	rep := runCheck(t, srv.serve(t), ShareRequest{ReadLogLines: 2, ConnectIPC: true}, 5*time.Second)
	modified := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	want := ShareReport{
		State: StateMounted, Step: StepStat, Login: "guest", Guest: true, Dialect: "SMB 2.1",
		Evidence: `\\127.0.0.1\OFMLOG$ mounted with a guest login; OFMNT.LOG present, 86 bytes, modified 2024-05-01T12:00:00Z; ` +
			`OFMNT.ADR present, 48 bytes, modified 2024-05-01T12:00:00Z`,
		Files: []FileReport{
			{Name: LogFile, State: StatePresent, Size: 86, Modified: modified, Tail: []string{"line 4", "2024-05-01 12:00:00 ready"},
				Evidence: "OFMNT.LOG present, 86 bytes, modified 2024-05-01T12:00:00Z"},
			{Name: AddressFile, State: StatePresent, Size: 48, Modified: modified, Printable: "OFM.....OFMADR host=OFM90 port=10006 proto=tcp..",
				Evidence: "OFMNT.ADR present, 48 bytes, modified 2024-05-01T12:00:00Z"},
		},
		IPC: &IPCReport{State: StateConnected, Evidence: `\\127.0.0.1\IPC$: connected (named pipes reachable)`},
	}
	if !reflect.DeepEqual(rep, want) {
		t.Errorf("report\n%+v %+v\nwant\n%+v %+v", rep, rep.IPC, want, want.IPC)
	}
	if !rep.LoggedOn() {
		t.Error("LoggedOn = false after a mount")
	}
}

// TestCheckShareStates drives every answer a server can give at each step through go-smb2 and the mapping.
func TestCheckShareStates(t *testing.T) {
	user := ShareRequest{User: "ofmlab", Domain: "OFMLAB", Password: testPassword, ConnectIPC: true}
	guest := ShareRequest{ConnectIPC: true}
	mounted := map[string]uint32{"OFMLOG$": 0}
	tests := []struct {
		name     string
		srv      *fakeShareServer
		req      ShareRequest
		state    vocab.State
		step     string
		status   uint32
		evidence string
		ipc      vocab.State
		files    string // the files' states, joined
	}{
		{"share missing", &fakeShareServer{sessionFlags: sessionFlagGuest}, guest, StateMissing, StepTreeConnect, statusBadNetworkName,
			`\\127.0.0.1\OFMLOG$ with a guest login: the server has no share of that name (STATUS_BAD_NETWORK_NAME, 0xc00000cc)`, StateConnected, ""},
		{"guest denied the share", &fakeShareServer{sessionFlags: sessionFlagGuest, shares: map[string]uint32{"OFMLOG$": statusAccessDenied}}, guest,
			StateAccessDenied, StepTreeConnect, statusAccessDenied,
			`\\127.0.0.1\OFMLOG$ with a guest login: access denied to guest (STATUS_ACCESS_DENIED, 0xc0000022): credentials are needed`, StateConnected, ""},
		{"user denied the share", &fakeShareServer{shares: map[string]uint32{"OFMLOG$": statusAccessDenied}}, user,
			StateAccessDenied, StepTreeConnect, statusAccessDenied, `\\127.0.0.1\OFMLOG$ as OFMLAB\ofmlab: access denied (STATUS_ACCESS_DENIED, 0xc0000022)`, StateConnected, ""},
		{"wrong password", &fakeShareServer{leg2Status: statusLogonFailure}, user, StateLogonFailure, StepSessionSetup, statusLogonFailure,
			"session setup: wrong user name or password (STATUS_LOGON_FAILURE, 0xc000006d)", StateLogonFailure, ""},
		{"guest refused", &fakeShareServer{leg2Status: statusLogonFailure}, guest, StateGuestRefused, StepSessionSetup, statusLogonFailure,
			"session setup: the server refused the guest login (STATUS_LOGON_FAILURE, 0xc000006d)", StateGuestRefused, ""},
		{"guest account disabled", &fakeShareServer{leg2Status: statusAccountDisabled}, guest, StateGuestRefused, StepSessionSetup, statusAccountDisabled,
			"session setup: the server refused the guest login (STATUS_ACCOUNT_DISABLED, 0xc0000072)", StateGuestRefused, ""},
		{"guest access denied at session setup", &fakeShareServer{leg2Status: statusAccessDenied}, guest, StateGuestRefused, StepSessionSetup, statusAccessDenied,
			"session setup: the server refused the guest login (STATUS_ACCESS_DENIED, 0xc0000022)", StateGuestRefused, ""},
		{"guest denied where signing is required", &fakeShareServer{signingRequired: true, leg2Status: statusAccessDenied}, guest,
			StateSigningNeeded, StepSessionSetup, statusAccessDenied,
			"session setup: access denied (STATUS_ACCESS_DENIED, 0xc0000022); the server requires signing, which a guest session cannot do", StateSigningNeeded, ""},
		{"account locked out", &fakeShareServer{leg2Status: statusAccountLockedOut}, user, StateLogonFailure, StepSessionSetup, statusAccountLockedOut,
			"session setup: the account is locked out (STATUS_ACCOUNT_LOCKED_OUT, 0xc0000234)", StateLogonFailure, ""},
		{"logon failure at the first leg", &fakeShareServer{leg1Status: statusLogonFailure}, user, StateLogonFailure, StepSessionSetup, statusLogonFailure,
			"session setup: wrong user name or password (STATUS_LOGON_FAILURE, 0xc000006d)", StateLogonFailure, ""},
		{"unknown status at session setup", &fakeShareServer{leg2Status: 0xC0000205}, user, StateRefused, StepSessionSetup, 0xC0000205,
			"session setup: the server refused (STATUS_INSUFF_SERVER_RESOURCES, 0xc0000205)", StateRefused, ""},
		{"unknown user mapped to guest", &fakeShareServer{sessionFlags: sessionFlagGuest, shares: mounted, files: ofmFiles()}, user, StateMounted, StepStat, 0,
			`\\127.0.0.1\OFMLOG$ mounted as guest (the server mapped OFMLAB\ofmlab to its guest account); OFMNT.LOG present`, StateConnected, "present present"},
		{"unsigned guest where signing is required", &fakeShareServer{signingRequired: true, sessionFlags: sessionFlagGuest, shares: mounted, files: ofmFiles()}, guest,
			StateMounted, StepStat, 0,
			`\\127.0.0.1\OFMLOG$ mounted with a guest login (the server requires signing, yet let this guest session go unsigned; Windows clients that require signing refuse guest sessions); OFMNT.LOG`,
			StateConnected, "present present"},
		{"files missing", &fakeShareServer{shares: mounted}, user, StateMounted, StepStat, 0,
			`\\127.0.0.1\OFMLOG$ mounted as OFMLAB\ofmlab; OFMNT.LOG: not found (STATUS_OBJECT_NAME_NOT_FOUND, 0xc0000034); OFMNT.ADR: not found`,
			StateConnected, "missing missing"},
		{"file access denied", &fakeShareServer{shares: mounted, files: ofmFiles(), fileStatus: map[string]uint32{AddressFile: statusAccessDenied}}, user,
			StateMounted, StepStat, 0, `OFMNT.ADR: access denied (STATUS_ACCESS_DENIED, 0xc0000022)`, StateConnected, "present access denied"},
		{"file unreadable", &fakeShareServer{shares: mounted, files: ofmFiles(), readStatus: statusAccessDenied}, user,
			StateMounted, StepStat, 0, `OFMNT.ADR present, 48 bytes, modified 2024-05-01T12:00:00Z; could not read it: access denied (STATUS_ACCESS_DENIED, 0xc0000022)`,
			StateConnected, "present present"},
		{"IPC$ denied", &fakeShareServer{shares: map[string]uint32{"OFMLOG$": 0, "IPC$": statusAccessDenied}, files: ofmFiles()}, user,
			StateMounted, StepStat, 0, "mounted as OFMLAB\\ofmlab", StateAccessDenied, "present present"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := runCheck(t, tt.srv.serve(t), tt.req, 5*time.Second)
			if rep.State != tt.state || rep.Step != tt.step || rep.NTStatus != tt.status || !strings.Contains(rep.Evidence, tt.evidence) {
				t.Errorf("got %s at %s, status 0x%08x:\n%s\nwant %s at %s, 0x%08x, evidence containing\n%s",
					rep.State, rep.Step, rep.NTStatus, rep.Evidence, tt.state, tt.step, tt.status, tt.evidence)
			}
			if rep.IPC == nil || rep.IPC.State != tt.ipc {
				t.Errorf("IPC = %+v, want %s", rep.IPC, tt.ipc)
			}
			var states []string
			for _, f := range rep.Files {
				states = append(states, string(f.State))
			}
			if got := strings.Join(states, " "); got != tt.files {
				t.Errorf("file states %q, want %q", got, tt.files)
			}
			if want := tt.req.Login(); rep.Login != want {
				t.Errorf("Login = %q, want %q", rep.Login, want)
			}
		})
	}
}

// hostileReplies are servers that answer what no SMB2 server may, each with the state and the start of the evidence
// CheckShare must give. Several of them crash go-smb2 v1.1.0 without the FrameConn and the guard.
func hostileReplies(t *testing.T) []struct {
	name     string
	replies  []fakeReply
	state    vocab.State
	evidence string
} {
	negotiate21 := func(req []byte) []byte { return (&fakeShareServer{}).negotiate(t, req) }
	// A transform header whose nonce, read as an SMB2 header, has NextCommand 4096 and MessageId 0.
	transform := func([]byte) []byte {
		f := transformFrame(HeaderLen+16, HeaderLen+16)
		binary.LittleEndian.PutUint32(f[4+20:], 4096)
		return f
	}
	wildcard := func(req []byte) []byte {
		b := unhex(t, wildcardResponseVector)
		copy(b[4+24:4+32], req[24:32])
		return b
	}
	leg1 := func(token []byte) fakeReply {
		return func(req []byte) []byte { return (&fakeShareServer{challenge: token}).sessionSetup(req, 1) }
	}
	return []struct {
		name     string
		replies  []fakeReply
		state    vocab.State
		evidence string
	}{
		{"5-byte frame", []fakeReply{replyBytes(unhex(t, "00000005 fe534d4240"))}, StateProtocolError,
			"negotiate: the server sent a malformed SMB frame (smb: frame of 5 bytes, below the 64-byte header"},
		{"16 MiB length claim", []fakeReply{replyBytes(unhex(t, "00ffffff fe534d42"))}, StateProtocolError,
			"negotiate: the server sent a malformed SMB frame (smb: frame of 16777215 bytes, above the 262144-byte limit"},
		{"HTTP answer", []fakeReply{replyBytes([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))}, StateProtocolError,
			"negotiate: the server sent a malformed SMB frame (smb: frame prefix type 0x48"},
		{"SMB1 answer", []fakeReply{replyBytes(unhex(t, smb1ExtendedVector))}, StateProtocolError,
			"negotiate: the server sent a malformed SMB frame (smb: frame starts with an SMB1 header"},
		{"next command past the frame", []fakeReply{replyNegotiate(t, 0x1000)}, StateProtocolError,
			"negotiate: the server sent a malformed SMB frame (smb: compound message 0 at offset 0: next command 4096"},
		{"encrypted frame before any session", []fakeReply{transform}, StateProtocolError,
			"negotiate: the server sent a malformed SMB frame (smb: encrypted frame before any session was set up: smb: frame refused by the client guard)"},
		{"SMB 2.??? without end", []fakeReply{wildcard, wildcard, wildcard, wildcard}, StateProtocolError,
			"negotiate: the server sent a malformed SMB frame (smb: negotiate answer 3: smb: frame refused by the client guard)"},
		{"half a frame, then hang up", []fakeReply{replyBytes(unhex(t, negotiateResponseVector)[:40]), nil}, StateProtocolError,
			"negotiate: the server closed the connection inside a frame"},
		{"hang up after the request", []fakeReply{replyBytes(nil), nil}, StateProtocolError,
			"negotiate: the server closed the connection (an SMB1-only server does that to an SMB2 negotiate)"},
		{"negotiate answer with a broken body", []fakeReply{replyBytes(frameOf(smb2Message(0, 8)))}, StateProtocolError,
			"negotiate: the server's answer made no sense to the SMB client (broken negotiate response format)"},
		{"challenge whose target name offset wraps around", []fakeReply{negotiate21, leg1(spnegoChallenge(ntlmChallenge(0xFFFFFFF0, 0x20)))},
			StateProtocolError, "session setup: the SMB client failed on the server's answer (runtime error: slice bounds out of range"},
		{"Kerberos instead of NTLM", []fakeReply{negotiate21, leg1(spnegoResp(krb5OID, ntlmChallenge(0, 0)))},
			StateProtocolError, "session setup: the SMB client failed on the server's answer (runtime error: invalid memory address or nil pointer dereference)"},
		{"not SPNEGO", []fakeReply{negotiate21, leg1([]byte("garbage"))}, StateProtocolError,
			"session setup: the server's answer made no sense to the SMB client ("},
	}
}

// TestCheckShareHostile: malformed and hostile answers end in a protocol error in the step they came in, never in a
// crash of the process (a panic in go-smb2's receiver goroutine could not be recovered).
func TestCheckShareHostile(t *testing.T) {
	for _, tt := range hostileReplies(t) {
		t.Run(tt.name, func(t *testing.T) {
			rep := runCheck(t, serveFake(t, tt.replies...), ShareRequest{ConnectIPC: true}, 3*time.Second)
			if rep.State != tt.state || !strings.HasPrefix(rep.Evidence, tt.evidence) {
				t.Errorf("got %s: %q\nwant %s: %q...", rep.State, rep.Evidence, tt.state, tt.evidence)
			}
			if rep.IPC == nil || rep.IPC.State != rep.State || !strings.HasPrefix(rep.IPC.Evidence, "IPC$ not tried: ") {
				t.Errorf("IPC = %+v", rep.IPC)
			}
		})
	}
}

// TestCheckShareSilence: a server that accepts and never answers costs the caller's budget and no more.
func TestCheckShareSilence(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	const budget = 300 * time.Millisecond
	start := time.Now()
	rep := runCheck(t, ln.Addr().String(), ShareRequest{}, budget)
	took := time.Since(start)
	if rep.State != StateTimeout || rep.Step != StepNegotiate || rep.Evidence != "negotiate: no answer in the time allowed for the share check" {
		t.Errorf("got %+v", rep)
	}
	if took < budget || took > 3*budget {
		t.Errorf("took %s for a budget of %s", took, budget)
	}
}

// TestCheckShareNoCredits: a server that grants no credits makes go-smb2 wait for one; the budget ends the wait.
func TestCheckShareNoCredits(t *testing.T) {
	srv := &fakeShareServer{shares: map[string]uint32{"OFMLOG$": 0}, files: ofmFiles()}
	addr := srv.serve(t)
	// Wrap: the same server, but its answers grant zero credits after the session setup.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		up, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer up.Close()
		go func() {
			io.Copy(up, c)
			up.Close()
		}()
		for {
			f, err := readTestFrame(up)
			if err != nil {
				return
			}
			binary.LittleEndian.PutUint16(f[4+14:], 0) // no credits
			c.Write(f)
		}
	}()
	const budget = 500 * time.Millisecond
	start := time.Now()
	rep := runCheck(t, ln.Addr().String(), ShareRequest{}, budget)
	// The one credit go-smb2 starts with pays for the first create; the second waits.
	if rep.State != StateMounted || len(rep.Files) != 2 || rep.Files[0].State != StatePresent || rep.Files[1].State != StateTimeout {
		t.Errorf("got %+v", rep)
	}
	if took := time.Since(start); took > 3*budget {
		t.Errorf("took %s for a budget of %s", took, budget)
	}
}

func readTestFrame(r io.Reader) ([]byte, error) {
	prefix := make([]byte, 4)
	if _, err := io.ReadFull(r, prefix); err != nil {
		return nil, err
	}
	f := make([]byte, 4+binary.BigEndian.Uint32(prefix))
	copy(f, prefix)
	_, err := io.ReadFull(r, f[4:])
	return f, err
}

// TestPasswordNeverLeaks runs every failure path with a distinctive password and looks for it in every string the
// report can produce, and on the wire.
func TestPasswordNeverLeaks(t *testing.T) {
	req := ShareRequest{User: "ofmlab", Domain: "OFMLAB", Password: testPassword, ConnectIPC: true, ReadLogLines: 5}
	var reports []ShareReport
	var wires []*fakeShareServer
	for _, srv := range []*fakeShareServer{
		{shares: map[string]uint32{"OFMLOG$": 0}, files: ofmFiles()},
		{},
		{shares: map[string]uint32{"OFMLOG$": statusAccessDenied, "IPC$": statusAccessDenied}},
		{leg1Status: statusLogonFailure},
		{leg2Status: statusLogonFailure},
		{leg2Status: statusAccountLockedOut},
		{signingRequired: true, leg2Status: statusAccessDenied},
		{shares: map[string]uint32{"OFMLOG$": 0}, files: ofmFiles(), readStatus: 0xC0000185}, // STATUS_IO_DEVICE_ERROR
		{shares: map[string]uint32{"OFMLOG$": 0}, fileStatus: map[string]uint32{LogFile: statusAccessDenied}},
	} {
		reports = append(reports, runCheck(t, srv.serve(t), req, 3*time.Second))
		wires = append(wires, srv)
	}
	for _, tt := range hostileReplies(t) {
		reports = append(reports, runCheck(t, serveFake(t, tt.replies...), req, 2*time.Second))
	}
	reports = append(reports, runCheck(t, serveFake(t, fakeReply(func([]byte) []byte { time.Sleep(time.Second); return nil })), req, 200*time.Millisecond))

	secrets := []string{testPassword, string(utf16le(testPassword)), strings.ToUpper(testPassword)}
	for i, rep := range reports {
		js, err := json.Marshal(rep)
		if err != nil {
			t.Fatal(err)
		}
		for _, text := range []string{fmt.Sprintf("%+v", rep), fmt.Sprintf("%#v", rep), fmt.Sprint(rep), string(js)} {
			for _, s := range secrets {
				if strings.Contains(text, s) {
					t.Errorf("report %d (%s) shows the password: %s", i, rep.State, text)
				}
			}
		}
	}
	for i, srv := range wires {
		srv.mu.Lock()
		wire := srv.received.Bytes()
		for _, s := range secrets {
			if bytes.Contains(wire, []byte(s)) {
				t.Errorf("server %d received the password in the clear", i)
			}
		}
		srv.mu.Unlock()
	}
	for _, text := range []string{fmt.Sprintf("%v", req), fmt.Sprintf("%+v", req), fmt.Sprintf("%#v", req), fmt.Sprintf("%s", req)} {
		if strings.Contains(text, testPassword) || !strings.Contains(text, "[redacted]") {
			t.Errorf("ShareRequest prints as %s", text)
		}
	}
	if got := fmt.Sprintf("%+v", ShareRequest{User: "x"}); strings.Contains(got, "redacted") {
		t.Errorf("an empty password prints as %s", got)
	}
}

func utf16le(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, u)
	}
	return b
}

// TestDescribeFailure maps go-smb2's error values, as its API returns them, to states and evidence.
func TestDescribeFailure(t *testing.T) {
	signing := serverSaid{dialect: SMB311, signingRequired: true}
	leg1Failed := serverSaid{dialect: SMB311, lastCommand: commandSessionSetup, lastStatus: statusLogonFailure}
	pathErr := func(err error) error { return &os.PathError{Op: "stat", Path: "OFMNT.LOG", Err: err} }
	tests := []struct {
		name     string
		step     string
		err      error
		said     serverSaid
		guest    bool
		state    vocab.State
		evidence string
		status   uint32
	}{
		{"bad network name", StepTreeConnect, &smb2.ResponseError{Code: statusBadNetworkName}, serverSaid{}, true, StateMissing,
			"the server has no share of that name (STATUS_BAD_NETWORK_NAME, 0xc00000cc)", statusBadNetworkName},
		{"access denied as os.ErrPermission", StepTreeConnect, os.ErrPermission, serverSaid{}, false, StateAccessDenied,
			"access denied (STATUS_ACCESS_DENIED, 0xc0000022)", statusAccessDenied},
		{"access denied to guest", StepTreeConnect, os.ErrPermission, serverSaid{}, true, StateAccessDenied,
			"access denied to guest (STATUS_ACCESS_DENIED, 0xc0000022): credentials are needed", statusAccessDenied},
		{"access denied to guest where signing is required", StepTreeConnect, os.ErrPermission, signing, true, StateSigningNeeded,
			"tree connect: access denied (STATUS_ACCESS_DENIED, 0xc0000022); the server requires signing, which a guest session cannot do", statusAccessDenied},
		{"logon failure", StepSessionSetup, &smb2.ResponseError{Code: statusLogonFailure}, serverSaid{}, false, StateLogonFailure,
			"session setup: wrong user name or password (STATUS_LOGON_FAILURE, 0xc000006d)", statusLogonFailure},
		{"guest logon failure", StepSessionSetup, &smb2.ResponseError{Code: statusLogonFailure}, serverSaid{}, true, StateGuestRefused,
			"session setup: the server refused the guest login (STATUS_LOGON_FAILURE, 0xc000006d)", statusLogonFailure},
		{"password expired", StepSessionSetup, &smb2.ResponseError{Code: statusPasswordExpired}, serverSaid{}, false, StateLogonFailure,
			"session setup: the server refused the account (STATUS_PASSWORD_EXPIRED, 0xc0000071)", statusPasswordExpired},
		{"unknown status", StepTreeConnect, &smb2.ResponseError{Code: 0xC0001234}, serverSaid{}, false, StateRefused,
			"tree connect: the server refused (NTSTATUS 0xc0001234)", 0xC0001234},
		{"file not found in a PathError", StepStat, pathErr(os.ErrNotExist), serverSaid{}, false, StateMissing,
			"not found (STATUS_OBJECT_NAME_NOT_FOUND, 0xc0000034)", statusObjectNameNotFound},
		{"file denied in a PathError", StepStat, pathErr(os.ErrPermission), serverSaid{}, false, StateAccessDenied,
			"access denied (STATUS_ACCESS_DENIED, 0xc0000022)", statusAccessDenied},
		{"status in a PathError", StepStat, pathErr(&smb2.ResponseError{Code: 0xC0000043}), serverSaid{}, false, StateRefused,
			"stat: the server refused (NTSTATUS 0xc0000043)", 0xC0000043},
		{"first leg refused", StepSessionSetup, &smb2.InvalidResponseError{Message: "expected status: A, got B"}, leg1Failed, false, StateLogonFailure,
			"session setup: wrong user name or password (STATUS_LOGON_FAILURE, 0xc000006d)", statusLogonFailure},
		{"guest cannot sign", StepSessionSetup, &smb2.InvalidResponseError{Message: "guest account doesn't support signing"}, serverSaid{}, true, StateSigningNeeded,
			"session setup: the server requires signing, which a guest session cannot do (guest account doesn't support signing)", 0},
		{"unsigned answer", StepTreeConnect, &smb2.InvalidResponseError{Message: "signing required"}, serverSaid{}, false, StateSigningNeeded,
			"tree connect: the server requires signing, which a guest session cannot do (signing required)", 0},
		{"broken answer", StepTreeConnect, &smb2.InvalidResponseError{Message: "broken tree connect response format"}, serverSaid{}, false, StateProtocolError,
			"tree connect: the server's answer made no sense to the SMB client (broken tree connect response format)", 0},
		{"frame rejected by FrameConn", StepNegotiate, &smb2.TransportError{Err: fmt.Errorf("smb: frame of 5 bytes: %w", ErrFrameLength)}, serverSaid{}, true,
			StateProtocolError, "negotiate: the server sent a malformed SMB frame (smb: frame of 5 bytes: smb: frame length out of range)", 0},
		{"frame rejected by the guard", StepNegotiate, &smb2.TransportError{Err: fmt.Errorf("x: %w", ErrGuard)}, serverSaid{}, true,
			StateProtocolError, "negotiate: the server sent a malformed SMB frame (x: smb: frame refused by the client guard)", 0},
		{"deadline", StepStat, &smb2.TransportError{Err: &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}}, serverSaid{}, false, StateTimeout,
			"stat: no answer in the time allowed for the share check", 0},
		{"reset", StepSessionSetup, &smb2.TransportError{Err: &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}, serverSaid{}, false,
			StateProtocolError, "session setup: the server reset the connection", 0},
		{"EOF at session setup", StepSessionSetup, &smb2.TransportError{Err: io.EOF}, serverSaid{}, false, StateProtocolError,
			"session setup: the server closed the connection", 0},
		{"closed by ofmprobe", StepStat, &smb2.TransportError{Err: net.ErrClosed}, serverSaid{}, false, StateCancelled,
			"stat: the connection was closed by ofmprobe", 0},
		{"context deadline", StepTreeConnect, &smb2.ContextError{Err: context.DeadlineExceeded}, serverSaid{}, false, StateTimeout,
			"tree connect: no answer in the time allowed for the share check", 0},
		{"context cancelled", StepTreeConnect, &smb2.ContextError{Err: context.Canceled}, serverSaid{}, false, StateCancelled,
			"tree connect: scan cancelled", 0},
		{"context deadline in a PathError", StepStat, pathErr(&smb2.ContextError{Err: context.DeadlineExceeded}), serverSaid{}, false, StateTimeout,
			"stat: no answer in the time allowed for the share check", 0},
		{"internal", StepSessionSetup, &smb2.InternalError{Message: "Initiator is empty"}, serverSaid{}, false, StateInternal,
			"session setup: the SMB client failed by itself (Initiator is empty)", 0},
		{"anything else", StepStat, errors.New("odd"), serverSaid{}, false, StateProtocolError, "stat: odd", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, evidence, status := describeFailure(tt.step, tt.err, tt.said, tt.guest)
			if state != tt.state || evidence != tt.evidence || status != tt.status {
				t.Errorf("got %s, %q, 0x%08x\nwant %s, %q, 0x%08x", state, evidence, status, tt.state, tt.evidence, tt.status)
			}
		})
	}
}

func TestServerSaidNote(t *testing.T) {
	header := func(cmd uint16, status uint32, body ...byte) []byte {
		m := smb2Message(0, 0)
		binary.LittleEndian.PutUint16(m[12:], cmd)
		binary.LittleEndian.PutUint32(m[8:], status)
		return frameOf(append(m, body...))
	}
	var s serverSaid
	steps := []struct {
		frame []byte
		err   error
		check func() bool
	}{
		{transformFrame(HeaderLen+8, HeaderLen+8), ErrGuard, func() bool { return true }},
		{unhex(t, wildcardResponseVector), nil, func() bool { return s.dialect == SMB2Wildcard && s.loginStep() == StepNegotiate }},
		{unhex(t, negotiateResponse311Vector), nil, func() bool {
			return s.dialect == SMB311 && s.signingRequired && s.loginStep() == StepSessionSetup && s.negotiates == 2
		}},
		{header(commandSessionSetup, statusMoreProcessingRequired, 9, 0, 0, 0, 0, 0, 0, 0), nil, func() bool {
			return !s.sessionDone && s.lastStatus == statusMoreProcessingRequired
		}},
		{header(commandSessionSetup, 0, 9, 0, 1, 0, 0, 0, 0, 0), nil, func() bool { return s.sessionDone && s.guestSession() }},
		{header(cmdTreeConnect, statusPending), nil, func() bool { return s.lastStatus == 0 && s.lastCommand == commandSessionSetup }},
		{transformFrame(HeaderLen+8, HeaderLen+8), ErrEncryption, func() bool { return true }},
		{header(cmdTreeConnect, 0, 16, 0, 1, 0, 0x00, 0x80, 0, 0), nil, func() bool { return s.shareFlags == shareFlagEncryptData }},
		{header(cmdTreeConnect, statusPending), nil, func() bool { return s.shareFlags == shareFlagEncryptData }},
		{header(cmdTreeConnect, statusAccessDenied), nil, func() bool {
			return s.lastStatus == statusAccessDenied && s.lastCommand == cmdTreeConnect && s.shareFlags == 0
		}},
		{unhex(t, negotiateResponseVector), ErrGuard, func() bool { return s.negotiates == 3 }},
		{unhex(t, "00000004 fe534d42"), ErrShort, func() bool { return true }},
	}
	for i, st := range steps {
		err := s.note(st.frame)
		if !errors.Is(err, st.err) || (st.err == nil) != (err == nil) || !st.check() {
			t.Errorf("step %d: err = %v, want %v; state %+v", i, err, st.err, s)
		}
	}
	// No session may encrypt, not even an authenticated SMB 3 one: go-smb2 would split the plaintext unchecked.
	s = serverSaid{dialect: SMB311, sessionDone: true}
	if err := s.note(transformFrame(HeaderLen+8, HeaderLen+8)); !errors.Is(err, ErrEncryption) {
		t.Errorf("encrypted frame in an SMB 3 user session: %v", err)
	}
	// Nor may a session setup answer ask for it.
	s = serverSaid{dialect: SMB311}
	if err := s.note(header(commandSessionSetup, 0, 9, 0, sessionFlagEncryptData, 0, 0, 0, 0, 0)); !errors.Is(err, ErrEncryption) || err.Error() != "smb: "+sessionEncrypted {
		t.Errorf("session setup answer with SMB2_SESSION_FLAG_ENCRYPT_DATA: %v", err)
	}
}

func TestTailAndPrintable(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		cut  bool
		want []string
	}{
		{"a\r\nb\r\nc\r\n", 2, false, []string{"b", "c"}},
		{"a\nb\nc", 5, false, []string{"a", "b", "c"}},
		{"rtial\nb\nc\n", 5, true, []string{"b", "c"}},
		{"one line without end", 1, true, []string{"one line without end"}},
		{"", 3, false, []string{}},
		{"tab\there\x00\xff\n", 1, false, []string{"tab.here.."}},
		{strings.Repeat("x", 600) + "\n", 1, false, []string{strings.Repeat("x", maxLineLen)}},
	}
	for _, tt := range tests {
		got := tailLines([]byte(tt.in), tt.n, tt.cut)
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
			t.Errorf("tailLines(%q, %d, %v) = %q, want %q", tt.in, tt.n, tt.cut, got, tt.want)
		}
	}
	if got := printable([]byte("A\x00\x7f~ \xc3\xa9")); got != "A..~ .." {
		t.Errorf("printable = %q", got)
	}
}

// FuzzServerSaidNote: note never panics, whatever frame FrameConn lets through or not.
func FuzzServerSaidNote(f *testing.F) {
	addVectors(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		var s serverSaid
		for range 3 {
			_ = s.note(frame)
		}
		if CheckFrame(frame) == nil {
			s = serverSaid{dialect: SMB302, sessionDone: true}
			_ = s.note(frame)
		}
	})
}

// FuzzGuardConn feeds a byte stream through FrameConn and the guard as go-smb2 reads it, and checks that only
// whole, checked frames come out.
func FuzzGuardConn(f *testing.F) {
	addVectors(f)
	f.Fuzz(func(t *testing.T, stream []byte) {
		client, server := net.Pipe()
		defer client.Close()
		go func() {
			server.Write(stream)
			server.Close()
		}()
		g := newGuardConn(NewFrameConn(client, shareFrameLimit))
		for {
			prefix := make([]byte, 4)
			if _, err := io.ReadFull(g, prefix); err != nil {
				return
			}
			msg := make([]byte, binary.BigEndian.Uint32(prefix))
			if _, err := io.ReadFull(g, msg); err != nil {
				t.Fatalf("a frame was cut after its prefix: %v", err)
			}
			if err := CheckFrame(append(prefix, msg...)); err != nil {
				t.Fatalf("served a frame that fails CheckFrame: %v", err)
			}
		}
	})
}
