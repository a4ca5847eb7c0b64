// Package rpc is the "epm bind" step: a DCE/RPC bind to the endpoint mapper on TCP 135, which proves an RPC server
// listens (a bind_ack or a bind_nak), not merely a port that accepts.
package rpc

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
	"github.com/ofmprobe/ofmprobe/probe/msrpc"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/steps/nbt"
	"github.com/ofmprobe/ofmprobe/probe/steps/tcp"
)

// EPMResult is what the "epm bind" step learned on TCP 135.
type EPMResult struct {
	// State is bound, rejected, protocol error or timeout, or for the connect closed, filtered, unreachable or
	// error.
	State    status.State `json:"state"`
	Evidence string       `json:"evidence"`
	Port     int          `json:"port"`
	// RTT is the time from sending the bind to its answer.
	RTT time.Duration `json:"-"`
}

// Port is the endpoint mapper's TCP port.
const Port = 135

// epmCallID is the call id of the bind; the answer must carry it back.
const epmCallID = 1

// StepName is the step's name.
const StepName = "epm bind"

// Step returns the "epm bind" step on port (135, or a loopback fake in tests): it runs when the port is open.
func Step(port uint16) engine.Step {
	return engine.Step{
		Name: StepName, Key: "epm", Answers: []string{"epm"},
		Requires: []string{tcp.StepName(int(port))},
		When:     engine.PortOpen(int(port)),
		Run: func(ctx context.Context, env *engine.Env, h *engine.Host) engine.Result {
			silent := func(r EPMResult) bool { return r.State == status.Timeout || r.State == status.Filtered }
			r, n := engine.RetrySilence(ctx, env, h, func() EPMResult { return Bind(ctx, env, h.Addr, port) }, silent)
			p, _ := h.Port(int(port))
			r.Evidence += engine.SilenceNote(n, silent(r), p.State == status.Open)
			return &r
		},
		Internal: func(why string) engine.Result { return &EPMResult{Port: int(port), State: status.Error, Evidence: why} },
		Observe: func(h *engine.Host, c catalog.Check) catalog.Observation {
			if o, blocked := h.NotOpen(c.Kind, c.Port); blocked {
				return o
			}
			if r, ok := EPMOf(h); ok {
				return engine.StepObservation(r.State, r.Evidence)
			}
			if why, skipped := h.Skipped(StepName); skipped {
				return catalog.Observation{Skipped: "epm bind was not run: " + why}
			}
			return catalog.Observation{Skipped: "epm bind was not run"}
		},
	}
}

// EPMOf returns the host's endpoint-mapper result, if the step ran.
func EPMOf(h *engine.Host) (*EPMResult, bool) {
	r, ok := h.Result(StepName)
	e, _ := r.(*EPMResult)
	return e, ok && e != nil
}

// Bind is the "epm bind" step on a port: it binds to the DCE/RPC endpoint mapper (C706 §12.6.4.3) and reads the
// answer. Either a bind_ack or a bind_nak proves an RPC endpoint mapper listens.
func Bind(ctx context.Context, env *engine.Env, addr netip.Addr, port uint16) EPMResult {
	r := EPMResult{Port: int(port)}
	prefix := fmt.Sprintf("epm bind %d", port)
	conn, _, err := env.DialTCP(ctx, addr, port)
	if err != nil {
		r.State, r.Evidence = nbt.DialFailureState(err), prefix+": "+env.ConnectFailure(err)
		return r
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(env.Timeout()))

	start := time.Now()
	pdu, err := bindExchange(conn)
	r.RTT = time.Since(start)
	if err != nil {
		r.State, r.Evidence = epmFailure(env, err)
		r.Evidence = prefix + ": " + r.Evidence
		return r
	}
	resp, err := msrpc.ParseBindResponse(pdu)
	switch {
	case err != nil:
		r.State, r.Evidence = status.ProtocolError, fmt.Sprintf("%s: not a bind answer (%v): %s", prefix, err, engine.HexPrefix(pdu))
	case resp.Header.CallID != epmCallID:
		r.State, r.Evidence = status.ProtocolError, fmt.Sprintf("%s: %v for call id %d, sent %d", prefix, resp.Kind, resp.Header.CallID, epmCallID)
	case resp.Kind == msrpc.KindAck:
		r.State, r.Evidence = status.Bound, fmt.Sprintf("%s: an RPC endpoint mapper answered in %s: %v", prefix, engine.FormatRTT(r.RTT), resp)
	default:
		r.State, r.Evidence = status.Rejected, fmt.Sprintf("%s: an RPC server answered in %s but refused the bind: %v", prefix, engine.FormatRTT(r.RTT), resp)
	}
	return r
}

