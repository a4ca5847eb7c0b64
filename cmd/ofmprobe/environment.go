package main

import (
	"io"
	"net"
	"net/netip"
	"os"
	"slices"

	"golang.org/x/term"

	"github.com/ofmprobe/ofmprobe/report"
)

// vantageAddresses lists this machine's own addresses, the vantage point a report's verdicts hold from: every
// interface address except loopback and link-local ones, sorted. Firewall verdicts depend on where the probe stands.
func vantageAddresses() []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return []string{}
	}
	var ips []netip.Addr
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := p.Addr().Unmap()
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() {
			continue
		}
		ips = append(ips, ip)
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	ips = slices.Compact(ips)
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

// reportOptions decides how a report looks where a person reads it: colour only when the report goes to a terminal,
// NO_COLOR is empty or unset (https://no-color.org) and TERM is not "dumb"; the table's width is the terminal's.
func reportOptions(stdout io.Writer, toTerminal bool) report.Options {
	if !toTerminal {
		return report.Options{}
	}
	opts := report.Options{Color: os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"}
	if f, ok := stdout.(*os.File); ok {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
			opts.Width = w
		}
	}
	return opts
}
