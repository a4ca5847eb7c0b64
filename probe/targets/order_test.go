package targets

import (
	"context"
	"net/netip"
	"testing"
)

// TestScanOrderVisitsEveryAddressOnce: the scattered order of several ranges, with exclusions and overlaps, holds
// exactly the addresses of the plain order, and mixes the blocks of a range (no long run inside one /22).
func TestScanOrderVisitsEveryAddressOnce(t *testing.T) {
	var p Parser
	for _, seed := range []uint64{0, 1, 99} {
		set := &Set{Seed: seed}
		if err := p.Include(context.Background(), set, "198.18.16.0/20", "198.18.16.5-198.18.40.7", "198.18.0.1", "2001:db8::/118", "198.19.0-1.1,3,5"); err != nil {
			t.Fatal(err)
		}
		if err := p.Exclude(context.Background(), set, "198.18.20.0/24"); err != nil {
			t.Fatal(err)
		}
		want := map[netip.Addr]bool{}
		for tg := range set.All() {
			want[tg.Addr] = true
		}
		got := map[netip.Addr]bool{}
		run, longest := 0, 0
		var prev netip.Addr
		for tg := range set.ScanOrder() {
			if got[tg.Addr] {
				t.Fatalf("seed %d: %s twice", seed, tg.Addr)
			}
			got[tg.Addr] = true
			if prev.IsValid() && prev.Is4() && tg.Addr.Is4() && prev.As4()[2]/4 == tg.Addr.As4()[2]/4 {
				run++
				longest = max(longest, run)
			} else {
				run = 0
			}
			prev = tg.Addr
		}
		if len(got) != len(want) {
			t.Fatalf("seed %d: %d addresses in scan order, %d in plain order", seed, len(got), len(want))
		}
		for a := range want {
			if !got[a] {
				t.Fatalf("seed %d: %s missing from the scan order", seed, a)
			}
		}
		if longest > 8 {
			t.Errorf("seed %d: %d addresses in a row from one /22: the order does not scatter", seed, longest+1)
		}
	}
}

func TestScatterSmallAndEdgeSizes(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 100, 256, 1000, 4096, 65536} {
		seen := make([]bool, n)
		count := uint64(0)
		for i := range scatter(n, 12345) {
			if i >= n || seen[i] {
				t.Fatalf("n=%d: index %d out of range or repeated", n, i)
			}
			seen[i] = true
			count++
		}
		if count != n {
			t.Fatalf("n=%d: %d indexes", n, count)
		}
	}
	if a := addrAdd(netip.MustParseAddr("2001:db8::ffff:ffff:ffff:ffff"), 1); a != netip.MustParseAddr("2001:db8:0:1::") {
		t.Errorf("IPv6 carry: %s", a)
	}
	if a := addrAdd(netip.MustParseAddr("198.18.0.255"), 1); a != netip.MustParseAddr("198.18.1.0") {
		t.Errorf("IPv4 carry: %s", a)
	}
}
