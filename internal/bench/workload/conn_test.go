package workload

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// writeCounter counts the writes that reach a buffer.
type writeCounter struct {
	bytes.Buffer
	writes int
}

func (w *writeCounter) Write(b []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(b)
}

// message returns a message of n bytes that tells its position i apart.
func message(i, n int) []byte {
	m := make([]byte, n)
	for k := range m {
		m[k] = byte(i + k*3)
	}
	return m
}

// TestStreamFraming writes messages of every size class through both kinds
// of stream and parses them back.
func TestStreamFraming(t *testing.T) {
	sizes := []int{0, 1, 64, CopyMax, CopyMax + 1, 64, BufferSize - 4, BufferSize, 3, 1<<20 + 5, 0}
	for _, buffered := range []bool{false, true} {
		t.Run(fmt.Sprintf("buffered=%v", buffered), func(t *testing.T) {
			var w writeCounter
			s := newStream(nil, &w, nil, buffered)
			for i, n := range sizes {
				if err := s.WriteMessage(message(i, n)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			r := newStream(&w.Buffer, nil, nil, false)
			buf := make([]byte, 2<<20)
			for i, n := range sizes {
				k, err := r.ReadMessageInto(buf)
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if !bytes.Equal(buf[:k], message(i, n)) {
					t.Fatalf("message %d: %d bytes, not the %d written", i, k, n)
				}
			}
			if _, err := r.ReadMessageInto(buf); err != io.EOF {
				t.Fatalf("after the last message: %v, want EOF", err)
			}
		})
	}
}

// TestStreamWrites checks how often each kind of stream calls write: once
// per small message unbuffered, once per full buffer buffered.
func TestStreamWrites(t *testing.T) {
	const n, size = 5000, 64
	perBuffer := BufferSize / (4 + size)
	for _, c := range []struct {
		buffered      bool
		before, after int // writes before and after Flush
	}{
		{false, n, n},
		{true, n / perBuffer, n/perBuffer + 1},
	} {
		var w writeCounter
		s := newStream(nil, &w, nil, c.buffered)
		msg := message(0, size)
		for range n {
			if err := s.WriteMessage(msg); err != nil {
				t.Fatal(err)
			}
		}
		before := w.writes
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		if before != c.before || w.writes != c.after || w.Len() != n*(4+size) {
			t.Errorf("buffered=%v: %d writes, %d after Flush, %d bytes; want %d, %d, %d",
				c.buffered, before, w.writes, w.Len(), c.before, c.after, n*(4+size))
		}
	}
}

// TestStreamAllocs checks that writing allocates nothing, large messages
// included.
func TestStreamAllocs(t *testing.T) {
	s := newStream(nil, io.Discard, nil, true)
	small, large := message(0, 64), message(1, 1<<20)
	allocs := testing.AllocsPerRun(100, func() {
		if err := s.WriteMessage(small); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteMessage(large); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per two messages, want 0", allocs)
	}
}
