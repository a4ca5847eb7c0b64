package probe

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/netbios"
	"github.com/ofmprobe/ofmprobe/probe/smb"
)

// The "smb negotiate" states, beside the connect failures closed, filtered and unreachable.
const (
	// SMBStateSMB2 means the server chose an SMB2 dialect.
	SMBStateSMB2 = "smb2"
	// SMBStateSMB1Only means the server answered in SMB1 although SMB2 dialects were offered.
	SMBStateSMB1Only = "smb1 only"
	// SMBStateNoDialect means an SMB server answered that it shares none of the offered dialects.
	SMBStateNoDialect = "no common dialect"
	// SMBStateSessionRefused means TCP 139 refused a NetBIOS session to every name tried, so no SMB was spoken.
	SMBStateSessionRefused = "session refused"
	SMBStateProtocolError  = "protocol error"
	SMBStateTimeout        = "timeout"
)

// SMBResult is what the "smb negotiate" step learned on TCP 445 (direct) or 139 (over a NetBIOS session).
type SMBResult struct {
	State    string `json:"state"`
	Evidence string `json:"evidence"`
	Port     int    `json:"port"`
	// Called is the NetBIOS name the session on 139 was made to.
	Called string `json:"called,omitempty"`
	// Dialect names the chosen dialect, such as "SMB 3.1.1" or "NT LM 0.12".
	Dialect         string   `json:"dialect,omitempty"`
	SigningEnabled  bool     `json:"signing_enabled"`
	SigningRequired bool     `json:"signing_required"`
	ServerGUID      string   `json:"server_guid,omitempty"`
	Capabilities    []string `json:"capabilities,omitempty"`
	// SMB1Accepted says whether the server still accepts SMB1 (a hardening warning when it also speaks SMB2); nil
	// when that could not be learned.
	SMB1Accepted *bool `json:"smb1_accepted,omitempty"`
	// SMB1Evidence says how SMB1Accepted was learned.
	SMB1Evidence string `json:"smb1_evidence,omitempty"`
	// RTT is the time from sending the first negotiate to its answer.
	RTT time.Duration `json:"-"`
}

// negotiateFrameLimit bounds a negotiate answer: Windows and Samba send a few hundred bytes (the SPNEGO hint and the
// 3.1.1 contexts). A longer claim is a protocol error and is never read.
const negotiateFrameLimit = 64 << 10

// maxSessionKeepalives bounds the NetBIOS keepalives skipped before an SMB answer on 139.
const maxSessionKeepalives = 8

// smbDialects are the dialects the SMB2 NEGOTIATE offers after a server answered "SMB 2.???".
var smbDialects = []smb.Dialect{smb.SMB202, smb.SMB210, smb.SMB300, smb.SMB302, smb.SMB311}

// smbOpen opens a connection ready to carry SMB messages, or returns the state and evidence of why it could not.
type smbOpen func(ctx context.Context) (conn net.Conn, state, evidence string)

// smbNegotiate is the "smb negotiate" step on a direct-TCP SMB port (445):
//  1. Connect, and send an SMB1 NEGOTIATE offering "NT LM 0.12", "SMB 2.002" and "SMB 2.???". An SMB2 server
//     answers in SMB2, an SMB1-only server in SMB1 with "NT LM 0.12".
//  2. When the answer is SMB2 with the "SMB 2.???" wildcard, send an SMB2 NEGOTIATE (MessageId 1) offering 2.0.2
//     to 3.1.1 on the same connection, and report the dialect, signing, server GUID and capabilities.
//  3. When the server speaks SMB2, connect again and offer SMB1 alone, to learn whether SMB1 is still accepted:
//     Samba with SMB1 off answers that no dialect is common, Windows closes the connection.
//
// The connections are made one after the other under one socket token. Every exchange has its own deadline of the
// scan timeout, so a silent server costs one timeout.
func (s *Scanner) smbNegotiate(ctx context.Context, addr netip.Addr, port uint16) SMBResult {
	r := SMBResult{Port: int(port)}
	prefix := fmt.Sprintf("smb negotiate %d", port)
	s.negotiate(ctx, &r, prefix, s.tcpOpener(addr, port), false)
	return r
}

