package main

// nfqdelay: a userspace delay line on an NFQUEUE. This kernel has no netem, and the SYN-ACKs, RSTs and ICMP
// unreachables that make a port open or closed are sent by the kernel, not by labd, so the only place to make them
// late is the netfilter path: an nftables rule (`queue num N`, see lab.sh's slow mode) hands each packet to this
// queue, labd holds it for a random time between -delay-min and -delay-max and then gives the kernel its verdict
// (accept), so the packet leaves late and is never lost.
//
// The netlink protocol (nfnetlink_queue) is spoken by hand with golang.org/x/sys/unix: bind the queue, ask for
// metadata only (NFQNL_COPY_META: labd needs the packet id, not its bytes), then read one packet message per packet
// and answer with verdict messages, many per sendto, reading and answering once a millisecond. Packet ids grow by one per queued packet, so a message the
// socket dropped (ENOBUFS) shows as a gap, and the missing ids are released like the others instead of staying in
// the kernel's queue for ever.

import (
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

const (
	nfnlSubsysQueue    = 3
	nfqnlMsgPacket     = 0
	nfqnlMsgVerdict    = 1
	nfqnlMsgConfig     = 2
	nfqaCfgCmd         = 1
	nfqaCfgParams      = 2
	nfqaCfgQueueMaxlen = 3
	nfqaPacketHdr      = 1
	nfqaVerdictHdr     = 2
	nfqnlCfgCmdBind    = 1
	nfqnlCfgCmdUnbind  = 2
	nfqnlCopyMeta      = 1
	nfAccept           = 1
	nlaTypeMask        = 0x3fff

	// nfqRcvBuf is the netlink socket's receive buffer: a packet message in metadata mode is about 100 bytes, so
	// 64 MiB hold hundreds of thousands of packets the reader has not yet taken.
	nfqRcvBuf = 64 << 20
	// maxGap bounds how many missing ids one gap may release.
	maxGap = 1 << 20
	// pollEvery is how often the delay line reads its queue and releases what is due: the delays are late by up
	// to this much.
	pollEvery = time.Millisecond
)

// nfqPending is one queued packet waiting for its verdict.
type nfqPending struct {
	at time.Time
	id uint32
}

type nfqHeap []nfqPending

func (h nfqHeap) Len() int           { return len(h) }
func (h nfqHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h nfqHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nfqHeap) Push(x any)        { *h = append(*h, x.(nfqPending)) }
func (h *nfqHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type nfqCounters struct {
	queued, released, gapIDs, readErrors, sendErrors, maxPending atomic.Uint64
}

func (c *nfqCounters) String() string {
	return fmt.Sprintf("queued %d, released %d, ids released for gaps %d, most pending %d, read errors %d, send errors %d",
		c.queued.Load(), c.released.Load(), c.gapIDs.Load(), c.maxPending.Load(), c.readErrors.Load(), c.sendErrors.Load())
}

// nlMsg appends one netlink message (header, nfgenmsg, attributes) to b.
func nlMsg(b []byte, typ, flags uint16, seq uint32, family uint8, resID uint16, attrs ...[]byte) []byte {
	start := len(b)
	b = binary.NativeEndian.AppendUint32(b, 0) // length, set below
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, family, 0)
	b = binary.BigEndian.AppendUint16(b, resID)
	for _, a := range attrs {
		b = append(b, a...)
	}
	binary.NativeEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

// nlAttr encodes one attribute, padded to 4 bytes.
func nlAttr(typ uint16, payload []byte) []byte {
	a := binary.NativeEndian.AppendUint16(nil, uint16(4+len(payload)))
	a = binary.NativeEndian.AppendUint16(a, typ)
	a = append(a, payload...)
	for len(a)%4 != 0 {
		a = append(a, 0)
	}
	return a
}

func verdictMsg(b []byte, queue uint16, id uint32) []byte {
	hdr := binary.BigEndian.AppendUint32(nil, nfAccept)
	hdr = binary.BigEndian.AppendUint32(hdr, id)
	return nlMsg(b, nfnlSubsysQueue<<8|nfqnlMsgVerdict, unix.NLM_F_REQUEST, 0, unix.AF_UNSPEC, queue, nlAttr(nfqaVerdictHdr, hdr))
}

// nfqConfig sends one config message with NLM_F_ACK and waits for the kernel's answer.
func nfqConfig(fd int, seq uint32, queue uint16, attrs ...[]byte) error {
	msg := nlMsg(nil, nfnlSubsysQueue<<8|nfqnlMsgConfig, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq, unix.AF_UNSPEC, queue, attrs...)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 8192)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		for b := buf[:n]; len(b) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(b))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				break
			}
			typ := binary.NativeEndian.Uint16(b[4:])
			mseq := binary.NativeEndian.Uint32(b[8:])
			if typ == unix.NLMSG_ERROR && mseq == seq && l >= unix.NLMSG_HDRLEN+4 {
				if errno := int32(binary.NativeEndian.Uint32(b[unix.NLMSG_HDRLEN:])); errno != 0 {
					return unix.Errno(-errno)
				}
				return nil
			}
			b = b[(l+3)&^3:]
		}
	}
	return errors.New("no answer from the kernel")
}

