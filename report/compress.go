package report

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
)

// Compressed reports are gzip streams: a report file whose name ends in ".gz" is written compressed, and every
// reader takes a gzip stream (by its magic bytes, whatever the name) as well as plain text. A /16's NDJSON report
// is made of lines that repeat one another's words, and compresses about thirty times.

// gzipLevel trades size for CPU: level 3 of klauspost/compress writes a lab /16's report at about 600 MB/s, where
// the standard library's level 6 manages 150 MB/s for a file only a quarter smaller.
const gzipLevel = 3

// IsCompressedName says whether a report written to path is compressed: its name ends in ".gz".
func IsCompressedName(path string) bool { return strings.HasSuffix(strings.ToLower(path), ".gz") }

// flushEvery is how long compressed lines may wait in the compressor: a scan killed outright loses at most that
// much of its report, and `zcat` of the file it left gives every host written before.
const flushEvery = time.Second

// CompressWriter returns a writer that compresses into w. What is written reaches w within flushEvery (a flush
// per line would cost most of the compression). Closing it ends the gzip stream; it does not close w.
func CompressWriter(w io.Writer) io.WriteCloser {
	zw, err := gzip.NewWriterLevel(w, gzipLevel)
	if err != nil {
		panic(err) // gzipLevel is a valid level
	}
	return &compressWriter{zw: zw}
}

// compressWriter is a gzip writer flushed by a timer armed at the first write after a flush.
type compressWriter struct {
	mu    sync.Mutex
	zw    *gzip.Writer
	timer *time.Timer
	err   error // of a flush the timer made, returned by the next Write or Close
}

func (c *compressWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.timer == nil {
		c.timer = time.AfterFunc(flushEvery, c.flush)
	}
	return c.zw.Write(p)
}

func (c *compressWriter) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer == nil {
		return // closed
	}
	c.timer = nil
	if err := c.zw.Flush(); err != nil && c.err == nil {
		c.err = err
	}
}

func (c *compressWriter) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	err := c.zw.Close()
	if c.err != nil {
		return c.err
	}
	return err
}

// ErrCutShort is returned, wrapped, for a compressed report whose stream ends before its end: the scan that wrote it
// was killed before it could finish the file.
var ErrCutShort = errors.New("the compressed report ends early (was the scan that wrote it killed?)")

// Decompress returns r's plain text, and whether it was compressed: through a gzip reader when r starts with gzip's
// magic bytes, else r itself. Concatenated gzip streams (a resumed scan appends one) read as one.
func Decompress(r *bufio.Reader) (plain *bufio.Reader, compressed bool, err error) {
	magic, err := r.Peek(2)
	if err != nil || magic[0] != 0x1f || magic[1] != 0x8b {
		return r, false, nil // too short to be gzip, or plain: the caller reads it as it is
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, true, fmt.Errorf("%w: %v", ErrNotReport, err)
	}
	return bufio.NewReaderSize(cutShortReader{zr}, r.Size()), true, nil
}

// cutShortReader names gzip's unexpected EOF: a stream cut off while it was written.
type cutShortReader struct{ r io.Reader }

func (c cutShortReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = ErrCutShort
	}
	return n, err
}

// readCloser is an opened report: its plain text, and the file under it.
type readCloser struct {
	io.Reader
	io.Closer
}

// OpenReport opens a report file for reading, decompressing it when it is gzip.
func OpenReport(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, _, err := Decompress(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return readCloser{r, f}, nil
}
