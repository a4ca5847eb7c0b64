package smb

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

	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/netbios"
	smbwire "github.com/ofmprobe/ofmprobe/probe/smb"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/steps/nbt"
)

// SMBResult is what the "smb negotiate" step learned on TCP 445 (direct) or 139 (over a NetBIOS session).
type SMBResult struct {
	State    status.State `json:"state"`
	Evidence string       `json:"evidence"`
	Port     int          `json:"port"`
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
	// Identity is who the server says it is in the NTLMSSP challenge that answers a first session setup on the same
	// connection, made after an SMB2 negotiate without credentials (no logon is attempted); nil when it gave none,
	// and IdentityEvidence says why.
	Identity         *smbwire.NTLMIdentity `json:"identity,omitempty"`
	IdentityEvidence string                `json:"identity_evidence,omitempty"`
	// RTT is the time from sending the first negotiate to its answer.
	RTT time.Duration `json:"-"`
}

// negotiateFrameLimit bounds a negotiate answer: Windows and Samba send a few hundred bytes (the SPNEGO hint and the
// 3.1.1 contexts). A longer claim is a protocol error and is never read.
const negotiateFrameLimit = 64 << 10

// maxSessionKeepalives bounds the NetBIOS keepalives skipped before an SMB answer on 139.
const maxSessionKeepalives = 8

// smbDialects are the dialects the SMB2 NEGOTIATE offers after a server answered "SMB 2.???".
var smbDialects = []smbwire.Dialect{smbwire.SMB202, smbwire.SMB210, smbwire.SMB300, smbwire.SMB302, smbwire.SMB311}

// smbOpen opens a connection ready to carry SMB messages, or returns the state and evidence of why it could not.
type smbOpen func(ctx context.Context) (conn net.Conn, state status.State, evidence string)

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
func Negotiate(ctx context.Context, env *engine.Env, addr netip.Addr, port uint16) SMBResult {
	r := SMBResult{Port: int(port)}
	prefix := fmt.Sprintf("smb negotiate %d", port)
	negotiate(ctx, env, &r, prefix, tcpOpener(env, addr, port), false)
	return r
}

// smbNegotiate139 is the "smb negotiate" step over NetBIOS on TCP 139, as NT-era hosts speak SMB: it requests a
// NetBIOS session to calledName (the host's name from node status, when known) and then to *SMBSERVER, and
// negotiates on the first session accepted, as smbNegotiate does on 445. The SMB1 check requests a session to the
// same name again.
func Negotiate139(ctx context.Context, env *engine.Env, addr netip.Addr, port uint16, calledName string) SMBResult {
	r := SMBResult{Port: int(port)}
	prefix := fmt.Sprintf("smb negotiate %d", port)
	open := sessionOpener(env, addr, port, calledName, func(name netbios.Name) { r.Called = name.String() })
	negotiate(ctx, env, &r, prefix, open, true)
	return r
}

// sessionOpener opens connections that carry SMB over a NetBIOS session on TCP 139: it requests a session to
// calledName (when known) and then to *SMBSERVER, moving on only when one is refused. Once a name is accepted,
// later connections ask for that name alone (the SMB1 check reconnects), and accepted, if set, is told which.
func sessionOpener(env *engine.Env, addr netip.Addr, port uint16, calledName string, accepted func(netbios.Name)) smbOpen {
	names := nbt.CalledNames(calledName)
	return func(ctx context.Context) (net.Conn, status.State, string) {
		var state status.State
		evidence := ""
		for _, name := range names {
			conn, st, ev := openSession(ctx, env, addr, port, name)
			if conn != nil {
				names = []netbios.Name{name}
				if accepted != nil {
					accepted(name)
				}
				return conn, "", ""
			}
			state, evidence = st, ev
			if st != status.SessionRefused {
				break
			}
		}
		return nil, state, evidence
	}
}

// openSession connects to TCP 139 and requests a NetBIOS session to called. It returns the connection after a
// positive answer, and otherwise the state and evidence of the refusal.
func openSession(ctx context.Context, env *engine.Env, addr netip.Addr, port uint16, called netbios.Name) (net.Conn, status.State, string) {
	start := time.Now()
	conn, _, err := env.DialTCP(ctx, addr, port)
	if err != nil {
		return nil, nbt.DialFailureState(err), env.ConnectFailure(err)
	}
	keep := false
	defer func() {
		if !keep {
			conn.Close()
		}
	}()
	state, evidence, _ := nbt.RequestSession(conn, called, env.Timeout(), start)
	switch state {
	case status.Positive:
		keep = true
		return conn, "", ""
	case status.Negative:
		return nil, status.SessionRefused, evidence
	case status.Timeout:
		return nil, status.Timeout, evidence
	}
	return nil, status.ProtocolError, evidence
}

