package nbt_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/probe/engine"
	"github.com/ofmprobe/ofmprobe/probe/internal/backlog"
	"github.com/ofmprobe/ofmprobe/probe/internal/probetest"
	"github.com/ofmprobe/ofmprobe/probe/netbios"
	"github.com/ofmprobe/ofmprobe/probe/status"
	"github.com/ofmprobe/ofmprobe/probe/steps"
	"github.com/ofmprobe/ofmprobe/probe/steps/nbt"
)

// nbstatAnswer builds a node status answer like Samba's for the given transaction ID.
func nbstatAnswer(t testing.TB, txid uint16) []byte {
	t.Helper()
	const active = 0x0400
	st := &netbios.NodeStatus{
		TxID:  txid,
		Flags: 0x8400,
		Name:  netbios.Wildcard,
		Names: []netbios.NodeName{
			{Name: "OFM90", Suffix: 0x00, Flags: active},
			{Name: "OFM90", Suffix: 0x03, Flags: active},
			{Name: "OFM90", Suffix: 0x20, Flags: active},
			{Name: "OFMLAB", Suffix: 0x00, Flags: active | 0x8000},
			{Name: "OFMLAB", Suffix: 0x1E, Flags: active | 0x8000},
		},
		StatisticsLen: 46,
	}
	copy(st.Statistics.UnitID[:], []byte{0x02, 0x00, 0x5e, 0x10, 0x00, 0x0a})
	b, err := netbios.AppendNodeStatusResponse(nil, st)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// nbstatEnv is the environment of the node status tests: 150 ms per try, three tries.
func nbstatEnv(t testing.TB) *engine.Env {
	return probetest.NewEnv(t, engine.Options{UDPTimeout: 150 * time.Millisecond, UDPRetries: 2})
}

// queryNodeStatus runs the nbstat query to a loopback port through env's mux and waits for its result.
func queryNodeStatus(t testing.TB, env *engine.Env, port int) *nbt.NodeStatus {
	t.Helper()
	ch := make(chan *nbt.NodeStatus, 1)
	nbt.QueryNodeStatus(env, netip.AddrPortFrom(probetest.Loopback, uint16(port)), func(ns *nbt.NodeStatus) { ch <- ns })
	select {
	case ns := <-ch:
		return ns
	case <-time.After(10 * time.Second):
		t.Fatal("no node status result after 10s")
		return nil
	}
}

func TestNodeStatus(t *testing.T) {
	tests := []struct {
		name     string
		script   func(t *testing.T) func(int, []byte) [][]byte
		state    status.State
		attempts int
		evidence string
	}{
		{"answer", func(t *testing.T) func(int, []byte) [][]byte {
			return func(_ int, q []byte) [][]byte { return [][]byte{nbstatAnswer(t, binary.BigEndian.Uint16(q))} }
		}, status.Answered, 1, "nbstat 137: answered in "},
		{"lost twice, answered on the third try", func(t *testing.T) func(int, []byte) [][]byte {
			return func(n int, q []byte) [][]byte {
				if n < 3 {
					return nil
				}
				return [][]byte{nbstatAnswer(t, binary.BigEndian.Uint16(q))}
			}
		}, status.Answered, 3, "nbstat 137: answered in "},
		{"stray answers with other transaction IDs are ignored", func(t *testing.T) func(int, []byte) [][]byte {
			return func(_ int, q []byte) [][]byte {
				id := binary.BigEndian.Uint16(q)
				return [][]byte{nbstatAnswer(t, id+1), {0x01}, nbstatAnswer(t, id)}
			}
		}, status.Answered, 1, "nbstat 137: answered in "},
		{"silence", func(t *testing.T) func(int, []byte) [][]byte {
			return func(int, []byte) [][]byte { return nil }
		}, status.OpenFiltered, 3, "nbstat 137: open|filtered, no answer to 3 queries of 150ms (silence is not proof of filtering)"},
		{"garbage with the right ID", func(t *testing.T) func(int, []byte) [][]byte {
			return func(_ int, q []byte) [][]byte { return [][]byte{append(q[:2:2], 0x84, 0x00, 0xff, 0xff)} }
		}, status.ProtocolError, 1, "nbstat 137: the answer is not a valid node status"},
		{"truncated answer with the right ID", func(t *testing.T) func(int, []byte) [][]byte {
			return func(_ int, q []byte) [][]byte {
				a := nbstatAnswer(t, binary.BigEndian.Uint16(q))
				return [][]byte{a[:70]}
			}
		}, status.ProtocolError, 1, "nbstat 137: the answer is not a valid node status"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port, _ := probetest.UDPFake(t, tc.script(t))
			ns := queryNodeStatus(t, nbstatEnv(t), port)
			if ns.State != tc.state || ns.Attempts != tc.attempts || !strings.HasPrefix(ns.Evidence, tc.evidence) {
				t.Errorf("got %s after %d attempts (%q), want %s after %d (%q...)", ns.State, ns.Attempts, ns.Evidence, tc.state, tc.attempts, tc.evidence)
			}
			if tc.state == status.Answered {
				want := nbt.NodeStatus{ComputerName: "OFM90", Workgroup: "OFMLAB", FileServer: true, MAC: "02:00:5e:10:00:0a"}
				if ns.ComputerName != want.ComputerName || ns.Workgroup != want.Workgroup || !ns.FileServer || ns.MAC != want.MAC || len(ns.Names) != 5 {
					t.Fatalf("facts %+v", ns)
				}
				if ns.Names[3] != (nbt.NetBIOSName{Name: "OFMLAB", Suffix: "00", Group: true, Meaning: ns.Names[3].Meaning, Flags: ns.Names[3].Flags}) || ns.Names[3].Meaning == "" {
					t.Errorf("workgroup entry %+v", ns.Names[3])
				}
				if !strings.Contains(ns.Evidence, "leaks 5 names (OFM90<00> OFM90<03> OFM90<20> OFMLAB<00> OFMLAB<1E>), workgroup OFMLAB, MAC 02:00:5e:10:00:0a") {
					t.Errorf("evidence does not say what leaks: %q", ns.Evidence)
				}
			}
		})
	}
}

