package smb_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/internal/probetest"
	smbwire "github.com/ofmprobe/ofmprobe/probe/smb"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/steps/smb"
)

const testSecret = "Xy7#probe-Secret!pw"

// TestShareCheckStopsCredentials: after maxFailures logon failures the credentials are not sent again; the check
// runs as guest and says why.
func TestShareCheckStopsCredentials(t *testing.T) {
	srv := &logonServer{final: failWith(0xC000006D)}
	f := probetest.StartFake(t, srv.script)
	env := testEnv(t, 200*time.Millisecond)
	creds := smb.NewCredentials("ofmlab", "OFMLAB", testSecret, 2)
	var results []smb.ShareResult
	for range 4 {
		results = append(results, smb.CheckShare(context.Background(), env, loopback, f.Port(), creds, 0))
	}
	for i, r := range results[:2] {
		if r.State != smbwire.StateLogonFailure || r.Step != smbwire.StepSessionSetup || r.Login != `OFMLAB\ofmlab` || r.NTStatus != "0xc000006d" || r.CredentialsNote != "" {
			t.Errorf("check %d: %+v", i, r)
		}
	}
	note := "credentials not used: 2 logon failures already, stopped to avoid locking the account out"
	for i, r := range results[2:] {
		if r.State != smbwire.StateGuestRefused || r.Login != "guest" || r.CredentialsNote != note || !strings.HasSuffix(r.Evidence, "("+note+")") {
			t.Errorf("check %d: %+v", i+2, r)
		}
	}
	if got := strings.Join(srv.seen(), " "); got != "ofmlab ofmlab guest guest" {
		t.Errorf("the server saw logons of %q", got)
	}
	if !creds.Disabled() || creds.Failures() != 2 {
		t.Errorf("Disabled %v, Failures %d", creds.Disabled(), creds.Failures())
	}
}

// TestShareCheckCredentialsConcurrent: many hosts at once with a wrong password; no more logons than the limit
// reach any server before the password is proven, whatever the concurrency.
func TestShareCheckCredentialsConcurrent(t *testing.T) {
	srv := &logonServer{final: failWith(0xC000006D), delay: 30 * time.Millisecond}
	f := probetest.StartFake(t, srv.script)
	env := probetest.NewEnv(t, engine.Options{Timeout: 300 * time.Millisecond, Sockets: 64})
	creds := smb.NewCredentials("ofmlab", "", testSecret, 3)
	var wg sync.WaitGroup
	results := make([]smb.ShareResult, 20)
	for i := range results {
		wg.Go(func() { results[i] = smb.CheckShare(context.Background(), env, loopback, f.Port(), creds, 0) })
	}
	wg.Wait()
	users := 0
	for _, u := range srv.seen() {
		if u == "ofmlab" {
			users++
		}
	}
	if users != 3 || creds.Failures() != 3 {
		t.Errorf("%d logons as ofmlab reached the server, %d failures counted; want 3", users, creds.Failures())
	}
	failures := 0
	for _, r := range results {
		if r.State == smbwire.StateLogonFailure {
			failures++
		}
	}
	if failures != 3 {
		t.Errorf("%d results say logon failure, want 3", failures)
	}
}

// TestShareCheckLockedOut: a locked-out answer stops the credentials at once.
func TestShareCheckLockedOut(t *testing.T) {
	f := probetest.StartFake(t, (&logonServer{final: failWith(0xC0000234)}).script)
	env := testEnv(t, 200*time.Millisecond)
	creds := smb.NewCredentials("ofmlab", "OFMLAB", testSecret, 3)
	r := smb.CheckShare(context.Background(), env, loopback, f.Port(), creds, 0)
	if r.State != smbwire.StateLogonFailure || !strings.Contains(r.Evidence, "the account is locked out") || !creds.Disabled() {
		t.Errorf("got %+v, disabled %v", r, creds.Disabled())
	}
	r = smb.CheckShare(context.Background(), env, loopback, f.Port(), creds, 0)
	if r.Login != "guest" || r.CredentialsNote != `credentials not used: a server answered that the account OFMLAB\ofmlab is locked out` {
		t.Errorf("after lockout: %+v", r)
	}
}

