package targets

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeResolver answers from a table and never touches the network.
type fakeResolver map[string][]string

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	addrs, ok := f[host]
	if !ok {
		return nil, errors.New("no such host in the test table")
	}
	var out []netip.Addr
	for _, a := range addrs {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

func collect(t *testing.T, set *Set) []string {
	t.Helper()
	var out []string
	for tg := range set.All() {
		out = append(out, tg.String())
	}
	return out
}

func TestTargetsParse(t *testing.T) {
	p := &Parser{Resolver: fakeResolver{
		"ofm90.lab":  {"198.18.0.10"},
		"dual.lab":   {"198.18.0.11", "2001:db8::11", "198.18.0.11"},
		"mapped.lab": {"::ffff:198.18.0.12"},
	}}
	tests := []struct {
		exprs []string
		want  []string
	}{
		{[]string{"198.18.0.10"}, []string{"198.18.0.10"}},
		{[]string{" 198.18.0.10 "}, []string{"198.18.0.10"}},
		{[]string{"198.18.0.8/30"}, []string{"198.18.0.8", "198.18.0.9", "198.18.0.10", "198.18.0.11"}},
		{[]string{"198.18.0.9/30"}, []string{"198.18.0.8", "198.18.0.9", "198.18.0.10", "198.18.0.11"}},
		{[]string{"198.18.0.10/32"}, []string{"198.18.0.10"}},
		{[]string{"198.18.0.10-12"}, []string{"198.18.0.10", "198.18.0.11", "198.18.0.12"}},
		{[]string{"198.18.0.254-198.18.1.1"}, []string{"198.18.0.254", "198.18.0.255", "198.18.1.0", "198.18.1.1"}},
		{[]string{"198.18.0-1.1-2"}, []string{"198.18.0.1", "198.18.0.2", "198.18.1.1", "198.18.1.2"}},
		{[]string{"198.18.0.1,5,7-8"}, []string{"198.18.0.1", "198.18.0.5", "198.18.0.7", "198.18.0.8"}},
		{[]string{"198.18.0,2.9"}, []string{"198.18.0.9", "198.18.2.9"}},
		{[]string{"2001:db8::1"}, []string{"2001:db8::1"}},
		{[]string{"2001:db8::/126"}, []string{"2001:db8::", "2001:db8::1", "2001:db8::2", "2001:db8::3"}},
		{[]string{"::ffff:198.18.0.1"}, []string{"198.18.0.1"}},
		{[]string{"ofm90.lab"}, []string{"198.18.0.10 (ofm90.lab)"}},
		{[]string{"dual.lab"}, []string{"198.18.0.11 (dual.lab)", "2001:db8::11 (dual.lab)"}},
		{[]string{"mapped.lab"}, []string{"198.18.0.12 (mapped.lab)"}},
		// Duplicates are probed once; the first expression that names an address wins.
		{[]string{"198.18.0.10-11", "198.18.0.8/30", "ofm90.lab"}, []string{"198.18.0.10", "198.18.0.11", "198.18.0.8", "198.18.0.9"}},
		{[]string{"ofm90.lab", "198.18.0.10"}, []string{"198.18.0.10 (ofm90.lab)"}},
	}
	for _, tc := range tests {
		set := &Set{}
		if err := p.Include(context.Background(), set, tc.exprs...); err != nil {
			t.Fatalf("Include(%q): %v", tc.exprs, err)
		}
		if got := collect(t, set); !slices.Equal(got, tc.want) {
			t.Errorf("Include(%q) walks %q, want %q", tc.exprs, got, tc.want)
		}
	}
}

func TestTargetsParseErrors(t *testing.T) {
	p := &Parser{Resolver: fakeResolver{}}
	tests := []struct{ expr, want string }{
		{"", `bad target "": empty`},
		{"198.18.0.300", `bad target "198.18.0.300": octet 4: "300" is not a number from 0 to 255`},
		{"198.18.0", `bad target "198.18.0": an IPv4 address has four octets`},
		{"198.18.0.1.2", `bad target "198.18.0.1.2": an IPv4 address has four octets`},
		{"198.18.0.20-10", `bad target "198.18.0.20-10": octet 4: range 20-10 ends before it starts`},
		{"198.18.1.0-198.18.0.9", `bad target "198.18.1.0-198.18.0.9": range ends before it starts`},
		{"198.18.0.0/33", `bad target "198.18.0.0/33": not a valid CIDR prefix`},
		{"198.18.0.0/", `bad target "198.18.0.0/": not a valid CIDR prefix`},
		{"2001:db8::g", `bad target "2001:db8::g": not a valid IPv6 address`},
		{"fe80::1%eth0", `bad target "fe80::1%eth0": IPv6 zones are not supported`},
		{"198.18.0.-", `bad target "198.18.0.-": octet 4: "" is not a number from 0 to 255`},
		{"198.18.0.1-", `bad target "198.18.0.1-": octet 4: "" is not a number from 0 to 255`},
		{"198.18.0.0001", `bad target "198.18.0.0001": octet 4: "0001" is not a number from 0 to 255`},
		{"no-such-host.lab", `bad target "no-such-host.lab": cannot resolve: no such host in the test table`},
		{"bad host", `bad target "bad host": not an address, range or host name`},
		{"198.18.0.x", `bad target "198.18.0.x": not an IPv4 address, range or octet pattern`},
		{"198.18.0.1a", `bad target "198.18.0.1a": not an IPv4 address, range or octet pattern`},
	}
	for _, tc := range tests {
		_, err := p.Parse(context.Background(), tc.expr)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Parse(%q) error = %v, want %s", tc.expr, err, tc.want)
		}
	}
}

