package report

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ofmprobe/ofmprobe/catalog"
)

// syntheticHosts returns a generator of distinct hosts: the fixture's hosts in turn, graded against the builtin
// profiles, each at an address of its own. Addresses are scrambled so hosts arrive out of order, and every tenth is
// IPv6. slim keeps only the ports and the first result of each of the two gradings, for tests that need many hosts
// quickly. Each host has its own ports and results, as a real one has, so a writer that keeps hosts shows in the heap;
// the generator itself keeps none, so a test can feed any number through a writer without holding them.
func syntheticHosts(slim bool) func(i int) HostRecord {
	var base []HostRecord
	for _, h := range fixtureHosts() {
		var gradings []catalog.Grading
		for _, p := range catalog.Builtin().Profiles {
			g := catalog.Grade(p, h)
			if slim {
				g.Results = g.Results[:min(1, len(g.Results))]
			}
			gradings = append(gradings, g)
		}
		r := NewHostRecord(h.engineHost(), h.facts(), gradings)
		if slim {
			r = HostRecord{Address: r.Address, Name: r.Name, Status: r.Status, Error: r.Error, Started: r.Started,
				DurationMS: r.DurationMS, Ports: r.Ports, Profiles: r.Profiles}
		}
		base = append(base, r)
	}
	return func(i int) HostRecord {
		r := base[i%len(base)]
		r.Ports = slices.Clone(r.Ports)
		r.Profiles = slices.Clone(r.Profiles)
		for j := range r.Profiles {
			r.Profiles[j].Results = slices.Clone(r.Profiles[j].Results)
		}
		n := uint32(i) * 2654435761 & 0xffffff // a bijection on 24 bits
		if i%10 == 9 {
			b := [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(n), 14: byte(n >> 8), 13: byte(n >> 16)}
			r.Address = netip.AddrFrom16(b).String()
		} else {
			r.Address = netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}).String()
		}
		return r
	}
}

// streamFormats are the formats whose memory must not grow with the number of hosts: every one, the table too (a
// /16 written as a table once peaked at 4.4 GB).
func streamFormats() []string { return FormatNames() }

// heapInUse is the live heap after a full collection. Two collections, so that sync.Pool's victim caches are gone.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// fed is a writer that has been given its hosts but not yet ended.
type fed struct {
	w   Writer
	run Run
	sum Summary
	// growth is how much the live heap grew from before Begin to after the last Host, when a whole-document writer
	// holds the most.
	growth int64
}

// feed writes n synthetic hosts through a format's writer to out.
func feed(t *testing.T, format string, n int, host func(int) HostRecord, out io.Writer) *fed {
	t.Helper()
	// All: the table lists every host, so checkWellFormed can count them.
	w, err := NewWithOptions(format, out, Options{All: true})
	if err != nil {
		t.Fatal(err)
	}
	f := &fed{w: w, run: fixtureRun()}
	before := heapInUse()
	if err := w.Begin(f.run); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		r := host(i)
		f.sum.Add(r)
		if err := w.Host(r); err != nil {
			t.Fatal(err)
		}
	}
	f.growth = int64(heapInUse()) - int64(before)
	return f
}

func (f *fed) end(t *testing.T) {
	t.Helper()
	if err := f.w.End(f.run, f.sum); err != nil {
		t.Fatal(err)
	}
}

// TestWriterMemoryPerHost proves that the writers' memory does not grow with the number of hosts beyond a small
// index entry each: the heap a writer holds after many hosts, less what it holds after a few, divided by the hosts in
// between, stays far below a host record's size. It then checks that the large reports are well-formed.
func TestWriterMemoryPerHost(t *testing.T) {
	// 40,000 hosts would take twice as long, mostly rendering HTML, and prove no more.
	const small = 2_000
	large := 20_000
	if testing.Short() {
		large = 6_000
	}
	const maxPerHost = 200 // bytes
	host := syntheticHosts(true)
	// Measure one format at a time, so that the heap holds nothing else that grows; the writers measured earlier
	// wait for their End, holding the same memory before and after.
	type output struct {
		*fed
		file *os.File
	}
	outputs := map[string]output{}
	for _, format := range streamFormats() {
		a := feed(t, format, small, host, io.Discard)
		a.end(t)
		f, err := os.Create(t.TempDir() + "/report." + format)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := feed(t, format, large, host, f)
		outputs[format] = output{b, f}
		perHost := float64(b.growth-a.growth) / float64(large-small)
		t.Logf("%-6s heap grew %8d bytes for %d hosts, %8d for %d: %5.1f bytes/host", format, a.growth, small, b.growth, large, perHost)
		if perHost > maxPerHost {
			t.Errorf("%s holds %.0f bytes per host, want at most %d", format, perHost, maxPerHost)
		}
	}
	// Ending and reading back the large reports takes most of the time, and they no longer measure anything.
	t.Run("large", func(t *testing.T) {
		for format, out := range outputs {
			t.Run(format, func(t *testing.T) {
				t.Parallel()
				out.end(t)
				if _, err := out.file.Seek(0, io.SeekStart); err != nil {
					t.Fatal(err)
				}
				checkWellFormed(t, format, bufio.NewReaderSize(out.file, 1<<20), large)
			})
		}
	})
}

