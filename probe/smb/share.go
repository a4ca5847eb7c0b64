package smb

// This is the only non-test file that imports go-smb2 (github.com/hirochachacha/go-smb2 v1.1.0). Replacing it, for
// example with the github.com/cloudsoda/go-smb2 fork, should touch this file and its test alone.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	smb2 "github.com/hirochachacha/go-smb2"

	vocab "github.com/ofmprobe/ofmprobe/probe/status"
)

// File names and defaults of an OFM share check.
const (
	// DefaultShare is the share the OFM service keeps its log and address file on.
	DefaultShare = "OFMLOG$"
	// LogFile is the OFM service log; AddressFile holds the service's TCP/IP port information, in a format no
	// public source describes.
	LogFile     = "OFMNT.LOG"
	AddressFile = "OFMNT.ADR"
	// DefaultADRLimit is how much of AddressFile a check reads by default.
	DefaultADRLimit = 4096
	// maxADRLimit caps ShareRequest.ADRLimit.
	maxADRLimit = 64 << 10
	// maxTailLines and tailWindow bound the tail of LogFile: at most that many lines from the last tailWindow bytes.
	maxTailLines = 1000
	tailWindow   = 64 << 10
	// maxLineLen cuts long log lines.
	maxLineLen = 512
	// shareFrameLimit bounds one message from the server. A check reads at most 64 KiB at a time and never lists a
	// directory, so no answer it expects comes near this.
	shareFrameLimit = 256 << 10
	// workstation is how the check introduces itself in the NTLM messages, for the server's logs.
	workstation = "OFMPROBE"
)

// The steps of a share check, in order.
const (
	StepNegotiate    = "negotiate"
	StepSessionSetup = "session setup"
	StepTreeConnect  = "tree connect"
	StepStat         = "stat"
)

// The states of a share check, a file and the IPC$ tree connect, from the one vocabulary.
const (
	StateMounted       = vocab.Mounted
	StateMissing       = vocab.Missing
	StateAccessDenied  = vocab.AccessDenied
	StateLogonFailure  = vocab.LogonFailure
	StateGuestRefused  = vocab.GuestRefused
	StateSigningNeeded = vocab.SigningRequired
	// StateRefused is an NTSTATUS refusal this package has no better word for; the evidence names the status.
	StateRefused       = vocab.Refused
	StateProtocolError = vocab.ProtocolError
	StateTimeout       = vocab.Timeout
	StateCancelled     = vocab.Cancelled
	// StateInternal is a failure inside the SMB client library that the server did not cause.
	StateInternal = vocab.Internal
	// StatePresent is a file that exists; StateConnected an IPC$ tree connect that worked.
	StatePresent   = vocab.Present
	StateConnected = vocab.Connected
)

// NTSTATUS values this file names (MS-ERREF §2.3).
const (
	statusPending                = 0x00000103
	statusMoreProcessingRequired = 0xC0000016
	statusAccessDenied           = 0xC0000022
	statusObjectNameNotFound     = 0xC0000034
	statusObjectPathNotFound     = 0xC000003A
	statusLogonFailure           = 0xC000006D
	statusAccountRestriction     = 0xC000006E
	statusInvalidLogonHours      = 0xC000006F
	statusInvalidWorkstation     = 0xC0000070
	statusPasswordExpired        = 0xC0000071
	statusAccountDisabled        = 0xC0000072
	statusBadNetworkName         = 0xC00000CC
	statusAccountExpired         = 0xC0000193
	statusPasswordMustChange     = 0xC0000224
	statusAccountLockedOut       = 0xC0000234
)

var shareStatusNames = map[uint32]string{
	statusAccessDenied:       "STATUS_ACCESS_DENIED",
	statusObjectNameNotFound: "STATUS_OBJECT_NAME_NOT_FOUND",
	statusObjectPathNotFound: "STATUS_OBJECT_PATH_NOT_FOUND",
	statusLogonFailure:       "STATUS_LOGON_FAILURE",
	statusAccountRestriction: "STATUS_ACCOUNT_RESTRICTION",
	statusInvalidLogonHours:  "STATUS_INVALID_LOGON_HOURS",
	statusInvalidWorkstation: "STATUS_INVALID_WORKSTATION",
	statusPasswordExpired:    "STATUS_PASSWORD_EXPIRED",
	statusAccountDisabled:    "STATUS_ACCOUNT_DISABLED",
	statusBadNetworkName:     "STATUS_BAD_NETWORK_NAME",
	statusAccountExpired:     "STATUS_ACCOUNT_EXPIRED",
	statusPasswordMustChange: "STATUS_PASSWORD_MUST_CHANGE",
	statusAccountLockedOut:   "STATUS_ACCOUNT_LOCKED_OUT",
	0xC0000203:               "STATUS_USER_SESSION_DELETED",
	0xC000035C:               "STATUS_NETWORK_SESSION_EXPIRED",
	0xC0000205:               "STATUS_INSUFF_SERVER_RESOURCES",
}

