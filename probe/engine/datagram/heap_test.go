package datagram

import (
	"math/rand/v2"
	"testing"
)

// TestTimerHeap pushes, removes from the middle and pops, and checks the pops come in deadline order with every
// index kept.
func TestTimerHeap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h timerHeap
	var live []*query
	for range 2000 {
		q := &query{deadline: rng.Int64N(1000), heapIdx: -1}
		h.push(q)
		live = append(live, q)
	}
	for range 500 {
		i := rng.IntN(len(live))
		q := live[i]
		h.remove(int(q.heapIdx))
		if q.heapIdx != -1 {
			t.Fatalf("removed query keeps index %d", q.heapIdx)
		}
		live = append(live[:i], live[i+1:]...)
	}
	for i, q := range h {
		if int(q.heapIdx) != i {
			t.Fatalf("query at %d says %d", i, q.heapIdx)
		}
	}
	last := int64(-1)
	for n := 0; len(h) > 0; n++ {
		q := h.pop()
		if q.deadline < last {
			t.Fatalf("pop %d: deadline %d after %d", n, q.deadline, last)
		}
		last = q.deadline
	}
	if len(live) != 1500 {
		t.Fatalf("%d live", len(live))
	}
}
