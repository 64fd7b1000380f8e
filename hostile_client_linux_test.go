package shmlink

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmlink/shmlink/internal/ring"
	"github.com/shmlink/shmlink/internal/testproc"
	"github.com/shmlink/shmlink/internal/wire"
)

// A hostile client: a correct handshake, then damage to the shared memory
// of its own client→server ring (indices, chunk headers, claims of huge
// messages, the header page, the memfd's size) while the parent reads.

// clientDamage is what a hostile client does to its client→server ring
// after a correct handshake. Steps that need the parent to have done
// something first wait for a go-ahead line on stdin.
var clientDamage = map[string]func(p *rawPeer) error{
	// TAKEN answers only a WELCOME that asked for it (Windows: PROTOCOL.md
	// 10.5); a Linux server never asks.
	"unasked-taken":  func(p *rawPeer) error { return rawSend(p.sock, wire.Encode(nil, wire.Msg{Type: wire.Taken})) },
	"tail-beyond":    func(p *rawPeer) error { p.publish(1 << 40); return nil },
	"tail-unaligned": func(p *rawPeer) error { p.publish(5); return nil },
	"tail-backwards": func(p *rawPeer) error {
		pr, err := p.producer()
		if err != nil {
			return err
		}
		if err := pr.WriteMessage(context.Background(), []byte("hello")); err != nil {
			return err
		}
		if err := p.step(); err != nil {
			return err
		}
		p.publish(0)
		return nil
	},
	"absurd-length": func(p *rawPeer) error {
		p.putChunk(0, 0xfffffff8, ring.FlagBegin|ring.FlagEnd, 0)
		p.publish(hostileRing)
		return nil
	},
	"length-to-tail": func(p *rawPeer) error { p.putChunk(0, 100, ring.FlagBegin|ring.FlagEnd, 0); p.publish(16); return nil },
	"invalid-flags":  func(p *rawPeer) error { p.publish(p.putChunk(0, 0, ring.FlagBegin|ring.FlagPad, 0)); return nil },
	"reserved-set": func(p *rawPeer) error {
		// Reserved bytes and flag bits are ignored (PROTOCOL.md, 4.1).
		n := p.putChunk(0, 6, ring.FlagBegin|ring.FlagEnd|0xF0, 0)
		b := p.seg.data(p.mine)
		b[5], b[6], b[7] = 0xFF, 0x01, 0x80
		copy(b[8:], "intact")
		p.publish(n)
		return nil
	},
	"orphan-continuation": func(p *rawPeer) error { p.publish(p.putChunk(0, 8, ring.FlagEnd, 0)); return nil },
	"begin-in-message": func(p *rawPeer) error {
		n := p.putChunk(0, 8, ring.FlagBegin, 100)
		p.publish(n + p.putChunk(n, 8, ring.FlagBegin|ring.FlagEnd, 0))
		return nil
	},
	"end-short": func(p *rawPeer) error {
		n := p.putChunk(0, 8, ring.FlagBegin, 100)
		p.publish(n + p.putChunk(n, 8, ring.FlagEnd, 0))
		return nil
	},
	"chunk-over-total": func(p *rawPeer) error {
		n := p.putChunk(0, 8, ring.FlagBegin, 12)
		p.publish(n + p.putChunk(n, 8, 0, 0))
		return nil
	},
	"total-below-length": func(p *rawPeer) error { p.publish(p.putChunk(0, 16, ring.FlagBegin, 8)); return nil },
	"pad-overrun":        func(p *rawPeer) error { p.putChunk(0, hostileRing, ring.FlagPad, 0); p.publish(64); return nil },
	"claim-2^40":         func(p *rawPeer) error { p.publish(p.putChunk(0, 16, ring.FlagBegin, 1<<40)); return nil },
	"claim-1GiB-stall":   func(p *rawPeer) error { p.publish(p.putChunk(0, 8, ring.FlagBegin, 1<<30)); return nil },
	"split":              split,
	"split-into":         split,

	// A ring blocked by the peer (PROTOCOL.md, 4.3): our doorbell rings are
	// writes to an eventfd whose file description the peer shares. Here the
	// server's ring of our data doorbell blocks: we say we sleep, so that
	// the server's next publish rings it.
	"bell-blocked": func(p *rawPeer) error {
		if err := blockAndFill(p.data.f); err != nil {
			return err
		}
		p.seg.flag(p.theirs, rawReaderSleep).Store(1)
		fmt.Println("damaged")
		return nil
	},
	// The server's own data doorbell, which it rings itself to wake its
	// reader (on Close, for one).
	"own-bell-blocked": func(p *rawPeer) error {
		if err := blockAndFill(p.peerData.f); err != nil {
			return err
		}
		fmt.Println("damaged")
		return nil
	},

	"header-rewrite": func(p *rawPeer) error {
		// The server copied the layout at the handshake; rewriting the
		// header afterwards must change nothing.
		for i := range rawControlOff {
			p.seg.mem[i] = 0xAA
		}
		pr, err := p.producer()
		if err != nil {
			return err
		}
		return pr.WriteMessage(context.Background(), []byte("intact"))
	},
	"resize": func(p *rawPeer) error {
		// The seals must stop us from shrinking (SIGBUS in the server)
		// or growing the memory we handed over.
		fd := int(p.file.Fd())
		for _, size := range []int64{ring.HeaderSize, 0, int64(p.seg.layout.Size()) * 2} {
			if err := unix.Ftruncate(fd, size); !errors.Is(err, unix.EPERM) {
				return fmt.Errorf("ftruncate to %d: %v, want EPERM", size, err)
			}
		}
		pr, err := p.producer()
		if err != nil {
			return err
		}
		return pr.WriteMessage(context.Background(), []byte("intact"))
	},
}

