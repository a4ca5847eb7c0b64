package catalog

import (
	"strings"
	"testing"
)

func TestAction(t *testing.T) {
	ports := Builtin().Ports
	vantage := []string{"198.18.0.2"}
	tests := []struct {
		cause string
		want  []string // parts the action must contain
	}{
		{"tcp 445 filtered", []string{"A firewall drops TCP 445 from 198.18.0.2.",
			"New-NetFirewallRule -DisplayName 'OFM TCP 445 from 198.18.0.2' -Direction Inbound -Protocol TCP -LocalPort 445 -RemoteAddress 198.18.0.2 -Action Allow"}},
		{"tcp 445 closed", []string{"Nothing listens on TCP 445 at the host (Windows services on it: License Logging Service (LicenseService), Server (LanManServer), RPC Locator (RpcLocator))",
			"Start-Service LanManServer; Set-Service LanManServer -StartupType Automatic"}},
		{"udp 138 open|filtered", []string{"A firewall drops, or the service does not answer, UDP 138 from 198.18.0.2.", "-Protocol UDP -LocalPort 138"}},
		{"nbstat 137 closed", []string{"Nothing answers on UDP 137: enable NetBIOS over TCP/IP", "TcpipNetbiosOptions=1"}},
		{"tcp 139 open; nbstat 137 answered", []string{"TcpipNetbiosOptions=2"}},
		{"smb1 445 accepted", []string{"Set-SmbServerConfiguration -EnableSMB1Protocol $false -Force"}},
		{"tcp 445 unreachable", []string{"198.18.0.2 could not reach the host on TCP 445"}},
		{"tcp 445 rejected by 198.18.1.2", []string{"The firewall at 198.18.1.2 rejects TCP 445 from 198.18.0.2 (it answers with ICMP prohibited): allow TCP 445 from 198.18.0.2 in its rules."}},
		{"udp 138 rejected", []string{"A firewall rejects UDP 138 from 198.18.0.2"}},
		// Two parts, two actions; the same action once.
		{"tcp 445 filtered; tcp 139 filtered", []string{"-LocalPort 445", "-LocalPort 139"}},
	}
	for _, tc := range tests {
		got := Action(tc.cause, vantage, ports)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("Action(%q) = %q, want it to contain %q", tc.cause, got, w)
			}
		}
	}
	if got := Action("tcp 139 open; nbstat 137 answered", vantage, ports); strings.Count(got, "TcpipNetbiosOptions=2") != 1 {
		t.Errorf("one action twice: %q", got)
	}
	// Nothing follows from these: the requirement's own fix stands, and nothing about OFM is made up.
	for _, cause := range []string{"share missing", "ipc logon failure", "smb 445 protocol error", "nbss 139 negative", "not checked: the share check was not run", "file OFMNT.LOG missing", ""} {
		if got := Action(cause, vantage, ports); got != "" {
			t.Errorf("Action(%q) = %q, want none", cause, got)
		}
	}
	// Without a vantage point there is no rule to write, but the finding stands.
	if got := Action("tcp 445 filtered", nil, ports); got != "A firewall drops TCP 445 from this probe." {
		t.Errorf("no vantage: %q", got)
	}
}
