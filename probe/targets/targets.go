package targets

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/big"
	"math/bits"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Target is one address to probe and, when it came from a host name, that name.
type Target struct {
	Addr netip.Addr
	Name string
}

// String returns the address, with the name it came from in parentheses.
func (t Target) String() string {
	if t.Name != "" {
		return t.Addr.String() + " (" + t.Name + ")"
	}
	return t.Addr.String()
}

// spec is one parsed target expression: a set of addresses that can be walked in order and asked for membership
// without materialising it.
type spec interface {
	all() iter.Seq[Target]
	// scattered walks the same addresses in the scattered scan order keyed by seed (order.go).
	scattered(seed uint64) iter.Seq[Target]
	contains(netip.Addr) bool
	// size is the number of addresses, saturated at maxInt64.
	size() uint64
}

// TargetSet is the scan's targets after exclusions. It walks its addresses lazily: memory depends on the number of
// expressions, not on the number of addresses.
type Set struct {
	include []spec
	exclude []spec
	// firstPoint indexes the addresses that expressions name one by one (a single address, a host name's
	// addresses): the first include expression that names each. wide lists the other include expressions, and
	// excludePoints and excludeWide split the exclusions the same way. Membership tests then cost a map lookup plus
	// one test per range expression, so a file of 20,000 single addresses is not quadratic.
	firstPoint    map[netip.Addr]int
	wide          []int
	excludePoints map[netip.Addr]struct{}
	excludeWide   []spec
	// keep are filters every address must pass: the shard, the hosts a resumed report already holds.
	keep []func(netip.Addr) bool
	// Seed keys the scattered scan order of ScanOrder.
	Seed uint64
}

// Keep adds a filter: All yields only the addresses every filter keeps.
func (s *Set) Keep(f func(netip.Addr) bool) { s.keep = append(s.keep, f) }

func (s *Set) kept(a netip.Addr) bool {
	for _, f := range s.keep {
		if !f(a) {
			return false
		}
	}
	return true
}

// Resolver looks up the addresses of a host name.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// TargetParser turns target expressions into a TargetSet.
type Parser struct {
	// Resolver resolves host names; nil means net.DefaultResolver.
	Resolver Resolver
}

// TargetError is a target expression that cannot be used, with where it came from.
type ParseError struct {
	Source string // "", or "FILE:LINE"
	Expr   string
	Err    error
}