// smbNegotiate139 is the "smb negotiate" step over NetBIOS on TCP 139, as NT-era hosts speak SMB: it requests a
// NetBIOS session to calledName (the host's name from node status, when known) and then to *SMBSERVER, and
// negotiates on the first session accepted, as smbNegotiate does on 445. The SMB1 check requests a session to the
// same name again.
func (s *Scanner) smbNegotiate139(ctx context.Context, addr netip.Addr, calledName string) SMBResult {
	r := SMBResult{Port: int(s.nbssPort)}
	prefix := fmt.Sprintf("smb negotiate %d", s.nbssPort)
	open := s.sessionOpener(addr, calledName, func(name netbios.Name) { r.Called = name.String() })
	s.negotiate(ctx, &r, prefix, open, true)
	return r
}

// sessionOpener opens connections that carry SMB over a NetBIOS session on TCP 139: it requests a session to
// calledName (when known) and then to *SMBSERVER, moving on only when one is refused. Once a name is accepted,
// later connections ask for that name alone (the SMB1 check reconnects), and accepted, if set, is told which.
func (s *Scanner) sessionOpener(addr netip.Addr, calledName string, accepted func(netbios.Name)) smbOpen {
	names := calledNames(calledName)
	return func(ctx context.Context) (net.Conn, string, string) {
		state, evidence := "", ""
		for _, name := range names {
			conn, st, ev := s.openSession(ctx, addr, name)
			if conn != nil {
				names = []netbios.Name{name}
				if accepted != nil {
					accepted(name)
				}
				return conn, "", ""
			}
			state, evidence = st, ev
			if st != SMBStateSessionRefused {
				break
			}
		}
		return nil, state, evidence
	}
}

// openSession connects to TCP 139 and requests a NetBIOS session to called. It returns the connection after a
// positive answer, and otherwise the state and evidence of the refusal.
func (s *Scanner) openSession(ctx context.Context, addr netip.Addr, called netbios.Name) (net.Conn, string, string) {
	start := time.Now()
	conn, err := s.dialTCP(ctx, addr, s.nbssPort)
	if err != nil {
		return nil, dialFailureState(err), s.connectFailure(err)
	}
	keep := false
	defer func() {
		if !keep {
			conn.Close()
		}
	}()
	state, evidence, _ := s.requestSession(conn, called, start)
	switch state {
	case SessionPositive:
		keep = true
		return conn, "", ""
	case SessionNegative:
		return nil, SMBStateSessionRefused, evidence
	case SessionTimeout:
		return nil, SMBStateTimeout, evidence
	}
	return nil, SMBStateProtocolError, evidence
}

// connectFailure words a failed connect: the errno, or the timeout that silence ran into.
func (s *Scanner) connectFailure(err error) string {
	if Classify(err) == StatusTimeout {
		return fmt.Sprintf("connect failed: no answer in %s", s.opts.Timeout)
	}
	return "connect failed: " + errnoText(err)
}

// negotiate runs the exchanges of the "smb negotiate" step on connections from open and fills r.
func (s *Scanner) negotiate(ctx context.Context, r *SMBResult, prefix string, open smbOpen, nbss bool) {
	s.negotiateMulti(ctx, r, prefix, open, nbss)
	if r.Called != "" {
		prefix = fmt.Sprintf("%s (%s)", prefix, r.Called)
	}
	r.Evidence = prefix + ": " + r.Evidence
	if r.State != SMBStateSMB2 {
		return
	}
	accepted, evidence := s.smb1Check(ctx, open, nbss)
	r.SMB1Accepted, r.SMB1Evidence = accepted, "smb1 check: "+evidence
}