// bindExchange sends the bind and reads one whole answer PDU: the 16-byte common header, then exactly the rest of
// FRAG_LENGTH, which is refused above the max_recv_frag the bind announced before anything is allocated.
func bindExchange(conn net.Conn) ([]byte, error) {
	if _, err := conn.Write(msrpc.AppendBind(make([]byte, 0, msrpc.BindLen), epmCallID)); err != nil {
		return nil, err
	}
	return readPDU(conn)
}

// readPDU reads one connection-oriented DCE/RPC PDU (C706 §12.6.3.1) from r. Errors that are the peer's fault wrap
// ProtocolError; an error of r is returned as it is when nothing was read, and in a *engine.PartialFrameError otherwise.
func readPDU(r io.Reader) ([]byte, error) {
	hdr := make([]byte, msrpc.HeaderLen)
	n, err := io.ReadFull(r, hdr)
	if err != nil {
		switch {
		case n == 0:
			return nil, err
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, fmt.Errorf("%w: %d-byte answer, shorter than an RPC header: % x", status.ErrProtocol, n, hdr[:n])
		}
		return nil, &engine.PartialFrameError{Got: n, Want: msrpc.HeaderLen, Err: err}
	}
	h, err := msrpc.ParseHeader(hdr)
	if err != nil {
		return nil, fmt.Errorf("%w: not an RPC header (%v): % x", status.ErrProtocol, err, hdr)
	}
	if h.FragLength > msrpc.MaxFrag {
		return nil, fmt.Errorf("%w: %v claims %d bytes, above the %d the bind allows: % x", status.ErrProtocol, h.Type, h.FragLength, msrpc.MaxFrag, hdr)
	}
	pdu := make([]byte, h.FragLength)
	copy(pdu, hdr)
	n, err = io.ReadFull(r, pdu[msrpc.HeaderLen:])
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %v of %d bytes ended after %d: %s", status.ErrProtocol, h.Type, h.FragLength, msrpc.HeaderLen+n,
				engine.HexPrefix(pdu[:msrpc.HeaderLen+n]))
		}
		return nil, &engine.PartialFrameError{Got: msrpc.HeaderLen + n, Want: int(h.FragLength), Err: err}
	}
	return pdu, nil
}

// epmFailure maps a failed bind exchange to a state and evidence.
func epmFailure(env *engine.Env, err error) (status.State, string) {
	var partial *engine.PartialFrameError
	switch {
	case errors.As(err, &partial) && status.Classify(partial.Err) == status.Timeout:
		return status.Timeout, fmt.Sprintf("connected, but the answer to the bind stopped after %d of %d bytes and did not finish in %s",
			partial.Got, partial.Want, env.Timeout())
	case status.Classify(err) == status.Timeout:
		return status.Timeout, fmt.Sprintf("connected, but no answer to the bind in %s", env.Timeout())
	case status.Classify(err) == status.Cancelled:
		return status.Error, "scan cancelled"
	case errors.Is(err, status.ErrProtocol):
		return status.ProtocolError, fmt.Sprintf("not an RPC answer: %v", err)
	case errors.Is(err, io.EOF):
		return status.ProtocolError, "the server closed the connection without answering the bind"
	case status.Classify(err) == status.Reset:
		return status.ProtocolError, "the server reset the connection without answering the bind"
	}
	return status.ProtocolError, fmt.Sprintf("the bind exchange failed: %v", engine.ErrnoText(err))
}
