package steps_test

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/internal/probetest"
	"github.com/ofmprobe/ofmprobe/probe/steps"
	"github.com/ofmprobe/ofmprobe/probe/steps/nbt"
	"github.com/ofmprobe/ofmprobe/probe/targets"
)

// TestBytesPerHostInFlight measures what a host costs while it waits for UDP silence, with the registry's real
// node status and UDP port steps on the real datagram mux: n hosts of 127.0.0.0/8 are queried on a port that a
// socket holds and never reads, so every query waits out its tries. The heap grown while they all wait, over n, is
// the bytes per host in flight; engine.BytesPerHost, from which the default bound on hosts in flight follows, must
// cover it.
func TestBytesPerHostInFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("measures memory over seconds")
	}
	// One unread socket on the wildcard address holds the port on every loopback address: queries are received by
	// the kernel and never answered, without an ICMP error.
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{Port: 0})
	probetest.Must(t, err)
	defer sink.Close()
	port := sink.LocalAddr().(*net.UDPAddr).Port

	const n = 4000
	cfg := steps.Config{UDPPorts: []int{port, port + 1, port + 2}, NetBIOS: nbt.Config{NodeStatusPort: uint16(port), SessionPort: 139}}
	// udp port+1 and port+2 are closed and answer at once with ICMP; node status and udp port wait.
	plan, err := steps.Plan(cfg, nil, []string{"nbstat", "udp"})
	probetest.Must(t, err)
	opts := probetest.Options(engine.Options{UDPTimeout: 2 * time.Second, UDPRetries: 0, HostsInFlight: n})
	e, err := engine.New(plan, opts)
	probetest.Must(t, err)

	seq := func(yield func(targets.Target) bool) {
		a := netip.MustParseAddr("127.1.0.1")
		for range n {
			if !yield(targets.Target{Addr: a}) {
				return
			}
			a = a.Next()
		}
	}
	before := heapInUse()
	var measured atomic.Uint64
	go func() {
		// Measure once every host is in flight and its first datagrams are out.
		time.Sleep(1200 * time.Millisecond)
		measured.Store(heapInUse())
	}()
	var emitted int
	stats := e.Run(context.Background(), seq, func(*engine.Host) { emitted++ })
	if emitted != n || stats.PeakHosts != n {
		t.Fatalf("emitted %d hosts, %d in flight at the peak; want %d", emitted, stats.PeakHosts, n)
	}
	grown := int64(measured.Load()) - int64(before)
	perHost := grown / n
	t.Logf("heap grew %d bytes with %d hosts waiting: %d bytes a host in flight (engine.BytesPerHost is %d)", grown, n, perHost, engine.BytesPerHost)
	if perHost <= 0 || perHost > engine.BytesPerHost {
		t.Errorf("%d bytes a waiting host, engine.BytesPerHost says %d: raise it (or find what grew)", perHost, engine.BytesPerHost)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