// negotiateMulti sends the multi-protocol negotiate, and the SMB2 NEGOTIATE after a wildcard answer, on one
// connection.
func (s *Scanner) negotiateMulti(ctx context.Context, r *SMBResult, prefix string, open smbOpen, nbss bool) {
	conn, state, evidence := open(ctx)
	if conn == nil {
		r.State, r.Evidence = state, evidence
		return
	}
	defer conn.Close()

	start := time.Now()
	frame, err := s.exchange(conn, smb.AppendSMB1Negotiate(nil, smb.MultiProtocolDialects), nbss)
	r.RTT = time.Since(start)
	if err != nil {
		r.State, r.Evidence = s.exchangeFailure(err, "the SMB negotiate")
		return
	}
	answer, err := smb.ParseMultiProtocolAnswer(frame, smb.MultiProtocolDialects)
	if err != nil {
		r.State, r.Evidence = SMBStateProtocolError, fmt.Sprintf("not an SMB negotiate answer (%v): %s", err, hexPrefix(frame))
		return
	}
	switch answer.Kind {
	case smb.AnswerSMB1Only:
		fillSMB1(r, answer.SMB1)
		r.State = SMBStateSMB1Only
		r.Evidence = fmt.Sprintf("speaks %v, answered in %s (the SMB2 dialects offered were ignored)", answer, formatRTT(r.RTT))
		yes := true
		r.SMB1Accepted, r.SMB1Evidence = &yes, "smb1 check: SMB1 is the only protocol the server offered"
		return
	case smb.AnswerNoDialect:
		r.State = SMBStateNoDialect
		r.Evidence = "an SMB server that shares none of the offered dialects (NT LM 0.12, SMB 2.002, SMB 2.???): dialect index 0xFFFF"
		return
	case smb.AnswerSMB2:
	default:
		r.State, r.Evidence = SMBStateProtocolError, fmt.Sprintf("unexpected answer %v: %s", answer, hexPrefix(frame))
		return
	}
	resp := answer.SMB2
	if resp.Dialect == smb.SMB2Wildcard {
		// The server speaks SMB 2.1 or later and expects a fresh SMB2 NEGOTIATE (MS-SMB2 §3.3.5.3.1).
		var req smb.NegotiateRequest
		req.MessageID = 1
		req.Dialects = smbDialects
		req.Capabilities = smb.CapDFS | smb.CapLeasing | smb.CapLargeMTU | smb.CapEncryption
		req.Salt = make([]byte, 32)
		rand.Read(req.Salt)
		rand.Read(req.ClientGUID[:])
		frame, err := s.exchange(conn, smb.AppendNegotiateRequest(nil, req), nbss)
		if err != nil {
			r.State, r.Evidence = s.exchangeFailure(err, "the SMB2 negotiate that followed its SMB 2.??? answer")
			return
		}
		resp, err = smb.ParseNegotiateResponse(frame)
		if err != nil {
			r.State, r.Evidence = SMBStateProtocolError, fmt.Sprintf("not an SMB2 negotiate answer (%v): %s", err, hexPrefix(frame))
			return
		}
		if err := checkNegotiateAnswer(resp, req); err != nil {
			r.State, r.Evidence = SMBStateProtocolError, fmt.Sprintf("%v: %s", err, hexPrefix(frame))
			return
		}
	}
	r.State = SMBStateSMB2
	r.Dialect = resp.Dialect.String()
	r.SigningEnabled, r.SigningRequired = resp.SecurityMode.Enabled() || resp.SecurityMode.Required(), resp.SecurityMode.Required()
	r.ServerGUID = resp.ServerGUID.String()
	r.Capabilities = resp.Capabilities.Names()
	r.Evidence = fmt.Sprintf("speaks SMB2: %v, first answer in %s", resp, formatRTT(r.RTT))
}

