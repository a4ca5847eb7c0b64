package catalog

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestBuiltin(t *testing.T) {
	c := Builtin()
	if got, want := c.ProfileIDs(), []string{"ofm-9.0", "ofm-9.1"}; !slices.Equal(got, want) {
		t.Errorf("profiles %q, want %q", got, want)
	}
	if got, want := TCPPorts(c.Profiles), []int{53, 135, 139, 445}; !slices.Equal(got, want) {
		t.Errorf("TCP ports %v, want %v", got, want)
	}
	if got, want := UDPPorts(c.Profiles), []int{67, 138, 445}; !slices.Equal(got, want) {
		t.Errorf("UDP ports %v, want %v", got, want)
	}
	for kind, want := range map[string]bool{"nbstat": true, "nbss": true, "smb": true, "share": true, "icmp": false} {
		if Uses(c.Profiles, kind) != want {
			t.Errorf("Uses(%s) = %v", kind, !want)
		}
	}
	// Every requirement the issue names is there, with its severity.
	want := map[string]map[string]Severity{
		"ofm-9.0": {"smb-transport": Required, "smb-service": Required, "ipc-share": Required, "netbios-name": Required,
			"netbios-datagram": Required, "netbios-session": Required, "ofmlog-share": Required, "ofmnt-log": Required,
			"ofmnt-adr": Required, "smb1-disabled": Recommended, "rpc-endpoint-mapper": Advisory, "dns-tcp": Advisory, "smb-udp": Advisory, "dhcp-udp": Advisory},
		"ofm-9.1": {"smb-direct": Required, "smb-service": Required, "ofmlog-share": Required, "ofmnt-log": Required,
			"ofmnt-adr": Required, "ofm-service-port": Required, "netbios-hardening": Recommended,
			"smb1-disabled": Recommended, "rpc-endpoint-mapper": Advisory, "dns-tcp": Advisory, "smb-udp": Advisory, "dhcp-udp": Advisory},
	}
	for id, reqs := range want {
		p, ok := c.Profile(id)
		if !ok {
			t.Fatalf("no profile %s", id)
		}
		if len(p.Requirements) != len(reqs) {
			t.Errorf("%s has %d requirements, want %d", id, len(p.Requirements), len(reqs))
		}
		for _, r := range p.Requirements {
			if sev, ok := reqs[r.ID]; !ok || sev != r.Severity {
				t.Errorf("%s: requirement %s severity %s, want %s (listed: %v)", id, r.ID, r.Severity, sev, ok)
			}
		}
	}
}

// TestParseErrors matches each invalid catalog in testdata against its exact error message, so that a user's custom
// catalog gets a message that names the problem.
func TestParseErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid-*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid catalogs in testdata: %v", err)
	}
	for _, f := range files {
		want, err := os.ReadFile(strings.TrimSuffix(f, ".json") + ".err")
		if err != nil {
			t.Fatalf("%s: missing .err file: %v", f, err)
		}
		_, err = Load(f)
		if err == nil {
			t.Errorf("%s: loaded without error", f)
			continue
		}
		if got := err.Error(); got != strings.TrimSpace(string(want)) {
			t.Errorf("%s:\n got: %s\nwant: %s", f, got, strings.TrimSpace(string(want)))
		}
	}
}

func TestLoadValidCustomCatalog(t *testing.T) {
	c, err := Load("testdata/valid-site.json")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ProfileIDs(); !slices.Equal(got, []string{"site-smb"}) {
		t.Errorf("profiles %q", got)
	}
}
