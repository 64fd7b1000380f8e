package shmlink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/ring"
	"github.com/shmlink/shmlink/internal/testproc"
)

// zcSizes are edgeSizes plus the edges of what a reservation holds in
// place: the whole ring less a header, and one byte more.
var zcSizes = append(append([]int(nil), edgeSizes...), testRing-16, testRing-8, testRing-7)

// TestZeroCopyEchoAllSizes sends every size class to a child that echoes
// with the zero-copy calls (BorrowMessage, ReserveMessage, CommitMessage),
// alternating with the copying ones, from several writers that mix
// ReserveMessage with WriteMessage, and reads the echoes alternating
// BorrowMessage and ReadMessage: every size both ways through both APIs,
// in place and through the fallback for what does not fit the ring.
func TestZeroCopyEchoAllSizes(t *testing.T) {
	linkDir(t)
	startChild(t, "zc-echo-server", "zc")
	c := dialTest(t, "zc")
	const writers, rounds = 3, 3
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				for i, n := range zcSizes {
					seq := uint32(r*len(zcSizes) + i)
					m := testMessage(uint32(w), seq, max(n, 12))
					var err error
					if (w+i)%2 == 0 {
						err = c.WriteMessage(m)
					} else {
						err = reserveAndCommit(c, m)
					}
					if err != nil {
						errs <- fmt.Errorf("writer %d message %d (%d bytes): %w", w, seq, len(m), err)
						return
					}
				}
			}
		}()
	}
	next := make([]uint32, writers)
	for i := range writers * rounds * len(zcSizes) {
		var m []byte
		var err error
		borrowed := i%2 == 0
		if borrowed {
			m, err = c.BorrowMessage()
		} else {
			m, err = c.ReadMessage()
		}
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		w, seq, err := checkMessage(m)
		if err != nil || int(w) >= writers || seq != next[w] {
			t.Fatalf("read %d: writer %d seq %d (want %d), %d bytes: %v", i, w, seq, next[w], len(m), err)
		}
		if want := max(zcSizes[int(seq)%len(zcSizes)], 12); len(m) != want {
			t.Fatalf("writer %d seq %d: %d bytes, want %d", w, seq, len(m), want)
		}
		next[w]++
		if borrowed {
			if err := c.ReleaseMessage(); err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// reserveAndCommit sends m through a reservation, reserving a little more
// than it needs where the ring allows, to commit less than reserved.
func reserveAndCommit(c *Conn, m []byte) error {
	n := len(m)
	if n+8 <= testRing-8 {
		n += 8
	}
	b, err := c.ReserveMessage(n)
	if err != nil {
		return err
	}
	if len(b) != n {
		c.CancelMessage()
		return fmt.Errorf("reserved %d bytes, asked %d", len(b), n)
	}
	copy(b, m)
	return c.CommitMessage(len(m))
}

// serveOne listens on name, says ready, and runs serve on the first link
// it accepts, closing both after.
func serveOne(name string, serve func(*Conn) error) error {
	l, err := Listen(name, nil)
	if err != nil {
		return err
	}
	defer l.Close()
	testproc.Ready()
	c, err := l.AcceptConn()
	if err != nil {
		return err
	}
	defer c.Close()
	return serve(c)
}

// childZeroCopyEchoServer listens on args[0] and echoes every message of
// one client, borrowing each and sending it back through a reservation,
// every third one with the copying calls instead.
func childZeroCopyEchoServer(args []string) error {
	if err := childArgs(args, 1); err != nil {
		return err
	}
	return serveOne(args[0], zeroCopyEcho)
}

func zeroCopyEcho(c *Conn) error {
	for i := 0; ; i++ {
		if i%3 == 2 {
			m, err := c.ReadMessage()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if err := c.WriteMessage(m); err != nil {
				return err
			}
			continue
		}
		m, err := c.BorrowMessage()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		out, err := c.ReserveMessage(len(m))
		if err != nil {
			return err
		}
		copy(out, m)
		if err := c.ReleaseMessage(); err != nil {
			return err
		}
		if err := c.CommitMessage(len(m)); err != nil {
			return err
		}
	}
}

// TestZeroCopyMisuse checks the errors of calls out of turn: commit,
// cancel and release with nothing outstanding, a second release, a
// commit of more than reserved, a reservation over the peer's limit.
func TestZeroCopyMisuse(t *testing.T) {
	linkDir(t)
	startChild(t, "echo-server", "misuse")
	c := dialTest(t, "misuse")
	if err := c.CommitMessage(0); !errors.Is(err, ErrNotReserved) {
		t.Errorf("commit without reservation: %v", err)
	}
	if err := c.CancelMessage(); !errors.Is(err, ErrNotReserved) {
		t.Errorf("cancel without reservation: %v", err)
	}
	if err := c.ReleaseMessage(); !errors.Is(err, ErrNotBorrowed) {
		t.Errorf("release without loan: %v", err)
	}
	if _, err := c.ReserveMessage(-1); err == nil {
		t.Error("negative reservation accepted")
	}
	if _, err := c.ReserveMessage(DefaultMaxMessageSize + 1); !errors.Is(err, ErrMessageTooLarge) {
		t.Errorf("reservation over the peer's limit: %v", err)
	}
	b, err := c.ReserveMessage(10)
	if err != nil {
		t.Fatal(err)
	}
	copy(b, "0123456789")
	if err := c.CommitMessage(11); err == nil || errors.Is(err, ErrNotReserved) {
		t.Errorf("commit of more than reserved: %v", err)
	}
	if err := c.CommitMessage(4); err != nil { // still reserved after the refusal
		t.Fatal(err)
	}
	m, err := c.BorrowMessage()
	if err != nil || string(m) != "0123" {
		t.Fatalf("echo: %q, %v", m, err)
	}
	if err := c.ReleaseMessage(); err != nil {
		t.Fatal(err)
	}
	if err := c.ReleaseMessage(); !errors.Is(err, ErrNotBorrowed) {
		t.Errorf("second release: %v", err)
	}
	// A canceled reservation sends nothing: the next message is the echo's.
	if _, err := c.ReserveMessage(100); err != nil {
		t.Fatal(err)
	}
	if err := c.CancelMessage(); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage([]byte("after")); err != nil {
		t.Fatal(err)
	}
	if m, err := c.ReadMessage(); err != nil || string(m) != "after" {
		t.Fatalf("after a cancel: %q, %v", m, err)
	}
}

// TestZeroCopyCloseWhileLent closes a link while a reservation and a loan
// are outstanding, on the goroutine that holds them: Close returns at
// once, the lent memory stays usable, the commit sends nothing and fails
// as closed, and the link is freed when both end.
func TestZeroCopyCloseWhileLent(t *testing.T) {
	linkDir(t)
	startChild(t, "echo-server", "lent")
	c := dialTest(t, "lent")
	if err := c.WriteMessage([]byte("borrow me")); err != nil {
		t.Fatal(err)
	}
	in, err := c.BorrowMessage()
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.ReserveMessage(testRing / 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadMessage(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after close: %v", err)
	}
	clear(out) // the memory is still mapped: no fault
	if string(in) != "borrow me" {
		t.Errorf("lent message now %q", in)
	}
	if err := c.CommitMessage(len(out)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("commit after close: %v", err)
	}
	if err := c.ReleaseMessage(); err != nil {
		t.Errorf("release after close: %v", err)
	}
	if _, err := c.ReserveMessage(1); !errors.Is(err, net.ErrClosed) {
		t.Errorf("reserve after close: %v", err)
	}
	if _, err := c.BorrowMessage(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("borrow after close: %v", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second close: %v", err)
	}
}

// TestZeroCopyWaits fills the ring of a child that never reads and checks
// that ReserveMessage waits for room and gives up on the write deadline,
// on its context, and on Close from another goroutine; that a writer waits
// behind a reservation and goes once it is committed; and that a passing
// deadline does not fail the commit of room already reserved.
func TestZeroCopyWaits(t *testing.T) {
	linkDir(t)
	l, err := Listen("waits", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	startChild(t, "hold", "waits")
	s := acceptTest(t, l)

	// A writer waits behind a reservation.
	b, err := s.ReserveMessage(100)
	if err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() { wrote <- s.WriteMessage([]byte("second")) }()
	select {
	case err := <-wrote:
		t.Fatalf("a write went past a reservation: %v", err)
	case <-time.After(20 * time.Millisecond): // it should still be waiting; never flaky the other way
	}
	// A deadline that passes during the reservation does not fail the commit.
	if err := s.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	copy(b, "first")
	if err := s.CommitMessage(5); err != nil {
		t.Fatalf("commit after the deadline passed: %v", err)
	}
	if err := <-wrote; !errors.Is(err, ErrTimeout) {
		t.Fatalf("write after the deadline: %v", err)
	}
	if _, err := s.ReserveMessage(1); !errors.Is(err, ErrTimeout) {
		t.Fatalf("reserve after the deadline: %v", err)
	}
	s.SetWriteDeadline(time.Time{})

	// Fill the ring, then wait for room that never comes.
	for {
		err := s.WriteMessageContext(expiredSoon(t, 50*time.Millisecond), make([]byte, DefaultRingSize/4))
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	s.SetWriteDeadline(time.Now().Add(30 * time.Millisecond))
	if _, err := s.ReserveMessage(DefaultRingSize / 2); !errors.Is(err, ErrTimeout) {
		t.Fatalf("reserve on a full ring past the deadline: %v", err)
	}
	s.SetWriteDeadline(time.Time{})
	if _, err := s.ReserveMessageContext(expiredSoon(t, 30*time.Millisecond), DefaultRingSize/2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("reserve on a full ring past the context: %v", err)
	}
	reserved := make(chan error, 1)
	go func() {
		_, err := s.ReserveMessage(DefaultRingSize / 2)
		reserved <- err
	}()
	s.Close() // before or during the wait: the same error

	if err := <-reserved; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("reserve waiting through Close: %v", err)
	}
}

// expiredSoon returns a context that ends after d.
func expiredSoon(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestZeroCopyHostilePeer lends a message in place and has the peer, a
// child that scribbles on its own ring, rewrite the lent bytes and its
// chunk header and then move its tail backwards: the lent slice changes
// under the reader but stays valid memory, the release succeeds, and the
// next read fails the link with ErrCorrupt, without a panic.
func TestZeroCopyHostilePeer(t *testing.T) {
	for _, how := range []string{"backwards", "past-ring", "unaligned"} {
		t.Run(how, func(t *testing.T) {
			linkDir(t)
			startChild(t, "zc-scribbler", "scribble", how)
			c := dialTest(t, "scribble")
			want := bytes.Repeat([]byte("lent"), 100)
			m, err := c.BorrowMessage()
			if err != nil || !bytes.Equal(m, want) {
				t.Fatalf("borrow: %d bytes, %v", len(m), err)
			}
			if err := c.WriteMessage([]byte("scribble now")); err != nil {
				t.Fatal(err)
			}
			// The peer says when it has scribbled, in a message after its tail
			// moved: wait for the lent bytes to change instead.
			deadline := time.Now().Add(10 * time.Second)
			for bytes.Equal(m, want) {
				if time.Now().After(deadline) {
					t.Fatal("the peer never scribbled")
				}
				time.Sleep(time.Millisecond)
			}
			if err := c.ReleaseMessage(); err != nil {
				t.Fatalf("release: %v", err)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.BorrowMessage(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("borrow after the peer moved its tail %s: %v", how, err)
			}
		})
	}
}

// childZeroCopyScribbler listens on args[0], sends one message, and when
// told to, overwrites that message's bytes and header in its ring and sets
// the ring's tail as args[1] says: backwards, past a ring ahead of the
// reader, or to an unaligned value.
func childZeroCopyScribbler(args []string) error {
	if err := childArgs(args, 2); err != nil {
		return err
	}
	return serveOne(args[0], func(c *Conn) error { return scribble(c, args[1]) })
}

func scribble(c *Conn, how string) error {
	if err := c.WriteMessage(bytes.Repeat([]byte("lent"), 100)); err != nil {
		return err
	}
	if _, err := c.ReadMessage(); err != nil {
		return err
	}
	seg := &rawSeg{mem: c.ep.seg.Mem(), layout: ring.Layout{RingSize: [2]uint64{c.ep.wr.Size(), c.ep.wr.Size()}}}
	data := seg.data(ring.ServerToClient)
	tail := seg.word(ring.ServerToClient, rawTail)
	t := tail.Load()
	switch how {
	case "backwards":
		t -= 8
	case "past-ring":
		t += 2 * c.ep.wr.Size()
	case "unaligned":
		t += 3
	}
	tail.Store(t)
	for i := range 64 { // the header and the start of the payload
		data[i] = 0xff
	}
	_, err := c.ReadMessage() // until the reader gives up on us
	if err != nil && !errors.Is(err, ErrPeerLost) && err != io.EOF {
		return err
	}
	return nil
}