// checkNegotiateAnswer checks that an SMB2 NEGOTIATE answer fits the request: same MessageId, an offered dialect.
func checkNegotiateAnswer(resp smb.NegotiateResponse, req smb.NegotiateRequest) error {
	if resp.MessageID != req.MessageID {
		return fmt.Errorf("SMB2 negotiate answer with MessageId %d, sent %d", resp.MessageID, req.MessageID)
	}
	for _, d := range req.Dialects {
		if d == resp.Dialect {
			return nil
		}
	}
	return fmt.Errorf("SMB2 negotiate answer chose %v, which was not offered", resp.Dialect)
}

// fillSMB1 copies what an SMB1 negotiate answer says into r.
func fillSMB1(r *SMBResult, a smb.SMB1NegotiateResponse) {
	r.Dialect = a.Dialect
	r.SigningEnabled, r.SigningRequired = a.SigningEnabled(), a.SigningRequired()
	if a.ExtendedSecurity {
		r.ServerGUID = a.ServerGUID.String()
	}
	r.Capabilities = smb1CapabilityNames(a.Capabilities)
}

// smb1CapabilityNames names the SMB1 capability bits worth reporting (MS-CIFS §2.2.4.52.2).
func smb1CapabilityNames(c uint32) []string {
	var names []string
	for _, bit := range []struct {
		mask uint32
		name string
	}{
		{smb.SMB1CapUnicode, "unicode"},
		{smb.SMB1CapNTSMBs, "NT SMBs"},
		{smb.SMB1CapStatus32, "NT status codes"},
		{smb.SMB1CapDFS, "DFS"},
		{smb.SMB1CapExtendedSecurity, "extended security"},
	} {
		if c&bit.mask != 0 {
			names = append(names, bit.name)
		}
	}
	return names
}

// smb1Check offers SMB1 alone on a new connection and says whether the server accepts it; nil when that cannot be
// told (no answer, a connect failure, an answer that makes no sense).
func (s *Scanner) smb1Check(ctx context.Context, open smbOpen, nbss bool) (*bool, string) {
	yes, no := true, false
	conn, _, evidence := open(ctx)
	if conn == nil {
		return nil, "unknown, the second connection failed: " + evidence
	}
	defer conn.Close()
	frame, err := s.exchange(conn, smb.AppendSMB1Negotiate(nil, smb.SMB1OnlyDialects), nbss)
	if err != nil {
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED):
			return &no, "SMB1 disabled: the server closed the connection when offered SMB1 alone"
		case Classify(err) == StatusTimeout:
			return nil, fmt.Sprintf("unknown, no answer in %s when offered SMB1 alone", s.opts.Timeout)
		}
		return nil, fmt.Sprintf("unknown, the answer to an SMB1-only negotiate is not valid: %v", err)
	}
	answer, err := smb.ParseMultiProtocolAnswer(frame, smb.SMB1OnlyDialects)
	if err != nil {
		return nil, fmt.Sprintf("unknown, the answer to an SMB1-only negotiate is not valid (%v): %s", err, hexPrefix(frame))
	}
	switch answer.Kind {
	case smb.AnswerSMB1:
		return &yes, "SMB1 accepted beside SMB2: " + strings.TrimPrefix(answer.String(), answer.Kind.String()+": ")
	case smb.AnswerNoDialect:
		return &no, "SMB1 disabled: the server answered that no offered dialect is common (dialect index 0xFFFF)"
	}
	return nil, fmt.Sprintf("unknown, an SMB1-only negotiate was answered with %v", answer.Kind)
}

// exchange writes req on conn and reads one answer frame, each under a fresh deadline of the scan timeout.
func (s *Scanner) exchange(conn net.Conn, req []byte, nbss bool) ([]byte, error) {
	conn.SetDeadline(time.Now().Add(s.opts.Timeout))
	if _, err := conn.Write(req); err != nil {
		return nil, err
	}
	return readSMBFrame(conn, negotiateFrameLimit, nbss)
}

