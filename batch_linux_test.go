package shmlink

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// TestBatchAPI: WriteMessages and ReadMessagesInto carry a batch of every
// size to an echo server in another process and back, whole and in order;
// a batch with one message over the peer's limit sends nothing.
func TestBatchAPI(t *testing.T) {
	linkDir(t)
	startChild(t, "echo-server", "batch")
	c := dialTest(t, "batch")
	var batch [][]byte
	for i, n := range edgeSizes {
		batch = append(batch, testMessage(0, uint32(i), max(n, 12)))
	}
	for i := 0; i < 200; i++ {
		batch = append(batch, testMessage(0, uint32(len(batch)), 64))
	}
	go func() {
		if n, err := c.WriteMessages(batch); err != nil || n != len(batch) {
			t.Errorf("WriteMessages = %d, %v", n, err)
		}
	}()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 8*testRing)
	sizes := make([]int, 64)
	got, calls := 0, 0
	for got < len(batch) {
		n, err := c.ReadMessagesInto(buf, sizes)
		if err != nil {
			t.Fatalf("after %d messages: %v", got, err)
		}
		calls++
		off := 0
		for _, s := range sizes[:n] {
			if !bytes.Equal(buf[off:off+s], batch[got]) {
				t.Fatalf("message %d differs", got)
			}
			off += s
			got++
		}
	}
	t.Logf("%d messages in %d reads", got, calls)

	limited, err := Listen("limited", &Config{MaxMessageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer limited.Close()
	lc, err := Dial(context.Background(), "limited", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	n, err := lc.WriteMessages([][]byte{[]byte("small"), make([]byte, 101)})
	if n != 0 || !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("a batch with a message over the limit: %d, %v; want none sent and ErrMessageTooLarge", n, err)
	}
	s, err := limited.AcceptConn()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := s.ReadMessage(); !errors.Is(err, ErrTimeout) {
		t.Fatalf("the refused batch delivered something: %v", err)
	}
}

// TestBufferMessage: messages of every size buffered with BufferMessage
// reach a sink in another process whole and in order, published by Flush,
// and by Close or CloseWrite with nothing lost.
func TestBufferMessage(t *testing.T) {
	linkDir(t)
	for _, end := range []string{"close", "closewrite"} {
		t.Run(end, func(t *testing.T) {
			l, err := Listen("buffered-"+end, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			ch := startChild(t, "sink", "buffered-"+end)
			s, err := l.AcceptConn()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.SetDeadline(time.Now().Add(20 * time.Second))
			seq := uint32(0)
			buffer := func(n int, size func(seq uint32) int) {
				t.Helper()
				for range n {
					if err := s.BufferMessage(testMessage(0, seq, size(seq))); err != nil {
						t.Fatalf("message %d: %v", seq, err)
					}
					seq++
				}
			}
			edge := func(seq uint32) int { return max(edgeSizes[seq%uint32(len(edgeSizes))], 12) }
			buffer(300, edge)
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := s.BufferMessage([]byte("?")); err != nil {
				t.Fatal(err)
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			if got, err := s.ReadMessage(); err != nil || string(got) != "300" {
				t.Fatalf("the sink counted %q, %v; want 300", got, err)
			}
			buffer(90, edge)
			buffer(10, func(uint32) int { return 100 }) // not enough to publish itself
			if end == "closewrite" {
				err = s.CloseWrite()
			} else {
				err = s.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
			ch.Stdout.Expect(t, "eof 400")
			ch.Wait(t)
			// Nothing buffered: Flush does nothing, the peer gone or not.
			if err := s.Flush(); err != nil {
				t.Errorf("Flush with nothing buffered, after %s and the peer's exit: %v", end, err)
			}
		})
	}
}