// statusText formats an NTSTATUS with its name when known, such as "STATUS_LOGON_FAILURE, 0xc000006d".
func statusText(code uint32) string {
	name, ok := shareStatusNames[code]
	if !ok {
		name, ok = statusNames[code]
	}
	if !ok {
		return fmt.Sprintf("NTSTATUS 0x%08x", code)
	}
	return fmt.Sprintf("%s, 0x%08x", name, code)
}

// ShareRequest says which share to check and how to log on.
type ShareRequest struct {
	// Host is the server's bare address or name, without a port; it goes into the UNC path \\Host\Share. Empty
	// takes the connection's remote address.
	Host string
	// Share defaults to DefaultShare.
	Share string
	// User, Domain and Password log on with NTLMv2. An empty User logs on as "guest" with an empty password: go-smb2
	// refuses an empty user, and Samba with "map to guest = bad user" or Windows with the Guest account enabled
	// give an unknown user a guest session.
	User, Domain, Password string
	// Files are stat'ed on the share; nil means LogFile and AddressFile.
	Files []string
	// ReadLogLines asks for the last lines of LogFile; zero reads none.
	ReadLogLines int
	// ADRLimit bounds how much of AddressFile is read and shown; zero means DefaultADRLimit, negative reads
	// nothing.
	ADRLimit int
	// ConnectIPC also tree-connects IPC$ (named pipes) on the same session.
	ConnectIPC bool
}

// Format prints r with the password replaced, for every verb.
func (r ShareRequest) Format(f fmt.State, verb rune) {
	if r.Password != "" {
		r.Password = "[redacted]"
	}
	type plain ShareRequest // no Format method: prints field by field
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprintf(f, "%#v", plain(r))
	case verb == 'v' && f.Flag('+'):
		fmt.Fprintf(f, "%+v", plain(r))
	default:
		fmt.Fprintf(f, "%v", plain(r))
	}
}

// guest reports whether r logs on as guest.
func (r ShareRequest) guest() bool { return r.User == "" }