// checkWellFormed reads a report of n synthetic hosts as its consumers would and checks that it parses and lists every
// host once. It streams all formats but the Prometheus one, which is given whole to Prometheus' own parser.
func checkWellFormed(t *testing.T, format string, r io.Reader, n int) {
	t.Helper()
	var hosts int
	switch format {
	case "json":
		hosts = checkJSONStream(t, r, n)
	case "ndjson":
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, maxLine)
		for sc.Scan() {
			var l struct{ Type string }
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("ndjson: %v", err)
			}
			if l.Type == lineHost {
				hosts++
			}
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	case "csv":
		cr := csv.NewReader(r)
		cr.FieldsPerRecord = len(CSVHeader)
		cr.ReuseRecord = true
		last := ""
		for first := true; ; first = false {
			row, err := cr.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("csv: %v", err)
			}
			if !first && row[0] != last {
				hosts++
				last = row[0]
			}
		}
	case "junit":
		dec := xml.NewDecoder(r)
		tests, cases := -1, 0
		addrs := map[string]bool{}
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("junit: %v", err)
			}
			if se, ok := tok.(xml.StartElement); ok {
				switch se.Name.Local {
				case "testsuites":
					tests, _ = strconv.Atoi(attr(se, "tests"))
				case "testcase":
					cases++
					addr, _, _ := strings.Cut(attr(se, "name"), " ")
					addrs[addr] = true
				}
			}
		}
		if cases == 0 || cases != tests {
			t.Fatalf("junit: %d test cases, the testsuites element says %d", cases, tests)
		}
		hosts = len(addrs)
	case "html":
		dec := xml.NewDecoder(r)
		dec.Strict = true
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("html: %v", err)
			}
			if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "tbody" && attr(se, "class") == "host" {
				hosts++
			}
		}
	case "prom":
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		families := parseProm(t, b)
		hosts = len(families["ofmprobe_host_status"].GetMetric())
	case "table":
		// A header, one row per host in address order, the summary line, then the causes.
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, maxLine)
		lines := 0
		for sc.Scan() {
			if strings.Contains(sc.Text(), " hosts; ofm-9.0: ") {
				break
			}
			lines++
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		hosts = lines - 1
	default:
		t.Fatalf("no check for %s", format)
	}
	if hosts != n {
		t.Errorf("%s: the report lists %d hosts, want %d", format, hosts, n)
	}
}

