package connect

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/internal/backlog"
)

const ms = int64(time.Millisecond)

// TestWindow moves the congestion window through losses and answers: a loss halves it, at most once an interval and
// never below the floor; answers give a sixteenth of the budget back each interval; silence moves nothing.
func TestWindow(t *testing.T) {
	w := newWindow(4096, 256)
	if w.cwnd != 4096 {
		t.Fatalf("starts at %d, want the budget", w.cwnd)
	}
	if w.answered(time.Millisecond, 10*ms) || w.cwnd != 4096 {
		t.Fatalf("grew past the budget: %d", w.cwnd)
	}
	if !w.lost(20*ms) || w.cwnd != 2048 {
		t.Fatalf("a loss: %d, want 2048", w.cwnd)
	}
	if w.lost(120*ms) || w.cwnd != 2048 {
		t.Fatalf("a second loss within the interval cut again: %d", w.cwnd)
	}
	for now := 230 * ms; w.lost(now); now += 210 * ms {
		if w.backoffs > 10 {
			break
		}
	}
	if w.cwnd != 256 || w.lowest != 256 {
		t.Fatalf("many losses: %d (lowest %d), want the floor 256", w.cwnd, w.lowest)
	}
	last := w.last
	if w.answered(time.Millisecond, last+100*ms) {
		t.Fatal("grew within the interval of the last cut")
	}
	now := last
	for w.cwnd < 4096 {
		now += 210 * ms
		before := w.cwnd
		if !w.answered(time.Millisecond, now) || w.cwnd != before+256 {
			t.Fatalf("an interval of answers: %d -> %d, want +256", before, w.cwnd)
		}
	}
	if steps := (now - last) / (210 * ms); steps != 15 {
		t.Errorf("back from the floor in %d intervals, want 15", steps)
	}
	if w.backoffs < 4 || w.lowest != 256 {
		t.Errorf("backoffs %d, lowest %d", w.backoffs, w.lowest)
	}

	// A slow network spaces the moves by two round trips.
	w = newWindow(1000, 10)
	for range 50 {
		w.answered(400*time.Millisecond, 0)
	}
	w.lost(0)
	if w.lost(500*ms) || !w.lost(900*ms) {
		t.Errorf("with a 400 ms round trip, cuts must be 800 ms apart (srtt %v)", time.Duration(w.srtt))
	}

	// A floor above the budget is the budget.
	if w := newWindow(8, 256); w.floor != 8 || !w.lost(0) || w.cwnd != 8 {
		t.Errorf("floor above the budget: floor %d, cwnd %d", w.floor, w.cwnd)
	}
}

// TestWindowBoundsInFlight proves the connector keeps no more connects in flight than the window after a loss, that
// silence does not grow it back and answers do.
func TestWindowBoundsInFlight(t *testing.T) {
	const limit = 40
	var mu sync.Mutex
	open_, peak := 0, 0
	c := open(t, Config{
		MaxInFlight: limit,
		MinInFlight: 4,
		socket: func(family int, open func() (int, error)) (int, error) {
			fd, err := open()
			if err == nil {
				mu.Lock()
				open_++
				peak = max(peak, open_)
				mu.Unlock()
			}
			return fd, err
		},
		closing: func(int, Outcome) { mu.Lock(); open_--; mu.Unlock() },
	})
	c.Lost()
	c.Lost() // within the interval: one signal
	if s := c.Stats(); s.Window != limit/2 || s.Backoffs != 1 || s.Losses != 2 {
		t.Fatalf("after two losses at once: %+v", s)
	}
	silent := silentPort(t)
	r := newResults(t, 200)
	for i := range 200 {
		c.Connect(Attempt{Dst: silent, Timeout: 50 * time.Millisecond, Done: r.done(i)})
	}
	r.wait(30 * time.Second)
	mu.Lock()
	if peak > limit/2 {
		t.Errorf("%d sockets in flight at once, window %d", peak, limit/2)
	}
	mu.Unlock()
	if s := c.Stats(); s.Window != limit/2 || s.PeakInFlight > limit/2 {
		t.Errorf("silence moved the window: %+v", s)
	}

	// Refusals are answers: the window grows back to the budget, a step each interval.
	closed := closedPort(t)
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().Window < limit && time.Now().Before(deadline) {
		r := newResults(t, 1)
		c.Connect(Attempt{Dst: closed, Timeout: time.Second, Done: r.done(0)})
		r.wait(5 * time.Second)
		time.Sleep(20 * time.Millisecond)
	}
	if s := c.Stats(); s.Window != limit || s.LowestWindow != limit/2 {
		t.Errorf("after answers: window %d, lowest %d; want %d and %d", s.Window, s.LowestWindow, limit, limit/2)
	}
}

// TestStartedWhenTheConnectLeaves: Started is called when the connect call was made, not when the attempt was
// queued: an attempt that waits for a free slot starts its caller's timer only once it has one.
func TestStartedWhenTheConnectLeaves(t *testing.T) {
	c := open(t, Config{MaxInFlight: 1})
	silent := silentPort(t)
	queued := time.Now()
	var mu sync.Mutex
	var started [2]time.Duration
	r := newResults(t, 2)
	for i := range 2 {
		c.Connect(Attempt{Dst: silent, Timeout: 200 * time.Millisecond, Done: r.done(i), Started: func() {
			mu.Lock()
			started[i] = time.Since(queued)
			mu.Unlock()
		}})
	}
	r.wait(10 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	if started[0] == 0 || started[0] > 100*time.Millisecond {
		t.Errorf("the first attempt started after %v", started[0])
	}
	if started[1] < 200*time.Millisecond {
		t.Errorf("the second attempt, queued behind the first, started after %v: before it had a socket", started[1])
	}
}

// TestRetransmittedSYNIsALoss loses a SYN for real: the listener's accept queue is full, so the kernel drops the
// first SYN; the queue is drained before the kernel sends the SYN again (1 s later), which is answered. The
// connection is Connected with Retransmitted set (TCP_INFO's round-trip sample is the second SYN's, far shorter
// than the wait), and the connector counts the loss and cuts its window.
func TestRetransmittedSYNIsALoss(t *testing.T) {
	port, drain := backlog.Full(t)
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	// After the first SYN, before the kernel sends it again.
	time.AfterFunc(400*time.Millisecond, drain)
	c := open(t, Config{MaxInFlight: 64})
	r := newResults(t, 1)
	c.Connect(Attempt{Dst: dst, Timeout: 3 * time.Second, Done: r.done(0)})
	r.wait(10 * time.Second)
	got := r.got[0]
	if got.Outcome != Connected || !got.Retransmitted || got.RTT < 900*time.Millisecond {
		t.Fatalf("got %+v, want connected to the second SYN, about 1 s after the first", got)
	}
	if s := c.Stats(); s.Losses != 1 || s.Backoffs != 1 || s.Window != 32 {
		t.Errorf("stats %+v: want the loss counted and the window halved", s)
	}
}
