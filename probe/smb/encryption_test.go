package smb

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	vocab "github.com/ofmprobe/ofmprobe/probe/status"
)

// SMB2_SESSION_FLAG_ENCRYPT_DATA and SMB2_SHAREFLAG_ENCRYPT_DATA as the fake server sets them (MS-SMB2 §2.2.6,
// §2.2.10).
const (
	fakeSessionEncrypt = 0x0004
	fakeShareEncrypt   = 0x00008000
)

// encryptedAnswer frames an SMB2 TRANSFORM_HEADER (MS-SMB2 §2.2.41) for the session of the fake server, with
// content as the encrypted message: a nonce made of req's MessageId, OriginalMessageSize len(content), Flags
// "encrypted" and a signature that no key verifies.
func encryptedAnswer(req, content []byte) []byte {
	le := binary.LittleEndian
	m := make([]byte, TransformHeaderLen, TransformHeaderLen+len(content))
	copy(m, magicTransform[:])
	copy(m[4:20], "not a signature!")
	copy(m[20:28], req[24:32])
	le.PutUint32(m[36:], uint32(len(content)))
	le.PutUint16(m[42:], 1)
	le.PutUint64(m[44:], fakeSessionID)
	return frameOf(append(m, content...))
}

// encryptAnswerTo answers every request of command cmd with an encrypted frame whose content is an SMB2 header
// and body, as if encrypted: what a server that encrypts would send.
func encryptAnswerTo(cmd uint16) func(req []byte) []byte {
	return func(req []byte) []byte {
		if binary.LittleEndian.Uint16(req[12:14]) != cmd {
			return nil
		}
		return encryptedAnswer(req, answer(req, statusSuccess, fakeTreeID, make([]byte, 16))[PrefixLen:])
	}
}

// receivedCommands lists the messages the fake server received, as "negotiate", "session setup", ... with
// "encrypted" for a transform frame.
func (s *fakeShareServer) receivedCommands() []string {
	names := map[uint16]string{cmdNegotiate: "negotiate", cmdSessionSetup: "session setup", cmdTreeConnect: "tree connect",
		cmdCreate: "create", cmdClose: "close", cmdRead: "read"}
	s.mu.Lock()
	defer s.mu.Unlock()
	var got []string
	for b := s.received.Bytes(); len(b) >= PrefixLen; {
		n := int(binary.BigEndian.Uint32(b) & 0xFFFFFF)
		msg := b[PrefixLen:min(len(b), PrefixLen+n)]
		b = b[len(msg)+PrefixLen:]
		switch {
		case bytes.HasPrefix(msg, magicTransform[:]):
			got = append(got, "encrypted")
		case len(msg) >= HeaderLen:
			got = append(got, names[binary.LittleEndian.Uint16(msg[12:14])])
		}
	}
	return got
}

