package smb_test

import (
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/internal/probetest"
	"github.com/ofmprobe/ofmprobe/probe/msrpc"
	smbwire "github.com/ofmprobe/ofmprobe/probe/smb"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/steps/rpc"
	"github.com/ofmprobe/ofmprobe/probe/steps/smb"
)

// TestStepsEndCleanly runs each connection step (smb negotiate on 445 and 139, epm bind, share mount on 445 and
// 139) against a silent and a hostile server, then checks that every connection was closed by the step, that no
// goroutine is left behind, and that silence cost the step's own deadline and not more.
func TestStepsEndCleanly(t *testing.T) {
	const timeout = 150 * time.Millisecond
	env := testEnv(t, timeout)
	ctx := context.Background()
	silent := func(_ int, c net.Conn) { readFrame(c) }
	short := func(_ int, c net.Conn) { readFrame(c); c.Write([]byte{0, 0, 0, 5, 0xfe, 'S', 'M', 'B', 0x40}) }
	kerberos := func(_ int, c net.Conn) {
		// A negotiate answer, then a session setup answer naming Kerberos: go-smb2 panics in the caller's goroutine.
		c.Write(negotiateAnswer(readFrame(c), smbwire.SMB210, 1))
		req := readFrame(c)
		c.Write(smb2Reply(req, 0xC0000016, sessionSetupBody(strings.Replace(spnegoNTLMChallenge, "060a2b06010401823702020a", "060a2b06010401823702020b", 1))))
	}
	bigFrag := func(_ int, c net.Conn) {
		io.ReadFull(c, make([]byte, msrpc.BindLen))
		c.Write([]byte{5, 0, 0x0c, 3, 0x10, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0})
	}
	accept := func(string) bool { return true }
	negotiate := func(p uint16) status.State { return smb.Negotiate(ctx, env, loopback, p).State }
	negotiate139 := func(p uint16) status.State { return smb.Negotiate139(ctx, env, loopback, p, "").State }
	bind := func(p uint16) status.State { return rpc.Bind(ctx, env, loopback, p).State }
	share := func(p uint16) status.State { return smb.CheckShare(ctx, env, loopback, p, nil, 0).State }
	share139 := func(p uint16) status.State { return smb.CheckShare139(ctx, env, loopback, p, "", nil, 0).State }
	steps := []struct {
		name    string
		script  func(int, net.Conn)
		run     func(port uint16) status.State
		min     time.Duration // silence must last at least this: the step's deadline
		max     time.Duration
		silence bool
	}{
		{"smb negotiate, silent", silent, negotiate, timeout, 3 * timeout, true},
		{"smb negotiate, hostile", short, negotiate, 0, 3 * timeout, false},
		{"smb negotiate 139, silent", nbssThen(accept, silent), negotiate139, timeout, 3 * timeout, true},
		{"smb negotiate 139, hostile", nbssThen(accept, short), negotiate139, 0, 3 * timeout, false},
		{"epm bind, silent", silent, bind, timeout, 3 * timeout, true},
		{"epm bind, hostile", bigFrag, bind, 0, 3 * timeout, false},
		{"share mount, silent", silent, share, smb.ShareStepBudget * timeout, 3 * smb.ShareStepBudget * timeout, true},
		{"share mount, hostile", short, share, 0, 3 * timeout, false},
		{"share mount, client panic", kerberos, share, 0, 3 * timeout, false},
		{"share mount 139, silent", nbssThen(accept, silent), share139, smb.ShareStepBudget * timeout, 3 * smb.ShareStepBudget * timeout, true},
		{"share mount 139, hostile", nbssThen(accept, short), share139, 0, 3 * timeout, false},
	}
	// Warm up what starts goroutines once per process (the resolver, crypto/rand, timers).
	warm := probetest.StartFake(t, short)
	share(warm.Port())
	warm.Stop()
	baseline := probetest.SettledGoroutines(0)

	for _, st := range steps {
		f := probetest.StartFake(t, st.script)
		start := time.Now()
		state := st.run(f.Port())
		took := time.Since(start)
		f.Stop()
		if st.silence && state != status.Timeout {
			t.Errorf("%s: state %s, want timeout", st.name, state)
		}
		if !st.silence && state != status.ProtocolError {
			t.Errorf("%s: state %s, want protocol error", st.name, state)
		}
		if took < st.min || took > st.max {
			t.Errorf("%s: took %s, want between %s and %s", st.name, took, st.min, st.max)
		}
		if a, c := f.Accepted.Load(), f.ClientClosed.Load(); a == 0 || a != c {
			t.Errorf("%s: %d connections, %d closed by the step", st.name, a, c)
		}
	}
	// A silent host: the connect itself gets no answer; each step costs about one timeout.
	port := uint16(probetest.SilentPort(t))
	for name, run := range map[string]func(uint16) status.State{"smb negotiate": negotiate, "epm bind": bind, "share mount": share} {
		start := time.Now()
		state := run(port)
		if took := time.Since(start); state != status.Filtered || took < timeout || took > 3*timeout {
			t.Errorf("%s on a silent host: %s after %s", name, state, took)
		}
	}
	if n := probetest.SettledGoroutines(baseline); n > baseline {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines left, %d before:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
	}
}
