package catalog

import (
	"fmt"
	"strconv"
	"strings"
)

// Action turns a result's cause ("tcp 445 filtered; tcp 139 closed") into what to do on the host as it was observed
// from the vantage point: for each part it recognises, the port, who could not reach it, the Windows services the
// vendor's port table lists for it, and a PowerShell command to paste on the host where one follows from the evidence
// alone. It returns "" when no part is recognised: the requirement's own fix then stands. It never names OFM's own
// paths or settings.
func Action(cause string, vantage []string, ports []Port) string {
	from := "this probe"
	remote := ""
	if len(vantage) > 0 {
		from = strings.Join(vantage, ", ")
		remote = strings.Join(vantage, ",")
	}
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, part := range strings.Split(cause, "; ") {
		add(partAction(part, from, remote, ports))
	}
	return strings.Join(out, " ")
}

// partAction is the action for one "CHECK PORT STATE" part of a cause.
func partAction(part, from, remote string, ports []Port) string {
	f := strings.SplitN(part, " ", 3)
	if len(f) < 2 {
		return ""
	}
	kind := f[0]
	port, err := strconv.Atoi(f[1])
	state := ""
	if len(f) == 3 {
		state = f[2]
	}
	if err != nil {
		// A kind without a port: "share missing", "ipc logon failure".
		return ""
	}
	proto := "tcp"
	switch kind {
	case "udp", "nbstat":
		proto = "udp"
	case "tcp", "nbss", "smb", "epm", "smb1":
	default:
		return ""
	}
	services := windowsServices(ports, port, proto)
	label := fmt.Sprintf("%s %d", strings.ToUpper(proto), port)
	switch {
	case strings.HasPrefix(state, "rejected"):
		at := "A firewall"
		if by := strings.TrimPrefix(state, "rejected by "); by != state {
			at = "The firewall at " + by
		}
		return fmt.Sprintf("%s rejects %s from %s (it answers with ICMP prohibited): allow %s from %s in its rules.", at, label, from, label, from)
	case strings.HasPrefix(state, "dropped after "):
		router := strings.TrimPrefix(state, "dropped after ")
		return fmt.Sprintf("The SYN for %s from %s passes %s and goes no further: a firewall at or just after %s drops it; allow %s from %s there.",
			label, from, router, router, label, from)
	case kind == "smb1" && state == "accepted":
		return "Turn SMB1 off on the host: Set-SmbServerConfiguration -EnableSMB1Protocol $false -Force (Windows 8 and Server 2012 or later)."
	case kind == "nbstat" && state == "answered", kind == "tcp" && port == 139 && state == "open":
		return "To stop exposing NetBIOS, disable NetBIOS over TCP/IP on the host's adapters: " +
			"Get-CimInstance Win32_NetworkAdapterConfiguration -Filter 'IPEnabled=TRUE' | Invoke-CimMethod -MethodName SetTcpipNetbios -Arguments @{TcpipNetbiosOptions=2}."
	case state == "filtered" || state == "open|filtered":
		what := "drops"
		if state == "open|filtered" {
			what = "drops, or the service does not answer,"
		}
		rule := ""
		if remote != "" {
			rule = fmt.Sprintf(" On the host: New-NetFirewallRule -DisplayName 'OFM %s from %s' -Direction Inbound -Protocol %s -LocalPort %d -RemoteAddress %s -Action Allow; and check the firewalls between.",
				label, remote, strings.ToUpper(proto), port, remote)
		}
		return fmt.Sprintf("A firewall %s %s from %s.%s", what, label, from, rule)
	case state == "closed" && (kind == "nbstat" || (kind == "udp" && (port == 137 || port == 138))) || state == "closed" && kind == "tcp" && port == 139:
		return fmt.Sprintf("Nothing answers on %s: enable NetBIOS over TCP/IP on the host's adapters: "+
			"Get-CimInstance Win32_NetworkAdapterConfiguration -Filter 'IPEnabled=TRUE' | Invoke-CimMethod -MethodName SetTcpipNetbios -Arguments @{TcpipNetbiosOptions=1}%s.", label, serviceNote(services))
	case state == "closed":
		cmd := ""
		if s := startable(port, proto); s != "" {
			cmd = fmt.Sprintf(": Start-Service %s; Set-Service %s -StartupType Automatic", s, s)
		}
		return fmt.Sprintf("Nothing listens on %s at the host%s%s.", label, serviceNote(services), cmd)
	case state == "unreachable":
		return fmt.Sprintf("%s could not reach the host on %s (no route, or the host is down): check the routing and the host from %s.", from, label, from)
	}
	return ""
}

// serviceNote names the Windows services the port table lists for a port.
func serviceNote(services []string) string {
	if len(services) == 0 {
		return ""
	}
	return " (Windows services on it: " + strings.Join(services, ", ") + ")"
}

// windowsServices is the port table's Windows services for a port, as "Server (LanManServer)".
func windowsServices(ports []Port, port int, proto string) []string {
	if w := WindowsServices(ports, port, proto); w != "" {
		return strings.Split(w, "; ")
	}
	return nil
}

// WindowsServices is the port table's Windows column for a port and protocol: the services that use it, "; "
// between them; "" when the table does not list the port.
func WindowsServices(ports []Port, port int, proto string) string {
	for _, p := range ports {
		if p.Port == port && p.Protocol == proto {
			return p.Windows
		}
	}
	return ""
}

// startable is the service to start for a port that nothing listens on, where one service owns it: the Server service
// for SMB, the RPC service for the endpoint mapper, the DNS and DHCP servers.
func startable(port int, proto string) string {
	switch {
	case proto == "tcp" && port == 445:
		return "LanManServer"
	case proto == "tcp" && port == 135:
		return "RpcSs"
	case port == 53:
		return "DNS"
	case proto == "udp" && port == 67:
		return "DHCPServer"
	}
	return ""
}