// TestCheckShareEncryption: a session or share the server wants encrypted, and an encrypted answer, end the check
// with StateRefused and evidence naming encryption, at the step where the server said so; go-smb2 never decrypts
// or encrypts anything. Without the guard's encryption checks these end in a timeout (go-smb2 drops the frame it
// cannot decrypt and waits), in a recovered nil-pointer panic (go-smb2 encrypts with no key) or in a mount that
// sends encrypted requests.
func TestCheckShareEncryption(t *testing.T) {
	user := ShareRequest{User: "ofmlab", Domain: "OFMLAB", Password: testPassword, ConnectIPC: true}
	guest := ShareRequest{ConnectIPC: true}
	mounted := map[string]uint32{"OFMLOG$": 0}
	tests := []struct {
		name     string
		srv      *fakeShareServer
		req      ShareRequest
		state    vocab.State
		step     string
		evidence string
		ipc      string // IPC$ state and evidence
		sent     string // the commands the server received, joined
	}{
		{"session setup asks for encryption", &fakeShareServer{smb311: true, sessionFlags: fakeSessionEncrypt, shares: mounted, files: ofmFiles()}, user,
			StateRefused, StepSessionSetup,
			"session setup: the server requires SMB3 encryption for this session (SMB2_SESSION_FLAG_ENCRYPT_DATA), which ofmprobe does not use",
			"refused: IPC$ not tried: session setup failed", "negotiate session setup session setup"},
		{"guest session setup asks for encryption", &fakeShareServer{smb311: true, sessionFlags: sessionFlagGuest | fakeSessionEncrypt, shares: mounted}, guest,
			StateRefused, StepSessionSetup,
			"session setup: the server requires SMB3 encryption for this session (SMB2_SESSION_FLAG_ENCRYPT_DATA), which ofmprobe does not use",
			"refused: IPC$ not tried: session setup failed", "negotiate session setup session setup"},
		{"SMB 2.1 session setup asks for encryption", &fakeShareServer{sessionFlags: fakeSessionEncrypt, shares: mounted}, user,
			StateRefused, StepSessionSetup,
			"session setup: the server requires SMB3 encryption for this session (SMB2_SESSION_FLAG_ENCRYPT_DATA), which ofmprobe does not use",
			"refused: IPC$ not tried: session setup failed", "negotiate session setup session setup"},
		{"share asks for encryption", &fakeShareServer{smb311: true, shareFlags: fakeShareEncrypt, shares: mounted, files: ofmFiles()}, user,
			StateRefused, StepTreeConnect,
			`\\127.0.0.1\OFMLOG$ as OFMLAB\ofmlab: the server requires SMB3 encryption for this share (SMB2_SHAREFLAG_ENCRYPT_DATA), which ofmprobe does not use; the files were not checked`,
			`connected: \\127.0.0.1\IPC$: connected (named pipes reachable)`, "negotiate session setup session setup tree connect tree connect"},
		{"share asks a guest for encryption", &fakeShareServer{shareFlags: fakeShareEncrypt | 0x0800, sessionFlags: sessionFlagGuest, shares: mounted, files: ofmFiles()}, guest,
			StateRefused, StepTreeConnect,
			`\\127.0.0.1\OFMLOG$ with a guest login: the server requires SMB3 encryption for this share (SMB2_SHAREFLAG_ENCRYPT_DATA), which ofmprobe does not use; the files were not checked`,
			`connected: \\127.0.0.1\IPC$: connected (named pipes reachable)`, "negotiate session setup session setup tree connect tree connect"},
		{"encrypted tree connect answer", &fakeShareServer{smb311: true, shares: mounted, transform: encryptAnswerTo(cmdTreeConnect)}, user,
			StateRefused, StepTreeConnect,
			`\\127.0.0.1\OFMLOG$ as OFMLAB\ofmlab: tree connect: the server encrypted its answer (an SMB3 transform header, FD 'SMB'), and ofmprobe does not use SMB3 encryption`,
			"refused: IPC$ not tried: tree connect: the server encrypted its answer (an SMB3 transform header, FD 'SMB'), and ofmprobe does not use SMB3 encryption",
			"negotiate session setup session setup tree connect"},
		{"encrypted tree connect answer to a guest", &fakeShareServer{smb311: true, sessionFlags: sessionFlagGuest, shares: mounted, transform: encryptAnswerTo(cmdTreeConnect)}, guest,
			StateRefused, StepTreeConnect,
			`\\127.0.0.1\OFMLOG$ with a guest login: tree connect: the server encrypted its answer (an SMB3 transform header, FD 'SMB'), and ofmprobe does not use SMB3 encryption`,
			"refused: IPC$ not tried: tree connect: the server encrypted its answer (an SMB3 transform header, FD 'SMB'), and ofmprobe does not use SMB3 encryption",
			"negotiate session setup session setup tree connect"},
		{"encrypted session setup answer", &fakeShareServer{smb311: true, shares: mounted, transform: encryptAnswerTo(cmdSessionSetup)}, user,
			StateProtocolError, StepSessionSetup,
			"session setup: the server sent a malformed SMB frame (smb: encrypted frame before any session was set up: smb: frame refused by the client guard)",
			"protocol error: IPC$ not tried: session setup failed", "negotiate session setup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := runCheck(t, tt.srv.serve(t), tt.req, 3*time.Second)
			if rep.State != tt.state || rep.Step != tt.step || rep.Evidence != tt.evidence || rep.NTStatus != 0 {
				t.Errorf("got %s at %s, status 0x%08x:\n%s\nwant %s at %s:\n%s", rep.State, rep.Step, rep.NTStatus, rep.Evidence, tt.state, tt.step, tt.evidence)
			}
			if rep.IPC == nil || string(rep.IPC.State)+": "+rep.IPC.Evidence != tt.ipc {
				t.Errorf("IPC = %+v, want %s", rep.IPC, tt.ipc)
			}
			if len(rep.Files) != 0 {
				t.Errorf("files checked: %+v", rep.Files)
			}
			if got := strings.Join(tt.srv.receivedCommands(), " "); got != tt.sent {
				t.Errorf("the server received %q, want %q", got, tt.sent)
			}
		})
	}
}