// exchangeFailure maps a failed exchange on an open connection to a state and evidence; what names the request.
func (s *Scanner) exchangeFailure(err error, what string) (string, string) {
	var partial *partialFrameError
	switch {
	case errors.As(err, &partial) && Classify(partial.err) == StatusTimeout:
		return SMBStateTimeout, fmt.Sprintf("connected, but the answer to %s stopped after %d of %d bytes and did not finish in %s",
			what, partial.got, partial.want, s.opts.Timeout)
	case Classify(err) == StatusTimeout:
		return SMBStateTimeout, fmt.Sprintf("connected, but no answer to %s in %s", what, s.opts.Timeout)
	case Classify(err) == StatusCanceled:
		return StateError, "scan cancelled"
	case errors.Is(err, ProtocolError):
		return SMBStateProtocolError, fmt.Sprintf("not an SMB answer to %s: %v", what, err)
	case errors.Is(err, io.EOF):
		return SMBStateProtocolError, fmt.Sprintf("the server closed the connection without answering %s", what)
	case Classify(err) == StatusReset:
		return SMBStateProtocolError, fmt.Sprintf("the server reset the connection without answering %s", what)
	}
	return SMBStateProtocolError, fmt.Sprintf("the exchange for %s failed: %v", what, errnoText(err))
}

// partialFrameError is a read error met inside a frame: the answer started but did not finish.
type partialFrameError struct {
	got, want int
	err       error
}

func (e *partialFrameError) Error() string {
	return fmt.Sprintf("answer stopped after %d of %d bytes: %v", e.got, e.want, e.err)
}

func (e *partialFrameError) Unwrap() error { return e.err }

// readSMBFrame reads one direct-TCP frame (MS-SMB2 §2.1), prefix included, from r: a zero byte and a 24-bit length,
// then the message. A length above maxLen is refused before anything is allocated. With nbss set the frames are
// NetBIOS session messages (RFC 1002 §4.3.1: type 0x00 and the same length layout for the sizes allowed here) and
// session keepalives (type 0x85) are skipped. Errors that are the peer's fault wrap ProtocolError; an error of r is
// returned as it is when nothing was read, and wrapped in a *partialFrameError inside a frame.
func readSMBFrame(r io.Reader, maxLen int, nbss bool) ([]byte, error) {
	var prefix [smb.PrefixLen]byte
	for keepalives := 0; ; keepalives++ {
		n, err := io.ReadFull(r, prefix[:])
		if err != nil {
			if n == 0 {
				return nil, err
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("%w: %d-byte answer, shorter than a frame prefix: % x", ProtocolError, n, prefix[:n])
			}
			return nil, &partialFrameError{got: n, want: smb.PrefixLen, err: err}
		}
		if !nbss || prefix[0] != byte(netbios.SessionKeepAlive) {
			break
		}
		if keepalives == maxSessionKeepalives {
			return nil, fmt.Errorf("%w: only NetBIOS keepalives, no answer", ProtocolError)
		}
		if prefix[1] != 0 || prefix[2] != 0 || prefix[3] != 0 {
			return nil, fmt.Errorf("%w: NetBIOS keepalive with a body: % x", ProtocolError, prefix)
		}
	}
	size, err := smb.FrameLength(prefix[:])
	if err != nil {
		return nil, fmt.Errorf("%w: not an SMB frame: % x", ProtocolError, prefix)
	}
	if size > maxLen {
		return nil, fmt.Errorf("%w: frame claims %d bytes, above the %d-byte limit: % x", ProtocolError, size, maxLen, prefix)
	}
	frame := make([]byte, smb.PrefixLen+size)
	copy(frame, prefix[:])
	n, err := io.ReadFull(r, frame[smb.PrefixLen:])
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: frame of %d bytes ended after %d: %s", ProtocolError, size, n, hexPrefix(frame[:smb.PrefixLen+n]))
		}
		return nil, &partialFrameError{got: n, want: size, err: err}
	}
	return frame, nil
}