// TestNodeStatusClosed: a port nobody listens on answers with ICMP port unreachable, which is "closed", at once.
func TestNodeStatusClosed(t *testing.T) {
	probetest.RetryLostICMP(t, func(t *testing.T) int {
		port := probetest.ClosedUDPPort(t)
		start := time.Now()
		ns := queryNodeStatus(t, nbstatEnv(t), port)
		took := time.Since(start)
		if ns.State == status.OpenFiltered && ns.Attempts == 3 {
			return 1
		}
		if ns.State != status.Closed || ns.Attempts != 1 || took > 100*time.Millisecond ||
			!strings.HasPrefix(ns.Evidence, "nbstat 137: closed, ICMP port unreachable after ") {
			t.Errorf("got %+v in %s, want closed at the first try", ns, took)
		}
		return 0
	})
}

// TestNodeStatusIgnoresOtherSources: an answer from another address (a spoofer) is not taken for the answer.
func TestNodeStatusIgnoresOtherSources(t *testing.T) {
	// The real responder on 127.0.0.1 stays silent; a second socket on 127.0.0.2 sends a perfect answer to the client.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	probetest.Must(t, err)
	defer pc.Close()
	spoof, err := net.ListenPacket("udp4", "127.0.0.2:0")
	probetest.Must(t, err)
	defer spoof.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			spoof.WriteTo(nbstatAnswer(t, binary.BigEndian.Uint16(buf[:n])), from)
		}
	}()
	ns := queryNodeStatus(t, nbstatEnv(t), pc.LocalAddr().(*net.UDPAddr).Port)
	if ns.State != status.OpenFiltered {
		t.Errorf("got %s, want open|filtered: a spoofed answer was accepted", ns.State)
	}
}

// TestNodeStatusVerifiedLongerOnALossyPath: node status silent on a host one of whose TCP ports answered only when
// its silence was verified (its accept queue full at first: a SYN lost on the way to a host that answers) is asked LossyVerifyTries more times, not
// VerifyTries: on a path that loses packets, silence through a few queries proves little.
func TestNodeStatusVerifiedLongerOnALossyPath(t *testing.T) {
	udpPort, queries := probetest.UDPFake(t, func(int, []byte) [][]byte { return nil })
	lossy, drain := backlog.Full(t)
	time.AfterFunc(320*time.Millisecond, drain) // after the first attempt of 300 ms, before the verification round's second
	cfg := steps.Config{Ports: []int{probetest.ListenOpen(t), lossy}, NetBIOS: nbt.Config{NodeStatusPort: uint16(udpPort), SessionPort: 139}}
	h := probetest.Scan(t, cfg, engine.Options{Retries: 1, UDPTimeout: 100 * time.Millisecond, UDPRetries: 1}, "127.0.0.1", "tcp", "nbstat")
	if p, _ := h.Port(lossy); p.State != status.Open || !p.AnsweredOnRetry() {
		t.Fatalf("port %+v, want open on a retry", p)
	}
	r, _ := h.Result(nbt.NodeStatusStep)
	ns := r.(*nbt.NodeStatus)
	want := 2 + nbt.LossyVerifyTries
	if ns.State != status.OpenFiltered || ns.Attempts != want || queries.Load() != int64(want) ||
		!strings.HasSuffix(ns.Evidence, fmt.Sprintf("(the last %d after the host answered other probes)", nbt.LossyVerifyTries)) {
		t.Errorf("node status %+v after %d queries, want open|filtered after %d", ns, queries.Load(), want)
	}
}

// TestNodeStatusEarlyVerification: node status silent on a host whose TCP port answered at once is verified beside
// its own tries, not after them: the verification's query goes out a short pause after the second try, so the five
// queries (four tries of 400 ms and one more) all leave within about 1.25 s, where one after the other the fifth
// would leave at 1.6 s.
func TestNodeStatusEarlyVerification(t *testing.T) {
	var mu sync.Mutex
	var arrived []time.Duration
	start := time.Now()
	udpPort, queries := probetest.UDPFake(t, func(int, []byte) [][]byte {
		mu.Lock()
		arrived = append(arrived, time.Since(start))
		mu.Unlock()
		return nil
	})
	cfg := steps.Config{Ports: []int{probetest.ListenOpen(t)}, NetBIOS: nbt.Config{NodeStatusPort: uint16(udpPort), SessionPort: 139}}
	h := probetest.Scan(t, cfg, engine.Options{UDPTimeout: 400 * time.Millisecond, UDPRetries: 3}, "127.0.0.1", "tcp", "nbstat")
	r, _ := h.Result(nbt.NodeStatusStep)
	ns := r.(*nbt.NodeStatus)
	if ns.State != status.OpenFiltered || ns.Attempts != 5 || queries.Load() != 5 ||
		!strings.HasSuffix(ns.Evidence, "(the last one after the host answered other probes)") {
		t.Fatalf("node status %+v after %d queries, want open|filtered after 5, the last verified", ns, queries.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if spread := arrived[4] - arrived[0]; spread > 1450*time.Millisecond {
		t.Errorf("the five queries arrived over %s (%v): the verification waited for the last try", spread, arrived)
	}
}