// tcpOpener opens plain TCP connections for an SMB exchange, or says why it could not.
func tcpOpener(env *engine.Env, addr netip.Addr, port uint16) smbOpen {
	return func(ctx context.Context) (net.Conn, status.State, string) {
		conn, _, err := env.DialTCP(ctx, addr, port)
		if err != nil {
			return nil, nbt.DialFailureState(err), env.ConnectFailure(err)
		}
		return conn, "", ""
	}
}

// negotiate runs the exchanges of the "smb negotiate" step on connections from open and fills r.
func negotiate(ctx context.Context, env *engine.Env, r *SMBResult, prefix string, open smbOpen, nbss bool) {
	negotiateMulti(ctx, env, r, prefix, open, nbss)
	if r.Called != "" {
		prefix = fmt.Sprintf("%s (%s)", prefix, r.Called)
	}
	r.Evidence = prefix + ": " + r.Evidence
	if r.State != status.SMB2 {
		return
	}
	accepted, evidence := smb1Check(ctx, env, open, nbss)
	r.SMB1Accepted, r.SMB1Evidence = accepted, "smb1 check: "+evidence
}

// negotiateMulti sends the multi-protocol negotiate, and the SMB2 NEGOTIATE after a wildcard answer, on one
// connection.
func negotiateMulti(ctx context.Context, env *engine.Env, r *SMBResult, prefix string, open smbOpen, nbss bool) {
	conn, state, evidence := open(ctx)
	if conn == nil {
		r.State, r.Evidence = state, evidence
		return
	}
	defer conn.Close()

	start := time.Now()
	frame, err := exchange(env, conn, smbwire.AppendSMB1Negotiate(nil, smbwire.MultiProtocolDialects), nbss)
	r.RTT = time.Since(start)
	if err != nil {
		r.State, r.Evidence = exchangeFailure(env, err, "the SMB negotiate")
		return
	}
	answer, err := smbwire.ParseMultiProtocolAnswer(frame, smbwire.MultiProtocolDialects)
	if err != nil {
		r.State, r.Evidence = status.ProtocolError, fmt.Sprintf("not an SMB negotiate answer (%v): %s", err, engine.HexPrefix(frame))
		return
	}
	switch answer.Kind {
	case smbwire.AnswerSMB1Only:
		fillSMB1(r, answer.SMB1)
		r.State = status.SMB1Only
		r.Evidence = fmt.Sprintf("speaks %v, answered in %s (the SMB2 dialects offered were ignored)", answer, engine.FormatRTT(r.RTT))
		yes := true
		r.SMB1Accepted, r.SMB1Evidence = &yes, "smb1 check: SMB1 is the only protocol the server offered"
		return
	case smbwire.AnswerNoDialect:
		r.State = status.NoDialect
		r.Evidence = "an SMB server that shares none of the offered dialects (NT LM 0.12, SMB 2.002, SMB 2.???): dialect index 0xFFFF"
		return
	case smbwire.AnswerSMB2:
	default:
		r.State, r.Evidence = status.ProtocolError, fmt.Sprintf("unexpected answer %v: %s", answer, engine.HexPrefix(frame))
		return
	}
	resp := answer.SMB2
	next := uint64(1) // the MessageId of the next request on this connection
	if resp.Dialect == smbwire.SMB2Wildcard {
		// The server speaks SMB 2.1 or later and expects a fresh SMB2 NEGOTIATE (MS-SMB2 §3.3.5.3.1).
		var req smbwire.NegotiateRequest
		req.MessageID = 1
		req.Dialects = smbDialects
		req.Capabilities = smbwire.CapDFS | smbwire.CapLeasing | smbwire.CapLargeMTU | smbwire.CapEncryption
		req.Salt = make([]byte, 32)
		rand.Read(req.Salt)
		rand.Read(req.ClientGUID[:])
		frame, err := exchange(env, conn, smbwire.AppendNegotiateRequest(nil, req), nbss)
		if err != nil {
			r.State, r.Evidence = exchangeFailure(env, err, "the SMB2 negotiate that followed its SMB 2.??? answer")
			return
		}
		resp, err = smbwire.ParseNegotiateResponse(frame)
		if err != nil {
			r.State, r.Evidence = status.ProtocolError, fmt.Sprintf("not an SMB2 negotiate answer (%v): %s", err, engine.HexPrefix(frame))
			return
		}
		if err := checkNegotiateAnswer(resp, req); err != nil {
			r.State, r.Evidence = status.ProtocolError, fmt.Sprintf("%v: %s", err, engine.HexPrefix(frame))
			return
		}
		next = 2
	}
	defer identify(env, conn, r, next, nbss)
	r.State = status.SMB2
	r.Dialect = resp.Dialect.String()
	r.SigningEnabled, r.SigningRequired = resp.SecurityMode.Enabled() || resp.SecurityMode.Required(), resp.SecurityMode.Required()
	r.ServerGUID = resp.ServerGUID.String()
	r.Capabilities = resp.Capabilities.Names()
	r.Evidence = fmt.Sprintf("speaks SMB2: %v, first answer in %s", resp, engine.FormatRTT(r.RTT))
}

