package exporter

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConfigFiles loads every file of testdata/serve/invalid and matches its error, one line, to the file's first
// line ("# error: MESSAGE"; the file's own path stands for FILE).
func TestConfigFiles(t *testing.T) {
	c, err := LoadConfig("../../testdata/serve/valid.yml")
	if err != nil {
		t.Fatalf("valid.yml: %v", err)
	}
	if c.MaxProbesInFlight != 4 || time.Duration(c.MinInterval) != 30*time.Second || len(c.Modules) != 2 ||
		c.Sweeps["site-a"].Concurrency != 256 || *c.Modules["ofm-9.0"].Retries != 2 || *c.Modules["ofm-9.1"].Retries != DefaultRetries {
		t.Errorf("valid.yml decoded as %+v", c)
	}
	files, _ := filepath.Glob("../../testdata/serve/invalid/*.yml")
	if len(files) < 15 {
		t.Fatalf("found %d invalid configurations", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			fh, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			first, _ := bufio.NewReader(fh).ReadString('\n')
			fh.Close()
			want, ok := strings.CutPrefix(strings.TrimSpace(first), "# error: ")
			if !ok {
				t.Fatalf("%s: the first line must be # error: MESSAGE", f)
			}
			_, err = LoadConfig(f)
			if err == nil {
				t.Fatalf("loaded without an error; want %q", want)
			}
			got := strings.TrimPrefix(err.Error(), "config "+f+": ")
			if got != want {
				t.Errorf("error\n got %q\nwant %q", got, want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is more than one line: %q", err)
			}
		})
	}
}
