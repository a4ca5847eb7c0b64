package targets

import (
	"iter"
	"math/bits"
	"net/netip"
)

// Scan order. A range is not walked from its first address to its last but in a scattered order that visits every
// address once: index i of the walk is address (offset + i*stride) mod n, with stride coprime to n and near n/phi,
// so consecutive probes land far apart. Blocks of silent hosts (a firewalled subnet) and blocks of answering hosts
// are then mixed all through the scan, and the waiting on silence overlaps the CPU work of answers instead of
// following it; no one subnet, router or firewall session table takes the whole rate at once. It costs no memory:
// the order is arithmetic, as in zmap and masscan. The offset comes from --seed.

// scatter walks indexes 0..n-1 in the scattered order keyed by seed.
func scatter(n, seed uint64) iter.Seq[uint64] {
	return func(yield func(uint64) bool) {
		if n == 0 {
			return
		}
		stride := coprimeNear(n, uint64(float64(n)*0.6180339887498949))
		idx := seed % n
		for range n {
			if !yield(idx) {
				return
			}
			// idx = (idx + stride) mod n without overflow.
			if idx >= n-stride {
				idx -= n - stride
			} else {
				idx += stride
			}
		}
	}
}

// coprimeNear returns the value nearest to want (at least 1) that is coprime with n.
func coprimeNear(n, want uint64) uint64 {
	if n <= 2 {
		return 1
	}
	want = max(1, min(want, n-1))
	for d := uint64(0); ; d++ {
		if c := want + d; c < n && gcd(c, n) == 1 {
			return c
		}
		if d < want {
			if c := want - d; c >= 1 && gcd(c, n) == 1 {
				return c
			}
		}
	}
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// addrAdd returns a + i, for i that stays inside a's range.
func addrAdd(a netip.Addr, i uint64) netip.Addr {
	if a.Is4() {
		b := a.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		v += uint32(i)
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	b := a.As16()
	var hi, lo uint64
	for k := range 8 {
		hi = hi<<8 | uint64(b[k])
		lo = lo<<8 | uint64(b[8+k])
	}
	var carry uint64
	lo, carry = bits.Add64(lo, i, 0)
	hi += carry
	for k := 7; k >= 0; k-- {
		b[k], b[8+k] = byte(hi), byte(lo)
		hi >>= 8
		lo >>= 8
	}
	return netip.AddrFrom16(b).WithZone(a.Zone())
}

// scattered walks a contiguous block of n addresses from first in the scattered order.
func scattered(first netip.Addr, n, seed uint64) iter.Seq[Target] {
	return func(yield func(Target) bool) {
		for i := range scatter(n, seed) {
			if !yield(Target{Addr: addrAdd(first, i)}) {
				return
			}
		}
	}
}
