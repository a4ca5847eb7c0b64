package timeheap

import (
	"math/rand/v2"
	"testing"
)

type item struct {
	Timed
	id int
}

// TestHeapOrder pushes random deadlines, removes a third of them from anywhere, and pops the rest in order, checking
// after every change that each element knows its position.
func TestHeapOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Heap[*item]
	var all []*item
	check := func() {
		for i, e := range h {
			if e.Index() != i || !e.Queued() {
				t.Fatalf("element at %d says %d (queued %v)", i, e.Index(), e.Queued())
			}
		}
	}
	for i := range 1000 {
		e := &item{Timed: Timed{At: rng.Int64N(500)}, id: i}
		all = append(all, e)
		h.Push(e)
	}
	check()
	for i, e := range all {
		if i%3 == 0 {
			h.Remove(e)
			if e.Queued() || e.Index() != -1 {
				t.Fatalf("removed element still queued at %d", e.Index())
			}
			h.Remove(e) // a second Remove is a no-op
		}
	}
	check()
	last := int64(-1)
	n := 0
	for len(h) > 0 {
		e := h.Pop()
		if e.At < last {
			t.Fatalf("pop %d: deadline %d after %d", n, e.At, last)
		}
		last = e.At
		n++
	}
	if want := 1000 - 334; n != want {
		t.Errorf("popped %d, want %d", n, want)
	}
}
