package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shmlink/shmlink"
)

// copyBuf is the chunk size of stream copies: large enough that a bulk
// transfer costs few ring operations per megabyte.
const copyBuf = 256 << 10

var errInterrupted = errors.New("interrupted")

// netcat holds the flags listen and dial share, and runs a connected link.
type netcat struct {
	messages bool
	noStdin  bool
	quiet    bool
	readyFD  int
	listener bool // listen: done when the peer is; dial: done when both are
}

func (o *netcat) register(fs *flags) {
	fs.BoolVar(&o.messages, "messages", false, "one message per line: each input line is sent as a message, each message received is printed on a line")
	fs.BoolVar(&o.noStdin, "no-stdin", false, "do not read standard input; only receive (and exit when the peer closes)")
	fs.BoolVar(&o.quiet, "q", false, "quiet: no status lines on standard error")
	fs.IntVar(&o.readyFD, "ready-fd", -1, "once listening (listen) or connected (dial), write \"ready\\n\" to this inherited descriptor (on Windows: inherited handle value) and close it")
}

// ready tells a supervisor, through --ready-fd, that the command is set up.
func (o *netcat) ready() {
	if o.readyFD < 0 {
		return
	}
	f := os.NewFile(uintptr(o.readyFD), "ready-fd")
	if f == nil {
		return
	}
	f.WriteString("ready\n")
	f.Close()
}

// status prints a status change on standard error.
func (o *netcat) status(format string, args ...any) {
	if !o.quiet {
		fmt.Fprintf(os.Stderr, "shmlink: "+format+"\n", args...)
	}
}

const netcatDoc = `Standard input goes to the link and the link goes to standard output, as
netcat does: the end of standard input half-closes the link once everything
read is sent (the peer then reads end-of-file after all of it, and may still
answer), and the command goes on printing what the peer sends. listen is done
when its client has sent everything (closed or half-closed its side); dial is
done when both its input and the server's sending have ended, or the server
closed. Then the command closes the link and exits.

listen serves one client at a time and keeps its name while it does: a second
client is refused (the server is busy), and ls and stat show the live link.

Exit status: 0 when the link ended cleanly, 1 on an error, 2 on a usage
mistake, 3 when the peer was lost (died without closing), 4 when the peer
broke the protocol (corrupt shared memory).
Status changes (connected, peer closed, peer lost) go to standard error. `

func runListen(args []string) error {
	o := netcat{listener: true}
	fs := newFlags("listen", "[flags] NAME", "Waits for one client on the link NAME and serves it, netcat-style.\n\n"+netcatDoc)
	o.register(fs)
	pos, err := fs.parse(args, 1, 1)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// One client, like netcat; the name stays ours while it is served, so
	// that ls and stat show the link and a second client is told why not.
	l, err := shmlink.Listen(pos[0], &shmlink.Config{MaxClients: 1})
	if err != nil {
		return err
	}
	defer l.Close()
	o.status("listening on %s", pos[0])
	o.ready()
	c, err := l.AcceptContext(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return err
	}
	o.status("connected: client pid %d", c.RemoteAddr().(*shmlink.Addr).PID)
	return o.serve(ctx, c)
}

func runDial(args []string) error {
	var o netcat
	var wait bool
	var timeout time.Duration
	var ringSize int
	fs := newFlags("dial", "[flags] NAME", "Connects to the server on the link NAME, netcat-style.\n\n"+netcatDoc)
	o.register(fs)
	fs.BoolVar(&wait, "wait", false, "wait for the server to appear instead of failing when nobody listens")
	fs.DurationVar(&timeout, "timeout", 0, "give up connecting (and waiting) after this long; 0 means no limit")
	fs.IntVar(&ringSize, "ring-size", shmlink.DefaultRingSize, "bytes in each of the link's two rings (a power of two, 4096 to 1GiB)")
	pos, err := fs.parse(args, 1, 1)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if wait {
		o.status("waiting for %s", pos[0])
	}
	c, err := shmlink.Dial(dctx, pos[0], &shmlink.Config{Wait: wait, RingSize: ringSize})
	if err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		if errors.Is(err, shmlink.ErrNoServer) && !wait {
			return fmt.Errorf("%w (--wait waits for one)", err)
		}
		return err
	}
	o.status("connected to %s: server pid %d", pos[0], c.RemoteAddr().(*shmlink.Addr).PID)
	o.ready()
	return o.serve(ctx, c)
}

