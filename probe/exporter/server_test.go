package exporter

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeResolver answers from a map, so that no test asks a real DNS server.
type fakeResolver map[string][]netip.Addr

func (r fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[strings.ToLower(host)]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

var testResolver = fakeResolver{
	"files.lab.example":  {netip.MustParseAddr("127.0.0.20")},
	"inside.lab.example": {netip.MustParseAddr("127.0.0.3")},
	"evil.example":       {netip.MustParseAddr("127.0.0.9")},
	"mapped.example":     {netip.MustParseAddr("::ffff:127.0.0.2")},
}

const testConfig = `allowed_targets: [127.0.0.0/29, files.lab.example]
max_probes_in_flight: %d
min_interval: %s
modules:
  ofm-9.1:
    profile: ofm-9.1
    steps: [tcp]
    hops: 0
  slow:
    profile: ofm-9.1
    steps: [tcp, smb]
    connect_timeout: 10s
    retries: 0
    hops: 0
`

func writeConfig(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newTestServer(t *testing.T, inFlight int, minInterval string) (*Server, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "serve.yml")
	writeConfig(t, path, fmt.Sprintf(testConfig, inFlight, minInterval))
	s, err := New(Options{ConfigFile: path, Version: "test", Resolver: testResolver, ProbeSockets: 16})
	if err != nil {
		t.Fatal(err)
	}
	return s, path
}

// get fetches a path from the server's handler and returns the status and body.
func get(t *testing.T, h http.Handler, path string, header ...string) (int, http.Header, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, rec.Result().Header, string(b)
}

// metric returns the value line of a sample ("name{labels} value") from a text exposition, or "".
func metric(body, sample string) string {
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, sample+" ") {
			return strings.TrimPrefix(line, sample+" ")
		}
	}
	return ""
}

