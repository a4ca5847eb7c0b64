package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/msrpc"
)

// The "epm bind" states, beside the connect failures closed, filtered and unreachable.
const (
	// EPMBound means the endpoint mapper answered the bind with a bind_ack.
	EPMBound = "bound"
	// EPMRejected means it answered with a bind_nak: an RPC server listens, but refused the bind.
	EPMRejected      = "rejected"
	EPMProtocolError = "protocol error"
	EPMTimeout       = "timeout"
)

// EPMResult is what the "epm bind" step learned on TCP 135.
type EPMResult struct {
	State    string `json:"state"`
	Evidence string `json:"evidence"`
	Port     int    `json:"port"`
	// RTT is the time from sending the bind to its answer.
	RTT time.Duration `json:"-"`
}

// epmPort is the endpoint mapper's TCP port.
const epmPort = 135

// epmCallID is the call id of the bind; the answer must carry it back.
const epmCallID = 1

// epmBind is the "epm bind" step: it binds to the DCE/RPC endpoint mapper on TCP 135 (C706 §12.6.4.3) and reads
// the answer. Either a bind_ack or a bind_nak proves an RPC endpoint mapper listens.
func (s *Scanner) epmBind(ctx context.Context, addr netip.Addr) EPMResult {
	return s.epmBindPort(ctx, addr, epmPort)
}

// epmBindPort is epmBind on another port; tests point it at loopback fakes.
func (s *Scanner) epmBindPort(ctx context.Context, addr netip.Addr, port uint16) EPMResult {
	r := EPMResult{Port: int(port)}
	prefix := fmt.Sprintf("epm bind %d", port)
	conn, err := s.dialTCP(ctx, addr, port)
	if err != nil {
		r.State, r.Evidence = dialFailureState(err), prefix+": "+s.connectFailure(err)
		return r
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(s.opts.Timeout))

	start := time.Now()
	pdu, err := s.bindExchange(conn)
	r.RTT = time.Since(start)
	if err != nil {
		r.State, r.Evidence = s.epmFailure(err)
		r.Evidence = prefix + ": " + r.Evidence
		return r
	}
	resp, err := msrpc.ParseBindResponse(pdu)
	switch {
	case err != nil:
		r.State, r.Evidence = EPMProtocolError, fmt.Sprintf("%s: not a bind answer (%v): %s", prefix, err, hexPrefix(pdu))
	case resp.Header.CallID != epmCallID:
		r.State, r.Evidence = EPMProtocolError, fmt.Sprintf("%s: %v for call id %d, sent %d", prefix, resp.Kind, resp.Header.CallID, epmCallID)
	case resp.Kind == msrpc.KindAck:
		r.State, r.Evidence = EPMBound, fmt.Sprintf("%s: an RPC endpoint mapper answered in %s: %v", prefix, formatRTT(r.RTT), resp)
	default:
		r.State, r.Evidence = EPMRejected, fmt.Sprintf("%s: an RPC server answered in %s but refused the bind: %v", prefix, formatRTT(r.RTT), resp)
	}
	return r
}

// bindExchange sends the bind and reads one whole answer PDU: the 16-byte common header, then exactly the rest of
// FRAG_LENGTH, which is refused above the max_recv_frag the bind announced before anything is allocated.
func (s *Scanner) bindExchange(conn net.Conn) ([]byte, error) {
	if _, err := conn.Write(msrpc.AppendBind(make([]byte, 0, msrpc.BindLen), epmCallID)); err != nil {
		return nil, err
	}
	return readPDU(conn)
}

// readPDU reads one connection-oriented DCE/RPC PDU (C706 §12.6.3.1) from r. Errors that are the peer's fault wrap
// ProtocolError; an error of r is returned as it is when nothing was read, and in a *partialFrameError otherwise.
func readPDU(r io.Reader) ([]byte, error) {
	hdr := make([]byte, msrpc.HeaderLen)
	n, err := io.ReadFull(r, hdr)
	if err != nil {
		switch {
		case n == 0:
			return nil, err
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, fmt.Errorf("%w: %d-byte answer, shorter than an RPC header: % x", ProtocolError, n, hdr[:n])
		}
		return nil, &partialFrameError{got: n, want: msrpc.HeaderLen, err: err}
	}
	h, err := msrpc.ParseHeader(hdr)
	if err != nil {
		return nil, fmt.Errorf("%w: not an RPC header (%v): % x", ProtocolError, err, hdr)
	}
	if h.FragLength > msrpc.MaxFrag {
		return nil, fmt.Errorf("%w: %v claims %d bytes, above the %d the bind allows: % x", ProtocolError, h.Type, h.FragLength, msrpc.MaxFrag, hdr)
	}
	pdu := make([]byte, h.FragLength)
	copy(pdu, hdr)
	n, err = io.ReadFull(r, pdu[msrpc.HeaderLen:])
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %v of %d bytes ended after %d: %s", ProtocolError, h.Type, h.FragLength, msrpc.HeaderLen+n,
				hexPrefix(pdu[:msrpc.HeaderLen+n]))
		}
		return nil, &partialFrameError{got: msrpc.HeaderLen + n, want: int(h.FragLength), err: err}
	}
	return pdu, nil
}

// epmFailure maps a failed bind exchange to a state and evidence.
func (s *Scanner) epmFailure(err error) (string, string) {
	var partial *partialFrameError
	switch {
	case errors.As(err, &partial) && Classify(partial.err) == StatusTimeout:
		return EPMTimeout, fmt.Sprintf("connected, but the answer to the bind stopped after %d of %d bytes and did not finish in %s",
			partial.got, partial.want, s.opts.Timeout)
	case Classify(err) == StatusTimeout:
		return EPMTimeout, fmt.Sprintf("connected, but no answer to the bind in %s", s.opts.Timeout)
	case Classify(err) == StatusCanceled:
		return StateError, "scan cancelled"
	case errors.Is(err, ProtocolError):
		return EPMProtocolError, fmt.Sprintf("not an RPC answer: %v", err)
	case errors.Is(err, io.EOF):
		return EPMProtocolError, "the server closed the connection without answering the bind"
	case Classify(err) == StatusReset:
		return EPMProtocolError, "the server reset the connection without answering the bind"
	}
	return EPMProtocolError, fmt.Sprintf("the bind exchange failed: %v", errnoText(err))
}
