package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ofmprobe/ofmprobe/catalog"
)

// The serve tests run `ofmprobe serve` (and Prometheus) inside the scanner namespace, and talk to them over HTTP from
// the test through sockets made in that namespace.

// nsDial dials from inside a network namespace: the socket is made on an OS thread that joined the namespace, which
// the runtime discards afterwards (the goroutine exits locked to it).
func nsDial(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			f, err := os.Open("/run/netns/" + ns)
			if err != nil {
				ch <- result{err: err}
				return
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				ch <- result{err: fmt.Errorf("setns %s: %v", ns, err)}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

// labHTTP is an HTTP client whose connections start in the scanner namespace.
var labHTTP = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: nsDial(scannerNS), DisableKeepAlives: true}}

func labGet(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := labHTTP.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// startInLab starts a long-running command in the scanner namespace (`ip netns exec` execs it, so the PID is the
// command's) and ends it by its PID when the test ends; its stderr goes to a file whose content the test can read.
func startInLab(t *testing.T, dir, name string, args ...string) func() string {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", scannerNS}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
	return func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}
}

// waitHTTP waits until a URL answers 200, up to the deadline.
func waitHTTP(t *testing.T, u string, within time.Duration, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, _ := labGet(t, u)
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 within %s; log:\n%s", u, within, logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// promVector is the part of a Prometheus instant-query answer the test reads.
type promVector struct {
	Status string `json:"status"`
	Data   struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

func promQuery(t *testing.T, base, q string) promVector {
	t.Helper()
	code, body := labGet(t, base+"/api/v1/query?query="+url.QueryEscape(q))
	var v promVector
	if code != http.StatusOK || json.Unmarshal([]byte(body), &v) != nil || v.Status != "success" {
		t.Fatalf("query %q: %d %s", q, code, body)
	}
	return v
}

// serveTargets are the lab hosts Prometheus scrapes: every host of the /24 and of the routed segment, but the two
// lossy ones, whose answers are random by design (a grade may change between the scan and a scrape); the loss
// tests score them.
var serveTargets = []string{
	"198.18.0.10", "198.18.0.11", "198.18.0.12", "198.18.0.13", "198.18.0.14", "198.18.0.15", "198.18.0.16",
	"198.18.0.18", "198.18.0.20", "198.18.0.21", "198.18.0.30", "198.18.0.250", "198.18.2.10", "198.18.2.11",
}

const labServeConfig = `allowed_targets: [198.18.0.0/24, 198.18.2.0/24]
max_probes_in_flight: 32
min_interval: 5s
modules:
  ofm-9.0:
    profile: ofm-9.0
  ofm-9.1:
    profile: ofm-9.1
`

// TestLabPrometheus runs the real Prometheus server with the docs' prometheus.yml (and its alert rules), scraping
// `ofmprobe serve` for every lab host with both modules, and checks through Prometheus's query API that
// probe_success and the grade of every host equal what `ofmprobe scan` reports for it.
func TestLabPrometheus(t *testing.T) {
	bin := needLab(t)
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus is not installed (testdata/lab/test.sh installs Debian's prometheus package)")
		}
		t.Skip("prometheus is not installed: apt-get install prometheus, or run make test")
	}
	dir := t.TempDir()
	// The docs' configuration, with a shorter interval so the test need not wait minutes; everything else (the jobs,
	// the relabelling, the rule file, the exporter's address) is the file as shipped.
	conf, err := os.ReadFile("../../docs/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	c := string(conf)
	for old, repl := range map[string]string{"scrape_interval: 1m": "scrape_interval: 10s", "scrape_timeout: 30s": "scrape_timeout: 9s", "evaluation_interval: 1m": "evaluation_interval: 10s"} {
		if !strings.Contains(c, old) {
			t.Fatalf("docs/prometheus/prometheus.yml no longer has %q", old)
		}
		c = strings.Replace(c, old, repl, 1)
	}
	os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(c), 0o644)
	rules, err := os.ReadFile("../../docs/prometheus/ofmprobe.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "ofmprobe.rules.yml"), rules, 0o644)
	os.MkdirAll(filepath.Join(dir, "targets"), 0o755)
	var list strings.Builder
	list.WriteString("- targets:\n")
	for _, a := range serveTargets {
		fmt.Fprintf(&list, "    - %s\n", a)
	}
	for _, m := range []string{"ofm-9.0", "ofm-9.1"} {
		os.WriteFile(filepath.Join(dir, "targets", m+".yml"), []byte(list.String()), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "serve.yml"), []byte(labServeConfig), 0o644)

	// What scan says about the same hosts.
	doc, _ := scanLabJSON(t, bin, serveTargets...)
	want := map[string]map[string]catalog.HostGrade{}
	for _, h := range doc.Hosts {
		want[h.Address] = map[string]catalog.HostGrade{"ofm-9.0": h.Grade("ofm-9.0"), "ofm-9.1": h.Grade("ofm-9.1")}
	}
	if len(want) != len(serveTargets) {
		t.Fatalf("scan reported %d hosts, want %d", len(want), len(serveTargets))
	}

	serveLog := startInLab(t, dir, "serve", bin, "serve", "--config", filepath.Join(dir, "serve.yml"))
	waitHTTP(t, "http://127.0.0.1:9445/-/healthy", 20*time.Second, serveLog)
	promLog := startInLab(t, dir, "prometheus", promBin, "--config.file", filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path", filepath.Join(dir, "tsdb"), "--web.listen-address", "127.0.0.1:9090")
	const prom = "http://127.0.0.1:9090"
	waitHTTP(t, prom+"/-/ready", 60*time.Second, promLog)

	// Wait until every host has been scraped with both modules.
	deadline := time.Now().Add(90 * time.Second)
	for {
		v := promQuery(t, prom, `probe_success{job=~"ofmprobe-ofm-9.."}`)
		if len(v.Data.Result) == 2*len(serveTargets) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 90 s Prometheus has %d of %d probe_success series; serve log:\n%s\nprometheus log:\n%s",
				len(v.Data.Result), 2*len(serveTargets), serveLog(), promLog())
		}
		time.Sleep(time.Second)
	}
	success := promQuery(t, prom, `probe_success{job=~"ofmprobe-ofm-9.."}`)
	gradeOf := promQuery(t, prom, `ofmprobe_grade{job=~"ofmprobe-ofm-9.."} == 1`)
	got := map[string]map[string]catalog.HostGrade{}
	for _, r := range gradeOf.Data.Result {
		inst, profile := r.Metric["instance"], r.Metric["profile"]
		if got[inst] == nil {
			got[inst] = map[string]catalog.HostGrade{}
		}
		if r.Metric["job"] != "ofmprobe-"+profile {
			t.Errorf("%s: job %s carries profile %s", inst, r.Metric["job"], profile)
		}
		got[inst][profile] = catalog.HostGrade(r.Metric["grade"])
	}
	for _, r := range success.Data.Result {
		inst, profile := r.Metric["instance"], strings.TrimPrefix(r.Metric["job"], "ofmprobe-")
		w, ok := want[inst]
		if !ok {
			t.Errorf("Prometheus has a series for %s, which was not a target", inst)
			continue
		}
		wantSuccess := "0"
		if w[profile].Passed() {
			wantSuccess = "1"
		}
		if r.Value[1] != wantSuccess {
			t.Errorf("%s %s: probe_success %v in Prometheus, scan grades %s", inst, profile, r.Value[1], w[profile])
		}
		if g := got[inst][profile]; g != w[profile] {
			t.Errorf("%s %s: grade %q in Prometheus, %q from scan", inst, profile, g, w[profile])
		}
	}
	// The exporter's own job is scraped too, and the rules loaded.
	if v := promQuery(t, prom, `up{job="ofmprobe-exporter"}`); len(v.Data.Result) != 1 || v.Data.Result[0].Value[1] != "1" {
		t.Errorf("the exporter's own job: %+v", v.Data.Result)
	}
	if v := promQuery(t, prom, `sum(ofmprobe_exporter_probes_total)`); len(v.Data.Result) != 1 {
		t.Errorf("the exporter's probe counter is not in Prometheus")
	}
	if code, body := labGet(t, prom+"/api/v1/rules"); code != http.StatusOK || !strings.Contains(body, "OFMProbeSMBLost") {
		t.Errorf("the alert rules are not loaded: %d %.300s", code, body)
	}
	if t.Failed() {
		t.Logf("serve log:\n%s", serveLog())
	}
}

// TestLabServeSweep runs a scheduled sweep of two lab hosts, then drops TCP 445 on the 9.1 host with nftables: the
// next sweep reports the regression as a metric and a line on the sweep's page, and the JSON report shows it.
func TestLabServeSweep(t *testing.T) {
	bin := needLab(t)
	dir := t.TempDir()
	cfg := `allowed_targets: [198.18.0.0/24]
modules:
  ofm-9.1: {profile: ofm-9.1}
sweeps:
  pair:
    targets: [198.18.0.10-11, 198.18.1.0/30]
    module: ofm-9.1
    interval: 10s
`
	os.WriteFile(filepath.Join(dir, "serve.yml"), []byte(cfg), 0o644)
	logs := startInLab(t, dir, "serve", bin, "serve", "--config", filepath.Join(dir, "serve.yml"), "--log.level", "debug")
	const base = "http://127.0.0.1:9445"
	waitHTTP(t, base+"/sweeps/pair?format=json", 60*time.Second, logs)
	_, page := labGet(t, base+"/sweeps/pair")
	if !strings.Contains(page, "This is the first sweep") {
		t.Errorf("the first sweep's page lacks its note:\n%.2000s", page)
	}
	_, js := labGet(t, base+"/sweeps/pair?format=json")
	var doc struct {
		Hosts []struct {
			Address string `json:"address"`
		} `json:"hosts"`
	}
	json.Unmarshal([]byte(js), &doc)
	var addrs []string
	for _, h := range doc.Hosts {
		addrs = append(addrs, h.Address)
	}
	if !slices.Equal(addrs, []string{"198.18.0.10", "198.18.0.11"}) {
		t.Errorf("the sweep probed %v; want the two hosts and nothing outside allowed_targets", addrs)
	}
	if !strings.Contains(logs(), "addresses outside allowed_targets were not probed") {
		t.Errorf("the log does not say that 198.18.1.0/30 was left out:\n%s", logs())
	}
	_, m := labGet(t, base+"/metrics")
	if v := metricValue(m, `ofmprobe_sweep_hosts{grade="pass",profile="ofm-9.1",sweep="pair"}`); v != "1" {
		t.Fatalf("before the change the sweep has %q passing hosts, want 1 (ofm91):\n%s", v, grepLines(m, "ofmprobe_sweep"))
	}
	if v := metricValue(m, `ofmprobe_sweep_requirement_failing_hosts{profile="ofm-9.1",requirement="smb-direct",severity="required",sweep="pair"}`); v != "0" {
		t.Errorf("smb-direct failing on %q hosts before the change, want 0", v)
	}

	// Drop TCP 445 on ofm91, in a table of the test's own, removed at the end.
	ns := "ofmlab-ofm91"
	nft := func(args ...string) {
		if out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("nft %v: %v\n%s", args, err, out)
		}
	}
	nft("add", "table", "inet", "ofmsweeptest")
	t.Cleanup(func() {
		exec.Command("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "ofmsweeptest").Run()
	})
	nft("add", "chain", "inet", "ofmsweeptest", "input", "{ type filter hook input priority -10 ; }")
	nft("add", "rule", "inet", "ofmsweeptest", "input", "tcp", "dport", "445", "drop")

	deadline := time.Now().Add(60 * time.Second)
	for {
		_, m = labGet(t, base+"/metrics")
		if metricValue(m, `ofmprobe_sweep_regressions{sweep="pair"}`) == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no regression after 60 s:\n%s\nlog:\n%s", grepLines(m, "ofmprobe_sweep"), logs())
		}
		time.Sleep(time.Second)
	}
	// ofm90 speaks SMB on 445 as well: only ofm91 lost it.
	if v := metricValue(m, `ofmprobe_sweep_requirement_failing_hosts{profile="ofm-9.1",requirement="smb-direct",severity="required",sweep="pair"}`); v != "1" {
		t.Errorf("smb-direct failing on %q hosts after the change, want 1 (ofm91)", v)
	}
	_, page = labGet(t, base+"/sweeps/pair")
	if !strings.Contains(page, "Regressed: 198.18.0.11") || !strings.Contains(page, "ofm-9.1 went from pass to fail") || !strings.Contains(page, "smb-direct pass→fail") {
		t.Errorf("the page does not name the regression:\n%s", grepLines(page, "<li>"))
	}
}