// runNFQDelay binds opts.queue and delays every packet on it by a uniform random time in [delayMin, delayMax].
func runNFQDelay(ctx context.Context, opts options, logger *log.Logger) error {
	if opts.delayMin < 0 || opts.delayMax < opts.delayMin {
		return fmt.Errorf("bad delay range %v-%v", opts.delayMin, opts.delayMax)
	}
	if opts.queue < 0 || opts.queue > 65535 {
		return fmt.Errorf("bad queue number %d", opts.queue)
	}
	queue := uint16(opts.queue)
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink bind: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, nfqRcvBuf); err != nil {
		logger.Printf("SO_RCVBUFFORCE %d: %v; falling back to SO_RCVBUF", nfqRcvBuf, err)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, nfqRcvBuf)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
	// The config answers are read blocking: a read times out now and then so that nfqConfig sees its deadline.
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("SO_RCVTIMEO: %w", err)
	}
	cmd := func(c uint8) []byte { return nlAttr(nfqaCfgCmd, []byte{c, 0, 0, unix.AF_INET}) }
	if err := nfqConfig(fd, 1, queue, cmd(nfqnlCfgCmdBind)); err != nil {
		return fmt.Errorf("bind queue %d: %w (another process bound to it?)", queue, err)
	}
	params := binary.BigEndian.AppendUint32(nil, 0) // copy range: nothing of the packet
	params = append(params, nfqnlCopyMeta)
	if err := nfqConfig(fd, 2, queue, nlAttr(nfqaCfgParams, params)); err != nil {
		return fmt.Errorf("queue %d: copy mode: %w", queue, err)
	}
	if err := nfqConfig(fd, 3, queue, nlAttr(nfqaCfgQueueMaxlen, binary.BigEndian.AppendUint32(nil, uint32(opts.queueMaxlen)))); err != nil {
		return fmt.Errorf("queue %d: max length %d: %w", queue, opts.queueMaxlen, err)
	}
	rcv, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	logger.Printf("bound to nfqueue %d: delay %v-%v (uniform), queue max length %d, receive buffer %d bytes",
		queue, opts.delayMin, opts.delayMax, opts.queueMaxlen, rcv)

	var counters nfqCounters
	errs := &errLog{logger: logger, burst: 10}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x0f3))
	spread := int64(opts.delayMax - opts.delayMin)
	delay := func() time.Duration {
		if spread == 0 {
			return opts.delayMin
		}
		return opts.delayMin + time.Duration(rng.Int64N(spread+1))
	}

	// One goroutine, one OS thread, and no wake-up per packet: every pollEvery it reads what the queue holds without
	// blocking, then releases what is due. Blocking in recv instead woke the thread for nearly every packet (half a
	// million in a slow /16 sweep), and those context switches were most of the delay line's CPU.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var h nfqHeap
	buf := make([]byte, 1<<16)
	var last uint32
	haveLast := false
	read := func() {
		for {
			n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
			if err != nil {
				if errors.Is(err, unix.EAGAIN) {
					return
				}
				if errors.Is(err, unix.EINTR) {
					continue
				}
				counters.readErrors.Add(1)
				errs.printf("read: %v", err) // ENOBUFS: a message was lost; the id gap releases its packet
				continue
			}
			now := time.Now()
			for b := buf[:n]; len(b) >= unix.NLMSG_HDRLEN; {
				l := int(binary.NativeEndian.Uint32(b))
				if l < unix.NLMSG_HDRLEN || l > len(b) {
					break
				}
				typ := binary.NativeEndian.Uint16(b[4:])
				if typ == nfnlSubsysQueue<<8|nfqnlMsgPacket {
					if id, ok := packetID(b[unix.NLMSG_HDRLEN+4 : l]); ok {
						if haveLast && id-last > 1 && id-last <= maxGap {
							for g := last + 1; g != id; g++ {
								counters.gapIDs.Add(1)
								heap.Push(&h, nfqPending{now.Add(delay()), g})
							}
						}
						if !haveLast || id-last <= maxGap {
							last, haveLast = id, true
						}
						counters.queued.Add(1)
						heap.Push(&h, nfqPending{now.Add(delay()), id})
					}
				}
				// NLMSG_ERROR for a verdict on an id the kernel no longer holds (a gap guess): ignored.
				b = b[min((l+3)&^3, len(b)):]
			}
		}
	}

	out := make([]byte, 0, 64<<10)
	flush := func() {
		if len(out) == 0 {
			return
		}
		if err := unix.Sendto(fd, out, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			counters.sendErrors.Add(1)
			errs.printf("send verdicts: %v", err)
		}
		out = out[:0]
	}
	release := func(all bool) {
		now := time.Now()
		for h.Len() > 0 && (all || !h[0].at.After(now)) {
			p := heap.Pop(&h).(nfqPending)
			out = verdictMsg(out, queue, p.id)
			counters.released.Add(1)
			if len(out) > cap(out)-64 {
				flush()
			}
		}
		flush()
	}
	nextStats := time.Now().Add(statsEvery)
	lastStats := counters.String()
	for ctx.Err() == nil {
		read()
		if n := uint64(h.Len()); n > counters.maxPending.Load() {
			counters.maxPending.Store(n)
		}
		release(false)
		if now := time.Now(); now.After(nextStats) {
			nextStats = now.Add(statsEvery)
			if s := counters.String(); s != lastStats {
				logger.Printf("%s", s)
				lastStats = s
			}
		}
		time.Sleep(pollEvery)
	}
	// Let every held packet go (undelayed) rather than have the kernel drop them when the socket closes.
	read()
	release(true)
	_ = nfqConfig(fd, 4, queue, cmd(nfqnlCfgCmdUnbind))
	logger.Printf("%s", &counters)
	return ctx.Err()
}

// packetID finds NFQA_PACKET_HDR among a packet message's attributes (after the nfgenmsg).
func packetID(attrs []byte) (uint32, bool) {
	for len(attrs) >= 4 {
		l := int(binary.NativeEndian.Uint16(attrs))
		typ := binary.NativeEndian.Uint16(attrs[2:]) & nlaTypeMask
		if l < 4 || l > len(attrs) {
			return 0, false
		}
		if typ == nfqaPacketHdr && l >= 8 {
			return binary.BigEndian.Uint32(attrs[4:]), true
		}
		attrs = attrs[min((l+3)&^3, len(attrs)):]
	}
	return 0, false
}
