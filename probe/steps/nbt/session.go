package nbt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/ofmprobe/ofmprobe/catalog"
	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/netbios"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/steps/tcp"
)

// Session is what the "nbss session" step learned on TCP 139. State is positive, negative, timeout or protocol
// error, or for the connect closed, filtered, unreachable or error.
type Session struct {
	State    status.State `json:"state"`
	Evidence string       `json:"evidence"`
	// Called lists the names a session was requested for, in order.
	Called []string      `json:"called"`
	RTT    time.Duration `json:"-"`
}

// SessionOf returns the host's session result, if the step ran.
func SessionOf(h *engine.Host) (*Session, bool) {
	r, ok := h.Result(SessionStep)
	s, _ := r.(*Session)
	return s, ok && s != nil
}

// maxKeepalives bounds how many session keepalives are skipped while waiting for the answer.
const maxKeepalives = 8

// smbServerName is the generic name every SMB server answers to; clients fall back to it.
var smbServerName = netbios.Name{Name: "*SMBSERVER", Suffix: netbios.SuffixFileServer}

// callingName is how ofmprobe introduces itself in a session request.
var callingName = netbios.Name{Name: "OFMPROBE", Suffix: netbios.SuffixWorkstation}

// SessionStepFor returns the "nbss session" step: it runs when TCP 139 is open, after node status, whose name it
// asks for.
func SessionStepFor(cfg Config) engine.Step {
	port := int(cfg.SessionPort)
	return engine.Step{
		Name:     SessionStep,
		Key:      "nbss",
		Answers:  []string{"nbss"},
		Requires: []string{tcp.StepName(port)},
		After:    []string{NodeStatusStep},
		When:     engine.All(engine.IPv4, engine.PortOpen(port)),
		Run: func(ctx context.Context, env *engine.Env, h *engine.Host) engine.Result {
			silent := func(s Session) bool { return s.State == status.Timeout || s.State == status.Filtered }
			s, n := engine.RetrySilence(ctx, env, h, func() Session {
				return RequestSessions(ctx, env, netip.AddrPortFrom(h.Addr, cfg.SessionPort), ServerName(h))
			}, silent)
			p, _ := h.Port(port)
			s.Evidence += engine.SilenceNote(n, silent(s), p.State == status.Open)
			return &s
		},
		Internal: func(why string) engine.Result { return &Session{State: status.Error, Evidence: "nbss 139: " + why} },
		Observe: func(h *engine.Host, c catalog.Check) catalog.Observation {
			if why, skipped := h.Skipped(SessionStep); skipped && !h.Addr.Is4() {
				return catalog.Observation{Skipped: why}
			}
			if o, blocked := h.NotOpen(c.Kind, c.Port); blocked {
				return o
			}
			s, ok := SessionOf(h)
			if !ok || c.Port != port {
				if why, skipped := h.Skipped(SessionStep); skipped {
					return catalog.Observation{Skipped: why}
				}
				return catalog.Observation{Skipped: "the NetBIOS session step did not run"}
			}
			return engine.StepObservation(s.State, s.Evidence)
		},
	}
}

// RequestSessions is the "nbss session" step: it asks for a NetBIOS session to the host's own file-server name when
// node status gave one, and to *SMBSERVER otherwise or after a refusal, as Samba's client and impacket do.
func RequestSessions(ctx context.Context, env *engine.Env, dst netip.AddrPort, serverName string) Session {
	var sess Session
	for _, name := range CalledNames(serverName) {
		sess.Called = append(sess.Called, name.String())
		state, evidence, rtt := sessionRequest(ctx, env, dst, name)
		sess.State, sess.Evidence, sess.RTT = state, evidence, rtt
		if state != status.Negative {
			break
		}
	}
	return sess
}

// CalledNames lists the names to ask for a session: the host's own file-server name when node status gave one,
// then *SMBSERVER.
func CalledNames(serverName string) []netbios.Name {
	var called []netbios.Name
	if serverName != "" {
		called = append(called, netbios.Name{Name: serverName, Suffix: netbios.SuffixFileServer})
	}
	return append(called, smbServerName)
}