func TestShareCheckFailures(t *testing.T) {
	env := testEnv(t, 100*time.Millisecond)
	ctx := context.Background()
	if r := smb.CheckShare(ctx, env, loopback, uint16(probetest.ClosedPort(t)), nil, 0); r.State != status.Closed || r.Step != "connect" {
		t.Errorf("closed: %+v", r)
	}
	hostile := probetest.StartFake(t, func(_ int, c net.Conn) { readFrame(c); c.Write([]byte{0, 0, 0, 5, 0xfe, 'S', 'M', 'B', 0x40}) })
	r := smb.CheckShare(ctx, env, loopback, hostile.Port(), nil, 0)
	if r.State != smbwire.StateProtocolError || r.Step != smbwire.StepNegotiate || r.IPC == nil || r.IPC.State != smbwire.StateProtocolError ||
		!strings.HasPrefix(r.Evidence, fmt.Sprintf("share mount %d: negotiate: the server sent a malformed SMB frame", hostile.Port())) {
		t.Errorf("hostile: %+v", r)
	}
	// The check of a host whose credentials were given but are disabled, on a closed port, still says why.
	creds := smb.NewCredentials("u", "", testSecret, 1)
	smb.RecordLogonFailure(creds)
	r = smb.CheckShare(ctx, env, loopback, uint16(probetest.ClosedPort(t)), creds, 0)
	if r.State != status.Closed || !strings.HasSuffix(r.Evidence, "(credentials not used: 1 logon failure already, stopped to avoid locking the account out)") {
		t.Errorf("closed with disabled credentials: %+v", r)
	}
	js, _ := json.Marshal(r)
	for _, text := range []string{fmt.Sprintf("%+v", r), fmt.Sprintf("%#v", r), string(js), fmt.Sprintf("%+v", creds)} {
		if strings.Contains(text, testSecret) {
			t.Errorf("the password shows in %s", text)
		}
	}
}

// TestShareCheck139Refused: when TCP 139 refuses a NetBIOS session to every name, the share check over 139 says so
// and reaches no SMB step.
func TestShareCheck139Refused(t *testing.T) {
	f := probetest.StartFake(t, nbssThen(func(string) bool { return false }, func(int, net.Conn) {}))
	defer f.Stop()
	r := smb.CheckShare139(context.Background(), testEnv(t, 300*time.Millisecond), loopback, f.Port(), "FILESRV", nil, 0)
	if r.State != status.SessionRefused || r.Step != "connect" || r.Port != int(f.Port()) || !strings.Contains(r.Evidence, "share mount") {
		t.Errorf("got %+v, want session refused at connect", r)
	}
	if n := f.Accepted.Load(); n != 2 {
		t.Errorf("%d sessions requested, want 2 (FILESRV<20>, then *SMBSERVER)", n)
	}
}

// TestShareCheckRetriesSilence: a share check whose first connection meets silence runs again on a fresh one, and
// the second attempt's answer (here a logon failure) is the result, with the retry in the evidence.
func TestShareCheckRetriesSilence(t *testing.T) {
	srv := &logonServer{final: failWith(0xC000006D)}
	f := probetest.StartFake(t, func(n int, c net.Conn) {
		if n == 1 {
			readFrame(c)
			time.Sleep(2 * time.Second) // past the check's budget: the answer is lost
			return
		}
		srv.script(n, c)
	})
	env := probetest.NewEnv(t, engine.Options{Timeout: 100 * time.Millisecond, Retries: 1})
	creds := smb.NewCredentials("ofmlab", "OFMLAB", testSecret, 3)
	r := smb.RetryShare(context.Background(), env, nil, true, func() smb.ShareResult {
		return smb.CheckShare(context.Background(), env, loopback, f.Port(), creds, 0)
	})
	if r.State != smbwire.StateLogonFailure || !strings.Contains(r.Evidence, "(answered on attempt 2 of 2; the earlier met silence)") {
		t.Errorf("share check %+v, want the second attempt's logon failure and the retry in the evidence", r)
	}
	if creds.Failures() != 1 {
		t.Errorf("%d logon failures counted, want 1: the silent attempt proves nothing", creds.Failures())
	}
}
