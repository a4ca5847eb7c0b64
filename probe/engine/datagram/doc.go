// Package datagram is the UDP path of a whole scan: one Mux sends every query of every host over one socket per
// address family and matches the answers, instead of a socket, its options and a goroutine per host.
//
// # Design
//
//  1. One socket per family. Open opens an unconnected, non-blocking IPv4 UDP socket; the IPv6 socket (IPv6 only)
//     is opened on the first IPv6 query. Each has IP_RECVERR or IPV6_RECVERR on, so every ICMP error is queued with
//     the destination of the datagram that caused it; SO_BROADCAST off, so a broadcast destination fails with EACCES
//     and is never broadcast to; SO_RXQ_OVFL on, so the kernel's drop counter comes with each datagram; and the
//     receive buffer of Config.ReceiveBuffer (SO_RCVBUFFORCE, else SO_RCVBUF); Stats reports the size granted.
//  2. One sender. Submit never blocks: it indexes the query and queues it. The sender goroutine calls Config.Pace
//     before each datagram, clears the socket's pending error (SO_ERROR) and sends. ENOBUFS, EAGAIN and ENOMEM are
//     retried after a short, growing backoff and are not tries; if they last, the query ends LocalError.
//  3. One timer heap. The deadline of every try sits in one min-heap, driven by one goroutine and one time.Timer:
//     an expired try is queued to the sender again, or the query ends Silent after its last try. There is no
//     goroutine or timer per query.
//  4. One receiver per socket. It waits in the Go runtime's poller (readable or error queued), then drains the
//     error queue (MSG_ERRQUEUE) and the datagrams in non-blocking batches, and calls Done between batches.
//  5. Close cancels Pace, closes the sockets, waits for every goroutine of the mux to end and gives Canceled to every
//     query still pending.
//
// # Congestion window
//
// A scan sends faster than some networks, and some receivers, can take; what it loses there it reports as silence.
// So first tries go out only while fewer than the window's worth of queries wait for the answer to their first try
// (retries always go). An answer to a first try grows the window (by one below ssthresh, by 1/window above it, as
// TCP's slow start and congestion avoidance do); an answer that comes only after a retry means the first try or its
// answer was lost, and halves it, at most once per two smoothed round trips (and 200 ms) — unless it comes within half
// a round trip of the retry, when it must be the first try's answer, late: a slow network, not a loss. Silence moves nothing: a host that never answers is a
// firewall's doing, not congestion. A first try that times out leaves the window, so silent ports do not hold it.
// Stats reports the window now, the lowest it was cut to and how often.
//
// # Matching
//
// Pending queries are indexed by destination address and port; several may wait on the same destination. A
// datagram whose source is not exactly a pending destination (another address, another port: spoofed or late) is a
// stray, counted and dropped. A datagram from a pending destination goes to the first query there, in submission
// order, whose Match accepts it; when none does it is a stray and the queries keep waiting. An error from the error
// queue is attributed only by its msg_name, the original destination, never by the socket's pending error, and it
// ends every sent query pending for that destination.
//
// # Outcomes
//
//   - Answered: a datagram from exactly Dst that Match accepted; Result.Reply holds a copy.
//   - ICMPError: an ICMP or ICMPv6 error about a datagram to Dst; Result.ICMP has the type, code and offender, and
//     ICMP.Closed and ICMP.Filtered tell a port unreachable (closed) from an administratively prohibited (a
//     firewall); other codes are host or network unreachable, from the offender.
//   - Silent: every try timed out. It is not proof of filtering: datagrams and ICMP errors get lost and rate-limited.
//   - SendFailed: this machine refused the datagram (EPERM from its firewall, EACCES for a broadcast address,
//     ENETUNREACH or EHOSTUNREACH with no route, a local error queued); nothing is known about the destination.
//   - LocalError: kernel pushback that never cleared, no IPv6 socket, or Pace failing; never a try, never Silent.
//   - Canceled: the mux was closed first.
//
// The mux is Linux only: elsewhere Open fails with errors.ErrUnsupported. ParseExtendedError, the decoder of the
// queued error, is a pure function over the control-message bytes.
package datagram