// hexPrefix shows the first bytes of an answer for evidence.
func hexPrefix(b []byte) string {
	const show = 24
	if len(b) > show {
		return fmt.Sprintf("% x ... (%d bytes)", b[:show], len(b))
	}
	return fmt.Sprintf("% x", b)
}

// ShareResult is what the "share mount" step learned: a logon, a tree connect to OFMLOG$, the OFM files on it and,
// when asked, a tree connect to IPC$.
type ShareResult struct {
	// State is "mounted", or what stopped the check: "missing", "access denied", "logon failure", "guest refused",
	// "signing required", "refused" (another NTSTATUS), "protocol error", "timeout", "cancelled", "internal", and
	// for the connect "closed", "filtered", "unreachable" or "error".
	State string `json:"state"`
	// Step is where the check stopped: connect, negotiate, session setup, tree connect, stat.
	Step     string `json:"step"`
	Evidence string `json:"evidence"`
	Port     int    `json:"port"`
	Share    string `json:"share"`
	// Login is "guest" or `DOMAIN\user`; never the password.
	Login string `json:"login"`
	// Guest says the server gave a guest session (also when it mapped an unknown user to guest).
	Guest           bool   `json:"guest"`
	Dialect         string `json:"dialect,omitempty"`
	SigningRequired bool   `json:"signing_required"`
	// NTStatus is the status code behind a failure, such as "0xc000006d"; empty when none.
	NTStatus string `json:"ntstatus,omitempty"`
	// CredentialsNote says why given credentials were not used.
	CredentialsNote string        `json:"credentials_note,omitempty"`
	Files           []FileResult  `json:"files,omitempty"`
	IPC             *IPCResult    `json:"ipc,omitempty"`
	Duration        time.Duration `json:"-"`
}

// FileResult is one OFM file on the share.
type FileResult struct {
	Name string `json:"name"`
	// State is "present", "missing", "access denied", "protocol error" or "timeout".
	State    string    `json:"state"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified,omitzero"`
	// Printable is the start of OFMNT.ADR with every non-printable byte shown as '.'; nothing in it is
	// interpreted.
	Printable string   `json:"printable,omitempty"`
	Tail      []string `json:"tail,omitempty"`
	Evidence  string   `json:"evidence"`
}

// IPCResult is the IPC$ tree connect on the same session.
type IPCResult struct {
	// State is "connected", or "access denied", "logon failure", "guest refused", "protocol error", "timeout", ...
	State    string `json:"state"`
	Evidence string `json:"evidence"`
}

// shareStepBudget is how many scan timeouts the share check may take once connected: negotiate, two session setup
// legs, tree connects, and a create, read and close per file are a dozen round trips.
const shareStepBudget = 4

// shareCheck is the "share mount" step on a direct-TCP SMB port: it logs on (with creds, or as guest when creds is
// nil or has been disabled by logon failures), mounts OFMLOG$, stats OFMNT.LOG and OFMNT.ADR, reads the start of
// OFMNT.ADR, and tree-connects IPC$. The connect has the scan timeout; everything after it shares a budget of
// shareStepBudget timeouts, set both as the connection's deadline and as the context of every SMB call.
func (s *Scanner) shareCheck(ctx context.Context, addr netip.Addr, port uint16, creds *Credentials) ShareResult {
	return s.shareCheckOn(ctx, addr, int(port), s.tcpOpener(addr, port), creds)
}

