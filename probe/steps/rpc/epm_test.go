package rpc_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/internal/probetest"
	"github.com/ofmprobe/ofmprobe/probe/msrpc"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/steps/rpc"
)

func pdu(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bindAck is a bind_ack (C706 §12.6.4.4) for call id 1 as Samba's endpoint mapper sends it: max frags 4280,
// assoc group 0x0000f053, secondary address "135", one result accepting NDR v2.0. (derived from C706 and the
// layout in PROTOCOLS.md.)
const bindAck = `05000c03 10000000 3c00 0000 01000000
	b810 b810 53f00000 0400 31333500 0000
	01000000 0000 0000 045d888aeb1cc9119fe808002b104860 02000000`

// bindNak is a bind_nak (C706 §12.6.4.5) for call id 1: reason 4 (protocol version not supported), supports 5.0.
const bindNak = `05000d03 10000000 1800 0000 01000000 0400 01 0500 000000`

// readBind reads the 72-byte bind the step sends.
func readBind(c net.Conn) []byte {
	b := make([]byte, msrpc.BindLen)
	if _, err := io.ReadFull(c, b); err != nil {
		return nil
	}
	return b
}

func testEnv(t testing.TB) *engine.Env {
	return probetest.NewEnv(t, engine.Options{Timeout: 200 * time.Millisecond})
}

func TestEPMBind(t *testing.T) {
	tests := []struct {
		name     string
		script   func(int, net.Conn)
		state    status.State
		evidence string
	}{
		{"bind_ack", func(_ int, c net.Conn) { readBind(c); c.Write(pdu(t, bindAck)) }, status.Bound,
			`epm bind %d: an RPC endpoint mapper answered in `},
		{"bind_nak", func(_ int, c net.Conn) { readBind(c); c.Write(pdu(t, bindNak)) }, status.Rejected,
			`epm bind %d: an RPC server answered in `},
		{"ack in two pieces", func(_ int, c net.Conn) {
			readBind(c)
			b := pdu(t, bindAck)
			c.Write(b[:10])
			time.Sleep(20 * time.Millisecond)
			c.Write(b[10:])
		}, status.Bound, `epm bind %d: an RPC endpoint mapper answered in `},
		{"another call id", func(_ int, c net.Conn) {
			readBind(c)
			b := pdu(t, bindAck)
			b[12] = 7
			c.Write(b)
		}, status.ProtocolError, `epm bind %d: bind_ack for call id 7, sent 1`},
		{"garbage", func(_ int, c net.Conn) { readBind(c); c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")) }, status.ProtocolError,
			`epm bind %d: not an RPC answer: protocol error: not an RPC header (msrpc: version 72.84: msrpc: unsupported rpc version): 48 54 54 50`},
		{"silence", func(_ int, c net.Conn) { readBind(c) }, status.Timeout, `epm bind %d: connected, but no answer to the bind in 200ms`},
		{"oversized frag", func(_ int, c net.Conn) {
			readBind(c)
			c.Write(pdu(t, `05000c03 10000000 ffff 0000 01000000`))
		}, status.ProtocolError, `epm bind %d: not an RPC answer: protocol error: bind_ack claims 65535 bytes, above the 4280 the bind allows`},
		{"short header, then close", func(_ int, c net.Conn) {
			readBind(c)
			c.Write([]byte{5, 0, 0x0c})
			c.(*net.TCPConn).CloseWrite()
		}, status.ProtocolError, `epm bind %d: not an RPC answer: protocol error: 3-byte answer, shorter than an RPC header: 05 00 0c`},
		{"cut body, then close", func(_ int, c net.Conn) {
			readBind(c)
			c.Write(pdu(t, bindAck)[:30])
			c.(*net.TCPConn).CloseWrite()
		}, status.ProtocolError, `epm bind %d: not an RPC answer: protocol error: bind_ack of 60 bytes ended after 30`},
		{"slow drip", func(_ int, c net.Conn) {
			readBind(c)
			for _, b := range pdu(t, bindAck) {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}, status.Timeout, `epm bind %d: connected, but the answer to the bind stopped after `},
		{"reset", func(_ int, c net.Conn) { readBind(c); probetest.HangUp(c) }, status.ProtocolError,
			`epm bind %d: the server reset the connection without answering the bind`},
		{"fault instead of an answer", func(_ int, c net.Conn) {
			readBind(c)
			c.Write(pdu(t, `05000303 10000000 2000 0000 01000000 00000000 00000000 05000000 00000000`))
		}, status.ProtocolError, `epm bind %d: not a bind answer (msrpc: fault: msrpc: unexpected packet type)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := probetest.StartFake(t, tc.script)
			r := rpc.Bind(context.Background(), testEnv(t), probetest.Loopback, f.Port())
			evidence := fmt.Sprintf(tc.evidence, f.Port())
			if r.State != tc.state || !strings.HasPrefix(r.Evidence, evidence) || r.Port != int(f.Port()) {
				t.Errorf("got %s: %q\nwant %s: %q...", r.State, r.Evidence, tc.state, evidence)
			}
		})
	}
}

// TestEPMBindSends checks the bind on the wire and the evidence of a bind_ack, and that the step binds on 135.
func TestEPMBindSends(t *testing.T) {
	got := make(chan []byte, 1)
	f := probetest.StartFake(t, func(_ int, c net.Conn) { got <- readBind(c); c.Write(pdu(t, bindAck)) })
	env := testEnv(t)
	r := rpc.Bind(context.Background(), env, probetest.Loopback, f.Port())
	if want := msrpc.AppendBind(nil, 1); !bytes.Equal(<-got, want) {
		t.Errorf("the bind differs from msrpc.AppendBind(nil, 1)")
	}
	if !strings.HasSuffix(r.Evidence, `bind_ack: context accepted with NDR v2.0, max xmit 4280, max recv 4280, assoc group 0x0000f053, secondary address "135"`) {
		t.Errorf("evidence %q", r.Evidence)
	}
	if r := rpc.Bind(context.Background(), env, probetest.Loopback, rpc.Port); r.Port != 135 {
		t.Errorf("epm bind on rpc.Port: port %d", r.Port)
	}
	if s := rpc.Step(rpc.Port); len(s.Requires) != 1 || s.Requires[0] != "tcp 135" {
		t.Errorf("the epm bind step requires %v, want tcp 135", s.Requires)
	}
}

func FuzzReadPDU(f *testing.F) {
	f.Add(pdu(f, bindAck))
	f.Add(pdu(f, bindNak))
	f.Add(pdu(f, `05000c03 10000000 ffff 0000 01000000`))
	f.Add([]byte{5, 0, 0x0c})
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := rpc.ReadPDU(bytes.NewReader(in))
		if err != nil {
			return
		}
		h, herr := msrpc.ParseHeader(b)
		if herr != nil || int(h.FragLength) != len(b) || h.FragLength > msrpc.MaxFrag || !bytes.HasPrefix(in, b) {
			t.Fatalf("bad PDU % x from % x", b, in)
		}
	})
}
