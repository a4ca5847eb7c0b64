package targets

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Shard is one part of a target space split across machines: shard Index (1-based) of Count. An address belongs to
// exactly one shard, chosen by a keyed hash of the address, so every machine given the same Count and Seed agrees on
// the split without talking to the others, the parts are the same size within a fraction of a percent, and each
// part is spread over the whole space (every subnet is scanned a little by every machine) rather than cut into
// blocks. The zero value (or Count 1) holds every address.
type Shard struct {
	Index, Count int
	Seed         uint64
}

// ParseShard reads "i/n" with 1 <= i <= n.
func ParseShard(s string, seed uint64) (Shard, error) {
	is, ns, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(is)
	n, err2 := strconv.Atoi(ns)
	switch {
	case !ok || err1 != nil || err2 != nil:
		return Shard{}, fmt.Errorf("shard %q: want i/n, such as 2/4", s)
	case n < 1 || n > 1<<20:
		return Shard{}, fmt.Errorf("shard %q: the number of shards must be from 1 to %d", s, 1<<20)
	case i < 1 || i > n:
		return Shard{}, fmt.Errorf("shard %q: the shard number must be from 1 to %d", s, n)
	}
	return Shard{Index: i, Count: n, Seed: seed}, nil
}

// Contains reports whether addr belongs to this shard.
func (sh Shard) Contains(addr netip.Addr) bool {
	if sh.Count <= 1 {
		return true
	}
	return int(sh.hash(addr)%uint64(sh.Count)) == sh.Index-1
}

// String is "i/n", or "" for the whole space.
func (sh Shard) String() string {
	if sh.Count <= 1 {
		return ""
	}
	return fmt.Sprintf("%d/%d", sh.Index, sh.Count)
}

// hash mixes the seed and the address's 16 bytes (an IPv4 address as its IPv4-mapped form, so "198.18.0.1" and
// "::ffff:198.18.0.1" agree) with the splitmix64 finaliser: fixed arithmetic, the same on every machine and Go
// version, unlike hash/maphash, whose seeds are per process.
func (sh Shard) hash(addr netip.Addr) uint64 {
	b := addr.Unmap().As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	return mix64(mix64(sh.Seed^hi) ^ lo)
}

func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
