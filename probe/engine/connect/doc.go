// Package connect is the "tcp connect" path of a whole scan: one Connector keeps every TCP connect in flight as a
// non-blocking socket in one epoll set, instead of a goroutine blocked in net.Dialer.DialContext per connect.
//
// # Design
//
//  1. One sender. Connect never blocks: it queues the attempt. The sender goroutine takes the attempts in order
//     while fewer sockets are open than the congestion window allows (a counter; it waits when full), calls Config.Pace,
//     opens a socket (SOCK_STREAM, SOCK_NONBLOCK, SOCK_CLOEXEC) with IP_RECVERR or IPV6_RECVERR on, so that an
//     ICMP error that ends the connect is queued with its type, code and offender, and calls connect. EINPROGRESS
//     hands the socket to the poller; an immediate result ends the attempt. EMFILE, ENFILE, ENOBUFS, EADDRNOTAVAIL,
//     ENOMEM and EAGAIN at socket or connect are this machine pushing back: the socket is closed and the attempt
//     retried after a short, growing backoff; if the pushback lasts, the attempt ends LocalError, never started.
//  2. One epoll set. A connecting socket is added with EPOLLOUT, EPOLLERR, EPOLLHUP and EPOLLONESHOT, keyed by its
//     fd and a generation number (the fd in the low 32 bits of the epoll data, the generation in the high 32). The
//     table of sockets in flight is indexed by fd and an entry answers only to its generation, so an event queued
//     for a socket that was closed, and whose fd number was reused for a newer attempt, is ignored.
//  3. One timer heap. The deadline of every socket in flight sits in one min-heap. There is no goroutine and no
//     timer per attempt: an attempt in flight costs a small struct and a slot in the table and the heap.
//  4. One poller. The poller goroutine waits in epoll_wait, with the time to the earliest deadline as its timeout
//     and an eventfd in the set that wakes it for an earlier deadline and for Close. On an event it reads the
//     connect's result (SO_ERROR); a failed connect's error queue is read (MSG_ERRQUEUE) for the ICMP error behind
//     it. A socket whose deadline passed is closed and times out. A connected socket is closed with SO_LINGER 0: it
//     sends a RST, so the probe leaves no TIME_WAIT here and no half-open connection there.
//  5. Close cancels Pace, wakes and waits for both goroutines, closes every socket still in flight and the epoll
//     set, and gives Canceled to every attempt queued or in flight.
//
// # Congestion window
//
// The window starts at Config.MaxInFlight, the socket budget. A loss on the way to a host that answers halves it: a
// connection answered only to a SYN the kernel sent again (Result.Retransmitted), or a loss the scan reports with
// Lost (a port that answered only when tried again, a dial to a port that had just accepted meeting silence). The
// losses of one burst are one signal: it moves at most once per 200 ms, or two smoothed round trips when longer, and
// never below Config.MinInFlight. Each such interval in which connects were answered, with no loss, gives a
// sixteenth of the budget back (additive increase, multiplicative decrease). Timeouts move nothing: silence is a
// firewall's doing as often as a loss. Stats reports the window, the lowest it was cut to and how often.
//
// # Outcomes
//
//   - Connected: the handshake completed (SO_ERROR 0, or a reset after it completed).
//   - Refused: a RST answered the SYN (ECONNREFUSED): the host is up and nothing listens on the port.
//   - Unreachable: EHOSTUNREACH, ENETUNREACH, EHOSTDOWN, ENONET or ENETDOWN, from an ICMP error or the routing
//     table. Result.ICMP holds the ICMP error when there was one; its Filtered method tells an administratively
//     prohibited (a firewall that answers) from a host or network unreachable.
//   - TimedOut: nothing decided before the timeout. Silence is not proof of filtering.
//   - LocalError: pushback that never cleared, or Pace failing. It says nothing about the destination.
//   - Denied: EACCES or EPERM at connect: this machine's firewall refused; no SYN left.
//   - Failed: any other errno, or an invalid destination.
//   - Canceled: the connector was closed first.
//
// The connector is Linux only: elsewhere Open fails with errors.ErrUnsupported.
//
// # SYN probes
//
// SYN (OpenSYN) is the same API without a socket per attempt, for IPv4 where raw sockets may be opened: one raw TCP
// socket sends each attempt's SYN from a source port of its own (20000-32767, below the kernel's ephemeral range, so
// no connection of this machine shares its four-tuple) with a random sequence number, and reads, through a BPF
// filter, only the SYN-ACKs and RSTs to those ports; an answer counts only when it acknowledges its SYN. A raw ICMP
// socket reads the destination-unreachable errors, which quote the SYN; the raw TCP socket's error queue
// (IP_RECVERR) holds the SYNs this machine could not deliver (no answer to ARP). Subnet broadcast and multicast
// destinations are refused with ENETUNREACH, as TCP connects to them are. The kernel answers each SYN-ACK with a RST,
// as it knows no such connection.
package connect
