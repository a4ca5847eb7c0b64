package report

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

// gz compresses b as a scan writing a .gz report would.
func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := CompressWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestReadCompressed reads the golden NDJSON and JSON reports compressed, as one gzip stream and as the two a resumed
// scan leaves, and gets what the plain file gives; a stream cut short is ErrCutShort, never a partial report.
func TestReadCompressed(t *testing.T) {
	for _, name := range []string{"testdata/report.ndjson.golden", "testdata/report.json.golden"} {
		plain, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Read(bytes.NewReader(plain), name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Read(bytes.NewReader(gz(t, plain)), name)
		if err != nil {
			t.Fatalf("%s compressed: %v", name, err)
		}
		if len(got.Hosts) != len(want.Hosts) || got.Summary.Hosts != want.Summary.Hosts || got.Run.Tool != want.Run.Tool {
			t.Errorf("%s compressed reads as %d hosts, plain as %d", name, len(got.Hosts), len(want.Hosts))
		}
		cut := gz(t, plain)
		cut = cut[:len(cut)/2]
		if _, err := Read(bytes.NewReader(cut), name); !errors.Is(err, ErrCutShort) {
			t.Errorf("%s cut short: %v, want ErrCutShort", name, err)
		}
	}

	// Two streams: the lines before the cut of a resume, and those after it.
	plain, _ := os.ReadFile("testdata/report.ndjson.golden")
	lines := bytes.SplitAfter(plain, []byte("\n"))
	half := len(lines) / 2
	two := append(gz(t, bytes.Join(lines[:half], nil)), gz(t, bytes.Join(lines[half:], nil))...)
	got, err := Read(bytes.NewReader(two), "two streams")
	want, _ := Read(bytes.NewReader(plain), "plain")
	if err != nil || len(got.Hosts) != len(want.Hosts) {
		t.Errorf("two gzip streams read as %d hosts (%v), want %d", len(got.Hosts), err, len(want.Hosts))
	}

	// gzip's magic and garbage after it: not a report.
	if _, err := Read(bytes.NewReader([]byte{0x1f, 0x8b, 0, 0, 0}), "junk"); !errors.Is(err, ErrNotReport) && !errors.Is(err, ErrCutShort) {
		t.Errorf("gzip magic then junk: %v", err)
	}
}

// FuzzRead feeds the report reader hostile bytes, plain and compressed: it returns a document or an error, and never
// panics or hangs.
func FuzzRead(f *testing.F) {
	for _, name := range []string{"testdata/report.ndjson.golden", "testdata/report.json.golden"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:min(len(b), 4096)])
		f.Add(gz(f, b[:min(len(b), 4096)]))
	}
	f.Add([]byte{0x1f, 0x8b})
	f.Add([]byte(`{"schema":2,"type":"run","run":{}}` + "\n" + `{"schema":2,"type":"host","host":{"address":"198.18.0.1"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := Read(bytes.NewReader(b), "fuzz")
		if err == nil && doc.Schema == 0 && len(doc.Hosts) > 0 {
			t.Errorf("hosts without a schema: %d", len(doc.Hosts))
		}
	})
}

// TestCompressWriterFlushes proves a line written to a compressed report reaches the file within flushEvery, while
// the stream is still open, as a scan killed outright would leave it: zcat gets the line back.
func TestCompressWriterFlushes(t *testing.T) {
	out, err := os.Create(filepath.Join(t.TempDir(), "report.ndjson.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	read := func() []byte { b, _ := os.ReadFile(out.Name()); return b }
	w := CompressWriter(out)
	line := `{"schema":2,"type":"host","host":{"address":"198.18.0.1"}}` + "\n"
	w.Write([]byte(line))
	deadline := time.Now().Add(5 * flushEvery)
	for {
		zr, err := gzip.NewReader(bytes.NewReader(read()))
		if err == nil {
			got, _ := io.ReadAll(zr) // ends in ErrUnexpectedEOF: the stream is not closed
			if string(got) == line {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the line did not reach the file within %v", 5*flushEvery)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(read()))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(zr); err != nil || string(got) != line {
		t.Errorf("after Close: %q, %v", got, err)
	}
}