// identify sends the first SESSION_SETUP of an NTLM logon on a connection that has negotiated SMB2, and records the
// server's identity from the NTLMSSP challenge it answers with. It never sends the second leg: no logon is tried.
// Its failure never changes the negotiate's outcome.
func identify(env *engine.Env, conn net.Conn, r *SMBResult, messageID uint64, nbss bool) {
	if r.State != status.SMB2 {
		return
	}
	// A direct-TCP frame is also a NetBIOS session message (type 0x00, the same length field).
	frame, err := exchange(env, conn, smbwire.AppendSessionSetupNegotiate(nil, messageID), nbss)
	if err != nil {
		_, why := exchangeFailure(env, err, "the NTLM session setup")
		r.IdentityEvidence = "ntlm: " + why
		return
	}
	id, err := smbwire.ParseSessionSetupChallenge(frame)
	if err != nil {
		r.IdentityEvidence = fmt.Sprintf("ntlm: no NTLMSSP challenge in the answer to a session setup (%v)", err)
		return
	}
	r.Identity = &id
	r.IdentityEvidence = "ntlm: the server says it is " + id.String()
}

// checkNegotiateAnswer checks that an SMB2 NEGOTIATE answer fits the request: same MessageId, an offered dialect.
func checkNegotiateAnswer(resp smbwire.NegotiateResponse, req smbwire.NegotiateRequest) error {
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
func fillSMB1(r *SMBResult, a smbwire.SMB1NegotiateResponse) {
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
		{smbwire.SMB1CapUnicode, "unicode"},
		{smbwire.SMB1CapNTSMBs, "NT SMBs"},
		{smbwire.SMB1CapStatus32, "NT status codes"},
		{smbwire.SMB1CapDFS, "DFS"},
		{smbwire.SMB1CapExtendedSecurity, "extended security"},
	} {
		if c&bit.mask != 0 {
			names = append(names, bit.name)
		}
	}
	return names
}

// smb1Check offers SMB1 alone on a new connection and says whether the server accepts it; nil when that cannot be
// told (no answer, a connect failure, an answer that makes no sense).
func smb1Check(ctx context.Context, env *engine.Env, open smbOpen, nbss bool) (*bool, string) {
	yes, no := true, false
	conn, _, evidence := open(ctx)
	if conn == nil {
		return nil, "unknown, the second connection failed: " + evidence
	}
	defer conn.Close()
	frame, err := exchange(env, conn, smbwire.AppendSMB1Negotiate(nil, smbwire.SMB1OnlyDialects), nbss)
	if err != nil {
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED):
			// Windows with SMB1 off closes the connection, but so do an IPS and a connection limit: only the
			// server's explicit answer proves SMB1 disabled.
			return nil, "unknown, the server closed the connection when offered SMB1 alone (Windows does that with SMB1 off, and so do an IPS or a connection limit)"
		case status.Classify(err) == status.Timeout:
			return nil, fmt.Sprintf("unknown, no answer in %s when offered SMB1 alone", env.Timeout())
		}
		return nil, fmt.Sprintf("unknown, the answer to an SMB1-only negotiate is not valid: %v", err)
	}
	answer, err := smbwire.ParseMultiProtocolAnswer(frame, smbwire.SMB1OnlyDialects)
	if err != nil {
		return nil, fmt.Sprintf("unknown, the answer to an SMB1-only negotiate is not valid (%v): %s", err, engine.HexPrefix(frame))
	}
	switch answer.Kind {
	case smbwire.AnswerSMB1:
		return &yes, "SMB1 accepted beside SMB2: " + strings.TrimPrefix(answer.String(), answer.Kind.String()+": ")
	case smbwire.AnswerNoDialect:
		return &no, "SMB1 disabled: the server answered that no offered dialect is common (dialect index 0xFFFF)"
	}
	return nil, fmt.Sprintf("unknown, an SMB1-only negotiate was answered with %v", answer.Kind)
}

