// Package smb is the SMB family of steps: "smb negotiate" on 445 and over a NetBIOS session on 139, which proves an
// SMB server and learns its dialect, signing and SMB1 stance, and "share mount", which logs on, mounts OFMLOG$,
// stats the OFM files and connects IPC$. The wire codec and the one wrapper around go-smb2 are in probe/smb.
package smb

import (
	"context"
	"fmt"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/steps/nbt"
	"github.com/ofmprobe/ofmprobe/probe/steps/tcp"
)

// Config is what the SMB steps need besides the environment.
type Config struct {
	// DirectPort is SMB over TCP (445); SessionPort is the NetBIOS session service (139). Tests move them.
	DirectPort, SessionPort uint16
	// Credentials log on for the share check; nil means a guest login.
	Credentials *Credentials
	// ReadLog is how many of OFMNT.LOG's last lines to put in the report (0: none).
	ReadLog int
}

// DefaultConfig is the well-known ports and a guest login.
var DefaultConfig = Config{DirectPort: 445, SessionPort: 139}

// NegotiateStep names the negotiate step on a port: "smb negotiate 445".
func NegotiateStep(port uint16) string { return fmt.Sprintf("smb negotiate %d", port) }

// ShareStep names the share check on a port: "share mount" on 445, "share mount 139" over NetBIOS.
func ShareStep(port uint16, direct bool) string {
	if direct {
		return "share mount"
	}
	return fmt.Sprintf("share mount %d", port)
}

// Steps returns the SMB steps, in the order of their dependencies:
//  1. "smb negotiate 445" when TCP 445 is open;
//  2. "smb negotiate 139" when TCP 139 is open and 445 gave no SMB answer, after the NetBIOS session step, whose
//     failure is its answer without another connection;
//  3. "share mount" when 445 speaks SMB2;
//  4. "share mount 139" when only the NetBIOS session on 139 speaks SMB2.
func Steps(cfg Config) []engine.Step {
	direct, session := cfg.DirectPort, cfg.SessionPort
	negotiate445, negotiate139 := NegotiateStep(direct), NegotiateStep(session)
	share445, share139 := ShareStep(direct, true), ShareStep(session, false)
	observeSMB := func(h *engine.Host, c catalog.Check) catalog.Observation { return observeNegotiate(h, c, cfg) }
	observeFiles := func(h *engine.Host, c catalog.Check) catalog.Observation { return observeShare(h, c, cfg) }
	return []engine.Step{
		{
			Name: negotiate445, Key: "smb", Answers: []string{"smb", "smb1"},
			Requires: []string{tcp.StepName(int(direct))},
			When:     engine.PortOpen(int(direct)),
			Run: func(ctx context.Context, env *engine.Env, h *engine.Host) engine.Result {
				r := retried(ctx, env, h, direct, func() SMBResult { return Negotiate(ctx, env, h.Addr, direct) })
				return &r
			},
			Internal: func(why string) engine.Result {
				return &SMBResult{Port: int(direct), State: status.Error, Evidence: why}
			},
			Observe: observeSMB,
		},
		{
			Name: negotiate139, Key: "smb", Answers: []string{"smb"},
			Requires: []string{tcp.StepName(int(session))},
			After:    []string{negotiate445, nbt.SessionStep, nbt.NodeStatusStep},
			When: engine.All(engine.IPv4, engine.PortOpen(int(session)), func(h *engine.Host) (bool, string) {
				if r, ok := NegotiateOf(h, direct); ok && (r.State == status.SMB2 || r.State == status.SMB1Only) {
					return false, fmt.Sprintf("not needed: SMB answered on %d", direct)
				}
				return true, ""
			}),
			Run: func(ctx context.Context, env *engine.Env, h *engine.Host) engine.Result {
				if s, ok := nbt.SessionOf(h); ok {
					if r, failed := fromSession(s, session); failed {
						return &r
					}
				}
				r := retried(ctx, env, h, session, func() SMBResult { return Negotiate139(ctx, env, h.Addr, session, nbt.ServerName(h)) })
				return &r
			},
			Internal: func(why string) engine.Result {
				return &SMBResult{Port: int(session), State: status.Error, Evidence: why}
			},
			Observe: observeSMB,
		},
		{
			Name: share445, Key: "share", Answers: []string{"share", "file", "ipc"},
			Requires: []string{negotiate445},
			When: func(h *engine.Host) (bool, string) {
				if r, ok := NegotiateOf(h, direct); ok && r.State == status.SMB2 {
					return true, ""
				}
				return false, fmt.Sprintf("no SMB2 server on %d", direct)
			},
			Run: func(ctx context.Context, env *engine.Env, h *engine.Host) engine.Result {
				p, _ := h.Port(int(direct))
				r := RetryShare(ctx, env, h, p.State == status.Open, func() ShareResult {
					return checkShare(ctx, env, h, direct, cfg.Credentials, cfg.ReadLog)
				})
				return &r
			},
			Internal: func(why string) engine.Result {
				return &ShareResult{Port: int(direct), State: status.Internal, Evidence: why}
			},
			Observe: observeFiles,
		},
		{
			Name: share139, Key: "share", Answers: []string{"share", "file", "ipc"},
			Requires: []string{negotiate139},
			After:    []string{share445},
			When: func(h *engine.Host) (bool, string) {
				if _, ok := h.Result(share445); ok {
					return false, fmt.Sprintf("not needed: the share was checked on %d", direct)
				}
				if r, ok := NegotiateOf(h, session); ok && r.State == status.SMB2 {
					return true, ""
				}
				return false, fmt.Sprintf("no SMB2 server over NetBIOS on %d", session)
			},
			Run: func(ctx context.Context, env *engine.Env, h *engine.Host) engine.Result {
				p, _ := h.Port(int(session))
				r := RetryShare(ctx, env, h, p.State == status.Open, func() ShareResult {
					return checkShare139(ctx, env, h, session, nbt.ServerName(h), cfg.Credentials, cfg.ReadLog)
				})
				return &r
			},
			Internal: func(why string) engine.Result {
				return &ShareResult{Port: int(session), State: status.Internal, Evidence: why}
			},
			Observe: observeFiles,
		},
	}
}