// split sends a two-chunk message whose second half comes only after the
// parent's read timed out in the middle of it.
func split(p *rawPeer) error {
	n := p.putChunk(0, 8, ring.FlagBegin, 16)
	copy(p.seg.data(p.mine)[16:], "ABCDEFGH")
	p.publish(n)
	if err := p.step(); err != nil {
		return err
	}
	m := p.putChunk(n, 8, ring.FlagEnd, 0)
	copy(p.seg.data(p.mine)[n+8:], "IJKLMNOP")
	p.publish(n + m)
	return nil
}

// childHostileClient: args are the socket path and a clientDamage key.
func childHostileClient(args []string) error {
	damage, err := scenario(args, clientDamage)
	if err != nil {
		return err
	}
	p, err := rawDial(args[0], hostileRing)
	if err != nil {
		return err
	}
	testproc.Ready()
	if err := damage(p); err != nil {
		return err
	}
	return p.hold()
}

func TestHostileClient(t *testing.T) {
	dir := linkDir(t)
	l, err := Listen("hostile", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	path := sockPath(dir, "hostile")

	checks := map[string]func(*testing.T, *Conn, *testproc.Proc){
		"unasked-taken": func(t *testing.T, c *Conn, _ *testproc.Proc) {
			_, err := c.ReadMessage()
			if !errors.Is(err, ErrHandshake) || c.Status() != StatusFailed {
				t.Fatalf("read after an unasked TAKEN: %v, status %v; want ErrHandshake, failed", err, c.Status())
			}
		},
		"tail-beyond":         readExpectCorrupt,
		"tail-unaligned":      readExpectCorrupt,
		"absurd-length":       readExpectCorrupt,
		"length-to-tail":      readExpectCorrupt,
		"invalid-flags":       readExpectCorrupt,
		"reserved-set":        readExpect("intact"),
		"orphan-continuation": readExpectCorrupt,
		"begin-in-message":    readExpectCorrupt,
		"end-short":           readExpectCorrupt,
		"chunk-over-total":    readExpectCorrupt,
		"total-below-length":  readExpectCorrupt,
		"pad-overrun":         readExpectCorrupt,
		"tail-backwards": func(t *testing.T, c *Conn, ch *testproc.Proc) {
			readExpect("hello")(t, c, ch)
			fmt.Fprintln(ch.Stdin, "go")
			readExpectCorrupt(t, c, ch)
		},
		"claim-2^40": func(t *testing.T, c *Conn, _ *testproc.Proc) {
			c.SetReadDeadline(time.Now().Add(time.Second))
			_, err := c.ReadMessage()
			if errors.Is(err, ErrTimeout) {
				t.Fatalf("regression: a Begin chunk claiming more than MaxMessageSize blocks the reader until the whole message streams past (ring.Reader.discard) instead of failing at once: %v", err)
			}
			if !errors.Is(err, ErrMessageTooLarge) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrMessageTooLarge or ErrCorrupt", err)
			}
			t.Logf("error: %v", err)
		},
		"claim-1GiB-stall": checkHugeClaim,
		"split":            checkSplitTimeout(false),
		"split-into":       checkSplitTimeout(true),
		"bell-blocked":     checkBlockedRing(false),
		"own-bell-blocked": checkBlockedRing(true),
		"header-rewrite":   readExpect("intact"),
		"resize":           readExpect("intact"),
	}
	if len(checks) != len(clientDamage) {
		t.Fatalf("%d checks for %d scenarios", len(checks), len(clientDamage))
	}
	for name, check := range checks {
		t.Run(name, func(t *testing.T) {
			ch := startChild(t, "hostile-client", path, name)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := l.AcceptContext(ctx)
			checkLink(t, c, err, ch, check)
		})
	}
}