func (e *ParseError) Error() string {
	if e.Source != "" {
		return fmt.Sprintf("%s: bad target %q: %v", e.Source, e.Expr, e.Err)
	}
	return fmt.Sprintf("bad target %q: %v", e.Expr, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Parse parses one target expression: an IPv4 or IPv6 address, a CIDR prefix, a range (198.18.0.10-20 or
// 198.18.0.10-198.18.1.5), an octet range (198.18.0-3.1-254, with lists like 1,5,7-9 and * for 0-255), or a host name.
func (p *Parser) Parse(ctx context.Context, expr string) (spec, error) {
	s, err := p.parse(ctx, strings.TrimSpace(expr))
	if err != nil {
		return nil, &ParseError{Expr: expr, Err: err}
	}
	return s, nil
}

func (p *Parser) parse(ctx context.Context, expr string) (spec, error) {
	if expr == "" {
		return nil, errors.New("empty")
	}
	if strings.Contains(expr, "/") {
		pfx, err := netip.ParsePrefix(expr)
		if err != nil {
			return nil, errors.New("not a valid CIDR prefix")
		}
		pfx = pfx.Masked()
		if pfx.Addr().Is4In6() {
			return nil, errors.New("IPv4-mapped IPv6 prefixes are not supported; write the IPv4 prefix")
		}
		return prefixSpec{pfx}, nil
	}
	if a, err := netip.ParseAddr(expr); err == nil {
		if a.Zone() != "" {
			return nil, errors.New("IPv6 zones are not supported")
		}
		return rangeSpec{lo: a.Unmap(), hi: a.Unmap()}, nil
	}
	if strings.Contains(expr, ":") {
		return nil, errors.New("not a valid IPv6 address")
	}
	if looksNumeric(expr) {
		return parseIPv4Pattern(expr)
	}
	if looksLikeIPv4(expr) {
		return nil, errors.New("not an IPv4 address, range or octet pattern")
	}
	return p.resolve(ctx, expr)
}

// looksNumeric reports whether expr can only be an IPv4 pattern (digits, dots, dashes, commas, stars).
func looksNumeric(expr string) bool {
	for _, r := range expr {
		if !strings.ContainsRune("0123456789.-,*", r) {
			return false
		}
	}
	return true
}

// looksLikeIPv4 reports whether expr starts like an IPv4 address (three numeric labels), such as the typo
// 198.18.0.x: no host name looks like that, so it is reported as a bad address rather than sent to a resolver.
func looksLikeIPv4(expr string) bool {
	labels := strings.Split(expr, ".")
	if len(labels) < 4 {
		return false
	}
	for _, l := range labels[:3] {
		if l == "" || !looksNumeric(l) {
			return false
		}
	}
	return true
}

// parseIPv4Pattern parses a.b.c.d-e, a.b.c.d-w.x.y.z and octet patterns.
func parseIPv4Pattern(expr string) (spec, error) {
	// A full range: two whole addresses around one dash.
	if lo, hi, ok := strings.Cut(expr, "-"); ok && strings.Count(hi, ".") == 3 {
		a, err1 := netip.ParseAddr(lo)
		b, err2 := netip.ParseAddr(hi)
		if err1 != nil || err2 != nil || !a.Is4() || !b.Is4() {
			return nil, errors.New("a range is two IPv4 addresses joined by '-'")
		}
		if b.Less(a) {
			return nil, errors.New("range ends before it starts")
		}
		return rangeSpec{lo: a, hi: b}, nil
	}
	parts := strings.Split(expr, ".")
	if len(parts) != 4 {
		return nil, errors.New("an IPv4 address has four octets")
	}
	var o octetSpec
	simple := true
	for i, part := range parts {
		set, err := parseOctet(part)
		if err != nil {
			return nil, fmt.Errorf("octet %d: %w", i+1, err)
		}
		o.octets[i] = set
		if i < 3 && set.count() != 1 {
			simple = false
		}
	}
	// 198.18.0.10-20 is one contiguous range; keep it as one.
	if simple && o.octets[3].contiguous() {
		lo, hi := o.first(), o.last()
		return rangeSpec{lo: lo, hi: hi}, nil
	}
	return o, nil
}

// octetSet is the set of values one octet may take, as a 256-bit bitmap.
type octetSet [4]uint64

func (s *octetSet) add(v int)     { s[v/64] |= 1 << (v % 64) }
func (s octetSet) has(v int) bool { return s[v/64]&(1<<(v%64)) != 0 }

func (s octetSet) count() int {
	return bits.OnesCount64(s[0]) + bits.OnesCount64(s[1]) + bits.OnesCount64(s[2]) + bits.OnesCount64(s[3])
}

func (s octetSet) min() int {
	for i, w := range s {
		if w != 0 {
			return i*64 + bits.TrailingZeros64(w)
		}
	}
	return -1
}

func (s octetSet) max() int {
	for i := 3; i >= 0; i-- {
		if s[i] != 0 {
			return i*64 + 63 - bits.LeadingZeros64(s[i])
		}
	}
	return -1
}

func (s octetSet) contiguous() bool { return s.count() == s.max()-s.min()+1 }

func parseOctet(s string) (octetSet, error) {
	var set octetSet
	if s == "" {
		return set, errors.New("empty")
	}
	for _, item := range strings.Split(s, ",") {
		lo, hi := 0, 255
		switch {
		case item == "*":
		case strings.Contains(item, "-"):
			a, b, _ := strings.Cut(item, "-")
			var err error
			if lo, err = octetValue(a); err != nil {
				return set, err
			}
			if hi, err = octetValue(b); err != nil {
				return set, err
			}
			if hi < lo {
				return set, fmt.Errorf("range %s ends before it starts", item)
			}
		default:
			v, err := octetValue(item)
			if err != nil {
				return set, err
			}
			lo, hi = v, v
		}
		for v := lo; v <= hi; v++ {
			set.add(v)
		}
	}
	return set, nil
}

func octetValue(s string) (int, error) {
	if s == "" || len(s) > 3 {
		return 0, fmt.Errorf("%q is not a number from 0 to 255", s)
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 || v > 255 {
		return 0, fmt.Errorf("%q is not a number from 0 to 255", s)
	}
	return v, nil
}

// resolve looks a host name up and keeps every address with the name.
func (p *Parser) resolve(ctx context.Context, name string) (spec, error) {
	if len(name) > 253 || strings.ContainsAny(name, " \t/\\@") {
		return nil, errors.New("not an address, range or host name")
	}
	r := p.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", name)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil, errors.New("host name not found")
		}
		return nil, fmt.Errorf("cannot resolve: %w", err)
	}
	s := nameSpec{name: name}
	seen := map[netip.Addr]bool{}
	for _, a := range addrs {
		a = a.Unmap()
		if !seen[a] {
			seen[a] = true
			s.addrs = append(s.addrs, a)
		}
	}
	if len(s.addrs) == 0 {
		return nil, errors.New("host name has no addresses")
	}
	return s, nil
}

// rangeSpec is every address from lo to hi inclusive, of one family.
type rangeSpec struct{ lo, hi netip.Addr }

func (r rangeSpec) all() iter.Seq[Target] {
	return func(yield func(Target) bool) {
		for a := r.lo; a.IsValid() && !r.hi.Less(a); a = a.Next() {
			if !yield(Target{Addr: a}) {
				return
			}
		}
	}
}

func (r rangeSpec) scattered(seed uint64) iter.Seq[Target] {
	if n := r.size(); n < 1<<63-1 {
		return scattered(r.lo, n, seed)
	}
	return r.all() // too large to count: an IPv6 range of 2^63 addresses is never walked to its end anyway
}

func (r rangeSpec) contains(a netip.Addr) bool {
	return a.BitLen() == r.lo.BitLen() && !a.Less(r.lo) && !r.hi.Less(a)
}

func (r rangeSpec) size() uint64 {
	lo := new(big.Int).SetBytes(r.lo.AsSlice())
	hi := new(big.Int).SetBytes(r.hi.AsSlice())
	n := hi.Sub(hi, lo)
	n.Add(n, big.NewInt(1))
	if !n.IsUint64() {
		return 1<<63 - 1
	}
	return n.Uint64()
}

// prefixSpec is a CIDR prefix, every address in it included (as nmap does, network and broadcast addresses too).
type prefixSpec struct{ p netip.Prefix }

func (s prefixSpec) all() iter.Seq[Target] {
	return func(yield func(Target) bool) {
		for a := s.p.Addr(); a.IsValid() && s.p.Contains(a); a = a.Next() {
			if !yield(Target{Addr: a}) {
				return
			}
		}
	}
}

func (s prefixSpec) contains(a netip.Addr) bool { return s.p.Contains(a) }

func (s prefixSpec) scattered(seed uint64) iter.Seq[Target] {
	if n := s.size(); n < 1<<63-1 {
		return scattered(s.p.Addr(), n, seed)
	}
	return s.all()
}

func (s prefixSpec) size() uint64 {
	host := s.p.Addr().BitLen() - s.p.Bits()
	if host >= 63 {
		return 1<<63 - 1
	}
	return 1 << host
}

// octetSpec is an IPv4 pattern with a set of values per octet.
type octetSpec struct{ octets [4]octetSet }

func (o octetSpec) first() netip.Addr {
	return netip.AddrFrom4([4]byte{byte(o.octets[0].min()), byte(o.octets[1].min()), byte(o.octets[2].min()), byte(o.octets[3].min())})
}

func (o octetSpec) last() netip.Addr {
	return netip.AddrFrom4([4]byte{byte(o.octets[0].max()), byte(o.octets[1].max()), byte(o.octets[2].max()), byte(o.octets[3].max())})
}

func (o octetSpec) all() iter.Seq[Target] {
	return func(yield func(Target) bool) {
		for a := range 256 {
			if !o.octets[0].has(a) {
				continue
			}
			for b := range 256 {
				if !o.octets[1].has(b) {
					continue
				}
				for c := range 256 {
					if !o.octets[2].has(c) {
						continue
					}
					for d := range 256 {
						if o.octets[3].has(d) && !yield(Target{Addr: netip.AddrFrom4([4]byte{byte(a), byte(b), byte(c), byte(d)})}) {
							return
						}
					}
				}
			}
		}
	}
}

// scattered walks an octet pattern in order: its sets of values are not contiguous, and patterns are small.
func (o octetSpec) scattered(uint64) iter.Seq[Target] { return o.all() }

func (o octetSpec) contains(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	b := a.As4()
	for i := range 4 {
		if !o.octets[i].has(int(b[i])) {
			return false
		}
	}
	return true
}

func (o octetSpec) size() uint64 {
	n := uint64(1)
	for i := range 4 {
		n *= uint64(o.octets[i].count())
	}
	return n
}

// nameSpec is the addresses a host name resolved to.
type nameSpec struct {
	name  string
	addrs []netip.Addr
}

func (s nameSpec) all() iter.Seq[Target] {
	return func(yield func(Target) bool) {
		for _, a := range s.addrs {
			if !yield(Target{Addr: a, Name: s.name}) {
				return
			}
		}
	}
}

func (s nameSpec) scattered(uint64) iter.Seq[Target] { return s.all() }

func (s nameSpec) contains(a netip.Addr) bool {
	for _, b := range s.addrs {
		if a == b {
			return true
		}
	}
	return false
}

func (s nameSpec) size() uint64 { return uint64(len(s.addrs)) }

// Include adds target expressions to the set.
func (p *Parser) Include(ctx context.Context, set *Set, exprs ...string) error {
	for _, e := range exprs {
		s, err := p.Parse(ctx, e)
		if err != nil {
			return err
		}
		set.addInclude(s)
	}
	return nil
}

// Exclude removes target expressions from the set.
func (p *Parser) Exclude(ctx context.Context, set *Set, exprs ...string) error {
	for _, e := range exprs {
		s, err := p.Parse(ctx, e)
		if err != nil {
			return err
		}
		set.addExclude(s)
	}
	return nil
}

// points returns the addresses a spec names one by one, or false for a range expression.
func points(s spec) ([]netip.Addr, bool) {
	switch s := s.(type) {
	case rangeSpec:
		if s.lo == s.hi {
			return []netip.Addr{s.lo}, true
		}
	case nameSpec:
		return s.addrs, true
	}
	return nil, false
}

func (s *Set) addInclude(sp spec) {
	i := len(s.include)
	s.include = append(s.include, sp)
	addrs, ok := points(sp)
	if !ok {
		s.wide = append(s.wide, i)
		return
	}
	if s.firstPoint == nil {
		s.firstPoint = make(map[netip.Addr]int)
	}
	for _, a := range addrs {
		if _, seen := s.firstPoint[a]; !seen {
			s.firstPoint[a] = i
		}
	}
}

func (s *Set) addExclude(sp spec) {
	s.exclude = append(s.exclude, sp)
	addrs, ok := points(sp)
	if !ok {
		s.excludeWide = append(s.excludeWide, sp)
		return
	}
	if s.excludePoints == nil {
		s.excludePoints = make(map[netip.Addr]struct{})
	}
	for _, a := range addrs {
		s.excludePoints[a] = struct{}{}
	}
}

// ReadFile reads target expressions, one per line, from r; '#' starts a comment and blank lines are skipped. Errors
// name the source and line.
func (p *Parser) ReadFile(ctx context.Context, r io.Reader, source string, add func(context.Context, *Set, ...string) error, set *Set) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		for _, field := range strings.Fields(text) {
			if err := add(ctx, set, field); err != nil {
				var te *ParseError
				if errors.As(err, &te) {
					te.Source = fmt.Sprintf("%s:%d", source, line)
				}
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s:%d: %w", source, line+1, err)
	}
	return nil
}

// Empty reports whether no target expression was given.
func (s *Set) Empty() bool { return len(s.include) == 0 }

// All walks the targets in the order given, each address once and none excluded. An address that an earlier
// expression already produced is skipped, so membership tests, not a set of seen addresses, keep memory flat.
func (s *Set) All() iter.Seq[Target] { return s.walk(false) }

// ScanOrder walks the same targets as All, each expression in the scattered order keyed by Seed (order.go): the
// order a scan probes them in.
func (s *Set) ScanOrder() iter.Seq[Target] { return s.walk(true) }

func (s *Set) walk(scatter bool) iter.Seq[Target] {
	return func(yield func(Target) bool) {
		for i, sp := range s.include {
			seq := sp.all()
			if scatter {
				seq = sp.scattered(s.Seed)
			}
			for t := range seq {
				if s.seenBefore(i, t.Addr) || s.excluded(t.Addr) || !s.kept(t.Addr) {
					continue
				}
				if !yield(t) {
					return
				}
			}
		}
	}
}

func (s *Set) seenBefore(i int, a netip.Addr) bool {
	if j, ok := s.firstPoint[a]; ok && j < i {
		return true
	}
	for _, j := range s.wide {
		if j >= i {
			break
		}
		if s.include[j].contains(a) {
			return true
		}
	}
	return false
}

func (s *Set) excluded(a netip.Addr) bool {
	if _, ok := s.excludePoints[a]; ok {
		return true
	}
	for _, ex := range s.excludeWide {
		if ex.contains(a) {
			return true
		}
	}
	return false
}

// CountUpTo counts the distinct targets, stopping once the count passes limit; it returns limit+1 in that case. The
// walk is bounded by limit, so asking about a /8 costs no more than asking about limit addresses.
func (s *Set) CountUpTo(limit uint64) uint64 {
	var n uint64
	for range s.All() {
		n++
		if n > limit {
			return n
		}
	}
	return n
}

// UpperBound is the number of addresses before exclusions and de-duplication, saturating.
func (s *Set) UpperBound() uint64 {
	var n uint64
	for _, sp := range s.include {
		z := sp.size()
		if n+z < n {
			return 1<<63 - 1
		}
		n += z
	}
	return n
}
