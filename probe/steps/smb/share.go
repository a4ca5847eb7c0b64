package smb

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/engine"
	smbwire "github.com/ofmprobe/ofmprobe/probe/smb"
	"github.com/ofmprobe/ofmprobe/probe/status"
)

// ShareResult is what the "share mount" step learned: a logon, a tree connect to OFMLOG$, the OFM files on it and,
// when asked, a tree connect to IPC$.
type ShareResult struct {
	// State is "mounted", or what stopped the check: "missing", "access denied", "logon failure", "guest refused",
	// "signing required", "refused" (another NTSTATUS), "protocol error", "timeout", "cancelled", "internal", and
	// for the connect "closed", "filtered", "unreachable" or "error".
	State status.State `json:"state"`
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
	State    status.State `json:"state"`
	Size     int64        `json:"size"`
	Modified time.Time    `json:"modified,omitzero"`
	// Printable is the start of OFMNT.ADR with every non-printable byte shown as '.'; nothing in it is
	// interpreted.
	Printable string   `json:"printable,omitempty"`
	Tail      []string `json:"tail,omitempty"`
	Evidence  string   `json:"evidence"`
}

// IPCResult is the IPC$ tree connect on the same session.
type IPCResult struct {
	// State is "connected", or "access denied", "logon failure", "guest refused", "protocol error", "timeout", ...
	State    status.State `json:"state"`
	Evidence string       `json:"evidence"`
}

// shareStepBudget is how many scan timeouts the share check may take once connected: negotiate, two session setup
// legs, tree connects, and a create, read and close per file are a dozen round trips.
const shareStepBudget = 4

// shareCheck is the "share mount" step on a direct-TCP SMB port: it logs on (with creds, or as guest when creds is
// nil or has been disabled by logon failures), mounts OFMLOG$, stats OFMNT.LOG and OFMNT.ADR, reads the start of
// OFMNT.ADR, and tree-connects IPC$. The connect has the scan timeout; everything after it shares a budget of
// shareStepBudget timeouts (twice that on a host whose answers came on retries), set both as the connection's
// deadline and as the context of every SMB call.
func CheckShare(ctx context.Context, env *engine.Env, addr netip.Addr, port uint16, creds *Credentials, readLog int) ShareResult {
	return shareCheckOn(ctx, env, addr, nil, int(port), tcpOpener(env, addr, port), creds, readLog)
}

// checkShare is CheckShare for a host of the scan, whose budget grows when its path loses packets.
func checkShare(ctx context.Context, env *engine.Env, h *engine.Host, port uint16, creds *Credentials, readLog int) ShareResult {
	return shareCheckOn(ctx, env, h.Addr, h, int(port), tcpOpener(env, h.Addr, port), creds, readLog)
}

// shareCheck139 is the "share mount" step over a NetBIOS session on TCP 139, as NT-era hosts serve SMB: it requests
// a session to calledName (the name SMB over 139 answered to) and then runs the same check on it. After a positive
// session response, SMB messages travel in NetBIOS session messages, whose 4-byte header (type 0, then the length)
// is the direct-TCP header for every frame shorter than 128 KiB, which is all this check exchanges; go-smb2 needs no
// other transport.
func CheckShare139(ctx context.Context, env *engine.Env, addr netip.Addr, port uint16, calledName string, creds *Credentials, readLog int) ShareResult {
	return shareCheckOn(ctx, env, addr, nil, int(port), sessionOpener(env, addr, port, calledName, nil), creds, readLog)
}

// checkShare139 is CheckShare139 for a host of the scan.
func checkShare139(ctx context.Context, env *engine.Env, h *engine.Host, port uint16, calledName string, creds *Credentials, readLog int) ShareResult {
	return shareCheckOn(ctx, env, h.Addr, h, int(port), sessionOpener(env, h.Addr, port, calledName, nil), creds, readLog)
}

// shareCheckOn runs the share check on the connection open gives.
func shareCheckOn(ctx context.Context, env *engine.Env, addr netip.Addr, h *engine.Host, port int, open smbOpen, creds *Credentials, readLog int) (r ShareResult) {
	start := time.Now()
	outcome := logonUnknown
	r = ShareResult{Port: port, Share: smbwire.DefaultShare, Login: "guest", Step: "connect"}
	prefix := fmt.Sprintf("share mount %d", port)
	defer func() { r.Duration = time.Since(start) }()

	req := smbwire.ShareRequest{Host: addr.String(), ConnectIPC: true, ReadLogLines: readLog}
	if creds != nil && creds.User != "" {
		attempt, err := creds.begin(ctx)
		switch {
		case errors.Is(err, errCredentialsDisabled):
			r.CredentialsNote = creds.disabledNote()
		case err != nil:
			r.State, r.Evidence = status.Error, prefix+": scan cancelled"
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
	budget := env.ExchangeBudget(h, shareStepBudget)
	conn.SetDeadline(time.Now().Add(budget))
	bctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()

	rep := smbwire.CheckShare(bctx, conn, req)
	outcome = logonOutcomeOf(rep)
	r.fill(rep)
	r.Evidence = withNote(prefix+": "+rep.Evidence, r.CredentialsNote)
	return r
}

// fill copies a share report into r.
func (r *ShareResult) fill(rep smbwire.ShareReport) {
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
func logonOutcomeOf(rep smbwire.ShareReport) logonOutcome {
	switch {
	case rep.NTStatus == statusAccountLockedOut:
		return logonLockedOut
	case rep.NTStatus == statusLogonFailure && rep.Step == smbwire.StepSessionSetup:
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