// checkJSONStream walks a JSON report token by token: the hosts must come in address order and the summary must
// count them.
func checkJSONStream(t *testing.T, r io.Reader, n int) int {
	t.Helper()
	dec := json.NewDecoder(r)
	expect := func(want json.Delim) {
		t.Helper()
		if tok, err := dec.Token(); err != nil || tok != want {
			t.Fatalf("json: got %v (%v), want %v", tok, err, want)
		}
	}
	expect('{')
	hosts := 0
	var sum Summary
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			t.Fatalf("json: %v", err)
		}
		switch key {
		case "hosts":
			expect('[')
			var last netip.Addr
			for dec.More() {
				var h struct{ Address string }
				if err := dec.Decode(&h); err != nil {
					t.Fatalf("json host %d: %v", hosts, err)
				}
				a := netip.MustParseAddr(h.Address)
				if hosts > 0 && a.Compare(last) <= 0 {
					t.Fatalf("json: host %s after %s", a, last)
				}
				last = a
				hosts++
			}
			expect(']')
		case "summary":
			if err := dec.Decode(&sum); err != nil {
				t.Fatalf("json summary: %v", err)
			}
		default:
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("json %s: %v", key, err)
			}
		}
	}
	expect('}')
	if sum.Hosts != n {
		t.Errorf("json: the summary counts %d hosts, want %d", sum.Hosts, n)
	}
	return hosts
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// TestJSONStreamMatchesEncoder checks the streamed JSON report against what json.Encoder makes of the whole sorted
// Document, the way the writer worked before it spooled: no hosts, one, and hosts whose order hangs on the finer
// points of sorting (addresses that do not parse, IPv6 written in capitals, zones, IPv4-mapped addresses, the same
// address twice with and without a name).
func TestJSONStreamMatchesEncoder(t *testing.T) {
	host := syntheticHosts(false)
	var tricky []HostRecord
	for i, addr := range []string{"198.18.0.10", "", "not-an-ip", "2001:DB8::1", "2001:db8::1", "fe80::1%eth0", "fe80::1",
		"::ffff:10.0.0.1", "10.0.0.1", "10.0.0.1", "010.0.0.1", "invalid IP", "::1", "198.18.0.10", "0.0.0.0"} {
		r := host(i)
		r.Address = addr
		r.Name = []string{"", "b", "a"}[i%3]
		tricky = append(tricky, r)
	}
	for name, hosts := range map[string][]HostRecord{"none": nil, "one": {host(0)}, "tricky": tricky} {
		t.Run(name, func(t *testing.T) {
			var got bytes.Buffer
			w, _ := New("json", &got)
			run := fixtureRun()
			var sum Summary
			w.Begin(run)
			for _, h := range hosts {
				sum.Add(h)
				if err := w.Host(h); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.End(run, sum); err != nil {
				t.Fatal(err)
			}
			sorted := slices.Clone(hosts)
			sortRecords(sorted)
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(Document{Schema: SchemaVersion, Run: run.normalized(), Hosts: nonNil(sorted), Summary: sum.normalized().withActions(run)}); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("the streamed JSON differs from the encoded Document:\n%s", firstDifference(got.String(), want.String()))
			}
		})
	}
}

func firstDifference(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return fmt.Sprintf("line %d:\n got %.300q\nwant %.300q", i+1, g[i], w[i])
		}
	}
	return fmt.Sprintf("%d lines, want %d", len(g), len(w))
}

// openFiles counts the process's open file descriptors, or returns -1 where that cannot be known.
func openFiles() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}

// TestSpoolLeavesNothing checks that the spool and scratch files have no name while the writer runs (unix) and are
// closed after End, also when a host cannot be spooled and End is never called.
func TestSpoolLeavesNothing(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows cannot remove an open file: End removes it")
	}
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	host := syntheticHosts(false)
	for _, format := range streamFormats() {
		t.Run(format, func(t *testing.T) {
			fds := openFiles()
			f := feed(t, format, 20, host, io.Discard)
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("files in the temporary directory during the scan: %v", entries)
			}
			f.end(t)
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("files left in the temporary directory: %v", entries)
			}
			if n := openFiles(); n != fds {
				t.Errorf("%d files open after End, %d before Begin", n, fds)
			}
			if format == "ndjson" {
				return
			}
			if err := f.w.Host(host(0)); err == nil {
				t.Error("Host after End succeeded")
			}
			// A host that cannot be encoded fails Host, which lets go of the spool, as the caller will not call End.
			fds = openFiles()
			run := fixtureRun()
			w, _ := New(format, io.Discard)
			w.Begin(run)
			bad := host(0)
			bad.DurationMS = math.NaN()
			if err := w.Host(bad); err == nil {
				t.Fatal("Host accepted a record JSON cannot carry")
			}
			if n := openFiles(); n != fds {
				t.Errorf("%d files open after a failed Host, %d before Begin", n, fds)
			}
			if err := w.End(run, Summary{}); err == nil {
				t.Error("End after a failed Host succeeded")
			}
		})
	}
}

// BenchmarkWriters times each format writing 10,000 hosts (the fixture's hosts with all their results, about 10 kB
// of JSON each), from Begin to End, and reports the time per host.
func BenchmarkWriters(b *testing.B) {
	const hosts = 10_000
	host := syntheticHosts(false)
	run := fixtureRun()
	var sum Summary
	for i := range hosts {
		sum.Add(host(i))
	}
	for _, format := range FormatNames() {
		b.Run(format, func(b *testing.B) {
			for b.Loop() {
				w, err := New(format, io.Discard)
				if err != nil {
					b.Fatal(err)
				}
				if err := w.Begin(run); err != nil {
					b.Fatal(err)
				}
				for i := range hosts {
					if err := w.Host(host(i)); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.End(run, sum); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*hosts), "ns/host")
		})
	}
}
