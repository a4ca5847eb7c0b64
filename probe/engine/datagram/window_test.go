package datagram

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

// submitAll submits n queries to dst (each with a distinct payload byte pattern) and waits, bounded, for every Done.
func submitAll(t *testing.T, m *Mux, dst netip.AddrPort, n, tries int, timeout time.Duration) []Result {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	results := make([]Result, 0, n)
	wg.Add(n)
	for i := range n {
		payload := []byte{byte(i >> 8), byte(i)}
		m.Submit(Query{Dst: dst, Payload: payload, Tries: tries, Timeout: timeout,
			Match: func(reply []byte) bool { return len(reply) == 2 && reply[0] == payload[0] && reply[1] == payload[1] },
			Done: func(r Result) {
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
				wg.Done()
			}})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatalf("queries did not end")
	}
	return results
}

// TestWindowGrowsOnAnswers: answers to first tries open the window (slow start), and a window of 4 never has more
// than 4 first tries out at once.
func TestWindowGrowsOnAnswers(t *testing.T) {
	r := startResponder(t, answer, 0)
	var mu sync.Mutex
	peak := 0
	var m *Mux
	ready := make(chan struct{})
	m = openMux(t, Config{Window: 4, MinWindow: 4, MaxWindow: 64, send: func(_ netip.AddrPort, _ []byte, send func() error) error {
		<-ready
		m.mu.Lock()
		flight := m.flight
		m.mu.Unlock()
		mu.Lock()
		peak = max(peak, flight)
		mu.Unlock()
		return send()
	}})
	close(ready)
	var wg sync.WaitGroup
	wg.Add(200)
	for i := range 200 {
		payload := []byte{byte(i >> 8), byte(i)}
		m.Submit(Query{Dst: r.addr, Payload: payload, Tries: 1, Timeout: 5 * time.Second,
			Match: func(reply []byte) bool { return reply[0] == payload[0] && reply[1] == payload[1] },
			Done:  func(Result) { wg.Done() }})
	}
	wg.Wait()
	s := m.Stats()
	if s.Window != 64 || s.Backoffs != 0 {
		t.Errorf("window %d after 200 answers (backoffs %d), want the maximum 64 and no cut", s.Window, s.Backoffs)
	}
	if peak > 64 {
		t.Errorf("%d first tries out at once, the window allows at most 64", peak)
	}
}

// TestWindowHalvesOnLoss: answers that come only after a retry mean the first try was lost; the window is cut, and
// the end says so. A silent destination (a firewall) cuts nothing.
func TestWindowHalvesOnLoss(t *testing.T) {
	lossy := startResponder(t, everyNth, 2) // every other datagram answered: half the first tries lost
	m := openMux(t, Config{Window: 256, MinWindow: 8, MaxWindow: 256})
	results := submitAll(t, m, lossy.addr, 300, 4, 100*time.Millisecond)
	answered := 0
	for _, r := range results {
		if r.Outcome == Answered {
			answered++
		}
	}
	s := m.Stats()
	// Half the datagrams lost: 1 query in 16 loses all four tries.
	if answered < 250 || s.Backoffs == 0 || s.LowestWindow >= 256 {
		t.Errorf("answered %d of 300, backoffs %d, lowest window %d: want most answered and the window cut", answered, s.Backoffs, s.LowestWindow)
	}

	silent := startResponder(t, silent, 0)
	m2 := openMux(t, Config{Window: 64, MinWindow: 8, MaxWindow: 64})
	results = submitAll(t, m2, silent.addr, 200, 2, 50*time.Millisecond)
	s = m2.Stats()
	if len(results) != 200 || s.Backoffs != 0 || s.Window != 64 {
		t.Errorf("silence: %d results, backoffs %d, window %d; want no cut", len(results), s.Backoffs, s.Window)
	}
}
