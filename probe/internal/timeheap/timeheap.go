// Package timeheap is the min-heap of deadlines that the datagram mux and the TCP connector run their timeouts on:
// one heap and one timer for every query or connect in flight, never a timer or a goroutine each.
package timeheap

// Timed is the part of a heap element that the heap reads and keeps: embed it in the element.
type Timed struct {
	// At is the deadline, in the owner's clock.
	At int64
	// pos is the element's position in its heap plus one; zero when it is in none.
	pos int32
}

// Queued reports whether the element is in a heap.
func (t *Timed) Queued() bool { return t.pos > 0 }

// Index is the element's position in its heap (0 is the earliest deadline), or -1 when it is in none.
func (t *Timed) Index() int { return int(t.pos) - 1 }

func (t *Timed) timed() *Timed { return t }

// Elem is a pointer to a struct that embeds Timed.
type Elem interface{ timed() *Timed }

// Heap orders elements by deadline, earliest first. The zero value is empty.
type Heap[E Elem] []E

// Push adds e, which must not be queued.
func (h *Heap[E]) Push(e E) {
	*h = append(*h, e)
	e.timed().pos = int32(len(*h))
	h.up(len(*h) - 1)
}

// Pop removes and returns the element of the earliest deadline; the heap must not be empty.
func (h *Heap[E]) Pop() E {
	e := (*h)[0]
	h.removeAt(0)
	return e
}

// Remove takes e out of the heap, if it is queued.
func (h *Heap[E]) Remove(e E) {
	if i := e.timed().Index(); i >= 0 {
		h.removeAt(i)
	}
}

func (h *Heap[E]) removeAt(i int) {
	s := *h
	last := len(s) - 1
	e := s[i]
	if i != last {
		s[i] = s[last]
		s[i].timed().pos = int32(i + 1)
	}
	var zero E
	s[last] = zero
	*h = s[:last]
	if i != last && !h.down(i) {
		h.up(i)
	}
	e.timed().pos = 0
}

func (h Heap[E]) less(i, j int) bool { return h[i].timed().At < h[j].timed().At }

func (h Heap[E]) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h.swap(i, p)
		i = p
	}
}

// down moves the element at i down to its place and reports whether it moved.
func (h Heap[E]) down(i int) bool {
	start := i
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		c := l
		if r := l + 1; r < len(h) && h.less(r, l) {
			c = r
		}
		if !h.less(c, i) {
			break
		}
		h.swap(i, c)
		i = c
	}
	return i > start
}

func (h Heap[E]) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].timed().pos = int32(i + 1)
	h[j].timed().pos = int32(j + 1)
}
