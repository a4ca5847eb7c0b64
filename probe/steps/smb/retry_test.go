package smb_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/internal/probetest"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/steps"
	"github.com/ofmprobe/ofmprobe/probe/steps/smb"
)

// TestNegotiateRetriesSilence: the SMB negotiate whose first connection meets silence (its answer lost) is made
// again on a fresh connection within the step, and the evidence says so; a server that never answers is still a
// timeout, with the attempts and the port's open state in the evidence.
func TestNegotiateRetriesSilence(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answerOn int // the connection that answers; 0: none
		state    status.State
		evidence string
	}{
		{"the first exchange lost", 3, status.SMB2, "(answered on attempt 2 of 2; the earlier met silence)"},
		{"every exchange lost", 0, status.Timeout, "(silence on all 2 attempts, each on a fresh connection, though the port accepted a connection a moment before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Connection 1 is the tcp connect probe; 2 is the negotiate's first attempt.
			fake := probetest.StartFake(t, func(n int, c net.Conn) {
				switch {
				case n == 1:
				case n == tc.answerOn:
					answerWildcard(c)
					answerSMB302(c)
				case tc.answerOn != 0 && n > tc.answerOn:
					readFrame(c)
					c.Write(smb1Answer(0xFFFF))
				default:
					readFrame(c)
					time.Sleep(time.Second) // silence past the timeout
				}
			})
			port := fake.Port()
			cfg := steps.Config{Ports: []int{int(port)}, SMB: smb.Config{DirectPort: port, SessionPort: 1}}
			h := probetest.Scan(t, cfg, engine.Options{Retries: 1}, "127.0.0.1", "smb")
			r, ok := smb.NegotiateOf(h, port)
			if !ok || r.State != tc.state || !strings.Contains(r.Evidence, tc.evidence) {
				t.Fatalf("negotiate %+v, want %s with evidence containing %q", r, tc.state, tc.evidence)
			}
		})
	}
}
