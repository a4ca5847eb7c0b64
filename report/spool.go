package report

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// A whole-document report lists its hosts sorted, so it cannot be written before the last host is known. Holding
// every host in memory until then makes a large scan's memory grow with its size: a host record with its gradings is
// about ten kilobytes. Instead the document writers spool each host to a temporary file as it arrives and keep only a
// small index entry in memory; at the end they sort the index and read the hosts back one at a time.

// scratch is a write-then-read temporary file in os.TempDir(). Where the system allows (unix), it is removed from its
// directory as soon as it is created, so it disappears with its last descriptor, even when the process dies; elsewhere
// Close removes it.
type scratch struct {
	f    *os.File
	w    *bufio.Writer
	size int64
	// name is the file's name while it still has one: set only where an open file cannot be removed.
	name string
}

// scratchBuffer is the write buffer of a scratch file.
const scratchBuffer = 32 << 10

func newScratch() (*scratch, error) {
	f, err := os.CreateTemp(os.TempDir(), "ofmprobe-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("create a temporary file for the report: %w", err)
	}
	s := &scratch{f: f, w: bufio.NewWriterSize(f, scratchBuffer)}
	if os.Remove(f.Name()) != nil {
		// Windows refuses to remove an open file.
		s.name = f.Name()
	}
	return s, nil
}

func (s *scratch) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.size += int64(n)
	return n, err
}

func (s *scratch) WriteString(str string) (int, error) {
	n, err := s.w.WriteString(str)
	s.size += int64(n)
	return n, err
}

// Len is the number of bytes written.
func (s *scratch) Len() int64 { return s.size }

// ReadAt reads back what was written, buffered writes included.
func (s *scratch) ReadAt(p []byte, off int64) (int, error) {
	if err := s.w.Flush(); err != nil {
		return 0, err
	}
	return s.f.ReadAt(p, off)
}

// WriteTo copies everything written so far to w.
func (s *scratch) WriteTo(w io.Writer) (int64, error) {
	if err := s.w.Flush(); err != nil {
		return 0, err
	}
	return io.Copy(w, io.NewSectionReader(s.f, 0, s.size))
}

// Close closes the file and removes it where that was not possible while it was open. It may be called on a nil
// scratch and more than once.
func (s *scratch) Close() error {
	if s == nil || s.f == nil {
		return nil
	}
	err := s.f.Close()
	if s.name != "" {
		err = cmp.Or(err, os.Remove(s.name))
	}
	s.f, s.w = nil, nil
	return err
}

// spool holds a document's hosts on disk: each as one line of compact JSON, in the order they arrived, and in memory
// one spoolEntry per host, which sort puts in report order.
type spool struct {
	file  *scratch
	buf   bytes.Buffer
	enc   *json.Encoder
	index []spoolEntry
	// err is the first error met while reading the hosts back; the iterators cannot return it.
	err error
}

// spoolEntry is a host's sort key and where its record is in the spool file. It is the only per-host memory a
// whole-document writer keeps, so it holds no more than the sort needs.
type spoolEntry struct {
	// addr is the host's address, or the zero Addr when Address does not parse.
	addr netip.Addr
	// text is the Address as given, when it is not addr's own text: empty for an address written the usual way.
	text string
	name string
	off  int64
	size uint32
}

func newSpool() (*spool, error) {
	f, err := newScratch()
	if err != nil {
		return nil, err
	}
	s := &spool{file: f}
	// The Encoder appends a newline, which makes the spool an NDJSON file; it leaves <, > and & alone like the JSON
	// writer, so a spooled record is the JSON report's bytes for that host, before indentation.
	s.enc = newJSONEncoder(&s.buf)
	return s, nil
}

// add writes a host to the spool.
func (s *spool) add(r HostRecord) error {
	s.buf.Reset()
	if err := s.enc.Encode(r); err != nil {
		return fmt.Errorf("spool host %s: %w", r.Address, err)
	}
	size := s.buf.Len() - 1 // without the newline
	if size > math.MaxUint32 {
		return fmt.Errorf("spool host %s: the record is %d bytes", r.Address, size)
	}
	e := spoolEntry{name: strings.Clone(r.Name), off: s.file.Len(), size: uint32(size)}
	if a, err := netip.ParseAddr(r.Address); err == nil {
		e.addr = a
		var b [64]byte
		if string(a.AppendTo(b[:0])) != r.Address {
			e.text = strings.Clone(r.Address)
		}
	} else {
		e.text = strings.Clone(r.Address)
	}
	if _, err := s.file.Write(s.buf.Bytes()); err != nil {
		return fmt.Errorf("spool host %s: %w", r.Address, err)
	}
	s.index = append(s.index, e)
	return nil
}

// address is the host's Address as given.
func (e *spoolEntry) address() string {
	if e.text != "" || !e.addr.IsValid() {
		return e.text
	}
	return e.addr.String()
}

// compareEntries orders hosts exactly as sortRecords does: by address when both parse, then by the address text,
// then by name.
func compareEntries(a, b spoolEntry) int {
	if a.addr.IsValid() && b.addr.IsValid() {
		if c := a.addr.Compare(b.addr); c != 0 {
			return c
		}
		if a.text == "" && b.text == "" {
			// The same address, written the same way.
			return cmp.Compare(a.name, b.name)
		}
	}
	return cmp.Or(cmp.Compare(a.address(), b.address()), cmp.Compare(a.name, b.name))
}

// sort puts the hosts in report order. It uses the same algorithm as sortRecords on the same comparisons, so even
// hosts that compare equal come out in the same order.
func (s *spool) sort() {
	if s != nil {
		slices.SortFunc(s.index, compareEntries)
	}
}

// len is the number of hosts.
func (s *spool) len() int {
	if s == nil {
		return 0
	}
	return len(s.index)
}

// readErr is the first error met while reading the hosts back, if any.
func (s *spool) readErr() error {
	if s == nil {
		return nil
	}
	return s.err
}

// fail records the first read error.
func (s *spool) fail(err error) {
	if s.err == nil {
		s.err = fmt.Errorf("read back the spooled hosts: %w", err)
	}
}

// records yields each host's compact JSON in index order. The slice is reused: it is valid only until the next one.
// A read error ends the iteration and is kept in s.err.
func (s *spool) records() iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		if s == nil {
			return
		}
		var buf []byte
		for _, e := range s.index {
			buf = slices.Grow(buf[:0], int(e.size))[:e.size]
			if n, err := s.file.ReadAt(buf, e.off); n < len(buf) {
				s.fail(cmp.Or(err, io.ErrUnexpectedEOF))
				return
			}
			if !yield(buf) {
				return
			}
		}
	}
}

// hosts yields the hosts in index order, each decoded anew and given its requirements' texts from t: the caller may
// change or keep them. A read or decode error ends the iteration and is kept in s.err.
func (s *spool) hosts(t texts) iter.Seq[HostRecord] {
	return func(yield func(HostRecord) bool) {
		for b := range s.records() {
			var h HostRecord
			if err := json.Unmarshal(b, &h); err != nil {
				s.fail(err)
				return
			}
			t.fill(&h)
			if !yield(h) {
				return
			}
		}
	}
}

// close removes the spool file. It may be called on a nil spool and more than once.
func (s *spool) close() error {
	if s == nil {
		return nil
	}
	s.index = nil
	return s.file.Close()
}

// errEnded is returned by a document writer used after End.
var errEnded = errors.New("report writer already ended")
