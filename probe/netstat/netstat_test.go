package netstat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"unicode/utf16"
)

var host = netip.MustParseAddr("198.18.0.12")

func load(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// utf16File is b as PowerShell's "netstat -an > file" saves it: UTF-16LE with a byte-order mark.
func utf16File(b []byte) []byte {
	out := []byte{0xff, 0xfe}
	for _, u := range utf16.Encode([]rune(string(b))) {
		out = binary.LittleEndian.AppendUint16(out, u)
	}
	return out
}

func TestParseEnglish(t *testing.T) {
	for name, input := range map[string][]byte{"english.txt": load(t, "english.txt"), "english.txt as UTF-16": utf16File(load(t, "english.txt"))} {
		tab, err := Parse(bytes.NewReader(input))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tab.Lines != 14 {
			t.Errorf("%s: %d socket lines, want 14", name, tab.Lines)
		}
		var got []string
		for _, s := range tab.Sockets {
			got = append(got, s.Protocol+" "+s.Local.String())
		}
		want := "tcp 0.0.0.0:135 tcp 0.0.0.0:445 tcp 0.0.0.0:5985 tcp 127.0.0.1:8080 tcp 198.18.0.12:139 tcp [::]:135 tcp [::]:445 udp 0.0.0.0:123 udp 198.18.0.12:137 udp 198.18.0.12:138 udp [::]:500"
		if strings.Join(got, " ") != want {
			t.Errorf("%s: sockets\n%s\nwant (established and TIME_WAIT connections are not listening)\n%s", name, strings.Join(got, " "), want)
		}
	}
}

// TestParseGerman reads the output of a German Windows saved by cmd.exe in code page 850 (ABHÖREN with Ö as 0x99):
// the parser reads the addresses, not the words.
func TestParseGerman(t *testing.T) {
	tab, err := Parse(bytes.NewReader(load(t, "german-cp850.txt")))
	if err != nil {
		t.Fatal(err)
	}
	if net, _ := tab.Listening("tcp", 139, host); len(net) != 1 || net[0].String() != "198.18.0.12:139" {
		t.Errorf("tcp 139: %v", net)
	}
	if net, _ := tab.Listening("tcp", 445, host); len(net) != 0 {
		t.Errorf("tcp 445 is only an outgoing connection (HERGESTELLT), got %v", net)
	}
	if net, _ := tab.Listening("udp", 137, host); len(net) != 1 {
		t.Errorf("udp 137: %v", net)
	}
}

func TestParseRefuses(t *testing.T) {
	if _, err := Parse(strings.NewReader("Windows IP Configuration\r\n\r\n   IPv4 Address. . . : 198.18.0.12\r\n")); !errors.Is(err, ErrNotNetstat) {
		t.Errorf("ipconfig output: %v", err)
	}
	if _, err := Parse(strings.NewReader("  TCP    0.0.0.0:99999   0.0.0.0:0   LISTENING\r\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a bad port: %v", err)
	}
	if _, err := Parse(strings.NewReader("  TCP    0.0.0.0:445\r\n  TCP    0.0.0.0:139   0.0.0.0:0\r\n")); err == nil {
		t.Error("a TCP line without a state parsed")
	}
}

func TestExplain(t *testing.T) {
	tab, err := Parse(bytes.NewReader(load(t, "english.txt")))
	if err != nil {
		t.Fatal(err)
	}
	const from = "198.18.0.2"
	tests := []struct {
		proto string
		port  int
		probe string
		agree bool
		want  string
	}{
		{"tcp", 445, "filtered", false, "tcp 445: listening on the host (0.0.0.0:445, [::]:445) but filtered from 198.18.0.2: a firewall between drops it"},
		{"tcp", 445, "open", true, "tcp 445: listening on the host and open from 198.18.0.2: fine"},
		{"tcp", 139, "closed", false, "tcp 139: listening on the host (198.18.0.12:139) but refused from 198.18.0.2"},
		{"tcp", 53, "closed", true, "tcp 53: not listening on the host (closed from 198.18.0.2): start the service that owns it (DNS Server (DNS))"},
		{"tcp", 8080, "closed", true, "tcp 8080: the host listens on loopback only (127.0.0.1:8080)"},
		{"tcp", 135, "open", true, "tcp 135: listening on the host and open"},
		{"tcp", 5900, "open", false, "tcp 5900: open from 198.18.0.2 but not listening in the host's netstat"},
		{"udp", 138, "open|filtered", true, "udp 138: listening on the host (198.18.0.12:138); silence from 198.18.0.2 means a firewall drops it or the service ignores the query"},
		{"udp", 67, "closed", true, "udp 67: not listening on the host"},
	}
	for _, tc := range tests {
		services := ""
		if tc.port == 53 {
			services = "DNS Server (DNS)"
		}
		v := Explain(tab, host, tc.proto, tc.port, tc.probe, from, services)
		if v.Agrees != tc.agree || !strings.HasPrefix(v.Explanation, tc.want) {
			t.Errorf("%s %d %s: agrees %v, %q\nwant agrees %v, %q...", tc.proto, tc.port, tc.probe, v.Agrees, v.Explanation, tc.agree, tc.want)
		}
	}
	// Bound to another of the host's addresses: not reachable at the one the probe used.
	if v := Explain(tab, netip.MustParseAddr("198.18.0.99"), "tcp", 139, "filtered", from, ""); v.Listening {
		t.Errorf("139 is bound to 198.18.0.12 only: %+v", v)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(load(f, "english.txt"))
	f.Add(load(f, "german-cp850.txt"))
	f.Add(utf16File(load(f, "english.txt")))
	f.Add([]byte("TCP [::1%99]:1 [::]:0 X\nUDP *:* *:*\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := Parse(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(tab.Sockets) > tab.Lines {
			t.Fatalf("%d sockets from %d lines", len(tab.Sockets), tab.Lines)
		}
		for _, s := range tab.Sockets {
			_ = Explain(tab, host, s.Protocol, int(s.Local.Port()), "filtered", "x", "")
		}
	})
}
