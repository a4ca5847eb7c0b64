package report

import (
	"fmt"
	"os"
	"path/filepath"
)

// AtomicFile is an output file that appears under its name only when complete: it is written to a temporary file in
// the same directory and renamed over the target on Commit, so a crash never leaves half a report.
type AtomicFile struct {
	*os.File
	path string
	done bool
}

// CreateAtomic starts writing path.
func CreateAtomic(path string) (*AtomicFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("create output %s: %w", path, err)
	}
	return &AtomicFile{File: f, path: path}, nil
}

// Commit flushes the file to disk and renames it into place.
func (a *AtomicFile) Commit() error {
	if a.done {
		return nil
	}
	a.done = true
	if err := a.File.Sync(); err != nil {
		a.File.Close()
		os.Remove(a.File.Name())
		return fmt.Errorf("write output %s: %w", a.path, err)
	}
	if err := a.File.Chmod(0o644); err != nil {
		a.File.Close()
		os.Remove(a.File.Name())
		return fmt.Errorf("write output %s: %w", a.path, err)
	}
	if err := a.File.Close(); err != nil {
		os.Remove(a.File.Name())
		return fmt.Errorf("write output %s: %w", a.path, err)
	}
	if err := os.Rename(a.File.Name(), a.path); err != nil {
		os.Remove(a.File.Name())
		return fmt.Errorf("write output %s: %w", a.path, err)
	}
	return nil
}

// Abort removes the temporary file; the target is left as it was. It is a no-op after Commit.
func (a *AtomicFile) Abort() {
	if a.done {
		return
	}
	a.done = true
	a.File.Close()
	os.Remove(a.File.Name())
}