// shareCheck139 is the "share mount" step over a NetBIOS session on TCP 139, as NT-era hosts serve SMB: it requests
// a session to calledName (the name SMB over 139 answered to) and then runs the same check on it. After a positive
// session response, SMB messages travel in NetBIOS session messages, whose 4-byte header (type 0, then the length)
// is the direct-TCP header for every frame shorter than 128 KiB, which is all this check exchanges; go-smb2 needs no
// other transport.
func (s *Scanner) shareCheck139(ctx context.Context, addr netip.Addr, calledName string, creds *Credentials) ShareResult {
	return s.shareCheckOn(ctx, addr, int(s.nbssPort), s.sessionOpener(addr, calledName, nil), creds)
}

// shareCheckOn runs the share check on the connection open gives.
func (s *Scanner) shareCheckOn(ctx context.Context, addr netip.Addr, port int, open smbOpen, creds *Credentials) (r ShareResult) {
	start := time.Now()
	outcome := logonUnknown
	r = ShareResult{Port: port, Share: smb.DefaultShare, Login: "guest", Step: "connect"}
	prefix := fmt.Sprintf("share mount %d", port)
	defer func() { r.Duration = time.Since(start) }()

	req := smb.ShareRequest{Host: addr.String(), ConnectIPC: true, ReadLogLines: s.opts.ReadLog}
	if creds != nil && creds.User != "" {
		attempt, err := creds.begin(ctx)
		switch {
		case errors.Is(err, errCredentialsDisabled):
			r.CredentialsNote = creds.disabledNote()
		case err != nil:
			r.State, r.Evidence = StateError, prefix+": scan cancelled"
			return r
		default:
			// Every return, a panic included, frees the slot; only a logon answer changes the count.
			defer func() { attempt.end(outcome) }()
			req.User, req.Domain, req.Password = creds.User, creds.Domain, creds.secret()
			r.Login = req.Login()
		}
	}

	conn, state, evidence := open(ctx)
	if conn == nil {
		r.State, r.Evidence = state, withNote(prefix+": "+evidence, r.CredentialsNote)
		return r
	}
	defer conn.Close()
	budget := time.Duration(shareStepBudget) * s.opts.Timeout
	conn.SetDeadline(time.Now().Add(budget))
	bctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()

	rep := smb.CheckShare(bctx, conn, req)
	outcome = logonOutcomeOf(rep)
	r.fill(rep)
	r.Evidence = withNote(prefix+": "+rep.Evidence, r.CredentialsNote)
	return r
}

// fill copies a share report into r.
func (r *ShareResult) fill(rep smb.ShareReport) {
	r.State, r.Step, r.Login, r.Guest = rep.State, rep.Step, rep.Login, rep.Guest
	r.Dialect, r.SigningRequired = rep.Dialect, rep.SigningRequired
	if rep.NTStatus != 0 {
		r.NTStatus = fmt.Sprintf("0x%08x", rep.NTStatus)
	}
	for _, f := range rep.Files {
		r.Files = append(r.Files, FileResult{
			Name: f.Name, State: f.State, Size: f.Size, Modified: f.Modified, Printable: f.Printable, Tail: f.Tail, Evidence: f.Evidence,
		})
	}
	if rep.IPC != nil {
		r.IPC = &IPCResult{State: rep.IPC.State, Evidence: rep.IPC.Evidence}
	}
}

// logonOutcomeOf says what a share check proved about the credentials it used. A logon failure counts even when
// the server gave it before the password was sent (the first session setup leg): counting too much only stops the
// credentials sooner. A session the server mapped to guest proves nothing about the password.
func logonOutcomeOf(rep smb.ShareReport) logonOutcome {
	switch {
	case rep.NTStatus == statusAccountLockedOut:
		return logonLockedOut
	case rep.NTStatus == statusLogonFailure && rep.Step == smb.StepSessionSetup:
		return logonFailed
	case rep.LoggedOn() && !rep.Guest:
		return logonAccepted
	}
	return logonUnknown
}

// withNote adds a note about the credentials to evidence.
func withNote(evidence, note string) string {
	if note == "" {
		return evidence
	}
	return evidence + " (" + note + ")"
}
