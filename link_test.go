//go:build linux || windows

package shmlink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

const testRing = 64 << 10 // small rings make wrap-around and chunking common

// edgeSizes are the message sizes the issue names: 0, 1, ring-1, ring,
// ring+1 and many times the ring, plus the small/streamed boundary.
var edgeSizes = []int{0, 1, 12, 100, testRing/2 - 9, testRing/2 - 8, testRing - 1, testRing, testRing + 1, 7*testRing + 13}

func dialTest(t testing.TB, name string) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, name, &Config{RingSize: testRing})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends every size from several writers at once on c while reading
// the echoes, and checks that every message comes back once, intact and in
// each writer's order.
func exchange(t *testing.T, c *Conn, writers, rounds int) {
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				for i, n := range edgeSizes {
					seq := uint32(r*len(edgeSizes) + i)
					if err := c.WriteMessage(testMessage(uint32(w), seq, max(n, 12))); err != nil {
						errs <- fmt.Errorf("writer %d: %w", w, err)
						return
					}
				}
			}
		}()
	}
	next := make([]uint32, writers)
	total := writers * rounds * len(edgeSizes)
	for i := 0; i < total; i++ {
		m, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("read %d of %d: %v", i, total, err)
		}
		w, seq, err := checkMessage(m)
		if err != nil || int(w) >= writers {
			t.Fatalf("message %d: writer %d: %v", i, w, err)
		}
		if seq != next[w] {
			t.Fatalf("writer %d: got seq %d, want %d", w, seq, next[w])
		}
		if want := max(edgeSizes[int(seq)%len(edgeSizes)], 12); len(m) != want {
			t.Fatalf("writer %d seq %d: %d bytes, want %d", w, seq, len(m), want)
		}
		next[w]++
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestEchoAllSizesFromClient(t *testing.T) {
	linkDir(t)
	startChild(t, "echo-server", "echo")
	c := dialTest(t, "echo")
	exchange(t, c, 4, 3)
	st := c.Stats()
	if st.Sent.Messages != uint64(4*3*len(edgeSizes)) || st.Received.Messages != st.Sent.Messages {
		t.Errorf("stats: %+v", st)
	}
	if st.Sent.HighWater == 0 || st.Sent.HighWater > testRing {
		t.Errorf("sent high water %d", st.Sent.HighWater)
	}
}

// TestEchoAllSizesFromServer runs the same exchange with the roles swapped:
// the accepting side sends and the dialling child echoes.
func TestEchoAllSizesFromServer(t *testing.T) {
	linkDir(t)
	l, err := Listen("rev", &Config{RingSize: testRing})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	startChild(t, "echo-client", "rev")
	c, err := l.AcceptConn()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exchange(t, c, 3, 2)
}

// TestZeroLengthAndEOF checks that a zero-length message is delivered as one
// and that a clean close reads as io.EOF after the data.
func TestZeroLengthAndEOF(t *testing.T) {
	linkDir(t)
	l, err := Listen("z", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := startChild(t, "echo-client", "z")
	c, err := l.AcceptConn()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range [][]byte{{}, []byte("x"), {}} {
		if err := c.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
		got, err := c.ReadMessage()
		if err != nil || !bytes.Equal(got, m) {
			t.Fatalf("got %q, %v; want %q", got, err, m)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	ch.Wait(t) // the child saw io.EOF and exited cleanly
	if err := c.WriteMessage(nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after close: %v", err)
	}
	if _, err := c.ReadMessage(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after close: %v", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second close: %v", err)
	}
}

// TestStreamReadWrite uses the link as a net.Conn byte stream.
func TestStreamReadWrite(t *testing.T) {
	linkDir(t)
	startChild(t, "echo-server", "s")
	c := dialTest(t, "s")
	data := testMessage(1, 1, 3*testRing+5)
	go func() {
		for off := 0; off < len(data); off += 1000 {
			c.Write(data[off:min(off+1000, len(data))])
		}
	}()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("stream content differs")
	}
}

func TestReadDeadline(t *testing.T) {
	linkDir(t)
	startChild(t, "echo-server", "d")
	c := dialTest(t, "d")
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.ReadMessage()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	// The link still works after a timeout once the deadline is lifted.
	c.SetReadDeadline(time.Time{})
	if err := c.WriteMessage([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if m, err := c.ReadMessage(); err != nil || string(m) != "ping" {
		t.Fatalf("got %q, %v", m, err)
	}
	// A deadline set while a read is blocked unblocks it.
	done := make(chan error, 1)
	go func() { _, err := c.ReadMessage(); done <- err }()
	c.SetReadDeadline(time.Now())
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocked read not released by SetReadDeadline")
	}
}

// TestConcurrentClose: many goroutines closing one link, with reads and
// writes in flight, get one nil and otherwise net.ErrClosed, and nothing
// crashes (the memory is unmapped exactly once, after the last user).
func TestConcurrentClose(t *testing.T) {
	linkDir(t)
	startChild(t, "echo-server", "cc")
	for round := 0; round < 5; round++ {
		c := dialTest(t, "cc")
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(2)
			go func() { defer wg.Done(); c.ReadMessage() }()
			go func() { defer wg.Done(); c.WriteMessage(make([]byte, 100000)) }()
		}
		results := make(chan error, 8)
		for i := 0; i < 8; i++ {
			go func() { results <- c.Close() }()
		}
		nils := 0
		for i := 0; i < 8; i++ {
			if err := <-results; err == nil {
				nils++
			} else if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Close: %v", err)
			}
		}
		wg.Wait()
		if nils != 1 {
			t.Fatalf("%d Close calls returned nil, want 1", nils)
		}
	}
}
