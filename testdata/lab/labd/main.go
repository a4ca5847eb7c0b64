// Command labd runs the fake network services of the ofmprobe test lab.
//
// The lab (testdata/lab/lab.sh) starts one labd per behaviour inside a
// network namespace, for example:
//
//	labd -mode hold -listen 0.0.0.0:135,0.0.0.0:139 -pidfile hold.pid -log hold.log
//	labd -mode nbstat -listen 0.0.0.0:137 -pidfile nbstat.pid -log nbstat.log
//
// Modes are registered in the modes map below. A TCP mode is a function that
// handles one accepted connection; labd owns the listeners, the accept loops,
// the back-off on accept errors (EMFILE and friends) and shutdown. A mode that
// needs its own sockets sets run instead and gets the listen addresses, the
// context and the logger; the UDP modes (udp.go) are built that way by
// udpMode from one function that turns a datagram into its answer.
//
// To add a mode: write a function of type tcpHandler (or runFunc), then add
// one entry to modes with a one-line description. Nothing else changes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// holdLimit bounds how long the hold mode keeps a silent connection open.
const holdLimit = 5 * time.Minute

// tcpHandler serves one accepted TCP connection. labd closes conn after the
// handler returns; ctx is cancelled when labd shuts down.
type tcpHandler func(ctx context.Context, conn net.Conn, logger *log.Logger)

// runFunc runs a mode that manages its own sockets. It returns when ctx is
// cancelled or when the mode cannot continue.
type runFunc func(ctx context.Context, opts options, logger *log.Logger) error

// mode is one fake service behaviour. Exactly one of tcp and run is set.
type mode struct {
	about string
	tcp   tcpHandler
	run   runFunc
	// noListen marks a mode that takes no -listen addresses.
	noListen bool
}

// modes lists every behaviour labd can play, by the name given to -mode.
var modes = map[string]mode{
	"hold":        {about: "accept TCP connections and never send anything (a tarpit); close when the peer closes or after 5 minutes", tcp: serveHold},
	"accept":      {about: "accept TCP connections and close them at once (an open port that proves nothing)", tcp: serveAccept},
	"nbstat":      {about: "UDP: answer NetBIOS node status requests for any local address a.b.c.d, from that address, as BULKcccddd", run: udpMode(answerNodeStatus)},
	"nbgarbage":   {about: "UDP: answer every NetBIOS name request with a malformed response (rotating kinds)", run: udpMode(answerGarbage)},
	"nbssgarbage": {about: "TCP: read the NetBIOS session request, answer with bytes that are no session answer (rotating kinds)", tcp: serveNBSSGarbage},
	"badsmb":      {about: "TCP: read the first SMB frame, answer with one hostile frame (rotating kinds), close", tcp: serveBadSMB},
	"nfqdelay":    {about: "no socket: hold every packet of NFQUEUE -queue for a random -delay-min..-delay-max, then accept it (a slow path)", run: runNFQDelay, noListen: true},
}

// options holds the command line.
type options struct {
	mode    string
	listen  []string
	pidFile string
	logFile string
	backlog int
	// nfqdelay
	queue       int
	queueMaxlen int
	delayMin    time.Duration
	delayMax    time.Duration
}

