// Package netbios encodes and decodes the NetBIOS-over-TCP messages that
// ofmprobe speaks: first-level encoded names (RFC 1002 §4.1), the node
// status request and response on UDP port 137 (RFC 1002 §4.2.17, §4.2.18)
// and the session service framing on TCP port 139 (RFC 1002 §4.3).
//
// The package is a pure wire codec. Encoders are Append functions that add
// a message to a byte slice; decoders are Parse functions over a byte slice
// that check every length before they read. Nothing here opens a socket,
// keeps state, or retains the slice it was given.
//
// Decoding errors wrap one of the sentinel errors (ErrShort, ErrBadName,
// ErrNotResponse, …) so that callers can classify them with errors.Is.
// Their texts are lower case and carry no host name: the prober adds the
// host and the step, as in "nbstat 198.18.0.10:137: message too short: …".
package netbios