// exchange writes req on conn and reads one answer frame, each under a fresh deadline of the scan timeout.
func exchange(env *engine.Env, conn net.Conn, req []byte, nbss bool) ([]byte, error) {
	conn.SetDeadline(time.Now().Add(env.Timeout()))
	if _, err := conn.Write(req); err != nil {
		return nil, err
	}
	return readSMBFrame(conn, negotiateFrameLimit, nbss)
}

// exchangeFailure maps a failed exchange on an open connection to a state and evidence; what names the request.
func exchangeFailure(env *engine.Env, err error, what string) (status.State, string) {
	var partial *engine.PartialFrameError
	switch {
	case errors.As(err, &partial) && status.Classify(partial.Err) == status.Timeout:
		return status.Timeout, fmt.Sprintf("connected, but the answer to %s stopped after %d of %d bytes and did not finish in %s",
			what, partial.Got, partial.Want, env.Timeout())
	case status.Classify(err) == status.Timeout:
		return status.Timeout, fmt.Sprintf("connected, but no answer to %s in %s", what, env.Timeout())
	case status.Classify(err) == status.Cancelled:
		return status.Error, "scan cancelled"
	case errors.Is(err, status.ErrProtocol):
		return status.ProtocolError, fmt.Sprintf("not an SMB answer to %s: %v", what, err)
	case errors.Is(err, io.EOF):
		return status.ProtocolError, fmt.Sprintf("the server closed the connection without answering %s", what)
	case status.Classify(err) == status.Reset:
		return status.ProtocolError, fmt.Sprintf("the server reset the connection without answering %s", what)
	}
	return status.ProtocolError, fmt.Sprintf("the exchange for %s failed: %v", what, engine.ErrnoText(err))
}

// readSMBFrame reads one direct-TCP frame (MS-SMB2 §2.1), prefix included, from r: a zero byte and a 24-bit length,
// then the message. A length above maxLen is refused before anything is allocated. With nbss set the frames are
// NetBIOS session messages (RFC 1002 §4.3.1: type 0x00 and the same length layout for the sizes allowed here) and
// session keepalives (type 0x85) are skipped. Errors that are the peer's fault wrap status.ErrProtocol; an error of r is
// returned as it is when nothing was read, and wrapped in a *engine.PartialFrameError inside a frame.
func readSMBFrame(r io.Reader, maxLen int, nbss bool) ([]byte, error) {
	var prefix [smbwire.PrefixLen]byte
	for keepalives := 0; ; keepalives++ {
		n, err := io.ReadFull(r, prefix[:])
		if err != nil {
			if n == 0 {
				return nil, err
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("%w: %d-byte answer, shorter than a frame prefix: % x", status.ErrProtocol, n, prefix[:n])
			}
			return nil, &engine.PartialFrameError{Got: n, Want: smbwire.PrefixLen, Err: err}
		}
		if !nbss || prefix[0] != byte(netbios.SessionKeepAlive) {
			break
		}
		if keepalives == maxSessionKeepalives {
			return nil, fmt.Errorf("%w: only NetBIOS keepalives, no answer", status.ErrProtocol)
		}
		if prefix[1] != 0 || prefix[2] != 0 || prefix[3] != 0 {
			return nil, fmt.Errorf("%w: NetBIOS keepalive with a body: % x", status.ErrProtocol, prefix)
		}
	}
	size, err := smbwire.FrameLength(prefix[:])
	if err != nil {
		return nil, fmt.Errorf("%w: not an SMB frame: % x", status.ErrProtocol, prefix)
	}
	if size > maxLen {
		return nil, fmt.Errorf("%w: frame claims %d bytes, above the %d-byte limit: % x", status.ErrProtocol, size, maxLen, prefix)
	}
	frame := make([]byte, smbwire.PrefixLen+size)
	copy(frame, prefix[:])
	n, err := io.ReadFull(r, frame[smbwire.PrefixLen:])
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: frame of %d bytes ended after %d: %s", status.ErrProtocol, size, n, engine.HexPrefix(frame[:smbwire.PrefixLen+n]))
		}
		return nil, &engine.PartialFrameError{Got: n, Want: size, Err: err}
	}
	return frame, nil
}
