package smb

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"
)

// readStep is how much FrameConn grows its buffer at a time, so that a length claimed in a
// prefix is only paid for as the bytes actually arrive.
const readStep = 64 << 10

// keepCap is the largest buffer FrameConn keeps between frames.
const keepCap = 1 << 20

// FrameConn is a net.Conn whose Read returns only bytes of whole direct-TCP frames that passed
// CheckFrame and fit its limit. It exists for SMB2 client libraries such as
// github.com/hirochachacha/go-smb2, which slice whatever frame they are given and panic, in a
// goroutine no caller can recover, on a short or malformed one.
//
// Read buffers a frame, prefix included, and serves it across as many calls as the caller's
// buffer sizes need. Once a frame fails its checks, that Read and every later one return the
// error. An error from the underlying connection, such as a deadline, is returned as it is and
// the partial frame is kept, so a later Read resumes where it stopped. Write, Close, the
// addresses and the deadlines pass through to the wrapped connection.
type FrameConn struct {
	conn     net.Conn
	maxFrame int

	mu       sync.Mutex
	buf      []byte // the frame being read or served, prefix included
	have     int    // bytes of buf read from conn
	want     int    // length of the frame, prefix included; 0 until the prefix is read
	served   int    // bytes of a checked frame handed to the caller
	checked  bool   // buf[:want] passed CheckFrame
	rejected error  // the check that failed; sticky
}

// NewFrameConn returns a FrameConn reading from c and accepting SMB messages of at most
// maxFrame bytes (not counting the 4-byte prefix). A maxFrame of zero or less selects
// DefaultMaxFrame; one above MaxFrameLen is lowered to it.
func NewFrameConn(c net.Conn, maxFrame int) *FrameConn {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	return &FrameConn{conn: c, maxFrame: min(maxFrame, MaxFrameLen)}
}

// Read copies the next bytes of the current checked frame into p, first reading and checking
// a whole frame from the wrapped connection when none is pending.
func (c *FrameConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	if !c.checked {
		if c.rejected != nil {
			return 0, c.rejected
		}
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.buf[c.served:c.want])
	c.served += n
	if c.served == c.want {
		c.reset()
	}
	return n, nil
}

// fill reads the rest of the current frame from the wrapped connection and checks it.
func (c *FrameConn) fill() error {
	if c.want == 0 {
		if cap(c.buf) < PrefixLen {
			c.buf = make([]byte, PrefixLen, readStep)
		}
		c.buf = c.buf[:PrefixLen]
		n, err := io.ReadFull(c.conn, c.buf[c.have:PrefixLen])
		c.have += n
		if err != nil {
			if errors.Is(err, io.EOF) && c.have > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		size, err := FrameLength(c.buf)
		if err == nil {
			err = c.checkSize(size)
		}
		if err != nil {
			return c.reject(err)
		}
		c.want = PrefixLen + size
	}
	for c.have < c.want {
		if c.have == len(c.buf) {
			step := min(c.want-len(c.buf), max(len(c.buf), readStep))
			c.buf = slices.Grow(c.buf, step)[:len(c.buf)+step]
		}
		n, err := c.conn.Read(c.buf[c.have:])
		c.have += n
		if err != nil && c.have < c.want {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	if err := CheckFrame(c.buf[:c.want]); err != nil {
		return c.reject(err)
	}
	c.checked = true
	return nil
}

// checkSize applies the minimum and c's maximum to a message length read from a prefix.
func (c *FrameConn) checkSize(size int) error {
	if size < HeaderLen {
		return fmt.Errorf("smb: frame of %d bytes, below the %d-byte header: %w", size, HeaderLen, ErrFrameLength)
	}
	if size > c.maxFrame {
		return fmt.Errorf("smb: frame of %d bytes, above the %d-byte limit: %w", size, c.maxFrame, ErrFrameLength)
	}
	return nil
}

// reject records err as the sticky failure and drops the frame.
func (c *FrameConn) reject(err error) error {
	c.rejected = err
	c.buf = nil
	c.have, c.want, c.served = 0, 0, 0
	return err
}

// reset prepares c for the next frame once the current one has been served.
func (c *FrameConn) reset() {
	if cap(c.buf) > keepCap {
		c.buf = nil
	}
	c.have, c.want, c.served, c.checked = 0, 0, 0, false
}

// Write writes p to the wrapped connection unchanged.
func (c *FrameConn) Write(p []byte) (int, error) { return c.conn.Write(p) }

// Close closes the wrapped connection, which also ends a Read blocked on it.
func (c *FrameConn) Close() error { return c.conn.Close() }

// LocalAddr returns the wrapped connection's local address.
func (c *FrameConn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the wrapped connection's remote address.
func (c *FrameConn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// SetDeadline sets the wrapped connection's read and write deadlines.
func (c *FrameConn) SetDeadline(t time.Time) error { return c.conn.SetDeadline(t) }

// SetReadDeadline sets the wrapped connection's read deadline.
func (c *FrameConn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// SetWriteDeadline sets the wrapped connection's write deadline.
func (c *FrameConn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

var _ net.Conn = (*FrameConn)(nil)
