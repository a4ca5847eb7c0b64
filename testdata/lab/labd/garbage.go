package main

// TCP modes for a host whose NetBIOS session service and SMB server answer
// with malformed data: nbssgarbage (TCP 139) and badsmb (TCP 445). Each
// connection gets the next kind of bad answer in turn.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"sync/atomic"
	"time"
)

const (
	// readLimit bounds how long a garbage mode waits for the client's request.
	readLimit = 10 * time.Second
	// drainLimit bounds how long a garbage mode reads after its answer, so
	// that the close is a FIN rather than a reset that could destroy the
	// answer before the client reads it.
	drainLimit = 2 * time.Second
	// maxSMBRequest is how much of the client's first SMB frame badsmb reads.
	maxSMBRequest = 64 << 10
)

var nbssNext, smbNext atomic.Uint64

// nbssAnswers are the answers nbssgarbage rotates through: none is a valid
// answer to a session request (RFC 1002 §4.3).
var nbssAnswers = [][]byte{
	[]byte("HTTP/1.0 400 Bad Request\r\n\r\n"),
	// A positive session response that claims 0xFFFF bytes of body, then a few.
	{0x82, 0x00, 0xFF, 0xFF, 'g', 'a', 'r', 'b', 'a', 'g', 'e'},
	// A negative session response of length 1 whose error code never comes.
	{0x83, 0x00, 0x00, 0x01},
	// A message type that does not exist.
	{0x99, 0x00, 0x00, 0x00},
	// A positive session response with reserved FLAGS bits set.
	{0x82, 0x7E, 0x00, 0x00},
}

// serveNBSSGarbage reads up to 72 bytes of the session request and answers
// with the next entry of nbssAnswers.
func serveNBSSGarbage(ctx context.Context, conn net.Conn, logger *log.Logger) {
	defer unblockOnShutdown(ctx, conn)()
	conn.SetReadDeadline(time.Now().Add(readLimit))
	var req [72]byte
	hdr := req[:4]
	if _, err := io.ReadFull(conn, hdr); err != nil && !isTimeout(err) {
		return
	} else if err == nil {
		n := min(4+int(binary.BigEndian.Uint16(req[2:4])), len(req))
		if _, err := io.ReadFull(conn, req[4:n]); err != nil && !isTimeout(err) {
			return
		}
	}
	answer(conn, nbssAnswers[(nbssNext.Add(1)-1)%uint64(len(nbssAnswers))])
}

// smbKinds counts the hostile frames badsmb rotates through.
const smbKinds = 4

// serveBadSMB reads the client's first SMB frame (its prefix and at most
// 64 KiB of the message) and answers with one hostile frame, rotating per
// connection through:
//
//	0  a 5-byte frame: 00 00 00 01 FE (a message of one byte)
//	1  a 68-byte SMB2 NEGOTIATE response whose NextCommand is 0xFFF8,
//	   pointing far past the frame
//	2  a prefix claiming 16 MiB (00 FF FF FF), a few bytes, then close
//	3  64 to 575 random bytes, the first never 0x00
func serveBadSMB(ctx context.Context, conn net.Conn, logger *log.Logger) {
	defer unblockOnShutdown(ctx, conn)()
	conn.SetReadDeadline(time.Now().Add(readLimit))
	var prefix [4]byte
	var msgID [8]byte
	if _, err := io.ReadFull(conn, prefix[:]); err != nil && !isTimeout(err) {
		return
	} else if err == nil && prefix[0] == 0 {
		n := int64(binary.BigEndian.Uint32(prefix[:]) & 0xFFFFFF)
		head := make([]byte, min(n, 32))
		if _, err := io.ReadFull(conn, head); err != nil && !isTimeout(err) {
			return
		}
		if len(head) >= 32 && string(head[:4]) == "\xfeSMB" {
			copy(msgID[:], head[24:32]) // Echo an SMB2 request's MessageId.
		}
		if _, err := io.CopyN(io.Discard, conn, min(n, maxSMBRequest)-int64(len(head))); err != nil && !isTimeout(err) {
			return
		}
	}
	var b []byte
	switch (smbNext.Add(1) - 1) % smbKinds {
	case 0:
		b = []byte{0x00, 0x00, 0x00, 0x01, 0xFE}
	case 1:
		b = make([]byte, 4+64)
		binary.BigEndian.PutUint32(b, 64)
		h := b[4:]
		copy(h, "\xfeSMB")
		binary.LittleEndian.PutUint16(h[4:], 64)          // StructureSize
		binary.LittleEndian.PutUint16(h[12:], 0)          // Command: NEGOTIATE
		binary.LittleEndian.PutUint16(h[14:], 1)          // CreditResponse
		binary.LittleEndian.PutUint32(h[16:], 1)          // Flags: SERVER_TO_REDIR
		binary.LittleEndian.PutUint32(h[20:], 0xFFF8)     // NextCommand: past the frame
		copy(h[24:32], msgID[:])                          // MessageId
		binary.LittleEndian.PutUint32(h[36:], 0xFFFFFFFF) // TreeId
	case 2:
		b = []byte{0x00, 0xFF, 0xFF, 0xFF, 0xFE, 'S', 'M', 'B', 0x40, 0x00}
	default:
		var n [2]byte
		rand.Read(n[:])
		b = make([]byte, 64+int(binary.BigEndian.Uint16(n[:])%512))
		rand.Read(b)
		if b[0] == 0 {
			b[0] = 0xA5
		}
	}
	answer(conn, b)
}

// answer writes b, half-closes the connection and reads whatever the client
// still sends for at most drainLimit, so that b is not lost to a reset.
func answer(conn net.Conn, b []byte) {
	conn.SetWriteDeadline(time.Now().Add(readLimit))
	if _, err := conn.Write(b); err != nil {
		return
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	conn.SetReadDeadline(time.Now().Add(drainLimit))
	io.CopyN(io.Discard, conn, 1<<20)
}

// unblockOnShutdown makes every pending read and write on conn fail when
// ctx is cancelled; call the returned function when done with conn.
func unblockOnShutdown(ctx context.Context, conn net.Conn) func() {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			conn.SetDeadline(time.Now())
		case <-done:
		}
	}()
	return func() { close(done) }
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
