package probe

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// Status is the one vocabulary every probe step uses for how a network operation ended.
type Status string

// The statuses. Local means the failure was this machine's (out of file descriptors, buffers or ports), not the
// peer's: the scheduler retries it and never reports it as a property of the host.
const (
	StatusOK            Status = "ok"
	StatusRefused       Status = "refused"
	StatusTimeout       Status = "timeout"
	StatusUnreachable   Status = "unreachable"
	StatusReset         Status = "reset"
	StatusProtocolError Status = "protocol error"
	StatusAuthFailed    Status = "auth failed"
	StatusAccessDenied  Status = "access denied"
	StatusNotFound      Status = "not found"
	StatusCanceled      Status = "canceled"
	StatusLocal         Status = "local resource"
	StatusInternal      Status = "internal"
	StatusError         Status = "error"
)

// ProtocolError marks an answer that is not what the protocol allows. Probe steps wrap it so that Classify can tell a
// peer speaking garbage from one that does not speak at all.
var ProtocolError = errors.New("protocol error")

// Classify maps a Go error from a network operation to the status vocabulary. A nil error is StatusOK.
func Classify(err error) Status {
	if err == nil {
		return StatusOK
	}
	switch {
	case errors.Is(err, ProtocolError):
		return StatusProtocolError
	case errors.Is(err, context.Canceled):
		return StatusCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, syscall.ETIMEDOUT):
		return StatusTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return StatusRefused
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EHOSTDOWN), errors.Is(err, syscall.ENETDOWN):
		return StatusUnreachable
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return StatusReset
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE), errors.Is(err, syscall.ENOBUFS),
		errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.ENOMEM), errors.Is(err, syscall.EAGAIN):
		return StatusLocal
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		// The peer closed the connection in the middle of an exchange.
		return StatusReset
	case errors.Is(err, os.ErrPermission):
		return StatusAccessDenied
	case errors.Is(err, os.ErrNotExist):
		return StatusNotFound
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return StatusTimeout
	}
	return StatusError
}
