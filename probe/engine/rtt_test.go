package engine

import (
	"testing"
	"time"
)

func TestRTTEstimate(t *testing.T) {
	var r RTT
	if got, ok := r.timeout(1500 * time.Millisecond); ok || got != 1500*time.Millisecond {
		t.Errorf("no sample: %s %v, want the base", got, ok)
	}
	// A fast network never shortens the user's timeout.
	for range 10 {
		r.Sample(time.Millisecond)
	}
	if got, _ := r.timeout(1500 * time.Millisecond); got != 1500*time.Millisecond {
		t.Errorf("fast answers: timeout %s, want the base 1.5s", got)
	}
	// Answers that come in 0.9-1.5 s (a loaded network) push it past 1.5 s.
	var slow RTT
	for _, ms := range []int{900, 1500, 1100, 1400, 950, 1300} {
		slow.Sample(time.Duration(ms) * time.Millisecond)
	}
	srtt, rttvar, n := slow.Estimate()
	got, _ := slow.timeout(1500 * time.Millisecond)
	if n != 6 || got <= 1500*time.Millisecond || got != min(srtt+4*rttvar, 6*time.Second) {
		t.Errorf("slow answers: srtt %s rttvar %s timeout %s, want srtt+4rttvar above 1.5s", srtt, rttvar, got)
	}
	// It never grows past four times the base.
	var worse RTT
	worse.Sample(30 * time.Second)
	if got, _ := worse.timeout(time.Second); got != 4*time.Second {
		t.Errorf("capped timeout %s, want 4s", got)
	}
	// The host's own estimate comes first, the scan's otherwise.
	h := &Host{}
	if got := adaptiveTimeout(h, &slow, 1500*time.Millisecond); got != min(srtt+4*rttvar, 6*time.Second) {
		t.Errorf("host without samples: %s, want the scan's", got)
	}
	h.rtt.Sample(time.Millisecond)
	if got := adaptiveTimeout(h, &slow, 1500*time.Millisecond); got != 1500*time.Millisecond {
		t.Errorf("fast host on a slow scan: %s, want its own (the base)", got)
	}
}

func TestRetryConnectTimeout(t *testing.T) {
	e := &Env{opts: Options{Timeout: 1500 * time.Millisecond}}
	first := 1500 * time.Millisecond
	// Nothing measured yet: the retry waits as long as the first attempt.
	if got := e.RetryConnectTimeout(&Host{}, first); got != first {
		t.Errorf("no estimate: %s, want %s", got, first)
	}
	// A host that answers in a millisecond: a third of --timeout, never less.
	h := &Host{}
	for range 5 {
		h.rtt.Sample(time.Millisecond)
	}
	if got := e.RetryConnectTimeout(h, first); got != 500*time.Millisecond {
		t.Errorf("fast host: %s, want 500ms", got)
	}
	// A host without answers of its own takes the scan's estimate.
	e.rtt.Sample(800 * time.Millisecond)
	if got := e.RetryConnectTimeout(&Host{}, first); got != first {
		t.Errorf("slow scan (800ms + 4x400ms): %s, want the first attempt's %s as the cap", got, first)
	}
	// A host whose answers take 600 ms gets its own srtt + 4 rttvar, below the first attempt's.
	slow := &Host{}
	for range 40 {
		slow.rtt.Sample(600 * time.Millisecond)
	}
	if got := e.RetryConnectTimeout(slow, 2*time.Second); got < 600*time.Millisecond || got > 700*time.Millisecond {
		t.Errorf("steady 600ms host: %s, want about 600ms", got)
	}
}

// TestLateAnswerGrace: the first connect waits on past its timeout only where a late answer is plausible: nothing
// measured yet, or round trips within a quarter of the timeout; a fast path gets none.
func TestLateAnswerGrace(t *testing.T) {
	e := &Env{opts: Options{Timeout: 1500 * time.Millisecond}}
	first := 1500 * time.Millisecond
	if got := e.LateAnswerGrace(&Host{}, first); got != first {
		t.Errorf("nothing measured: %s, want the retry's wait %s", got, first)
	}
	fast := &Host{}
	for range 5 {
		fast.rtt.Sample(2 * time.Millisecond)
	}
	if got := e.LateAnswerGrace(fast, first); got != 0 {
		t.Errorf("a host that answers in 2 ms: %s, want none", got)
	}
	slow := &Host{}
	for range 40 {
		slow.rtt.Sample(500 * time.Millisecond)
	}
	if got := e.LateAnswerGrace(slow, first); got < 500*time.Millisecond {
		t.Errorf("a host that answers in 500 ms: %s, want the retry's wait", got)
	}
	// A host with no answers of its own follows the scan.
	for range 5 {
		e.rtt.Sample(time.Millisecond)
	}
	if got := e.LateAnswerGrace(&Host{}, first); got != 0 {
		t.Errorf("a fast scan: %s, want none", got)
	}
}