// tarpit accepts TCP connections on a loopback address and never answers on them.
func tarpit(t *testing.T, addr string) int {
	t.Helper()
	ln, err := net.Listen("tcp4", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// pointAt makes a module's TCP and SMB steps use one loopback port instead of the well-known ones.
func pointAt(s *Server, module string, port int) {
	m := s.state.Load().modules[module]
	m.steps.Ports = []int{port}
	m.steps.SMB.DirectPort = uint16(port)
}

func TestAllowList(t *testing.T) {
	s, _ := newTestServer(t, 4, "1ms")
	h := s.Handler()
	for _, c := range []struct {
		target string
		code   int
	}{
		{"198.18.0.1", http.StatusForbidden},       // outside every prefix
		{"127.0.0.8", http.StatusForbidden},        // just outside 127.0.0.0/29
		{"::ffff:127.0.0.2", http.StatusForbidden}, // IPv4-mapped IPv6 of an allowed address
		{"evil.example", http.StatusForbidden},     // a name that resolves outside
		{"mapped.example", http.StatusForbidden},   // a name that resolves to a mapped address
		{"unknown.example", http.StatusBadRequest},
		{"", http.StatusBadRequest},
		{"127.0.0.2", http.StatusOK},
		{"inside.lab.example", http.StatusOK}, // resolves inside a prefix
		{"files.lab.example", http.StatusOK},  // listed by name, outside every prefix
		{"127.0.0.20", http.StatusOK},         // the address a listed name resolves to
	} {
		code, _, body := get(t, h, "/probe?module=ofm-9.1&target="+c.target)
		if code != c.code {
			t.Errorf("target %q: %d %q, want %d", c.target, code, body, c.code)
		}
	}
	_, _, m := get(t, h, "/metrics")
	if v := metric(m, `ofmprobe_exporter_refusals_total{reason="target_not_allowed"}`); v != "5" {
		t.Errorf("target_not_allowed refusals %q, want 5", v)
	}
	if v := metric(m, `ofmprobe_exporter_refusals_total{reason="bad_target"}`); v != "2" {
		t.Errorf("bad_target refusals %q, want 2", v)
	}
}

func TestUnknownModule(t *testing.T) {
	s, _ := newTestServer(t, 4, "1ms")
	h := s.Handler()
	code, _, body := get(t, h, "/probe?module=ofm-9.2&target=127.0.0.2")
	if code != http.StatusBadRequest || !strings.Contains(body, `unknown module "ofm-9.2" (the configuration has ofm-9.1, slow)`) {
		t.Errorf("unknown module: %d %q", code, body)
	}
	_, _, m := get(t, h, "/metrics")
	if v := metric(m, `ofmprobe_exporter_refusals_total{reason="unknown_module"}`); v != "1" {
		t.Errorf("unknown_module refusals %q, want 1", v)
	}
}

// TestProbeMetrics probes a loopback address whose ports are closed: a failing grade, every port closed.
func TestProbeMetrics(t *testing.T) {
	s, _ := newTestServer(t, 4, "1ms")
	code, _, body := get(t, s.Handler(), "/probe?module=ofm-9.1&target=127.0.0.2")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	for sample, want := range map[string]string{
		"probe_success": "0",
		`ofmprobe_grade{grade="fail",profile="ofm-9.1"}`:                                                        "1",
		`ofmprobe_grade{grade="pass",profile="ofm-9.1"}`:                                                        "0",
		`ofmprobe_port_state{port="445",protocol="tcp",state="closed"}`:                                         "1",
		`ofmprobe_port_state{port="445",protocol="tcp",state="open"}`:                                           "0",
		`ofmprobe_requirement_ok{profile="ofm-9.1",requirement="smb-direct",severity="required"}`:               "1" + "",
		`ofmprobe_requirement_cause{check="tcp 445",profile="ofm-9.1",requirement="smb-direct",state="closed"}`: "1",
		"ofmprobe_probe_cached":    "0",
		"ofmprobe_probe_timed_out": "0",
	} {
		if sample == `ofmprobe_requirement_ok{profile="ofm-9.1",requirement="smb-direct",severity="required"}` {
			want = "0"
		}
		if got := metric(body, sample); got != want {
			t.Errorf("%s = %q, want %q", sample, got, want)
		}
	}
	if strings.Contains(body, "connection refused") || strings.Contains(body, "ms\"") {
		t.Errorf("evidence text in a label:\n%s", body)
	}
}

// TestScrapeTimeout probes a tarpit (it accepts, then never answers the SMB negotiate, which the module would wait
// 10 s for) with a scrape timeout of 2 s: the answer comes within it, with probe_success 0 and the timeout said.
func TestScrapeTimeout(t *testing.T) {
	s, _ := newTestServer(t, 4, "1ms")
	pointAt(s, "slow", tarpit(t, "127.0.0.4"))
	start := time.Now()
	code, _, body := get(t, s.Handler(), "/probe?module=slow&target=127.0.0.4", "X-Prometheus-Scrape-Timeout-Seconds", "2")
	took := time.Since(start)
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	if took > 2*time.Second {
		t.Errorf("the probe took %s, past the scrape timeout of 2s", took)
	}
	if took < time.Second {
		t.Errorf("the probe took %s: the tarpit should have held it to the timeout (1.5s)", took)
	}
	if metric(body, "probe_success") != "0" || metric(body, "ofmprobe_probe_timed_out") != "1" {
		t.Errorf("tarpit: want probe_success 0 and ofmprobe_probe_timed_out 1:\n%s", body)
	}
	if v := metric(body, `ofmprobe_port_state{port="`+fmt.Sprint(s.state.Load().modules["slow"].steps.Ports[0])+`",protocol="tcp",state="open"}`); v != "1" {
		t.Errorf("the tarpit's port should read open (it accepts): %q", v)
	}
}

// TestInFlightCap fills the one probe slot with a tarpit probe: another target gets 503 with Retry-After, and the
// refusal is counted.
func TestInFlightCap(t *testing.T) {
	s, _ := newTestServer(t, 1, "1ms")
	pointAt(s, "slow", tarpit(t, "127.0.0.5"))
	h := s.Handler()
	done := make(chan int)
	go func() {
		code, _, _ := get(t, h, "/probe?module=slow&target=127.0.0.5", "X-Prometheus-Scrape-Timeout-Seconds", "3")
		done <- code
	}()
	deadline := time.Now().Add(2 * time.Second)
	for s.inFlight.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	code, hdr, body := get(t, h, "/probe?module=ofm-9.1&target=127.0.0.2")
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Errorf("second probe with the slot taken: %d (Retry-After %q) %q; want 503 with Retry-After", code, hdr.Get("Retry-After"), body)
	}
	if c := <-done; c != http.StatusOK {
		t.Errorf("the first probe answered %d", c)
	}
	_, _, m := get(t, h, "/metrics")
	if v := metric(m, `ofmprobe_exporter_refusals_total{reason="busy"}`); v != "1" {
		t.Errorf("busy refusals %q, want 1", v)
	}
	if v := metric(m, "ofmprobe_exporter_probes_in_flight"); v != "0" {
		t.Errorf("probes in flight after both ended: %q", v)
	}
	// With the slot free again the second target is probed.
	if code, _, _ := get(t, h, "/probe?module=ofm-9.1&target=127.0.0.2"); code != http.StatusOK {
		t.Errorf("after the slot came free: %d", code)
	}
}

// TestMinInterval: a second scrape within min_interval gets the first result again, marked cached.
func TestMinInterval(t *testing.T) {
	s, _ := newTestServer(t, 4, "1m")
	h := s.Handler()
	_, _, first := get(t, h, "/probe?module=ofm-9.1&target=127.0.0.2")
	_, _, second := get(t, h, "/probe?module=ofm-9.1&target=127.0.0.2")
	if metric(first, "ofmprobe_probe_cached") != "0" || metric(second, "ofmprobe_probe_cached") != "1" {
		t.Errorf("cached: first %q, second %q; want 0 then 1", metric(first, "ofmprobe_probe_cached"), metric(second, "ofmprobe_probe_cached"))
	}
	if metric(first, "probe_duration_seconds") != metric(second, "probe_duration_seconds") {
		t.Error("the cached answer is not the first result")
	}
	_, _, m := get(t, h, "/metrics")
	if metric(m, `ofmprobe_exporter_probes_total{module="ofm-9.1",result="cached"}`) != "1" ||
		metric(m, `ofmprobe_exporter_probes_total{module="ofm-9.1",result="failure"}`) != "1" {
		t.Errorf("probes_total:\n%s", m)
	}
	// Another module is another probe.
	_, _, other := get(t, h, "/probe?module=slow&target=127.0.0.2")
	if metric(other, "ofmprobe_probe_cached") != "0" {
		t.Error("a probe with another module was served from the cache")
	}
}

// TestReloadKeepsOld: a bad configuration is refused, through POST /-/reload, and the one in force stays.
func TestReloadKeepsOld(t *testing.T) {
	s, path := newTestServer(t, 4, "1ms")
	h := s.Handler()
	writeConfig(t, path, "allowed_targets: [127.0.0.0/29]\nmodules:\n  ofm-9.1: {profile: ofm-9.1, timout: 3s}\n")
	req := httptest.NewRequest(http.MethodPost, "/-/reload", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), `unknown key "timout" in a module`) {
		t.Errorf("bad reload: %d %q", rec.Code, rec.Body.String())
	}
	if code, _, _ := get(t, h, "/probe?module=slow&target=127.0.0.2"); code != http.StatusOK {
		t.Errorf("after a refused reload, the old module slow answers %d", code)
	}
	_, _, m := get(t, h, "/metrics")
	if metric(m, "ofmprobe_exporter_config_last_reload_successful") != "0" {
		t.Error("the reload metric does not say the reload failed")
	}
	if code, _, _ := get(t, h, "/-/reload"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload: %d, want 405", code)
	}

	writeConfig(t, path, "allowed_targets: [127.0.0.0/29]\nmodules:\n  ofm-9.0: {profile: ofm-9.0, steps: [tcp]}\n")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/-/reload", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("good reload: %d %q", rec.Code, rec.Body.String())
	}
	if code, _, _ := get(t, h, "/probe?module=slow&target=127.0.0.2"); code != http.StatusBadRequest {
		t.Errorf("after a good reload, the dropped module answers %d", code)
	}
	if code, _, _ := get(t, h, "/probe?module=ofm-9.0&target=127.0.0.2"); code != http.StatusOK {
		t.Errorf("after a good reload, the new module answers %d", code)
	}
	_, _, m = get(t, h, "/metrics")
	if metric(m, "ofmprobe_exporter_config_last_reload_successful") != "1" {
		t.Error("the reload metric does not say the reload succeeded")
	}
}

