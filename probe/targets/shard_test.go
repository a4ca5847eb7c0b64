package targets

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"testing"
)

// TestShardsCoverEveryAddressOnce splits a /20 and a few IPv6 addresses into n shards, as n machines given the same
// seed would, and checks that every address is scanned by exactly one of them and the parts are even.
func TestShardsCoverEveryAddressOnce(t *testing.T) {
	targets := []string{"198.18.16.0/20", "2001:db8::/120"}
	var p Parser
	all := &Set{}
	if err := p.Include(context.Background(), all, targets...); err != nil {
		t.Fatal(err)
	}
	want := map[netip.Addr]bool{}
	for tg := range all.All() {
		want[tg.Addr] = true
	}
	for _, seed := range []uint64{0, 42} {
		for _, n := range []int{1, 2, 3, 7, 16} {
			seen := map[netip.Addr]int{}
			sizes := make([]int, n)
			for i := 1; i <= n; i++ {
				set := &Set{}
				if err := p.Include(context.Background(), set, targets...); err != nil {
					t.Fatal(err)
				}
				sh, err := ParseShard(formatShard(i, n), seed)
				if err != nil {
					t.Fatal(err)
				}
				set.Keep(sh.Contains)
				for tg := range set.All() {
					seen[tg.Addr]++
					sizes[i-1]++
				}
			}
			for a := range want {
				if seen[a] != 1 {
					t.Fatalf("seed %d, %d shards: %s scanned %d times", seed, n, a, seen[a])
				}
			}
			if len(seen) != len(want) {
				t.Fatalf("seed %d, %d shards: %d addresses scanned, want %d", seed, n, len(seen), len(want))
			}
			mean := float64(len(want)) / float64(n)
			for i, sz := range sizes {
				if math.Abs(float64(sz)-mean) > 5*math.Sqrt(mean) {
					t.Errorf("seed %d: shard %d/%d has %d addresses, mean %.0f: not an even split", seed, i+1, n, sz, mean)
				}
			}
		}
	}
	// Another seed gives another split: the seed is not ignored.
	a, _ := ParseShard("1/2", 1)
	b, _ := ParseShard("1/2", 2)
	differ := 0
	for addr := range want {
		if a.Contains(addr) != b.Contains(addr) {
			differ++
		}
	}
	if differ < len(want)/4 {
		t.Errorf("seeds 1 and 2 disagree on %d of %d addresses; want about half", differ, len(want))
	}
	// An IPv4 address and its IPv4-mapped IPv6 form are one address.
	v4, mapped := netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("::ffff:198.18.0.10")
	for i := 1; i <= 5; i++ {
		sh, _ := ParseShard(formatShard(i, 5), 7)
		if sh.Contains(v4) != sh.Contains(mapped) {
			t.Errorf("shard %d/5 disagrees on %s and %s", i, v4, mapped)
		}
	}
}

// TestShardPinned pins the split: a change of hash would silently make machines running different ofmprobe versions
// scan overlapping parts.
func TestShardPinned(t *testing.T) {
	sh, _ := ParseShard("1/4", 0)
	var got []string
	for _, s := range []string{"198.18.0.1", "198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5", "198.18.0.6", "198.18.0.7", "198.18.0.8"} {
		if sh.Contains(netip.MustParseAddr(s)) {
			got = append(got, s)
		}
	}
	t.Logf("shard 1/4, seed 0: %v", got)
	if want := []string{"198.18.0.5", "198.18.0.8"}; !slices.Equal(got, want) {
		t.Errorf("shard 1/4 with seed 0 holds %v of 198.18.0.1-8, want %v", got, want)
	}
}

func formatShard(i, n int) string { return fmt.Sprintf("%d/%d", i, n) }

func TestParseShardErrors(t *testing.T) {
	for _, s := range []string{"", "1", "0/4", "5/4", "1/0", "a/b", "1/4/2", "-1/4", "1/2000000"} {
		if _, err := ParseShard(s, 0); err == nil {
			t.Errorf("ParseShard(%q) accepted", s)
		}
	}
}