// TestLabServeCredentials: a module whose password is wrong stops using it after max_logon_failures, across
// scrapes, and says so in a metric, until logon_cooldown has passed; the password is in no response and no log line.
func TestLabServeCredentials(t *testing.T) {
	bin := needLab(t)
	dir := t.TempDir()
	secret := "wrong-" + fmt.Sprint(time.Now().UnixNano())
	cred := filepath.Join(dir, "ofm.cred")
	os.WriteFile(cred, []byte("user=ofmlab\npassword="+secret+"\n"), 0o600)
	cfg := fmt.Sprintf(`allowed_targets: [198.18.0.14]
min_interval: 1ms
modules:
  auth:
    profile: ofm-9.1
    credentials_file: %s
    max_logon_failures: 2
    logon_cooldown: 3s
`, cred)
	os.WriteFile(filepath.Join(dir, "serve.yml"), []byte(cfg), 0o644)
	logs := startInLab(t, dir, "serve", bin, "serve", "--config", filepath.Join(dir, "serve.yml"), "--log.level", "debug")
	const base = "http://127.0.0.1:9445"
	waitHTTP(t, base+"/-/healthy", 20*time.Second, logs)
	var bodies []string
	for range 3 {
		_, b := labGet(t, base+"/probe?module=auth&target=198.18.0.14&debug=true")
		bodies = append(bodies, b)
	}
	_, m := labGet(t, base+"/metrics")
	if v := metricValue(m, `ofmprobe_exporter_credentials_locked{module="auth"}`); v != "1" {
		t.Errorf("credentials_locked %q after 3 scrapes with a wrong password, want 1:\n%s", v, grepLines(m, "credentials"))
	}
	if v := metricValue(m, `ofmprobe_exporter_logon_failures_total{module="auth"}`); v != "2" {
		t.Errorf("logon failures %q, want 2 (the third scrape must not try)", v)
	}
	if !strings.Contains(bodies[2], "credentials not used: 2 logon failures") {
		t.Errorf("the third scrape's evidence does not say the credentials were spared:\n%s", bodies[2])
	}
	// After the cool-down the account is tried again, with a fresh count: one more failure, below the limit.
	time.Sleep(3200 * time.Millisecond)
	_, b := labGet(t, base+"/probe?module=auth&target=198.18.0.14&debug=true")
	bodies = append(bodies, b)
	_, m2 := labGet(t, base+"/metrics")
	if l, f := metricValue(m2, `ofmprobe_exporter_credentials_locked{module="auth"}`), metricValue(m2, `ofmprobe_exporter_logon_failures_total{module="auth"}`); l != "0" || f != "3" {
		t.Errorf("after the cool-down: locked %q, failures %q; want 0 and 3", l, f)
	}
	_, config := labGet(t, base+"/config")
	for i, b := range append(bodies, m, m2, config, logs()) {
		if strings.Contains(b, secret) {
			t.Errorf("response or log %d holds the password", i)
		}
	}
}

// metricValue returns a sample's value from a text exposition, or "".
func metricValue(body, sample string) string {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			return v
		}
	}
	return ""
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