func TestTargetsExclude(t *testing.T) {
	p := &Parser{Resolver: fakeResolver{"gw.lab": {"198.18.0.1"}}}
	set := &Set{}
	must(t, p.Include(context.Background(), set, "198.18.0.0/29"))
	must(t, p.Exclude(context.Background(), set, "198.18.0.0", "198.18.0.4-5", "gw.lab", "198.18.0.7/32"))
	want := []string{"198.18.0.2", "198.18.0.3", "198.18.0.6"}
	if got := collect(t, set); !slices.Equal(got, want) {
		t.Errorf("walk = %q, want %q", got, want)
	}
	if n := set.CountUpTo(100); n != 3 {
		t.Errorf("CountUpTo(100) = %d, want 3", n)
	}
}

func TestTargetsFile(t *testing.T) {
	p := &Parser{Resolver: fakeResolver{}}
	set := &Set{}
	file := "# lab hosts\n198.18.0.10 198.18.0.11\n\n  198.18.0.12-13 # two more\n"
	must(t, p.ReadFile(context.Background(), strings.NewReader(file), "hosts.txt", p.Include, set))
	want := []string{"198.18.0.10", "198.18.0.11", "198.18.0.12", "198.18.0.13"}
	if got := collect(t, set); !slices.Equal(got, want) {
		t.Errorf("walk = %q, want %q", got, want)
	}

	err := p.ReadFile(context.Background(), strings.NewReader("198.18.0.1\n\n198.18.0.999\n"), "hosts.txt", p.Include, &Set{})
	if want := `hosts.txt:3: bad target "198.18.0.999": octet 4: "999" is not a number from 0 to 255`; err == nil || err.Error() != want {
		t.Errorf("bad line: error = %v, want %s", err, want)
	}
}

func TestTargetsCountIsBounded(t *testing.T) {
	p := &Parser{}
	set := &Set{}
	// 0.0.0.0/0 would take minutes to walk: CountUpTo must stop just past its limit. Nothing is sent anywhere.
	must(t, p.Include(context.Background(), set, "0.0.0.0/0"))
	if n := set.CountUpTo(65536); n != 65537 {
		t.Errorf("CountUpTo(65536) = %d, want 65537", n)
	}
	if n := set.UpperBound(); n != 1<<32 {
		t.Errorf("UpperBound = %d, want %d", n, uint64(1)<<32)
	}
	v6 := &Set{}
	must(t, p.Include(context.Background(), v6, "2001:db8::/32"))
	if n := v6.UpperBound(); n != 1<<63-1 {
		t.Errorf("UpperBound of an IPv6 /32 = %d, want saturation", n)
	}
}

// TestTargetsWalkIsLazy proves that walking a large range allocates nothing per address: memory does not grow with the
// size of the range.
func TestTargetsWalkIsLazy(t *testing.T) {
	p := &Parser{}
	for _, expr := range []string{"198.18.0.0/15", "198.18-19.*.*", "198.18.0.0-198.19.255.255"} {
		set := &Set{}
		must(t, p.Include(context.Background(), set, expr, "198.18.0.0/24"))
		must(t, p.Exclude(context.Background(), set, "198.19.0.0/16"))
		var n int
		allocs := testing.AllocsPerRun(1, func() {
			n = 0
			for range set.All() {
				n++
			}
		})
		if n != 65536 {
			t.Errorf("%s minus 198.19.0.0/16: walked %d addresses, want 65536", expr, n)
		}
		if allocs > 20 {
			t.Errorf("%s: walking 131072 addresses allocated %v times; want a constant", expr, allocs)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestTargetsManySingleAddresses walks 100,000 one-address expressions with exclusions. De-duplication that tests
// each address against every earlier expression takes about 5e9 membership tests here (minutes); an index of the
// single addresses makes it linear (well under a second).
func TestTargetsManySingleAddresses(t *testing.T) {
	const n = 100_000
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "198.18.%d.%d\n", i/256%256, i%256)
	}
	b.WriteString("198.18.0.0/24\n198.18.0.7\n") // a range and a point that earlier lines already named
	set := &Set{}
	p := &Parser{}
	must(t, p.ReadFile(context.Background(), strings.NewReader(b.String()), "many", p.Include, set))
	must(t, p.Exclude(context.Background(), set, "198.18.1.5", "198.18.2.0/30"))
	start := time.Now()
	got := 0
	seen := make(map[netip.Addr]bool)
	for tg := range set.ScanOrder() {
		if seen[tg.Addr] {
			t.Fatalf("%s walked twice", tg.Addr)
		}
		seen[tg.Addr] = true
		got++
	}
	// 100,000 lines name 65,536 distinct addresses (the third octet wraps); 5 are excluded.
	if want := 65536 - 5; got != want {
		t.Errorf("walked %d addresses, want %d", got, want)
	}
	if seen[netip.MustParseAddr("198.18.1.5")] || seen[netip.MustParseAddr("198.18.2.3")] {
		t.Error("an excluded address was walked")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the walk took %s: de-duplication is not linear", d)
	}
}
