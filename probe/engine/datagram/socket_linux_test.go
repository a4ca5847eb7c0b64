//go:build linux

package datagram

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSendBesideErrorQueueReads queues thousands of ICMP port unreachable errors on a socket, then sends to a
// responder while another goroutine reads the error queue as the receiver does. Each read sets the socket's pending
// error again from the entry behind it, so without the error queue's lock most sends meet errors that are not
// theirs, several times in a row. Every send must succeed, and every datagram reach the responder.
func TestSendBesideErrorQueueReads(t *testing.T) {
	const closedCount, maxSends = 3000, 20000
	r := startResponder(t, answer, 0)
	s, err := openSocket(false, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if err := s.send(r.addr, []byte("bind")); err != nil { // gives the socket its port, which no closed port may be
		t.Fatal(err)
	}
	closed := closedPorts(t, closedCount)
	for _, dst := range closed {
		if err := s.send(dst, []byte("x")); err != nil {
			t.Fatalf("send %v: %v", dst, err)
		}
	}
	time.Sleep(50 * time.Millisecond) // the loopback's ICMP errors are queued by now

	started, drained := make(chan struct{}), make(chan struct{})
	read := 0
	go func() {
		defer close(drained)
		buf, oob := make([]byte, 2048), make([]byte, 512)
		close(started)
		for more := true; more; {
			_ = s.rc.Read(func(fd uintptr) bool {
				more = s.readErrors(int(fd), buf, oob, func(unix.Sockaddr, []byte) { read++ })
				return true
			})
		}
	}()
	<-started
	sent, failed := 0, 0
	for done := false; !done && sent < maxSends; {
		select {
		case <-drained:
			done = true
		default:
		}
		sent++
		if err := s.send(r.addr, []byte{byte(sent >> 8), byte(sent)}); err != nil {
			failed++
			if failed <= 3 {
				t.Errorf("send %d: %v", sent, err)
			}
		}
	}
	<-drained
	t.Logf("%d error queue entries read beside %d sends; %d failed", read, sent, failed)
	if read < closedCount/2 {
		t.Fatalf("%d error queue entries read of %d closed ports: the test raced too little", read, closedCount)
	}
	deadline := time.Now().Add(5 * time.Second)
	want := int64(sent + 1 - failed)
	for r.seen.Load() < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := r.seen.Load(); got != want || failed > 0 {
		t.Fatalf("responder got %d datagrams of %d sent, %d sends failed", got, sent+1, failed)
	}
}
