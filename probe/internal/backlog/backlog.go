// Package backlog makes loopback TCP ports that drop SYNs as a firewall would, for tests: a listener with a backlog
// of zero whose accept queue is full. Draining the queue later makes the port answer again, which is a SYN (or its
// answer) lost on the way and then recovered. Only tests use it.
package backlog

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Full returns a loopback port whose accept queue is full, so the kernel drops further SYNs to it, and a function
// that starts draining the queue (accepting and closing every connection), after which SYNs are answered. The
// listener and the connections that filled it are closed when the test ends.
func Full(t testing.TB) (port int, drain func()) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	port = sa.(*unix.SockaddrInet4).Port
	for range 4 {
		c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err != nil {
			break // the queue is full: this SYN was dropped
		}
		t.Cleanup(func() { c.Close() })
	}
	var (
		mu               sync.Mutex
		started, stopped bool
		stop, done       = make(chan struct{}), make(chan struct{})
	)
	t.Cleanup(func() {
		mu.Lock()
		stopped = true
		running := started
		mu.Unlock()
		close(stop)
		if running {
			<-done
		}
		unix.Close(fd)
	})
	drain = func() {
		mu.Lock()
		defer mu.Unlock()
		if started || stopped {
			return
		}
		started = true
		go func() {
			defer close(done)
			for {
				if nfd, _, err := unix.Accept(fd); err == nil {
					unix.Close(nfd)
				}
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
	}
	return port, drain
}
