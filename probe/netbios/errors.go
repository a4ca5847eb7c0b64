package netbios

import "errors"

// Sentinel errors. Every error returned by a Parse or Append function wraps
// exactly one of them, with context about where in the message it happened.
var (
	// ErrShort reports a message that ends before a field it announces.
	ErrShort = errors.New("message too short")
	// ErrBadName reports a NetBIOS name that cannot be encoded or decoded:
	// a wrong label length, a letter outside 'A'..'P', an over-long name.
	ErrBadName = errors.New("bad netbios name")
	// ErrNamePointer reports a compressed name (a label string pointer,
	// RFC 1002 §4.1). This codec does not follow pointers.
	ErrNamePointer = errors.New("compressed netbios name not supported")
	// ErrNotResponse reports a name service message without the response bit.
	ErrNotResponse = errors.New("not a name service response")
	// ErrOpcode reports a name service response whose opcode is not query.
	ErrOpcode = errors.New("unexpected name service opcode")
	// ErrRCode reports a name service response with a non-zero RCODE.
	ErrRCode = errors.New("name service error response")
	// ErrNoAnswer reports a name service response with no answer record.
	ErrNoAnswer = errors.New("no answer record")
	// ErrWrongType reports an answer record that is not NBSTAT.
	ErrWrongType = errors.New("answer is not a node status record")
	// ErrWrongClass reports an answer record whose class is not IN.
	ErrWrongClass = errors.New("answer class is not internet")
	// ErrTooMany reports a value too large for its field when encoding,
	// such as more than 255 names in a node status response.
	ErrTooMany = errors.New("too many items for field")
	// ErrNotSessionAnswer reports a session service message that is none of
	// the answers to a session request: positive, negative, retarget or
	// keepalive.
	ErrNotSessionAnswer = errors.New("not a NetBIOS session answer")
	// ErrBadFlags reports a session header with reserved flag bits set.
	ErrBadFlags = errors.New("reserved session header flags set")
	// ErrNotIPv4 reports a retarget address that is not IPv4 when encoding.
	ErrNotIPv4 = errors.New("address is not IPv4")
	// ErrBadLength reports a length that does not fit its message: a session
	// message whose LENGTH does not suit its type or the bytes given, or a
	// negative length when encoding.
	ErrBadLength = errors.New("bad length")
)
