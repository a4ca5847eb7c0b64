package engine

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// The wording every step's evidence shares.

// FormatRTT prints a round trip at a precision that fits its size: "0.41 ms", "12.3 ms", "1.52 s".
func FormatRTT(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

// AfterRTT is " after 1.2 ms", or nothing when no packet left (the kernel refused at once).
func AfterRTT(d time.Duration) string {
	if d < time.Microsecond {
		return ""
	}
	return " after " + FormatRTT(d)
}

// Plural adds an s to word unless n is 1.
func Plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// ErrnoText names a network error by its errno ("no route to host"), without the addresses Go's error strings
// repeat.
func ErrnoText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if errno == syscall.EACCES {
			return "not sent, the kernel refused (a broadcast address)"
		}
		return errno.Error()
	}
	return err.Error()
}

// HexPrefix shows the first bytes of an answer for evidence.
func HexPrefix(b []byte) string {
	const show = 24
	if len(b) > show {
		return fmt.Sprintf("% x ... (%d bytes)", b[:show], len(b))
	}
	return fmt.Sprintf("% x", b)
}

// Printable replaces bytes that would garble a report with '.': names and files from the network are bytes, not
// text.
func Printable(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '.'
		}
	}
	return string(b)
}

// PartialFrameError is a read error met inside a frame: the answer started but did not finish.
type PartialFrameError struct {
	Got, Want int
	Err       error
}

func (e *PartialFrameError) Error() string {
	return fmt.Sprintf("answer stopped after %d of %d bytes: %v", e.Got, e.Want, e.Err)
}

func (e *PartialFrameError) Unwrap() error { return e.Err }
