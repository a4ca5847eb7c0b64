package main

import (
	"errors"
	"net/netip"
	"os"
	"strings"

	"github.com/ofmprobe/ofmprobe/probe/netstat"
)

// netstatUsage is the --netstat flag's help.
const netstatUsage = "explain each port of the host at `ADDRESS=FILE` with FILE, the output of 'netstat -an' run on that host " +
	"(Windows, any language; repeatable)"

// readNetstats reads every --netstat ADDRESS=FILE. Each bad value is bad input: one line, exit 2.
func readNetstats(values []string) (map[netip.Addr]netstat.Table, error) {
	out := map[netip.Addr]netstat.Table{}
	for _, v := range values {
		addrText, path, ok := strings.Cut(v, "=")
		if !ok || addrText == "" || path == "" {
			return nil, usageErrorf("--netstat %q: want ADDRESS=FILE, such as 198.18.0.12=netstat-fs01.txt", v)
		}
		addr, err := netip.ParseAddr(addrText)
		if err != nil {
			return nil, usageErrorf("--netstat %q: %q is not an IP address", v, addrText)
		}
		if _, dup := out[addr.Unmap()]; dup {
			return nil, usageErrorf("--netstat: %s is given twice", addr)
		}
		f, err := os.Open(path)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, usageErrorf("--netstat %s: %v", path, err)
		}
		t, err := netstat.Parse(f)
		f.Close()
		if err != nil {
			return nil, usageErrorf("--netstat %s: %v", path, err)
		}
		out[addr.Unmap()] = t
	}
	return out, nil
}

// netstatFor returns the table given for an address.
func netstatFor(tables map[netip.Addr]netstat.Table, address string) (netstat.Table, bool) {
	a, err := netip.ParseAddr(address)
	if err != nil {
		return netstat.Table{}, false
	}
	t, ok := tables[a.Unmap()]
	return t, ok
}