// checkHugeClaim: a peer announces a 1 GiB message, sends 8 bytes of it and
// stops. The reader must not allocate for the claim, and must give up at
// its deadline.
func checkHugeClaim(t *testing.T, c *Conn, _ *testproc.Proc) {
	// ReadMessageInto says how much room the claim needs, consuming nothing.
	var sb *ShortBufferError
	if _, err := c.ReadMessageInto(make([]byte, 64)); !errors.As(err, &sb) || sb.Need != 1<<30 {
		t.Fatalf("ReadMessageInto: %v, want a short buffer error for 1 GiB", err)
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := c.ReadMessage()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	grew := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d bytes while reading a 1 GiB claim", grew)
	if grew > 16<<20 {
		t.Fatalf("reader allocated %d bytes for a claim it never received", grew)
	}
}

// checkSplitTimeout: a read that times out in the middle of a message must
// not make the next read return the message's tail as if it were whole.
func checkSplitTimeout(into bool) func(*testing.T, *Conn, *testproc.Proc) {
	read := func(c *Conn) ([]byte, error) {
		if !into {
			return c.ReadMessage()
		}
		b := make([]byte, 64)
		n, err := c.ReadMessageInto(b)
		return b[:n], err
	}
	return func(t *testing.T, c *Conn, ch *testproc.Proc) {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := read(c); !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want a timeout", err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintln(ch.Stdin, "go")
		m, err := read(c)
		if err == nil && string(m) == "IJKLMNOP" {
			t.Fatalf("regression: a message read that times out mid-message loses the bytes it took; the next read returns only the rest as a whole message (ring.Reader.ReadMessage/ReadInto): got %q", m)
		}
		if err == nil && string(m) != "ABCDEFGHIJKLMNOP" {
			t.Fatalf("got %q, want the whole message or an error", m)
		}
		t.Logf("after a timeout mid-message: %q, %v", m, err)
	}
}

// blockAndFill does to the eventfd behind f what a hostile peer can do to
// any eventfd of the link: clears O_NONBLOCK and fills the counter, so
// that the next write of one into it blocks. A ring that comes in between
// blocks the peer instead; these scenarios expect none.
func blockAndFill(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var full [8]byte
	binary.NativeEndian.PutUint64(full[:], 1<<64-2)
	if cerr := rc.Control(func(fd uintptr) {
		var count [8]byte
		_, _ = unix.Read(int(fd), count[:]) // empty it first (non-blocking yet)
		var flags int
		if flags, err = unix.FcntlInt(fd, unix.F_GETFL, 0); err == nil {
			_, err = unix.FcntlInt(fd, unix.F_SETFL, flags&^unix.O_NONBLOCK)
		}
		if err == nil {
			_, err = unix.Write(int(fd), full[:])
		}
	}); cerr != nil {
		return cerr
	}
	return err
}

// checkBlockedRing: once the peer has made a ring of one of the link's
// doorbells block, the ring must still end (the write, or Close that rings
// our own), and the link fail with ErrCorrupt, within the watchdog's two
// seconds (internal/sys, ringwatch_linux.go).
func checkBlockedRing(own bool) func(*testing.T, *Conn, *testproc.Proc) {
	return func(t *testing.T, c *Conn, ch *testproc.Proc) {
		ch.Stdout.Expect(t, "damaged")
		done := make(chan error, 1)
		op := "write"
		if own {
			op = "close"
			go func() { done <- c.Close() }()
		} else {
			go func() { done <- c.WriteMessage([]byte("rung")) }()
		}
		select {
		case err := <-done:
			t.Logf("%s: %v", op, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("a %s whose doorbell ring the peer made blocking never returned", op)
		}
		if own {
			return
		}
		_, err := c.ReadMessage()
		if !errors.Is(err, ErrCorrupt) || c.Status() != StatusFailed {
			t.Fatalf("read after the blocked ring: %v, status %v; want ErrCorrupt, failed", err, c.Status())
		}
		t.Logf("read: %v", err)
	}
}
