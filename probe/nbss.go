package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/netbios"
)

// The NetBIOS session states.
const (
	SessionPositive      = "positive"
	SessionNegative      = "negative"
	SessionProtocolError = "protocol error"
	SessionTimeout       = "timeout"
)

// Session is what the "nbss session" step learned on TCP 139.
type Session struct {
	State    string `json:"state"`
	Evidence string `json:"evidence"`
	// Called lists the names a session was requested for, in order.
	Called []string      `json:"called"`
	RTT    time.Duration `json:"-"`
}

// maxKeepalives bounds how many session keepalives are skipped while waiting for the answer.
const maxKeepalives = 8

// smbServerName is the generic name every SMB server answers to; clients fall back to it.
var smbServerName = netbios.Name{Name: "*SMBSERVER", Suffix: netbios.SuffixFileServer}

// callingName is how ofmprobe introduces itself in a session request.
var callingName = netbios.Name{Name: "OFMPROBE", Suffix: netbios.SuffixWorkstation}

// nbssSession is the "nbss session" step: it asks TCP 139 for a NetBIOS session to the host's own file-server name
// when node status gave one, and to *SMBSERVER otherwise or after a refusal, as Samba's client and impacket do.
func (s *Scanner) nbssSession(ctx context.Context, addr netip.Addr, serverName string) Session {
	var sess Session
	for _, name := range calledNames(serverName) {
		sess.Called = append(sess.Called, name.String())
		state, evidence, rtt := s.sessionRequest(ctx, addr, name)
		sess.State, sess.Evidence, sess.RTT = state, evidence, rtt
		if state != SessionNegative {
			break
		}
	}
	return sess
}

// calledNames lists the names to ask for a session: the host's own file-server name when node status gave one, then
// *SMBSERVER.
func calledNames(serverName string) []netbios.Name {
	var called []netbios.Name
	if serverName != "" {
		called = append(called, netbios.Name{Name: serverName, Suffix: netbios.SuffixFileServer})
	}
	return append(called, smbServerName)
}

// sessionRequest sends one session request on a fresh connection and reads the answer, skipping keepalives.
func (s *Scanner) sessionRequest(ctx context.Context, addr netip.Addr, called netbios.Name) (state, evidence string, rtt time.Duration) {
	prefix := fmt.Sprintf("nbss 139 (%s)", called)
	start := time.Now()
	conn, err := s.dialTCP(ctx, addr, s.nbssPort)
	if err != nil {
		return dialFailureState(err), prefix + ": " + s.connectFailure(err), time.Since(start)
	}
	defer conn.Close()
	return s.requestSession(conn, called, start)
}

// requestSession sends a session request for called on conn, which the caller dialled at start and closes, and
// reads the answer, skipping keepalives. After a positive answer conn carries session messages (SMB over NetBIOS).
func (s *Scanner) requestSession(conn net.Conn, called netbios.Name, start time.Time) (state, evidence string, rtt time.Duration) {
	prefix := fmt.Sprintf("nbss 139 (%s)", called)
	conn.SetDeadline(time.Now().Add(s.opts.Timeout))
	req, err := netbios.AppendSessionRequest(make([]byte, 0, 72), called, callingName)
	if err != nil {
		return StateError, fmt.Sprintf("%s: %v", prefix, err), 0
	}
	if _, err := conn.Write(req); err != nil {
		return ioFailureState(err), fmt.Sprintf("%s: sending the request failed: %v", prefix, errnoText(err)), time.Since(start)
	}
	for range maxKeepalives + 1 {
		msg, err := readSessionMessage(conn)
		rtt = time.Since(start)
		if err != nil {
			if Classify(err) == StatusTimeout {
				return SessionTimeout, fmt.Sprintf("%s: connected, but no answer to the session request in %s", prefix, s.opts.Timeout), rtt
			}
			if errors.Is(err, ProtocolError) {
				return SessionProtocolError, fmt.Sprintf("%s: not a NetBIOS answer: %v", prefix, err), rtt
			}
			return SessionProtocolError, fmt.Sprintf("%s: the connection ended without an answer: %v", prefix, errnoText(err)), rtt
		}
		resp, perr := netbios.ParseSessionResponse(msg)
		if perr != nil {
			return SessionProtocolError, fmt.Sprintf("%s: not a NetBIOS answer (%v): % x", prefix, perr, msg[:min(len(msg), 16)]), rtt
		}
		switch resp.Type {
		case netbios.SessionKeepAlive:
			continue
		case netbios.SessionPositiveResponse:
			return SessionPositive, fmt.Sprintf("%s: positive session response in %s", prefix, formatRTT(rtt)), rtt
		case netbios.SessionNegativeResponse:
			return SessionNegative, fmt.Sprintf("%s: negative session response: %s", prefix, resp.Error), rtt
		default:
			return SessionNegative, fmt.Sprintf("%s: %s (ofmprobe does not follow retargets)", prefix, resp), rtt
		}
	}
	return SessionProtocolError, fmt.Sprintf("%s: only keepalives, no answer", prefix), rtt
}

// readSessionMessage reads one whole session service message, header included, with the conn's deadline.
func readSessionMessage(conn net.Conn) ([]byte, error) {
	hdr := make([]byte, netbios.SessionHeaderLen)
	if _, err := io.ReadFull(conn, hdr); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %d-byte answer, shorter than a session header", ProtocolError, len(hdr))
		}
		return nil, err
	}
	h, err := netbios.ParseSessionHeader(hdr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v: % x", ProtocolError, err, hdr)
	}
	// An answer to a session request is at most 6 bytes long; refuse to read a large body.
	if h.Length > 64 {
		return nil, fmt.Errorf("%w: session message of type 0x%02x claims %d bytes: % x", ProtocolError, byte(h.Type), h.Length, hdr)
	}
	msg := make([]byte, netbios.SessionHeaderLen+int(h.Length))
	copy(msg, hdr)
	if _, err := io.ReadFull(conn, msg[netbios.SessionHeaderLen:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: the answer ended inside its body", ProtocolError)
		}
		return nil, err
	}
	return msg, nil
}

// dialFailureState maps a failed connect to a port state.
func dialFailureState(err error) string {
	switch Classify(err) {
	case StatusRefused, StatusReset:
		return StateClosed
	case StatusUnreachable:
		return StateUnreachable
	case StatusTimeout:
		return StateFiltered
	}
	return StateError
}

// ioFailureState maps a failed exchange on an open connection to a step state.
func ioFailureState(err error) string {
	if Classify(err) == StatusTimeout {
		return SessionTimeout
	}
	return SessionProtocolError
}
