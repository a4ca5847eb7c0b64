// Package catalog holds what Open File Manager needs from the network: the vendor's port table and the OFM version
// profiles, each a list of requirements with a check, a severity, a one-line why and a one-line fix. It grades a host's
// observations against a profile. It imports nothing else of ofmprobe: probes describe what they saw through the
// Facts interface.
package catalog

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/ofmprobe/ofmprobe/probe/status"
)

//go:embed ofm.json
var builtin []byte

// Catalog is the port table and the profiles graded against it.
type Catalog struct {
	// Version is the catalog format version; only 1 exists.
	Version  int       `json:"version"`
	Ports    []Port    `json:"ports"`
	Profiles []Profile `json:"profiles"`
}

// Port is one row of the vendor's table of ports OFM and Windows use.
type Port struct {
	Port     int    `json:"port"`
	Protocol string `json:"protocol"` // "tcp" or "udp"
	Service  string `json:"service"`
	// Windows lists the Windows services that use the port, with their service names.
	Windows string `json:"windows"`
}

// Profile is the set of requirements one range of OFM versions has.
type Profile struct {
	ID           string        `json:"id"`
	Title        string        `json:"title"`
	Requirements []Requirement `json:"requirements"`
}

// Severity says how much a requirement's failure weighs.
type Severity string

// The severities. A required requirement that fails fails the host; a recommended one warns; an advisory one is
// reported with its state and never changes the host's grade.
const (
	Required    Severity = "required"
	Recommended Severity = "recommended"
	Advisory    Severity = "advisory"
)

// Match says how a requirement's checks combine.
type Match string

// The ways checks combine: any one passing is enough, or every one must pass.
const (
	MatchAny Match = "any"
	MatchAll Match = "all"
)

// Requirement is one thing a profile needs from a host, with the checks that observe it.
type Requirement struct {
	ID       string   `json:"id"`
	Title    string   `json:"title"`
	Severity Severity `json:"severity"`
	Match    Match    `json:"match"`
	Checks   []Check  `json:"checks"`
	Why      string   `json:"why"`
	Fix      string   `json:"fix"`
}

// Check is one observation a requirement looks at, and the states of it that pass or warn. Any other state fails.
type Check struct {
	// Kind names the probe step: see Kinds.
	Kind string `json:"kind"`
	// Port is the port the step uses; 0 for kinds without one (and for ofm-port, whose port the user gives).
	Port int `json:"port,omitempty"`
	// File is the file a file check looks for on the OFMLOG$ share.
	File string   `json:"file,omitempty"`
	Pass []string `json:"pass"`
	Warn []string `json:"warn,omitempty"`
}

// Kinds lists the check kinds a catalog may use, with the states each can report, from the one vocabulary
// (probe/status).
var Kinds = map[string][]string{
	"tcp":      states(status.Open, status.Closed, status.Filtered, status.Unreachable),
	"udp":      states(status.Open, status.OpenFiltered, status.Closed, status.Filtered, status.Unreachable),
	"nbstat":   states(status.Answered, status.OpenFiltered, status.Closed, status.Filtered, status.ProtocolError, status.Unreachable),
	"nbss":     states(status.Positive, status.Negative, status.Timeout, status.ProtocolError, status.Closed, status.Filtered, status.Unreachable),
	"smb":      states(status.SMB2, status.SMB1Only, status.NoDialect, status.SessionRefused, status.ProtocolError, status.Timeout, status.Closed, status.Filtered, status.Unreachable),
	"smb1":     states(status.Disabled, status.Accepted),
	"share":    states(status.Mounted, status.Missing, status.AccessDenied, status.LogonFailure, status.GuestRefused, status.SigningRequired, status.Refused, status.SessionRefused, status.ProtocolError, status.Timeout, status.Closed, status.Filtered, status.Unreachable),
	"file":     states(status.Present, status.Missing, status.AccessDenied, status.ProtocolError, status.Timeout, status.Unreachable),
	"ipc":      states(status.Connected, status.AccessDenied, status.LogonFailure, status.GuestRefused, status.SigningRequired, status.Refused, status.ProtocolError, status.Timeout, status.Closed, status.Filtered, status.Unreachable),
	"epm":      states(status.Bound, status.Rejected, status.ProtocolError, status.Timeout, status.Closed, status.Filtered, status.Unreachable),
	"ofm-port": states(status.Open, status.Closed, status.Filtered, status.Unreachable),
}