// runCheckPipe runs CheckShare against srv over an in-memory pipe and returns the report and how long it took.
func runCheckPipe(t *testing.T, srv *fakeShareServer, req ShareRequest, budget time.Duration) (ShareReport, time.Duration) {
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer server.Close()
		server.SetDeadline(time.Now().Add(budget + time.Second))
		srv.handle(t, server)
	}()
	defer func() {
		client.Close()
		<-done
	}()
	client.SetDeadline(time.Now().Add(budget))
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	req.Host = "127.0.0.1"
	start := time.Now()
	rep := CheckShare(ctx, client, req)
	return rep, time.Since(start)
}

// FuzzEncryptedServer is a hostile SMB 3.1.1 server that chooses AES-128-GCM, answers the request numbered at
// (counting from the negotiate) with an encrypted frame of fuzzed content, and fuzzes its session and share flags.
// When wellFormed is set the transform header is valid for the session (its session id, "encrypted" flag and an
// OriginalMessageSize that fits), so go-smb2 would try to decrypt it; otherwise the content follows FD 'SMB' as is. The check must end without a panic, without
// waiting for its budget, and, when the server encrypted an answer after the session setup, with the encryption
// evidence.
func FuzzEncryptedServer(f *testing.F) {
	f.Add(uint8(3), false, true, uint16(0), uint32(0), answer(make([]byte, HeaderLen), 0, fakeTreeID, make([]byte, 16))[PrefixLen:])
	f.Add(uint8(1), true, true, uint16(sessionFlagGuest), uint32(0), smb2Message(4096, 16))
	f.Add(uint8(2), false, false, uint16(fakeSessionEncrypt), uint32(fakeShareEncrypt), []byte{1, 2, 3})
	f.Add(uint8(4), false, true, uint16(0), uint32(0), frameOf(smb2Message(72, 8), smb2Message(0, 9)))
	f.Add(uint8(0), true, false, uint16(0), uint32(0), bytes.Repeat([]byte{0xFD}, 100))
	f.Fuzz(func(t *testing.T, at uint8, guest, wellFormed bool, sessionFlags uint16, shareFlags uint32, content []byte) {
		if len(content) > 4096 {
			return
		}
		at %= 6
		requests, transformed, checked := 0, -1, false
		srv := &fakeShareServer{smb311: true, sessionFlags: sessionFlags, shareFlags: shareFlags,
			shares: map[string]uint32{"OFMLOG$": 0}, files: ofmFiles()}
		srv.transform = func(req []byte) []byte {
			requests++
			if requests-1 != int(at) {
				return nil
			}
			transformed = int(binary.LittleEndian.Uint16(req[12:14]))
			frame := frameOf(append(magicTransform[:], content...))
			if wellFormed {
				frame = encryptedAnswer(req, content)
			}
			checked = CheckFrame(frame) == nil
			return frame
		}
		req := ShareRequest{User: "ofmlab", Password: testPassword, ConnectIPC: true}
		if guest {
			req = ShareRequest{ConnectIPC: true}
		}
		const budget = 2 * time.Second
		rep, took := runCheckPipe(t, srv, req, budget)
		if rep.State == StateTimeout || took >= budget {
			t.Fatalf("waited %s for its budget: %+v", took, rep)
		}
		if strings.Contains(rep.Evidence, "the SMB client failed on the server's answer") {
			t.Fatalf("go-smb2 panicked in the calling goroutine: %s", rep.Evidence)
		}
		// An encrypted frame that FrameConn passes (a short one is a malformed frame) is refused by the guard.
		said := []string{rep.Evidence}
		if rep.IPC != nil {
			said = append(said, rep.IPC.Evidence)
		}
		for _, f := range rep.Files {
			said = append(said, f.Evidence)
		}
		if checked && (transformed == cmdTreeConnect || transformed == cmdCreate) &&
			!strings.Contains(strings.Join(said, "; "), "the server encrypted its answer (an SMB3 transform header, FD 'SMB'), and ofmprobe does not use SMB3 encryption") {
			t.Fatalf("an encrypted answer to command %d ended in %s: %q", transformed, rep.State, said)
		}
	})
}
