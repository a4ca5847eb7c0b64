package nbt_test

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/internal/probetest"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/steps/nbt"
)

func TestSessionRequest(t *testing.T) {
	positive := []byte{0x82, 0, 0, 0}
	readRequest := probetest.ReadSessionRequest
	tests := []struct {
		name     string
		server   string // name node status gave
		handle   func(n int, c net.Conn)
		state    status.State
		called   int
		evidence string
	}{
		{"positive to the real name", "OFM90", func(_ int, c net.Conn) {
			if readRequest(c) == "OFM90<20>" {
				c.Write(positive)
			}
		}, status.Positive, 1, "nbss 139 (OFM90<20>): positive session response in "},
		{"real name refused, *SMBSERVER accepted", "WRONG", func(_ int, c net.Conn) {
			if readRequest(c) == "*SMBSERVER<20>" {
				c.Write(positive)
			} else {
				c.Write([]byte{0x83, 0, 0, 1, 0x82})
			}
		}, status.Positive, 2, "nbss 139 (*SMBSERVER<20>): positive session response in "},
		{"negative with the reason", "", func(_ int, c net.Conn) {
			readRequest(c)
			c.Write([]byte{0x83, 0, 0, 1, 0x80})
		}, status.Negative, 1, "nbss 139 (*SMBSERVER<20>): negative session response: "},
		{"keepalives skipped", "", func(_ int, c net.Conn) {
			readRequest(c)
			c.Write([]byte{0x85, 0, 0, 0, 0x85, 0, 0, 0})
			c.Write(positive)
		}, status.Positive, 1, "nbss 139 (*SMBSERVER<20>): positive session response in "},
		{"silence", "", func(_ int, c net.Conn) {
			readRequest(c)
			time.Sleep(time.Second)
		}, status.Timeout, 1, "nbss 139 (*SMBSERVER<20>): connected, but no answer to the session request in 300ms"},
		{"SMB instead of NetBIOS", "", func(_ int, c net.Conn) {
			readRequest(c)
			c.Write([]byte{0x00, 0x00, 0x00, 0x04, 0xfe, 'S', 'M', 'B'})
		}, status.ProtocolError, 1, "nbss 139 (*SMBSERVER<20>): not a NetBIOS answer"},
		{"claims a huge body", "", func(_ int, c net.Conn) {
			readRequest(c)
			c.Write([]byte{0x82, 0x01, 0xff, 0xff})
		}, status.ProtocolError, 1, "nbss 139 (*SMBSERVER<20>): not a NetBIOS answer"},
		{"closes without a word", "", func(_ int, c net.Conn) {
			readRequest(c)
		}, status.ProtocolError, 1, "nbss 139 (*SMBSERVER<20>): the connection ended without an answer"},
		{"half a header", "", func(_ int, c net.Conn) {
			readRequest(c)
			c.Write([]byte{0x82, 0x00})
		}, status.ProtocolError, 1, "nbss 139 (*SMBSERVER<20>): not a NetBIOS answer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := probetest.NewEnv(t, engine.Options{Timeout: 300 * time.Millisecond})
			dst := netip.AddrPortFrom(probetest.Loopback, uint16(probetest.TCPFake(t, tc.handle)))
			sess := nbt.RequestSessions(context.Background(), env, dst, tc.server)
			if sess.State != tc.state || len(sess.Called) != tc.called || !strings.HasPrefix(sess.Evidence, tc.evidence) {
				t.Errorf("got %s, called %q, %q; want %s after %d names, %q...", sess.State, sess.Called, sess.Evidence, tc.state, tc.called, tc.evidence)
			}
		})
	}
}