// sessionRequest sends one session request on a fresh connection and reads the answer, skipping keepalives.
func sessionRequest(ctx context.Context, env *engine.Env, dst netip.AddrPort, called netbios.Name) (status.State, string, time.Duration) {
	prefix := fmt.Sprintf("nbss 139 (%s)", called)
	start := time.Now()
	conn, _, err := env.DialTCP(ctx, dst.Addr(), dst.Port())
	if err != nil {
		return DialFailureState(err), prefix + ": " + env.ConnectFailure(err), time.Since(start)
	}
	defer conn.Close()
	return RequestSession(conn, called, env.Timeout(), start)
}

// RequestSession sends a session request for called on conn, which the caller dialled at start and closes, and
// reads the answer within timeout, skipping keepalives. After a positive answer conn carries session messages (SMB
// over NetBIOS).
func RequestSession(conn net.Conn, called netbios.Name, timeout time.Duration, start time.Time) (state status.State, evidence string, rtt time.Duration) {
	prefix := fmt.Sprintf("nbss 139 (%s)", called)
	conn.SetDeadline(time.Now().Add(timeout))
	req, err := netbios.AppendSessionRequest(make([]byte, 0, 72), called, callingName)
	if err != nil {
		return status.Error, fmt.Sprintf("%s: %v", prefix, err), 0
	}
	if _, err := conn.Write(req); err != nil {
		return ioFailureState(err), fmt.Sprintf("%s: sending the request failed: %v", prefix, engine.ErrnoText(err)), time.Since(start)
	}
	for range maxKeepalives + 1 {
		msg, err := readSessionMessage(conn)
		rtt = time.Since(start)
		if err != nil {
			if status.Classify(err) == status.Timeout {
				return status.Timeout, fmt.Sprintf("%s: connected, but no answer to the session request in %s", prefix, timeout), rtt
			}
			if errors.Is(err, status.ErrProtocol) {
				return status.ProtocolError, fmt.Sprintf("%s: not a NetBIOS answer: %v", prefix, err), rtt
			}
			return status.ProtocolError, fmt.Sprintf("%s: the connection ended without an answer: %v", prefix, engine.ErrnoText(err)), rtt
		}
		resp, perr := netbios.ParseSessionResponse(msg)
		if perr != nil {
			return status.ProtocolError, fmt.Sprintf("%s: not a NetBIOS answer (%v): % x", prefix, perr, msg[:min(len(msg), 16)]), rtt
		}
		switch resp.Type {
		case netbios.SessionKeepAlive:
			continue
		case netbios.SessionPositiveResponse:
			return status.Positive, fmt.Sprintf("%s: positive session response in %s", prefix, engine.FormatRTT(rtt)), rtt
		case netbios.SessionNegativeResponse:
			return status.Negative, fmt.Sprintf("%s: negative session response: %s", prefix, resp.Error), rtt
		default:
			return status.Negative, fmt.Sprintf("%s: %s (ofmprobe does not follow retargets)", prefix, resp), rtt
		}
	}
	return status.ProtocolError, fmt.Sprintf("%s: only keepalives, no answer", prefix), rtt
}

// readSessionMessage reads one whole session service message, header included, with the conn's deadline.
func readSessionMessage(conn net.Conn) ([]byte, error) {
	hdr := make([]byte, netbios.SessionHeaderLen)
	if _, err := io.ReadFull(conn, hdr); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %d-byte answer, shorter than a session header", status.ErrProtocol, len(hdr))
		}
		return nil, err
	}
	h, err := netbios.ParseSessionHeader(hdr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v: % x", status.ErrProtocol, err, hdr)
	}
	// An answer to a session request is at most 6 bytes long; refuse to read a large body.
	if h.Length > 64 {
		return nil, fmt.Errorf("%w: session message of type 0x%02x claims %d bytes: % x", status.ErrProtocol, byte(h.Type), h.Length, hdr)
	}
	msg := make([]byte, netbios.SessionHeaderLen+int(h.Length))
	copy(msg, hdr)
	if _, err := io.ReadFull(conn, msg[netbios.SessionHeaderLen:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: the answer ended inside its body", status.ErrProtocol)
		}
		return nil, err
	}
	return msg, nil
}

// DialFailureState maps a failed connect to a port state.
func DialFailureState(err error) status.State {
	switch status.Classify(err) {
	case status.Closed, status.Reset:
		return status.Closed
	case status.Unreachable:
		return status.Unreachable
	case status.Timeout:
		return status.Filtered
	}
	return status.Error
}

// ioFailureState maps a failed exchange on an open connection to a step state.
func ioFailureState(err error) status.State {
	if status.Classify(err) == status.Timeout {
		return status.Timeout
	}
	return status.ProtocolError
}