// retried runs a negotiate again on a fresh connection while it meets silence (issue: a lost exchange is not a
// property of the host), and says so in the evidence.
func retried(ctx context.Context, env *engine.Env, h *engine.Host, port uint16, negotiate func() SMBResult) SMBResult {
	silent := func(r SMBResult) bool { return r.State == status.Timeout || r.State == status.Filtered }
	r, n := engine.RetrySilence(ctx, env, h, negotiate, silent)
	p, _ := h.Port(int(port))
	r.Evidence += engine.SilenceNote(n, silent(r), p.State == status.Open)
	return r
}

// RetryShare runs a share check again on a fresh connection while it meets silence (its connect timed out, or an
// answer never came within its budget, the IPC$ tree connect's included), up to engine.ExchangeRetries more times,
// and says so in the evidence. A logon that timed out proves nothing about the password, so a retry never counts
// against the credentials.
func RetryShare(ctx context.Context, env *engine.Env, h *engine.Host, portOpen bool, check func() ShareResult) ShareResult {
	// The IPC$ tree connect comes last, on the same session: when it alone ran out of the check's time, the whole
	// check is run again (on a path that lost packets, with the longer budget).
	silent := func(r ShareResult) bool {
		return r.State == status.Timeout || r.State == status.Filtered || (r.IPC != nil && r.IPC.State == status.Timeout)
	}
	r, n := engine.RetrySilence(ctx, env, h, check, silent)
	r.Evidence += engine.SilenceNote(n, silent(r), portOpen)
	return r
}

// NegotiateOf returns the negotiate result on a port, if that step ran.
func NegotiateOf(h *engine.Host, port uint16) (*SMBResult, bool) {
	r, ok := h.Result(NegotiateStep(port))
	s, _ := r.(*SMBResult)
	return s, ok && s != nil
}