// Login names the account r logs on with: "guest" or `DOMAIN\user`.
func (r ShareRequest) Login() string {
	switch {
	case r.guest():
		return "guest"
	case r.Domain == "":
		return r.User
	}
	return r.Domain + `\` + r.User
}

// ShareReport is what a share check observed.
type ShareReport struct {
	// State is StateMounted when the share was mounted and every file stat'ed (each file has its own state), or
	// the failure that stopped the check at Step.
	State vocab.State
	// Step is the last step attempted: StepNegotiate, StepSessionSetup, StepTreeConnect or StepStat.
	Step     string
	Evidence string
	// Login is "guest" or `DOMAIN\user`; never the password.
	Login string
	// Guest says that the server gave a guest session, whatever Login asked for.
	Guest bool
	// Dialect is the SMB2 dialect the session runs, when negotiate got that far.
	Dialect string
	// SigningRequired says the server's negotiate answer required signing.
	SigningRequired bool
	// NTStatus is the status code behind a failure, or zero.
	NTStatus uint32
	Files    []FileReport
	// IPC is the IPC$ tree connect; nil when it was not asked for.
	IPC *IPCReport
}

// LoggedOn reports whether the session setup succeeded.
func (r ShareReport) LoggedOn() bool {
	return r.State == StateMounted || (r.Step != StepNegotiate && r.Step != StepSessionSetup && r.Step != "")
}

// FileReport is what a share check learned about one file.
type FileReport struct {
	Name string
	// State is StatePresent, StateMissing, StateAccessDenied, StateProtocolError or StateTimeout.
	State    vocab.State
	Size     int64
	Modified time.Time
	// Printable is the start of AddressFile (up to ADRLimit bytes) with every byte outside printable ASCII shown as
	// '.'. Nothing in it is interpreted.
	Printable string
	// Tail is the last lines of LogFile, when asked for, made printable the same way.
	Tail     []string
	Evidence string
}

// IPCReport is the IPC$ tree connect.
type IPCReport struct {
	// State is StateConnected, or the failure: StateAccessDenied, StateLogonFailure, StateProtocolError, ...
	State    vocab.State
	Evidence string
}

// CheckShare logs on to the SMB2 server at the other end of conn, mounts \\Host\Share and stats the files, as
// req asks. The caller dials conn, sets its deadline to bound the whole check, and closes it afterwards, which
// also ends the SMB client's goroutines; ctx bounds every call into the client.
//
// The steps:
//  1. negotiate and session setup (go-smb2 does both in one call), as guest or with req's user;
//  2. tree connect to \\Host\Share;
//  3. stat each file; read the start of AddressFile and, when asked, the tail of LogFile;
//  4. when asked, tree connect to \\Host\IPC$ on the same session, even if the share was missing.
//
// go-smb2 reads from conn through a FrameConn, so a malformed frame is an error and not a crash, and through a
// guard that refuses the few well-formed frames go-smb2 v1.1.0 still mishandles. A panic of the client in the
// calling goroutine becomes a protocol error. Directories are never listed. The password appears in no field or
// text of the report.
//
// The check never uses SMB3 encryption (see serverSaid.note for why and how): a session or share the server wants
// encrypted is reported as StateRefused with evidence that says so, at the step where the server said it.
func CheckShare(ctx context.Context, conn net.Conn, req ShareRequest) (rep ShareReport) {
	if req.Share == "" {
		req.Share = DefaultShare
	}
	if req.Files == nil {
		req.Files = []string{LogFile, AddressFile}
	}
	if req.Host == "" {
		req.Host = remoteHost(conn)
	}
	rep.Login = req.Login()
	guard := newGuardConn(NewFrameConn(conn, shareFrameLimit))
	rep.Step = StepNegotiate
	defer func() {
		if r := recover(); r != nil {
			if rep.Step == StepNegotiate { // inside go-smb2's DialContext
				rep.Step = guard.said().loginStep()
			}
			rep.State = StateProtocolError
			rep.Evidence = fmt.Sprintf("%s: the SMB client failed on the server's answer (%v)", rep.Step, r)
			if req.ConnectIPC && rep.IPC == nil {
				rep.IPC = &IPCReport{State: rep.State, Evidence: fmt.Sprintf("IPC$ not tried: %s failed", rep.Step)}
			}
		}
	}()

	user, password := req.User, req.Password
	if req.guest() {
		user, password = "guest", ""
	}
	dialer := &smb2.Dialer{Initiator: &smb2.NTLMInitiator{User: user, Password: password, Domain: req.Domain, Workstation: workstation}}
	session, err := dialer.DialContext(ctx, guard)
	said := guard.said()
	rep.Step = said.loginStep()
	rep.Dialect, rep.SigningRequired = said.dialectName(), said.signingRequired
	if err != nil {
		rep.fail(describeFailure(rep.Step, err, said, req.guest()))
		if req.ConnectIPC {
			rep.IPC = &IPCReport{State: rep.State, Evidence: fmt.Sprintf("IPC$ not tried: %s failed", rep.Step)}
		}
		return rep
	}
	rep.Guest = said.guestSession()
	session = session.WithContext(ctx)
	who := "as " + rep.Login
	switch {
	case req.guest():
		who = "with a guest login"
	case rep.Guest:
		who = fmt.Sprintf("as guest (the server mapped %s to its guest account)", rep.Login)
	}
	if rep.Guest && said.signingRequired {
		who += " (the server requires signing, yet let this guest session go unsigned; Windows clients that require signing refuse guest sessions)"
	}

	rep.Step = StepTreeConnect
	unc := `\\` + req.Host + `\` + req.Share
	share, err := session.Mount(unc)
	switch {
	case err != nil:
		rep.fail(describeFailure(StepTreeConnect, err, guard.said(), req.guest()))
		rep.Evidence = fmt.Sprintf("%s %s: %s", unc, who, rep.Evidence)
	case guard.said().shareFlags&shareFlagEncryptData != 0:
		// go-smb2 would encrypt every request on this tree; none is sent, and the session stays usable for IPC$.
		rep.fail(StateRefused, fmt.Sprintf("%s %s: %s; the files were not checked", unc, who, shareEncrypted), 0)
	default:
		share = share.WithContext(ctx)
		rep.Step = StepStat
		rep.Files = checkFiles(share, req)
		rep.State = StateMounted
		var parts []string
		for _, f := range rep.Files {
			parts = append(parts, f.Evidence)
		}
		rep.Evidence = fmt.Sprintf("%s mounted %s; %s", unc, who, strings.Join(parts, "; "))
	}
	if req.ConnectIPC {
		if refused := guard.said().refused; refused != nil {
			// The guard has given up the connection: go-smb2 would only get the same error again.
			state, evidence, _ := describeTransport(rep.Step, refused)
			rep.IPC = &IPCReport{State: state, Evidence: "IPC$ not tried: " + evidence}
			return rep
		}
		rep.IPC = connectIPC(session, `\\`+req.Host+`\IPC$`, guard, req.guest())
	}
	return rep
}

// fail sets r's state, evidence and status from a described failure.
func (r *ShareReport) fail(state vocab.State, evidence string, status uint32) {
	r.State, r.Evidence, r.NTStatus = state, evidence, status
}

// remoteHost returns the bare address of conn's peer.
func remoteHost(conn net.Conn) string {
	addr := conn.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// connectIPC tree-connects IPC$ on session.
func connectIPC(session *smb2.Session, unc string, guard *guardConn, guest bool) *IPCReport {
	if _, err := session.Mount(unc); err != nil {
		state, evidence, _ := describeFailure(StepTreeConnect, err, guard.said(), guest)
		return &IPCReport{State: state, Evidence: unc + ": " + evidence}
	}
	return &IPCReport{State: StateConnected, Evidence: unc + ": connected (named pipes reachable)"}
}

// checkFiles stats every file of req on share and reads what req asks of it.
func checkFiles(share *smb2.Share, req ShareRequest) []FileReport {
	files := make([]FileReport, 0, len(req.Files))
	for _, name := range req.Files {
		f := FileReport{Name: name}
		fi, err := share.Stat(name)
		if err != nil {
			f.State, f.Evidence, _ = describeFailure(StepStat, err, serverSaid{}, req.guest())
			f.Evidence = name + ": " + f.Evidence
			files = append(files, f)
			continue
		}
		f.State, f.Size, f.Modified = StatePresent, fi.Size(), fi.ModTime().UTC()
		f.Evidence = fmt.Sprintf("%s present, %d bytes, modified %s", name, f.Size, f.Modified.Format(time.RFC3339))
		switch {
		case strings.EqualFold(name, AddressFile) && req.ADRLimit >= 0:
			limit := req.ADRLimit
			if limit == 0 {
				limit = DefaultADRLimit
			}
			limit = min(limit, maxADRLimit)
			data, err := readRange(share, name, 0, min(int64(limit), f.Size))
			if err != nil {
				_, ev, _ := describeFailure(StepStat, err, serverSaid{}, req.guest())
				f.Evidence += "; could not read it: " + ev
			} else {
				f.Printable = printable(data)
			}
		case strings.EqualFold(name, LogFile) && req.ReadLogLines > 0:
			n := min(int64(tailWindow), f.Size)
			data, err := readRange(share, name, f.Size-n, n)
			if err != nil {
				_, ev, _ := describeFailure(StepStat, err, serverSaid{}, req.guest())
				f.Evidence += "; could not read it: " + ev
			} else {
				f.Tail = tailLines(data, min(req.ReadLogLines, maxTailLines), f.Size > n)
			}
		}
		files = append(files, f)
	}
	return files
}

// readRange reads n bytes of the file name at off; a file shorter than it says gives what there is.
func readRange(share *smb2.Share, name string, off, n int64) ([]byte, error) {
	if n <= 0 {
		return nil, nil
	}
	f, err := share.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	got, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:max(got, 0)], nil
}

// printable shows b as text: every byte outside printable ASCII becomes '.', one character per byte.
func printable(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '.'
		}
		out[i] = c
	}
	return string(out)
}

// tailLines returns the last n lines of b, each made printable and cut to maxLineLen. When cut says b starts inside
// the file, its first, partial line is dropped.
func tailLines(b []byte, n int, cut bool) []string {
	lines := bytes.Split(b, []byte("\n"))
	if cut && len(lines) > 1 {
		lines = lines[1:]
	}
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		l = bytes.TrimSuffix(l, []byte("\r"))
		if len(l) > maxLineLen {
			l = l[:maxLineLen]
		}
		out = append(out, printable(l))
	}
	return out
}

// describeFailure turns an error of go-smb2 at step into a state, plain-language evidence and the NTSTATUS behind
// it (zero when none). said is what the guard saw the server say; guest is whether the check logged on as guest.
func describeFailure(step string, err error, said serverSaid, guest bool) (state vocab.State, evidence string, status uint32) {
	var (
		respErr    *smb2.ResponseError
		invalid    *smb2.InvalidResponseError
		transport  *smb2.TransportError
		ctxErr     *smb2.ContextError
		internal   *smb2.InternalError
		netErr     net.Error
		statusCode uint32
	)
	switch {
	case errors.As(err, &respErr):
		statusCode = respErr.Code
	case errors.Is(err, os.ErrPermission):
		// go-smb2 turns STATUS_ACCESS_DENIED into os.ErrPermission.
		statusCode = statusAccessDenied
	case errors.Is(err, os.ErrNotExist):
		// go-smb2 turns STATUS_OBJECT_NAME_NOT_FOUND and STATUS_OBJECT_PATH_NOT_FOUND into os.ErrNotExist.
		statusCode = statusObjectNameNotFound
	case errors.As(err, &invalid):
		// A first session setup leg that fails comes back as "expected status ..., got ...": take the status the
		// guard saw instead of parsing the text.
		if step == StepSessionSetup && isFailureStatus(said.lastStatus) {
			statusCode = said.lastStatus
			break
		}
		if strings.Contains(invalid.Message, "signing") {
			return StateSigningNeeded, fmt.Sprintf("%s: the server requires signing, which a guest session cannot do (%s)", step, invalid.Message), 0
		}
		return StateProtocolError, fmt.Sprintf("%s: the server's answer made no sense to the SMB client (%s)", step, invalid.Message), 0
	case errors.As(err, &transport):
		return describeTransport(step, transport.Err)
	case errors.As(err, &ctxErr):
		if errors.Is(ctxErr.Err, context.Canceled) {
			return StateCancelled, step + ": scan cancelled", 0
		}
		return StateTimeout, step + ": no answer in the time allowed for the share check", 0
	case errors.As(err, &internal):
		return StateInternal, fmt.Sprintf("%s: the SMB client failed by itself (%s)", step, internal.Message), 0
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return StateTimeout, step + ": no answer in the time allowed for the share check", 0
	case errors.Is(err, context.Canceled):
		return StateCancelled, step + ": scan cancelled", 0
	default:
		return StateProtocolError, fmt.Sprintf("%s: %v", step, err), 0
	}
	state, evidence = describeStatus(step, statusCode, said, guest)
	return state, evidence, statusCode
}

// isFailureStatus reports whether an NTSTATUS is an error rather than success or an interim status.
func isFailureStatus(code uint32) bool {
	return code>>30 == 3 && code != statusMoreProcessingRequired
}

// describeStatus words an NTSTATUS answer at step.
func describeStatus(step string, code uint32, said serverSaid, guest bool) (vocab.State, string) {
	st := statusText(code)
	login := step == StepSessionSetup
	switch code {
	case statusBadNetworkName:
		return StateMissing, fmt.Sprintf("the server has no share of that name (%s)", st)
	case statusObjectNameNotFound, statusObjectPathNotFound:
		return StateMissing, fmt.Sprintf("not found (%s)", st)
	case statusAccessDenied:
		switch {
		case guest && said.signingRequired && (login || step == StepTreeConnect):
			return StateSigningNeeded, fmt.Sprintf("%s: access denied (%s); the server requires signing, which a guest session cannot do", step, st)
		case guest && login:
			return StateGuestRefused, fmt.Sprintf("session setup: the server refused the guest login (%s)", st)
		case guest:
			return StateAccessDenied, fmt.Sprintf("access denied to guest (%s): credentials are needed", st)
		}
		return StateAccessDenied, fmt.Sprintf("access denied (%s)", st)
	case statusLogonFailure, statusAccountDisabled, statusAccountRestriction:
		if guest {
			return StateGuestRefused, fmt.Sprintf("%s: the server refused the guest login (%s)", step, st)
		}
		if code == statusLogonFailure {
			return StateLogonFailure, fmt.Sprintf("%s: wrong user name or password (%s)", step, st)
		}
		return StateLogonFailure, fmt.Sprintf("%s: the server refused the account (%s)", step, st)
	case statusAccountLockedOut:
		return StateLogonFailure, fmt.Sprintf("%s: the account is locked out (%s)", step, st)
	case statusInvalidLogonHours, statusInvalidWorkstation, statusPasswordExpired, statusAccountExpired, statusPasswordMustChange:
		return StateLogonFailure, fmt.Sprintf("%s: the server refused the account (%s)", step, st)
	}
	return StateRefused, fmt.Sprintf("%s: the server refused (%s)", step, st)
}

// describeTransport words a connection error seen by go-smb2 (the cause inside a *smb2.TransportError, which has no
// Unwrap).
func describeTransport(step string, err error) (vocab.State, string, uint32) {
	var (
		netErr    net.Error
		encrypted *encryptionRefused
	)
	switch {
	case errors.As(err, &encrypted):
		return StateRefused, step + ": " + encrypted.reason, 0
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return StateTimeout, step + ": no answer in the time allowed for the share check", 0
	case errors.Is(err, ErrShort), errors.Is(err, ErrFramePrefix), errors.Is(err, ErrFrameLength), errors.Is(err, ErrMagic),
		errors.Is(err, ErrStructureSize), errors.Is(err, ErrNextCommand), errors.Is(err, ErrTransform), errors.Is(err, ErrGuard):
		return StateProtocolError, fmt.Sprintf("%s: the server sent a malformed SMB frame (%v)", step, err), 0
	case errors.Is(err, io.ErrUnexpectedEOF):
		return StateProtocolError, step + ": the server closed the connection inside a frame", 0
	case errors.Is(err, io.EOF) && step == StepNegotiate:
		return StateProtocolError, step + ": the server closed the connection (an SMB1-only server does that to an SMB2 negotiate)", 0
	case errors.Is(err, io.EOF):
		return StateProtocolError, step + ": the server closed the connection", 0
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE):
		return StateProtocolError, step + ": the server reset the connection", 0
	case errors.Is(err, net.ErrClosed):
		return StateCancelled, step + ": the connection was closed by ofmprobe", 0
	}
	return StateProtocolError, fmt.Sprintf("%s: connection error (%v)", step, err), 0
}

// ErrGuard means a well-formed frame that go-smb2 v1.1.0 would mishandle: an encrypted frame before any session
// was set up, or negotiate answers without end.
var ErrGuard = errors.New("smb: frame refused by the client guard")

// ErrEncryption means the server wants SMB3 encryption (MS-SMB2 §3.1.4.3), which the share check does not use: it
// sent an encrypted frame once a session was set up, or its session setup answer set
// SMB2_SESSION_FLAG_ENCRYPT_DATA. The guard refuses such a frame; the error wrapping ErrEncryption is an
// *encryptionRefused whose reason CheckShare shows.
var ErrEncryption = errors.New("smb: the server requires SMB3 encryption, which ofmprobe does not use")

// encryptionRefused is a frame the guard refused because of encryption; reason is the sentence for the report.
type encryptionRefused struct{ reason string }

func (e *encryptionRefused) Error() string { return "smb: " + e.reason }
func (e *encryptionRefused) Unwrap() error { return ErrEncryption }

// The reasons of an encryptionRefused, and the evidence of a share that wants encryption.
const (
	transformRefused = "the server encrypted its answer (an SMB3 transform header, FD 'SMB'), and ofmprobe does not use SMB3 encryption"
	sessionEncrypted = "the server requires SMB3 encryption for this session (SMB2_SESSION_FLAG_ENCRYPT_DATA), which ofmprobe does not use"
	shareEncrypted   = "the server requires SMB3 encryption for this share (SMB2_SHAREFLAG_ENCRYPT_DATA), which ofmprobe does not use"
)

// SMB2 commands the guard follows (MS-SMB2 §2.2.1.2).
const (
	commandSessionSetup = 0x0001
	commandTreeConnect  = 0x0003
	// maxNegotiates: go-smb2 sends a second NEGOTIATE after an "SMB 2.???" answer, and loops as long as the server
	// keeps answering so.
	maxNegotiates = 2
	// sessionFlagGuest and sessionFlagNull are SMB2_SESSION_FLAG_IS_GUEST and _IS_NULL (MS-SMB2 §2.2.6).
	sessionFlagGuest = 0x0001
	sessionFlagNull  = 0x0002
	// sessionFlagEncryptData is SMB2_SESSION_FLAG_ENCRYPT_DATA (MS-SMB2 §2.2.6): every later message of the session
	// must be encrypted.
	sessionFlagEncryptData = 0x0004
	// shareFlagEncryptData is SMB2_SHAREFLAG_ENCRYPT_DATA (MS-SMB2 §2.2.10): every message on the tree must be
	// encrypted.
	shareFlagEncryptData = 0x00008000
	// treeConnectRespSize is the StructureSize of a TREE_CONNECT response (MS-SMB2 §2.2.10).
	treeConnectRespSize = 16
)

// serverSaid is what the guard saw of the server's answers.
type serverSaid struct {
	negotiates      int
	dialect         Dialect
	signingRequired bool
	// sessionDone is set by a successful final SESSION_SETUP answer, with its flags.
	sessionDone  bool
	sessionFlags uint16
	// shareFlags are the ShareFlags of the last TREE_CONNECT answer, zero when it failed.
	shareFlags  uint32
	lastCommand uint16
	lastStatus  uint32
	// refused is the error of the frame the guard refused; go-smb2 gets it for every later read.
	refused error
}

// loginStep returns the step go-smb2's DialContext had reached: negotiate until a negotiate answer chose a dialect,
// then session setup.
func (s serverSaid) loginStep() string {
	if s.dialect == 0 || s.dialect == SMB2Wildcard {
		return StepNegotiate
	}
	return StepSessionSetup
}

func (s serverSaid) dialectName() string {
	if s.dialect == 0 {
		return ""
	}
	return s.dialect.String()
}

// guestSession reports whether the server gave a guest or anonymous session.
func (s serverSaid) guestSession() bool {
	return s.sessionDone && s.sessionFlags&(sessionFlagGuest|sessionFlagNull) != 0
}

// note records what the whole, checked frame says, and refuses the frames go-smb2 v1.1.0 mishandles:
//   - every encrypted frame (FD 'SMB', MS-SMB2 §2.2.41). Before a session, go-smb2 reads the transform header as an
//     SMB2 header, takes four nonce bytes for NextCommand and slices past the frame in its receiver goroutine.
//     After one, it decrypts the frame and splits the plaintext into compounded messages without any of the checks
//     FrameConn makes (conn.go runReciever, tryDecrypt), and a server knows the key whenever it knows the password,
//     as it does for the empty one of a guest login that it need not flag as guest. So this is ErrGuard before the
//     session setup and an ErrEncryption after it;
//   - a successful SESSION_SETUP answer with SMB2_SESSION_FLAG_ENCRYPT_DATA (ErrEncryption): go-smb2 would encrypt
//     everything after it and expect encrypted answers, and on a guest or SMB 2 session it has no key and
//     dereferences a nil cipher;
//   - a third NEGOTIATE answer: go-smb2 negotiates again after every "SMB 2.???" answer, without end.
//
// The negotiate request still offers encryption: go-smb2 v1.1.0 always sets SMB2_GLOBAL_CAP_ENCRYPTION
// (feature.go, conn.go makeRequest) and, with 3.1.1, an SMB2_ENCRYPTION_CAPABILITIES context for AES-128-GCM and
// AES-128-CCM, with no option to leave them out. Rewriting the request on the wire would break every signed 3.1.1
// session, since go-smb2 feeds the bytes it built into the preauth integrity hash its signing key comes from, and
// pinning a dialect without the offer (Negotiator.SpecifiedDialect) would lose the SMB 2 and 3.1.1-only servers.
// Because it is offered, a server that wants encryption says so with the ENCRYPT_DATA flags instead of a bare
// STATUS_ACCESS_DENIED, and the check reports it in those words. A server that merely prefers encryption (Samba
// "smb encrypt = desired", Windows with RejectUnencryptedAccess off) sets the same flags, so the report reads
// "requires" for it too. A share's SMB2_SHAREFLAG_ENCRYPT_DATA is recorded here and acted on by CheckShare, which
// then sends nothing on that tree, so that IPC$ can still be tried on the session.
func (s *serverSaid) note(frame []byte) error {
	if len(frame) < PrefixLen+HeaderLen {
		return fmt.Errorf("smb: frame of %d bytes: %w", len(frame), ErrShort)
	}
	msg := frame[PrefixLen:]
	le := binary.LittleEndian
	switch [4]byte(msg[:4]) {
	case magicTransform:
		if !s.sessionDone {
			return fmt.Errorf("smb: encrypted frame before any session was set up: %w", ErrGuard)
		}
		return &encryptionRefused{transformRefused}
	case magicSMB2:
	default:
		return fmt.Errorf("smb: frame starts with %s: %w", describeMagic(msg), ErrMagic)
	}
	command, status := le.Uint16(msg[12:14]), le.Uint32(msg[8:12])
	if status != statusPending {
		s.lastCommand, s.lastStatus = command, status
	}
	body := msg[HeaderLen:]
	switch command {
	case commandNegotiate:
		s.negotiates++
		if s.negotiates > maxNegotiates {
			return fmt.Errorf("smb: negotiate answer %d: %w", s.negotiates, ErrGuard)
		}
		if status == 0 && len(body) >= negotiateRespFixed && le.Uint16(body[0:2]) == negotiateRespSize {
			s.signingRequired = SecurityMode(le.Uint16(body[2:4])).Required()
			s.dialect = Dialect(le.Uint16(body[4:6]))
		}
	case commandSessionSetup:
		if status == 0 && len(body) >= 8 && le.Uint16(body[0:2]) == 9 {
			s.sessionDone, s.sessionFlags = true, le.Uint16(body[2:4])
			if s.sessionFlags&sessionFlagEncryptData != 0 {
				return &encryptionRefused{sessionEncrypted}
			}
		}
	case commandTreeConnect:
		if status != statusPending {
			s.shareFlags = 0
		}
		if status == 0 && len(body) >= 8 && le.Uint16(body[0:2]) == treeConnectRespSize {
			s.shareFlags = le.Uint32(body[4:8])
		}
	}
	return nil
}

// guardConn is the net.Conn go-smb2 reads from. It reads whole, checked frames from a FrameConn, lets serverSaid
// note each one, and serves them; a refused frame is a sticky error, as in FrameConn. Write, Close, the addresses
// and deadlines go to the FrameConn.
type guardConn struct {
	*FrameConn

	readMu sync.Mutex // one reader: go-smb2's receiver goroutine
	frame  []byte
	served int
	err    error

	saidMu sync.Mutex // separate, so that said never waits for a blocked Read
	seen   serverSaid
}

func newGuardConn(fc *FrameConn) *guardConn { return &guardConn{FrameConn: fc} }

// said returns a copy of what the server said so far.
func (g *guardConn) said() serverSaid {
	g.saidMu.Lock()
	defer g.saidMu.Unlock()
	return g.seen
}

// Read serves the bytes of the current frame, first reading and noting the next one when none is pending.
func (g *guardConn) Read(p []byte) (int, error) {
	g.readMu.Lock()
	defer g.readMu.Unlock()
	if g.served == len(g.frame) {
		if g.err != nil {
			return 0, g.err
		}
		if err := g.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, g.frame[g.served:])
	g.served += n
	return n, nil
}

// next reads one frame from the FrameConn, which hands out only whole frames that passed CheckFrame.
func (g *guardConn) next() error {
	var prefix [PrefixLen]byte
	if _, err := io.ReadFull(g.FrameConn, prefix[:]); err != nil {
		return err // nothing consumed: FrameConn serves a frame only once it has all of it
	}
	size, err := FrameLength(prefix[:])
	if err != nil {
		g.err = err
		return err
	}
	frame := make([]byte, PrefixLen+size)
	copy(frame, prefix[:])
	if _, err := io.ReadFull(g.FrameConn, frame[PrefixLen:]); err != nil {
		g.err = err
		return err
	}
	g.saidMu.Lock()
	err = g.seen.note(frame)
	if err != nil {
		g.seen.refused = err
	}
	g.saidMu.Unlock()
	if err != nil {
		g.err = err
		return err
	}
	g.frame, g.served = frame, 0
	return nil
}

// String makes a guardConn print as its peer, never as its buffers.
func (g *guardConn) String() string { return "smb conn to " + g.RemoteAddr().String() }

var _ net.Conn = (*guardConn)(nil)