func states(list ...status.State) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = string(s)
	}
	return out
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,63}$`)

// Builtin returns the catalog compiled into ofmprobe.
func Builtin() *Catalog {
	c, err := Parse(bytes.NewReader(builtin))
	if err != nil {
		panic("catalog: builtin catalog is invalid: " + err.Error())
	}
	return c
}

// Load reads and validates a catalog file.
func Load(path string) (*Catalog, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	defer f.Close()
	c, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a catalog strictly: unknown fields, trailing data and every inconsistency are errors.
func Parse(r io.Reader) (*Catalog, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var c Catalog
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid JSON: data after the catalog object")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks the catalog's consistency and names the first problem it finds.
func (c *Catalog) Validate() error {
	if c.Version != 1 {
		return fmt.Errorf("version %d is not supported (want 1)", c.Version)
	}
	seenPort := map[string]bool{}
	for i, p := range c.Ports {
		if p.Port < 1 || p.Port > 65535 {
			return fmt.Errorf("ports[%d]: port %d out of range 1-65535", i, p.Port)
		}
		if p.Protocol != "tcp" && p.Protocol != "udp" {
			return fmt.Errorf("ports[%d]: protocol %q is not tcp or udp", i, p.Protocol)
		}
		key := fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		if seenPort[key] {
			return fmt.Errorf("ports[%d]: %s listed twice", i, key)
		}
		seenPort[key] = true
		if strings.TrimSpace(p.Service) == "" {
			return fmt.Errorf("ports[%d]: service is empty", i)
		}
	}
	if len(c.Profiles) == 0 {
		return errors.New("no profiles")
	}
	seenProfile := map[string]bool{}
	for i, p := range c.Profiles {
		where := fmt.Sprintf("profiles[%d]", i)
		if !idPattern.MatchString(p.ID) {
			return fmt.Errorf("%s: id %q must be lower-case letters, digits, '.' or '-'", where, p.ID)
		}
		where = fmt.Sprintf("profile %s", p.ID)
		if seenProfile[p.ID] {
			return fmt.Errorf("%s: defined twice", where)
		}
		seenProfile[p.ID] = true
		if len(p.Requirements) == 0 {
			return fmt.Errorf("%s: no requirements", where)
		}
		seenReq := map[string]bool{}
		for j, r := range p.Requirements {
			if err := validateRequirement(r); err != nil {
				return fmt.Errorf("%s: requirements[%d]: %w", where, j, err)
			}
			if seenReq[r.ID] {
				return fmt.Errorf("%s: requirement %s defined twice", where, r.ID)
			}
			seenReq[r.ID] = true
		}
	}
	return nil
}

func validateRequirement(r Requirement) error {
	if !idPattern.MatchString(r.ID) {
		return fmt.Errorf("id %q must be lower-case letters, digits, '.' or '-'", r.ID)
	}
	if strings.TrimSpace(r.Title) == "" || strings.TrimSpace(r.Why) == "" || strings.TrimSpace(r.Fix) == "" {
		return fmt.Errorf("%s: title, why and fix must not be empty", r.ID)
	}
	switch r.Severity {
	case Required, Recommended, Advisory:
	default:
		return fmt.Errorf("%s: severity %q is not required, recommended or advisory", r.ID, r.Severity)
	}
	switch r.Match {
	case MatchAny, MatchAll:
	default:
		return fmt.Errorf("%s: match %q is not any or all", r.ID, r.Match)
	}
	if len(r.Checks) == 0 {
		return fmt.Errorf("%s: no checks", r.ID)
	}
	for k, c := range r.Checks {
		states, ok := Kinds[c.Kind]
		if !ok {
			return fmt.Errorf("%s: checks[%d]: unknown kind %q", r.ID, k, c.Kind)
		}
		needsPort := c.Kind == "tcp" || c.Kind == "udp"
		if needsPort && (c.Port < 1 || c.Port > 65535) {
			return fmt.Errorf("%s: checks[%d]: %s check needs a port in 1-65535", r.ID, k, c.Kind)
		}
		if c.Port < 0 || c.Port > 65535 {
			return fmt.Errorf("%s: checks[%d]: port %d out of range", r.ID, k, c.Port)
		}
		if (c.Kind == "file") != (c.File != "") {
			return fmt.Errorf("%s: checks[%d]: a file name goes with file checks and only with them", r.ID, k)
		}
		if len(c.Pass) == 0 {
			return fmt.Errorf("%s: checks[%d]: pass lists no state", r.ID, k)
		}
		for _, s := range append(slices.Clone(c.Pass), c.Warn...) {
			if !slices.Contains(states, s) {
				return fmt.Errorf("%s: checks[%d]: %s checks have no state %q", r.ID, k, c.Kind, s)
			}
		}
	}
	return nil
}

// Profile returns the profile with the given id.
func (c *Catalog) Profile(id string) (Profile, bool) {
	for _, p := range c.Profiles {
		if p.ID == id {
			return p, true
		}
	}
	return Profile{}, false
}

// ProfileIDs returns the ids of every profile, in catalog order.
func (c *Catalog) ProfileIDs() []string {
	ids := make([]string, len(c.Profiles))
	for i, p := range c.Profiles {
		ids[i] = p.ID
	}
	return ids
}

// TCPPorts returns the TCP ports a scan for the profiles connects to, ascending: those of tcp checks, and those the
// protocol steps run on (nbss on 139, smb and epm on their ports, and for share, file and ipc the SMB ports 445 and
// 139), since a step runs only where its port is open.
func TCPPorts(profiles []Profile) []int {
	var ports []int
	for _, p := range profiles {
		for _, r := range p.Requirements {
			for _, c := range r.Checks {
				switch c.Kind {
				case "tcp", "nbss", "smb", "smb1", "epm":
					ports = append(ports, c.Port)
				case "share", "file", "ipc":
					ports = append(ports, 445, 139)
				}
			}
		}
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

// UDPPorts returns the UDP ports that the profiles' udp checks look at, ascending.
func UDPPorts(profiles []Profile) []int { return checkedPorts(profiles, "udp") }

func checkedPorts(profiles []Profile, kind string) []int {
	var ports []int
	for _, p := range profiles {
		for _, r := range p.Requirements {
			for _, c := range r.Checks {
				if c.Kind == kind {
					ports = append(ports, c.Port)
				}
			}
		}
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

// Uses reports whether any of the profiles has a check of the given kind: the scan runs only the steps its profiles
// need.
func Uses(profiles []Profile, kind string) bool {
	for _, p := range profiles {
		for _, r := range p.Requirements {
			for _, c := range r.Checks {
				if c.Kind == kind {
					return true
				}
			}
		}
	}
	return false
}

// String names the check as the report shows it, such as "tcp 445" or "share".
func (c Check) String() string {
	if c.File != "" {
		return c.Kind + " " + c.File
	}
	if c.Port != 0 {
		return fmt.Sprintf("%s %d", c.Kind, c.Port)
	}
	return c.Kind
}