// ShareOf returns the share check's result, over 445 or over 139, if one ran.
func ShareOf(h *engine.Host, cfg Config) (*ShareResult, bool) {
	for _, name := range []string{ShareStep(cfg.DirectPort, true), ShareStep(cfg.SessionPort, false)} {
		if r, ok := h.Result(name); ok {
			if s, ok := r.(*ShareResult); ok && s != nil {
				return s, true
			}
		}
	}
	return nil, false
}

// fromSession returns the "smb negotiate 139" result a failed NetBIOS session request implies: SMB over 139 needs
// that session first. It returns false when the session was positive.
func fromSession(sess *nbt.Session, port uint16) (SMBResult, bool) {
	r := SMBResult{Port: int(port), Evidence: fmt.Sprintf("smb negotiate %d: not attempted, the NetBIOS session it needs failed: %s", port, sess.Evidence)}
	switch sess.State {
	case status.Negative:
		r.State = status.SessionRefused
	case status.Timeout:
		r.State = status.Timeout
	case status.ProtocolError:
		r.State = status.ProtocolError
	default:
		return SMBResult{}, false
	}
	return r, true
}

// observeNegotiate answers smb checks (on 445 or 139) and the smb1 check.
func observeNegotiate(h *engine.Host, c catalog.Check, cfg Config) catalog.Observation {
	if c.Kind == "smb1" {
		return observeSMB1(h, cfg)
	}
	if o, blocked := h.NotOpen(c.Kind, c.Port); blocked {
		return o
	}
	port := uint16(c.Port)
	if r, ok := NegotiateOf(h, port); ok {
		return engine.StepObservation(r.State, r.Evidence)
	}
	if port == cfg.SessionPort {
		if _, ok := NegotiateOf(h, cfg.DirectPort); ok {
			return catalog.Observation{Skipped: fmt.Sprintf("not needed: SMB answered on %d", cfg.DirectPort)}
		}
		if !h.Addr.Is4() {
			return catalog.Observation{Skipped: "NetBIOS runs over IPv4 only"}
		}
	}
	if why, skipped := h.Skipped(NegotiateStep(port)); skipped {
		return catalog.Observation{Skipped: "smb negotiate was not run: " + why}
	}
	return catalog.Observation{Skipped: "smb negotiate was not run"}
}

func observeSMB1(h *engine.Host, cfg Config) catalog.Observation {
	r, ok := NegotiateOf(h, cfg.DirectPort)
	switch {
	case !ok:
		if p, ok := h.Port(int(cfg.DirectPort)); ok && p.State != status.Open {
			return catalog.Observation{Skipped: fmt.Sprintf("SMB on %d is %s", cfg.DirectPort, p.State)}
		}
		return catalog.Observation{Skipped: "smb negotiate was not run"}
	case r.State == status.SMB1Only:
		return catalog.Observation{State: string(status.Accepted), Evidence: fmt.Sprintf("smb1 %d: the host speaks only SMB1 (%s)", cfg.DirectPort, r.Evidence)}
	case r.SMB1Accepted == nil && r.SMB1Evidence != "":
		return catalog.Observation{Skipped: "whether SMB1 is accepted could not be learned: " + r.SMB1Evidence}
	case r.SMB1Accepted == nil:
		return catalog.Observation{Skipped: "whether SMB1 is accepted could not be learned: " + r.Evidence}
	case *r.SMB1Accepted:
		return catalog.Observation{State: string(status.Accepted), Evidence: fmt.Sprintf("smb1 %d: SMB1 is still accepted beside SMB2 (%s)", cfg.DirectPort, r.SMB1Evidence)}
	}
	return catalog.Observation{State: string(status.Disabled), Evidence: fmt.Sprintf("smb1 %d: disabled (%s)", cfg.DirectPort, r.SMB1Evidence)}
}

