package report

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ofmprobe/ofmprobe/report/reporttest"
)

// TestHTMLInBrowser loads the fixture report in headless Chromium and checks what a reader sees after the script
// ran: every host, the hostile strings inert, and the sort and filter views that a link can open.
func TestHTMLInBrowser(t *testing.T) {
	reporttest.Chromium(t)
	page := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(page, render(t, "html"), 0o644); err != nil {
		t.Fatal(err)
	}
	dom := reporttest.DumpDOM(t, page, "")
	p := reporttest.ParseDOM(t, dom)
	if p.Ready != "true" {
		t.Fatalf("the script did not run (data-ready=%q)", p.Ready)
	}
	if !slices.Equal(p.Hosts, fixtureOrder) || !slices.Equal(p.Visible, fixtureOrder) {
		t.Errorf("hosts %q, visible %q; want every host %q", p.Hosts, p.Visible, fixtureOrder)
	}
	if p.Title != "ofmprobe report 2026-11-25T12:00:00Z" {
		t.Errorf("title %q: a hostile script ran, or the title is wrong", p.Title)
	}
	if p.Elements["img"] != 0 || p.Elements["script"] != 1 {
		t.Errorf("%d img and %d script elements: hostile markup became elements", p.Elements["img"], p.Elements["script"])
	}
	if !strings.Contains(dom, "&lt;script&gt;document.title='pwned'&lt;/script&gt;") {
		t.Error("the hostile NetBIOS name is not shown as text")
	}
	// The causes table comes first on the page, with the top cause in its first row.
	if c, s := strings.Index(dom, `id="causes"`), strings.Index(dom, `id="summary"`); c < 0 || c > s || !strings.Contains(dom, "udp 138 open|filtered") {
		t.Error("the causes section is not at the top of the page")
	}
	if p.Shown != "6 hosts" || p.Sorted != "address ascending" {
		t.Errorf("shown %q, sorted %q", p.Shown, p.Sorted)
	}

	views := []struct {
		fragment      string
		order, showed []string
		shown, sorted string
	}{
		// Worst ofm-9.1 grade first, ties by address.
		{"#sort=-g1", []string{"198.18.0.17", "198.18.0.11", "198.18.0.12", "198.18.0.66", "198.18.0.99", "198.18.0.10"}, nil, "6 hosts", "g1 descending"},
		{"#sort=-address", []string{"198.18.0.99", "198.18.0.66", "198.18.0.17", "198.18.0.12", "198.18.0.11", "198.18.0.10"}, nil, "6 hosts", "address descending"},
		{"#grade=ofm-9.0:fail", fixtureOrder, []string{"198.18.0.11", "198.18.0.66"}, "2 of 6 hosts", "address ascending"},
		// Free text matches anything in the host's section, evidence included.
		{"#q=DROP445", fixtureOrder, []string{"198.18.0.12"}, "1 of 6 hosts", "address ascending"},
		{"#q=filtered%20smb-direct&grade=ofm-9.1:fail", fixtureOrder, []string{"198.18.0.11", "198.18.0.12"}, "2 of 6 hosts", "address ascending"},
		{"#q=no-such-host", fixtureOrder, []string{}, "0 of 6 hosts", "address ascending"},
	}
	for _, v := range views {
		p := reporttest.ParseDOM(t, reporttest.DumpDOM(t, page, v.fragment))
		want := v.showed
		if want == nil {
			want = v.order
		}
		if !slices.Equal(p.Hosts, v.order) || !slices.Equal(nonNil(p.Visible), want) || p.Shown != v.shown || p.Sorted != v.sorted {
			t.Errorf("%s: order %q, visible %q, %q, sorted %q;\nwant order %q, visible %q, %q, sorted %q",
				v.fragment, p.Hosts, p.Visible, p.Shown, p.Sorted, v.order, want, v.shown, v.sorted)
		}
	}

	png := filepath.Join(t.TempDir(), "report.png")
	reporttest.Screenshot(t, page, png, 1400, 1000)
	if dir := os.Getenv("OFMPROBE_SCREENSHOT_DIR"); dir != "" {
		b, _ := os.ReadFile(png)
		os.WriteFile(filepath.Join(dir, "fixture.png"), b, 0o644)
	}
	if bytes.Contains([]byte(dom), []byte("<img")) {
		t.Error("an img element appeared in the DOM")
	}
}

// TestHTMLGroupsLargeReports: a report of more hosts than htmlHostLimit groups them (hosts with the same status,
// grades and causes share a row), stays small, and opens in headless Chromium at once; --all writes each host.
func TestHTMLGroupsLargeReports(t *testing.T) {
	const n = htmlHostLimit + 500
	host := syntheticHosts(false)
	render := func(opts Options) []byte {
		var buf bytes.Buffer
		w, _ := NewWithOptions("html", &buf, opts)
		run := fixtureRun()
		var sum Summary
		w.Begin(run)
		for i := range n {
			r := host(i)
			sum.Add(r)
			if err := w.Host(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.End(run, sum); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	grouped := render(Options{})
	page := parseHTML(t, grouped)
	if !bytes.Contains(grouped, []byte(`id="groups"`)) || bytes.Contains(grouped, []byte(`id="host-table"`)) || page.hosts != nil {
		t.Fatalf("a report of %d hosts is not grouped", n)
	}
	// The six fixture hosts repeat: six kinds of host, each a row that counts its hosts.
	if rows := bytes.Count(grouped, []byte(`<tr class="group">`)); rows != 6 || !bytes.Contains(grouped, []byte(`<td class="num">417</td>`)) {
		t.Errorf("%d group rows", rows)
	}
	all := render(Options{All: true})
	if len(grouped) > 64<<10 || len(all) < 50*len(grouped) || !bytes.Contains(all, []byte(`id="host-table"`)) {
		t.Errorf("grouped %d bytes, --all %d bytes", len(grouped), len(all))
	}
	reporttest.Chromium(t)
	path := filepath.Join(t.TempDir(), "grouped.html")
	os.WriteFile(path, grouped, 0o644)
	start := time.Now()
	dom := reporttest.DumpDOM(t, path, "")
	if !strings.Contains(dom, `id="groups"`) || !strings.Contains(dom, "Causes, most hosts first") {
		t.Errorf("the grouped page did not render")
	}
	t.Logf("headless Chromium loaded the grouped report of %d hosts (%d bytes) in %s", n, len(grouped), time.Since(start))
}