// serve copies both ways until one side ends the link, then closes it.
func (o *netcat) serve(ctx context.Context, c *shmlink.Conn) error {
	defer c.Close()
	received := make(chan error, 1)
	go func() { received <- o.receive(c, os.Stdout) }()
	sent := make(chan error, 1)
	if !o.noStdin {
		go func() { sent <- o.send(c, os.Stdin) }()
	}
	select {
	case err := <-received:
		if err != nil || o.listener || o.noStdin {
			return err
		}
		// The server sends no more; our input still goes to it, unless
		// it closed altogether.
		select {
		case err := <-sent:
			if err == nil {
				c.CloseWrite()
			}
			if errors.Is(err, shmlink.ErrPeerClosed) {
				return nil
			}
			return err
		case <-c.Done():
			return nil
		case <-ctx.Done():
			return errInterrupted
		}
	case err := <-sent:
		if err == nil {
			// End of input: the peer reads everything written, then
			// end-of-file, and may still answer; we print until it is
			// done. A peer that cannot be half-closed is closed.
			if c.CloseWrite() != nil {
				return nil
			}
			select {
			case err := <-received:
				return err
			case <-ctx.Done():
				return errInterrupted
			}
		}
		if !errors.Is(err, shmlink.ErrPeerClosed) && !errors.Is(err, shmlink.ErrPeerLost) {
			return err
		}
		// The peer left while we were sending: what it sent before still
		// goes to stdout, and the receiver reports how it left.
		select {
		case err := <-received:
			return err
		case <-ctx.Done():
			return errInterrupted
		}
	case <-ctx.Done():
		return errInterrupted
	}
}

// send copies in to the link and returns nil at the end of in.
func (o *netcat) send(c *shmlink.Conn, in io.Reader) error {
	if o.messages {
		return sendLines(c, in)
	}
	buf := make([]byte, copyBuf)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
	}
}

// sendLines sends each line of in, without its newline, as one message. A
// last line without a newline is sent too.
func sendLines(c *shmlink.Conn, in io.Reader) error {
	r := bufio.NewReaderSize(in, 64<<10)
	var long []byte
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long[:0], line...)
			for err == bufio.ErrBufferFull {
				line, err = r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("read stdin: %w", err)
		}
		if len(line) > 0 {
			if line[len(line)-1] == '\n' {
				line = line[:len(line)-1]
			}
			if werr := c.WriteMessage(line); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

// receive copies the link to out until the peer leaves or this side
// closes. The peer's clean close is nil, its loss an error.
func (o *netcat) receive(c *shmlink.Conn, out io.Writer) error {
	var err error
	if o.messages {
		err = receiveLines(c, out)
	} else {
		buf := make([]byte, copyBuf)
		for err == nil {
			var n int
			n, err = c.Read(buf)
			if n > 0 {
				if _, werr := out.Write(buf[:n]); werr != nil {
					return fmt.Errorf("write stdout: %w", werr)
				}
			}
		}
	}
	switch {
	case err == io.EOF:
		o.status("peer closed")
		return nil
	case errors.Is(err, net.ErrClosed):
		return nil // we closed: the end of our input, or an interrupt
	case errors.Is(err, shmlink.ErrPeerLost):
		return shmlink.ErrPeerLost
	}
	return err
}

// receiveLines writes each message to out followed by a newline.
func receiveLines(c *shmlink.Conn, out io.Writer) error {
	buf := make([]byte, 64<<10)
	for {
		// One byte is kept for the newline, so that a line is one write.
		n, err := c.ReadMessageInto(buf[:len(buf)-1])
		var short *shmlink.ShortBufferError
		if errors.As(err, &short) && short.Need >= 0 {
			buf = make([]byte, short.Need+1)
			continue
		}
		if err != nil {
			return err
		}
		buf[n] = '\n'
		if _, err := out.Write(buf[:n+1]); err != nil {
			return fmt.Errorf("write stdout: %w", err)
		}
	}
}