// TestDebug: debug=true returns the module and the host's evidence as text.
func TestDebug(t *testing.T) {
	s, _ := newTestServer(t, 4, "1ms")
	_, hdr, body := get(t, s.Handler(), "/probe?module=ofm-9.1&target=127.0.0.2&debug=true")
	if !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Errorf("content type %q", hdr.Get("Content-Type"))
	}
	if got := hdr.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options %q, want nosniff", got)
	}
	for _, want := range []string{"Module ofm-9.1:", "profile: ofm-9.1", "tcp 445: closed, connection refused", "smb-direct (required): fail", "cause: tcp 445 closed", "Metrics:", "probe_success 0"} {
		if !strings.Contains(body, want) {
			t.Errorf("debug output lacks %q:\n%s", want, body)
		}
	}
}

func TestCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	secret := "Sup3r-Secret!"
	good := filepath.Join(dir, "good")
	writeConfig(t, good, "# lab account\nuser=ofmlab\ndomain=LAB\npassword="+secret+"\n")
	c, err := readCredentials(good, 3)
	if err != nil || c.user != "ofmlab" || c.domain != "LAB" || c.password() != secret {
		t.Fatalf("readCredentials: %+v, %v", c, err)
	}
	for name, content := range map[string]string{
		"nouser":    "password=" + secret + "\n",
		"nopass":    "user=ofmlab\n",
		"garbage":   "user=ofmlab\n" + secret + "\n",
		"twice":     "user=a\nuser=b\npassword=" + secret + "\n",
		"wrong-key": "user=a\npasswd=" + secret + "\n",
	} {
		p := filepath.Join(dir, name)
		writeConfig(t, p, content)
		_, err := readCredentials(p, 3)
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error quotes the password: %v", name, err)
		}
	}
	// The guard hands out fresh counts after the cool-down only.
	g := &credentialGuard{fresh: c, cooldown: time.Minute}
	g.current = c.new()
	if locked, _ := g.state(time.Now()); locked {
		t.Error("fresh credentials are locked")
	}
}

func TestCauseLabels(t *testing.T) {
	for part, want := range map[string][2]string{
		"tcp 445 filtered":                 {"tcp 445", "filtered"},
		"nbstat 137 open|filtered":         {"nbstat 137", "open|filtered"},
		"file OFMNT.LOG missing":           {"file OFMNT.LOG", "missing"},
		"share access denied":              {"share", "access denied"},
		"smb 445 smb1 only":                {"smb 445", "smb1 only"},
		"tcp 445 rejected by 198.18.1.2":   {"tcp 445", "rejected"},
		"tcp 445 rejected":                 {"tcp 445", "rejected"},
		"tcp 135 dropped after 198.18.1.2": {"tcp 135", "dropped"},
		"not checked: share not mounted":   {"not checked", "share not mounted"},
		"ipc logon failure":                {"ipc", "logon failure"},
	} {
		if c, s := causeLabels(part); c != want[0] || s != want[1] {
			t.Errorf("causeLabels(%q) = %q, %q; want %q, %q", part, c, s, want[0], want[1])
		}
	}
}
