// Package reporttest checks reports the way their readers do: JSON against the published schema, HTML in a real
// headless browser. Tests of the report package and of the command line use it; ofmprobe itself does not.
package reporttest

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// SchemaPath is the path of the report's JSON Schema, docs/report.schema.json.
func SchemaPath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "docs", "report.schema.json")
}

// Schema compiles one definition of the report schema: "" for the JSON document, or the name of a definition under
// $defs ("ndjson_line", "comparison").
func Schema(t testing.TB, def string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	loc := SchemaPath()
	if def != "" {
		loc += "#/$defs/" + def
	}
	s, err := c.Compile(loc)
	if err != nil {
		t.Fatalf("compile the report schema %s: %v", loc, err)
	}
	return s
}

// Validate checks one JSON value against a schema definition and fails the test with every violation.
func Validate(t testing.TB, def string, data []byte) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not JSON: %v\n%.500s", err, data)
	}
	if err := Schema(t, def).Validate(v); err != nil {
		t.Errorf("does not match the report schema (%s): %v", defName(def), err)
	}
}

// ValidateNDJSON checks every line of an NDJSON report against the schema of a line.
func ValidateNDJSON(t testing.TB, data []byte) {
	t.Helper()
	s := Schema(t, "ndjson_line")
	for i, line := range bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n")) {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(line))
		if err != nil {
			t.Fatalf("line %d is not JSON: %v", i+1, err)
		}
		if err := s.Validate(v); err != nil {
			t.Errorf("line %d does not match the schema of an NDJSON line: %v", i+1, err)
		}
	}
}

func defName(def string) string {
	if def == "" {
		return "document"
	}
	return def
}

// Chromium returns the path of a Chromium or Chrome binary. Without one the test is skipped, or fails under CI=true,
// where a skip would hide a missing package (Debian: apt-get install chromium).
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium: install it (Debian: apt-get install chromium)")
	}
	t.Skip("no chromium to render the HTML report in (Debian: apt-get install chromium)")
	return ""
}

// browser runs headless Chromium on a local file with a fresh profile and no network features, and returns stdout.
func browser(t testing.TB, page, fragment string, args ...string) []byte {
	t.Helper()
	bin := Chromium(t)
	abs, err := filepath.Abs(page)
	if err != nil {
		t.Fatal(err)
	}
	profile := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + profile}, args...)
	all = append(all, "file://"+abs+fragment)
	cmd := exec.CommandContext(ctx, bin, all...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, tail(stderr.String(), 2000))
	}
	return stdout.Bytes()
}

// DumpDOM loads a local HTML file (with an optional "#fragment") and returns the DOM after its scripts ran.
func DumpDOM(t testing.TB, page, fragment string) string {
	t.Helper()
	return string(browser(t, page, fragment, "--virtual-time-budget=5000", "--dump-dom"))
}

// Screenshot renders a local HTML file into a PNG of the given size and checks that it is one.
func Screenshot(t testing.TB, page, out string, width, height int) {
	t.Helper()
	abs, err := filepath.Abs(out)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(abs)
	browser(t, page, "", "--hide-scrollbars", "--virtual-time-budget=5000", "--screenshot="+abs, fmt.Sprintf("--window-size=%d,%d", width, height))
	f, err := os.Open(abs)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s is not a PNG: %v", abs, err)
	}
	if b := img.Bounds(); b.Dx() != width || b.Dy() != height {
		t.Errorf("screenshot is %dx%d, want %dx%d", b.Dx(), b.Dy(), width, height)
	}
	colours := map[uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[r>>8<<16|g>>8<<8|bl>>8] = true
		}
	}
	if len(colours) < 8 {
		t.Errorf("screenshot %s has %d colours: the page did not render", abs, len(colours))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// Page is what a DOM dump of the HTML report shows after its script ran.
type Page struct {
	// Title is the document's title.
	Title string
	// Ready is the hosts table's data-ready attribute: "true" once the script ran.
	Ready string
	// Shown is what the page says about the hosts shown ("6 hosts", "2 of 6 hosts").
	Shown string
	// Hosts lists the data-address of every host section, in DOM order; Visible the ones not hidden.
	Hosts, Visible []string
	// Elements counts elements by name; hostile markup would add img or script elements.
	Elements map[string]int
	// Sorted is the column header marked aria-sort, with its direction ("address ascending").
	Sorted string
}

// ParseDOM reads Chromium's DOM dump (DumpDOM) with encoding/xml in its lenient HTML mode.
func ParseDOM(t testing.TB, dom string) Page {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(dom))
	dec.Strict = false
	dec.AutoClose = xml.HTMLAutoClose
	dec.Entity = xml.HTMLEntity
	p := Page{Elements: map[string]int{}}
	var stack []string
	var inTitle, inShown bool
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the DOM dump does not parse: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			name := strings.ToLower(tok.Name.Local)
			stack = append(stack, name)
			p.Elements[name]++
			attrs := map[string]string{}
			hidden := false
			for _, a := range tok.Attr {
				attrs[a.Name.Local] = a.Value
				if a.Name.Local == "hidden" {
					hidden = true
				}
			}
			switch {
			case name == "tbody" && attrs["class"] == "host":
				p.Hosts = append(p.Hosts, attrs["data-address"])
				if !hidden {
					p.Visible = append(p.Visible, attrs["data-address"])
				}
			case name == "table" && attrs["id"] == "host-table":
				p.Ready = attrs["data-ready"]
			case name == "th" && attrs["aria-sort"] != "":
				p.Sorted = attrs["data-key"] + " " + attrs["aria-sort"]
			}
			inTitle = name == "title" && len(stack) <= 3
			inShown = attrs["id"] == "shown"
		case xml.EndElement:
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			inTitle, inShown = false, false
		case xml.CharData:
			if inTitle {
				p.Title += string(tok)
			}
			if inShown {
				p.Shown += string(tok)
			}
		}
	}
	return p
}
