package exporter

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/ofmprobe/ofmprobe/probe/targets"
)

// AllowList is what the exporter may probe: CIDR prefixes (an address is a /32 or /128) and host names. It is checked
// after name resolution, on the address that is probed, so a name that resolves outside it is refused, and a listed
// name allows the addresses it resolves to at the time of the probe.
type AllowList struct {
	prefixes []netip.Prefix
	names    []string
}

var hostName = regexp.MustCompile(`^(?i)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$`)

// ParseAllowList parses allowed_targets.
func ParseAllowList(entries []string) (*AllowList, error) {
	a := &AllowList{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if p, err := netip.ParsePrefix(e); err == nil {
			if p.Addr().Is4In6() {
				return nil, fmt.Errorf("allowed_targets: %s is an IPv4-mapped IPv6 prefix: write the IPv4 prefix", e)
			}
			a.prefixes = append(a.prefixes, p.Masked())
			continue
		}
		if addr, err := netip.ParseAddr(e); err == nil {
			if addr.Is4In6() {
				return nil, fmt.Errorf("allowed_targets: %s is an IPv4-mapped IPv6 address: write the IPv4 address", e)
			}
			if addr.Zone() != "" {
				return nil, fmt.Errorf("allowed_targets: %s has a zone: list the address without it", e)
			}
			a.prefixes = append(a.prefixes, netip.PrefixFrom(addr, addr.BitLen()))
			continue
		}
		if strings.ContainsAny(e, "/:") || !hostName.MatchString(e) || onlyDigitsAndDots(e) {
			return nil, fmt.Errorf("allowed_targets: %q is neither a CIDR prefix, an address nor a host name", e)
		}
		a.names = append(a.names, strings.ToLower(strings.TrimSuffix(e, ".")))
	}
	return a, nil
}

func onlyDigitsAndDots(s string) bool { return strings.Trim(s, "0123456789.") == "" }

// ErrNotAllowed is the error of a target outside the allow-list.
var ErrNotAllowed = errors.New("not in allowed_targets")

// containsAddr reports whether an address lies in one of the prefixes.
func (a *AllowList) containsAddr(addr netip.Addr) bool {
	return slices.ContainsFunc(a.prefixes, func(p netip.Prefix) bool { return p.Contains(addr) })
}

// Allowed reports whether an address may be probed: it lies in a prefix, or one of the listed names resolves to it
// now.
func (a *AllowList) Allowed(ctx context.Context, r targets.Resolver, addr netip.Addr) bool {
	if addr.Is4In6() || addr.Zone() != "" {
		return false
	}
	if a.containsAddr(addr) {
		return true
	}
	for _, n := range a.names {
		addrs, err := r.LookupNetIP(ctx, "ip", n)
		if err == nil && slices.Contains(addrs, addr) {
			return true
		}
	}
	return false
}

// Resolve turns a /probe target (an address or a host name) into the address to probe and checks it against the
// list. A name's first IPv4 address is probed, else its first address. Its errors wrap ErrNotAllowed when the
// address is outside the list, and say why in words fit for a log line.
func (a *AllowList) Resolve(ctx context.Context, r targets.Resolver, target string) (targets.Target, error) {
	if target == "" {
		return targets.Target{}, errors.New("target is missing: /probe?target=ADDRESS&module=NAME")
	}
	if addr, err := netip.ParseAddr(target); err == nil {
		switch {
		case addr.Is4In6():
			return targets.Target{}, fmt.Errorf("%s is an IPv4-mapped IPv6 address, refused: %w", target, ErrNotAllowed)
		case addr.Zone() != "":
			return targets.Target{}, fmt.Errorf("%s has an IPv6 zone, refused: %w", target, ErrNotAllowed)
		case !a.Allowed(ctx, r, addr):
			return targets.Target{}, fmt.Errorf("%s: %w", target, ErrNotAllowed)
		}
		return targets.Target{Addr: addr}, nil
	}
	if !hostName.MatchString(target) || onlyDigitsAndDots(target) {
		return targets.Target{}, fmt.Errorf("target %q is neither an address nor a host name", target)
	}
	addrs, err := r.LookupNetIP(ctx, "ip", target)
	if err != nil || len(addrs) == 0 {
		return targets.Target{}, fmt.Errorf("target %s does not resolve", target)
	}
	pick := addrs[0]
	if i := slices.IndexFunc(addrs, netip.Addr.Is4); i >= 0 {
		pick = addrs[i]
	}
	name := strings.ToLower(strings.TrimSuffix(target, "."))
	listed := slices.Contains(a.names, name)
	switch {
	case pick.Is4In6():
		return targets.Target{}, fmt.Errorf("%s resolves to the IPv4-mapped IPv6 address %s, refused: %w", target, pick, ErrNotAllowed)
	case !listed && !a.Allowed(ctx, r, pick):
		return targets.Target{}, fmt.Errorf("%s resolves to %s: %w", target, pick, ErrNotAllowed)
	}
	return targets.Target{Addr: pick, Name: target}, nil
}