func main() {
	opts, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "labd: %v\n", err)
		os.Exit(2)
	}
	if err := run(opts); err != nil {
		fmt.Fprintf(os.Stderr, "labd: %v\n", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	var opts options
	var listen string
	fs := flag.NewFlagSet("labd", flag.ContinueOnError)
	fs.StringVar(&opts.mode, "mode", "", "behaviour to play: "+modeNames())
	fs.StringVar(&listen, "listen", "", "comma-separated addresses to listen on, e.g. 0.0.0.0:135,0.0.0.0:139")
	fs.StringVar(&opts.pidFile, "pidfile", "", "write the process id to this file")
	fs.StringVar(&opts.logFile, "log", "", "append the log to this file (default stderr)")
	fs.IntVar(&opts.backlog, "backlog", 4096, "TCP listen backlog (the kernel caps it at net.core.somaxconn)")
	fs.IntVar(&opts.queue, "queue", 16, "nfqdelay: the NFQUEUE number to bind")
	fs.IntVar(&opts.queueMaxlen, "queue-maxlen", 262144, "nfqdelay: most packets the kernel holds for the queue")
	fs.DurationVar(&opts.delayMin, "delay-min", 150*time.Millisecond, "nfqdelay: shortest delay")
	fs.DurationVar(&opts.delayMax, "delay-max", 900*time.Millisecond, "nfqdelay: longest delay")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: labd -mode MODE -listen ADDR[,ADDR...] [-pidfile FILE] [-log FILE]\n"+
			"       labd -mode nfqdelay [-queue N] [-delay-min D] [-delay-max D] [-pidfile FILE] [-log FILE]\n\nmodes:\n")
		names := make([]string, 0, len(modes))
		for name := range modes {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			fmt.Fprintf(fs.Output(), "  %-12s %s\n", name, modes[name].about)
		}
		fmt.Fprintf(fs.Output(), "\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	if fs.NArg() > 0 {
		return opts, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if _, ok := modes[opts.mode]; !ok {
		return opts, fmt.Errorf("unknown mode %q (want one of %s)", opts.mode, modeNames())
	}
	for _, addr := range strings.Split(listen, ",") {
		if addr = strings.TrimSpace(addr); addr != "" {
			opts.listen = append(opts.listen, addr)
		}
	}
	if len(opts.listen) == 0 && !modes[opts.mode].noListen {
		return opts, errors.New("no -listen address given")
	}
	if opts.backlog < 1 {
		return opts, fmt.Errorf("bad -backlog %d", opts.backlog)
	}
	return opts, nil
}

func modeNames() string {
	names := make([]string, 0, len(modes))
	for name := range modes {
		names = append(names, name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func run(opts options) error {
	logOut := io.Writer(os.Stderr)
	if opts.logFile != "" {
		f, err := os.OpenFile(opts.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("open log: %w", err)
		}
		defer f.Close()
		logOut = f
	}
	logger := log.New(logOut, fmt.Sprintf("labd[%d] %s: ", os.Getpid(), opts.mode), log.LstdFlags|log.Lmicroseconds)

	if soft, hard, err := raiseFileLimit(); err != nil {
		logger.Printf("raise RLIMIT_NOFILE: %v (soft limit stays %d)", err, soft)
	} else {
		logger.Printf("RLIMIT_NOFILE soft=%d hard=%d", soft, hard)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()

	m := modes[opts.mode]
	var serve func() error
	if m.run != nil {
		serve = func() error { return m.run(ctx, opts, logger) }
	} else {
		listeners := make([]net.Listener, 0, len(opts.listen))
		for _, addr := range opts.listen {
			ln, err := listenTCP(addr, opts.backlog)
			if err != nil {
				for _, l := range listeners {
					l.Close()
				}
				logger.Printf("listen %s: %v", addr, err)
				return fmt.Errorf("listen %s: %w", addr, err)
			}
			logger.Printf("listening on tcp %s (backlog %d)", ln.Addr(), opts.backlog)
			listeners = append(listeners, ln)
		}
		serve = func() error { return serveTCP(ctx, listeners, m.tcp, opts.mode == "accept", logger) }
	}

	if opts.pidFile != "" {
		if err := os.WriteFile(opts.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return fmt.Errorf("write pid file: %w", err)
		}
		defer os.Remove(opts.pidFile)
	}

	err := serve()
	logger.Printf("stopped: %v", err)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// raiseFileLimit sets the soft RLIMIT_NOFILE to the hard limit, so that a
// tarpit can hold many connections.
func raiseFileLimit() (soft, hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, err
	}
	if lim.Cur < lim.Max {
		want := lim
		want.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return lim.Cur, lim.Max, err
		}
		lim = want
	}
	return lim.Cur, lim.Max, nil
}

// listenTCP opens a TCP listener with an explicit backlog. net.Listen uses
// net.core.somaxconn as the backlog; doing it by hand keeps the backlog a
// visible, testable choice.
func listenTCP(addr string, backlog int) (net.Listener, error) {
	tcpAddr, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, err
	}
	family := syscall.AF_INET6
	var sa syscall.Sockaddr
	if ip4 := tcpAddr.IP.To4(); ip4 != nil || tcpAddr.IP == nil {
		family = syscall.AF_INET
		sa4 := &syscall.SockaddrInet4{Port: tcpAddr.Port}
		copy(sa4.Addr[:], ip4)
		sa = sa4
	} else {
		sa6 := &syscall.SockaddrInet6{Port: tcpAddr.Port}
		copy(sa6.Addr[:], tcpAddr.IP.To16())
		sa = sa6
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, syscall.IPPROTO_TCP)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("SO_REUSEADDR: %w", err)
	}
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("bind: %w", err)
	}
	if err := syscall.Listen(fd, backlog); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("listen: %w", err)
	}
	f := os.NewFile(uintptr(fd), "tcp:"+addr)
	defer f.Close() // net.FileListener dups the descriptor.
	return net.FileListener(f)
}

