// Package smb encodes and decodes the SMB messages ofmprobe needs to tell what a file server
// speaks: the SMB2 NEGOTIATE exchange (MS-SMB2 §2.2.3, §2.2.4), the SMB1 multi-protocol
// NEGOTIATE that separates SMB1-only hosts from SMB2 hosts (MS-CIFS §2.2.4.52, MS-SMB2
// §3.3.5.3.1), and the direct-TCP framing both travel in (MS-SMB2 §2.1).
//
// The codecs are pure functions over byte slices. FrameConn is the one piece that touches a
// connection: it wraps a net.Conn so that a client library reading SMB2 frames from it only
// ever sees whole frames that passed CheckFrame.
package smb

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Sizes of the direct-TCP framing and of the fixed SMB headers.
const (
	// PrefixLen is the length of the direct-TCP frame prefix: a zero byte, then a 24-bit
	// big-endian length of the SMB message that follows (MS-SMB2 §2.1).
	PrefixLen = 4
	// HeaderLen is the length of the SMB2 packet header (MS-SMB2 §2.2.1).
	HeaderLen = 64
	// TransformHeaderLen is the length of the SMB2 TRANSFORM_HEADER that precedes an
	// encrypted message (MS-SMB2 §2.2.41).
	TransformHeaderLen = 52
	// MaxFrameLen is the largest message length the 24-bit prefix can express.
	MaxFrameLen = 1<<24 - 1
	// DefaultMaxFrame is the message length limit NewFrameConn applies when given none: an
	// 8 MiB read or write (the largest MaxReadSize Samba and Windows announce by default)
	// with room for its headers.
	DefaultMaxFrame = 8<<20 + 64<<10
)

// Protocol identifiers, the first four bytes of every SMB message.
var (
	magicSMB1      = [4]byte{0xFF, 'S', 'M', 'B'}
	magicSMB2      = [4]byte{0xFE, 'S', 'M', 'B'}
	magicTransform = [4]byte{0xFD, 'S', 'M', 'B'}
	magicCompress  = [4]byte{0xFC, 'S', 'M', 'B'}
)

// Sentinel errors returned, wrapped, by the parsers, CheckFrame and FrameConn.
var (
	// ErrShort means the input ends before a field or structure it declares.
	ErrShort = errors.New("smb: message too short")
	// ErrFramePrefix means the first byte of a direct-TCP frame is not zero.
	ErrFramePrefix = errors.New("smb: frame prefix is not a session message")
	// ErrFrameLength means a frame's declared length is below the minimum, above the limit,
	// or does not match the bytes given.
	ErrFrameLength = errors.New("smb: frame length out of range")
	// ErrMagic means a message does not start with the protocol identifier expected there.
	ErrMagic = errors.New("smb: unexpected protocol identifier")
	// ErrStructureSize means a header or body StructureSize (or an SMB1 word count) is not
	// the value the specification fixes.
	ErrStructureSize = errors.New("smb: unexpected structure size")
	// ErrNextCommand means the NextCommand chain of a compounded frame is unaligned or points
	// outside the frame.
	ErrNextCommand = errors.New("smb: bad compound chain")
	// ErrTransform means a TRANSFORM_HEADER's OriginalMessageSize does not fit its frame.
	ErrTransform = errors.New("smb: bad transform header")
	// ErrNotResponse means a message lacks the flag that marks a server's response.
	ErrNotResponse = errors.New("smb: message is not a response")
	// ErrCommand means a message carries another command than the one answered.
	ErrCommand = errors.New("smb: unexpected command")
	// ErrOffset means an offset field points outside its message or breaks its alignment.
	ErrOffset = errors.New("smb: offset out of bounds")
	// ErrDialect means a server chose a dialect that the request did not allow.
	ErrDialect = errors.New("smb: unexpected dialect")
)

// FrameLength decodes a direct-TCP frame prefix (MS-SMB2 §2.1) and returns the length of the
// SMB message that follows it. It checks only the prefix itself: callers apply the minimum and
// maximum that fit what they expect to read.
func FrameLength(prefix []byte) (int, error) {
	if len(prefix) < PrefixLen {
		return 0, fmt.Errorf("smb: frame prefix needs %d bytes, have %d: %w", PrefixLen, len(prefix), ErrShort)
	}
	if prefix[0] != 0 {
		return 0, fmt.Errorf("smb: frame prefix type 0x%02x: %w", prefix[0], ErrFramePrefix)
	}
	return int(binary.BigEndian.Uint32(prefix[:4])), nil
}