// observeShare answers the share, file and ipc checks from the share mount.
func observeShare(h *engine.Host, c catalog.Check, cfg Config) catalog.Observation {
	if o, blocked := noSMBPort(h, c.Kind, cfg); blocked {
		return o
	}
	sh, ok := ShareOf(h, cfg)
	if !ok {
		direct, _ := NegotiateOf(h, cfg.DirectPort)
		viaSession, _ := NegotiateOf(h, cfg.SessionPort)
		smb1Only := func(r *SMBResult) bool { return r != nil && r.State == status.SMB1Only }
		switch {
		case smb1Only(direct) || smb1Only(viaSession):
			return catalog.Observation{Skipped: "the host speaks only SMB1 and ofmprobe checks OFMLOG$ over SMB2: check it from an OFM console"}
		case viaSession != nil && viaSession.State != status.SMB2:
			return catalog.Observation{State: string(status.Unreachable), Evidence: fmt.Sprintf("%s: not attempted, no SMB2 server on %d or over NetBIOS on %d: %s", c.Kind, cfg.DirectPort, cfg.SessionPort, viaSession.Evidence),
				Cause: negotiateCause(direct, cfg.DirectPort) + "; " + negotiateCause(viaSession, cfg.SessionPort)}
		case direct != nil:
			return catalog.Observation{State: string(status.Unreachable), Evidence: fmt.Sprintf("%s: not attempted, no SMB2 server on %d: %s", c.Kind, cfg.DirectPort, direct.Evidence),
				Cause: negotiateCause(direct, cfg.DirectPort)}
		}
		return catalog.Observation{Skipped: "the share check was not run"}
	}
	switch c.Kind {
	case "share":
		return engine.StepObservation(sh.State, sh.Evidence)
	case "ipc":
		if sh.IPC != nil {
			return engine.StepObservation(sh.IPC.State, sh.IPC.Evidence)
		}
		if sh.Step == "connect" || sh.Step == "negotiate" || sh.Step == "session setup" {
			o := engine.StepObservation(sh.State, "ipc: not attempted, "+sh.Evidence)
			o.Cause = "share " + string(sh.State)
			return o
		}
		return catalog.Observation{Skipped: "IPC$ was not reached: " + sh.Evidence}
	}
	for _, f := range sh.Files {
		if f.Name == c.File {
			return engine.StepObservation(f.State, f.Evidence)
		}
	}
	if sh.State != status.Mounted {
		return catalog.Observation{State: string(status.Unreachable), Evidence: fmt.Sprintf("file %s: not checked, OFMLOG$ did not mount: %s", c.File, sh.Evidence),
			Cause: "share " + string(sh.State)}
	}
	return catalog.Observation{Skipped: "file " + c.File + " was not looked for"}
}

// noSMBPort reports, for steps that need an SMB session, that neither SMB port is open, when both were probed.
func noSMBPort(h *engine.Host, kind string, cfg Config) (catalog.Observation, bool) {
	direct, ok1 := h.Port(int(cfg.DirectPort))
	viaSession, ok2 := h.Port(int(cfg.SessionPort))
	if !ok1 || !ok2 || direct.State == status.Open || viaSession.State == status.Open || direct.State == status.Error || viaSession.State == status.Error {
		return catalog.Observation{}, false
	}
	return catalog.Observation{
		State:    string(status.Unreachable),
		Evidence: fmt.Sprintf("%s: not attempted, no SMB port is open (%s; %s)", kind, direct.Evidence, viaSession.Evidence),
		Cause:    direct.CauseOf() + "; " + viaSession.CauseOf(),
	}, true
}

// negotiateCause names an SMB negotiate's outcome as a root cause: "smb 445 smb1 only", or the port's state when the
// negotiate was not made (nil: "smb 445 not made").
func negotiateCause(r *SMBResult, port uint16) string {
	if r == nil {
		return fmt.Sprintf("smb %d not made", port)
	}
	return fmt.Sprintf("smb %d %s", port, r.State)
}