// serveTCP runs one accept loop per listener and hands every connection to
// handle in its own goroutine. It returns when ctx is cancelled.
func serveTCP(ctx context.Context, listeners []net.Listener, handle tcpHandler, fastAccept bool, logger *log.Logger) error {
	var loops, conns sync.WaitGroup
	for _, ln := range listeners {
		loops.Add(1)
		go func(ln net.Listener) {
			defer loops.Done()
			if fastAccept {
				acceptAndClose(ctx, ln, logger)
				return
			}
			acceptLoop(ctx, ln, handle, logger, &conns)
		}(ln)
	}
	<-ctx.Done()
	for _, ln := range listeners {
		ln.Close()
	}
	loops.Wait()
	conns.Wait()
	return ctx.Err()
}

// acceptAndClose is acceptLoop for the accept mode, which a /16 sweep hits hundreds of thousands of times: it takes
// connections off the listen queue with a blocking accept4 on its own duplicate of the listener's descriptor and
// closes them at once, without making each one a net.Conn (no goroutine, no epoll registration), so the lab's server
// side costs the machine as little as possible and the benchmark measures the scanners, not labd. (A listener's
// RawConn supports only Control, so Go's poller cannot drive this loop.) Shutting the duplicate down when ctx ends
// wakes the blocked accept.
func acceptAndClose(ctx context.Context, ln net.Listener, logger *log.Logger) {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		acceptLoop(ctx, ln, serveAccept, logger, &sync.WaitGroup{})
		return
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		logger.Printf("accept on %s: %v", ln.Addr(), err)
		return
	}
	dup := -1
	if err := rc.Control(func(fd uintptr) { dup, err = unix.Dup(int(fd)) }); err != nil || dup < 0 {
		logger.Printf("accept on %s: duplicate the listener: %v", ln.Addr(), err)
		return
	}
	defer unix.Close(dup)
	if err := unix.SetNonblock(dup, false); err != nil {
		logger.Printf("accept on %s: %v", ln.Addr(), err)
		return
	}
	stop := context.AfterFunc(ctx, func() { unix.Shutdown(dup, unix.SHUT_RDWR) })
	defer stop()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for ctx.Err() == nil {
		nfd, _, err := unix.Accept4(dup, unix.SOCK_CLOEXEC)
		switch {
		case err == nil:
			unix.Close(nfd)
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.ECONNABORTED):
		case ctx.Err() != nil:
			return
		default:
			logger.Printf("accept on %s: %v; retrying in 10ms", ln.Addr(), err)
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// acceptLoop accepts until the listener is closed. Accept errors (EMFILE,
// ENFILE, ENOBUFS, ECONNABORTED, ...) never end the loop: it backs off from
// 5 ms up to 1 s and tries again.
func acceptLoop(ctx context.Context, ln net.Listener, handle tcpHandler, logger *log.Logger, conns *sync.WaitGroup) {
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			logger.Printf("accept on %s: %v; retrying in %v", ln.Addr(), err, backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		conns.Add(1)
		go func() {
			defer conns.Done()
			defer conn.Close()
			defer func() {
				if r := recover(); r != nil {
					logger.Printf("panic serving %s: %v", conn.RemoteAddr(), r)
				}
			}()
			handle(ctx, conn, logger)
		}()
	}
}

// serveAccept closes the connection at once: the port is open, nothing more.
func serveAccept(ctx context.Context, conn net.Conn, logger *log.Logger) {}

// serveHold keeps the connection open and silent until the peer closes it,
// labd shuts down, or holdLimit passes. Whatever the peer sends is read and
// discarded so that its writes never block.
func serveHold(ctx context.Context, conn net.Conn, logger *log.Logger) {
	if err := conn.SetDeadline(time.Now().Add(holdLimit)); err != nil {
		return
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			conn.SetDeadline(time.Now()) // Unblock the read below.
		case <-done:
		}
	}()
	buf := make([]byte, 4096)
	for {
		if _, err := conn.Read(buf); err != nil {
			return
		}
	}
}