// message returns the SMB message of the frame at the start of b and checks that it holds at
// least minLen bytes. Bytes past the frame are ignored.
func message(b []byte, minLen int) ([]byte, error) {
	n, err := FrameLength(b)
	if err != nil {
		return nil, err
	}
	if len(b)-PrefixLen < n {
		return nil, fmt.Errorf("smb: frame of %d bytes, have %d: %w", n, len(b)-PrefixLen, ErrShort)
	}
	if n < minLen {
		return nil, fmt.Errorf("smb: message of %d bytes, need %d: %w", n, minLen, ErrShort)
	}
	return b[PrefixLen : PrefixLen+n], nil
}

// CheckFrame reports whether frame, a whole direct-TCP frame with its 4-byte prefix, is safe
// to hand to an SMB2 client: the prefix type is zero; the length matches len(frame)-4 and is
// at least HeaderLen; the message is an SMB2 message (FE 'SMB') or an encrypted one (FD 'SMB').
//
// For an SMB2 message it walks the compound chain (MS-SMB2 §3.2.4.1.4): every header starts
// with FE 'SMB' and StructureSize 64, and every non-zero NextCommand is a multiple of 8, at
// least HeaderLen, and leaves room for a whole header after it inside the frame. For an
// encrypted message it checks that the frame holds a TRANSFORM_HEADER and an SMB2 header and
// that OriginalMessageSize (MS-SMB2 §2.2.41) is at least HeaderLen and fits the frame; the
// encrypted content itself cannot be checked before decryption.
func CheckFrame(frame []byte) error {
	n, err := FrameLength(frame)
	if err != nil {
		return err
	}
	switch got := len(frame) - PrefixLen; {
	case got < n:
		return fmt.Errorf("smb: frame of %d bytes, have %d: %w", n, got, ErrShort)
	case got > n:
		return fmt.Errorf("smb: frame of %d bytes followed by %d more: %w", n, got-n, ErrFrameLength)
	}
	if n < HeaderLen {
		return fmt.Errorf("smb: frame of %d bytes, below the %d-byte header: %w", n, HeaderLen, ErrFrameLength)
	}
	msg := frame[PrefixLen:]
	switch [4]byte(msg[:4]) {
	case magicSMB2:
		return checkChain(msg)
	case magicTransform:
		return checkTransform(msg)
	}
	return fmt.Errorf("smb: frame starts with %s: %w", describeMagic(msg), ErrMagic)
}

// checkChain walks the compound chain of the SMB2 message msg, which holds at least HeaderLen
// bytes.
func checkChain(msg []byte) error {
	off := 0
	for i := 0; ; i++ {
		h := msg[off:]
		if [4]byte(h[:4]) != magicSMB2 {
			return fmt.Errorf("smb: compound message %d at offset %d starts with %s: %w", i, off, describeMagic(h), ErrMagic)
		}
		if size := binary.LittleEndian.Uint16(h[4:6]); size != HeaderLen {
			return fmt.Errorf("smb: compound message %d header structure size %d: %w", i, size, ErrStructureSize)
		}
		next := binary.LittleEndian.Uint32(h[20:24])
		switch {
		case next == 0:
			return nil
		case next%8 != 0:
			return fmt.Errorf("smb: compound message %d next command %d is not 8-byte aligned: %w", i, next, ErrNextCommand)
		case next < HeaderLen:
			return fmt.Errorf("smb: compound message %d next command %d is inside its own header: %w", i, next, ErrNextCommand)
		case uint64(next)+HeaderLen > uint64(len(h)):
			return fmt.Errorf("smb: compound message %d at offset %d: next command %d leaves no room for a header in %d bytes: %w",
				i, off, next, len(h), ErrNextCommand)
		}
		off += int(next)
	}
}

// checkTransform checks the TRANSFORM_HEADER of the encrypted message msg.
func checkTransform(msg []byte) error {
	if len(msg) < TransformHeaderLen+HeaderLen {
		return fmt.Errorf("smb: encrypted message of %d bytes, need %d: %w", len(msg), TransformHeaderLen+HeaderLen, ErrShort)
	}
	size := binary.LittleEndian.Uint32(msg[36:40])
	if size < HeaderLen || uint64(size) > uint64(len(msg)-TransformHeaderLen) {
		return fmt.Errorf("smb: original message size %d in a %d-byte encrypted message: %w", size, len(msg), ErrTransform)
	}
	return nil
}

// describeMagic names the protocol identifier at the start of msg, which holds at least four
// bytes, for error messages.
func describeMagic(msg []byte) string {
	switch [4]byte(msg[:4]) {
	case magicSMB1:
		return "an SMB1 header (FF 'SMB')"
	case magicSMB2:
		return "an SMB2 header (FE 'SMB')"
	case magicTransform:
		return "a transform header (FD 'SMB')"
	case magicCompress:
		return "a compression transform header (FC 'SMB')"
	}
	return fmt.Sprintf("% x", msg[:4])
}
