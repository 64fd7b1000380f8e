package workload

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"slices"
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

// batchRecorder is an unbuffered stream that takes batches, recording
// their sizes.
type batchRecorder struct {
	Conn
	batches []int
}

func (b *batchRecorder) WriteMessages(msgs [][]byte) (int, error) {
	b.batches = append(b.batches, len(msgs))
	for i, m := range msgs {
		if err := b.WriteMessage(m); err != nil {
			return i, err
		}
	}
	return len(msgs), nil
}

// TestOneWayBatches checks that a one-way stream over a BatchWriter hands
// its messages over in batches of BufferSize bytes, at least one message
// each, and that the peer gets them all.
func TestOneWayBatches(t *testing.T) {
	for _, c := range []struct {
		size, n int
		want    []int
	}{
		{64, 2500, []int{1024, 1024, 452}},
		{CopyMax, 20, []int{16, 4}},
		{1 << 20, 3, []int{1, 1, 1}},
		{0, 3, []int{3}},
	} {
		a, b := net.Pipe()
		rec := &batchRecorder{Conn: NewStream(a)}
		served := make(chan error, 1)
		go func() { served <- Serve(NewStream(b)) }()
		d := NewDriver(rec)
		if _, err := d.OneWay(c.size, c.n); err != nil {
			t.Fatalf("%d messages of %d bytes: %v", c.n, c.size, err)
		}
		if err := d.quit(); err != nil {
			t.Fatal(err)
		}
		if err := <-served; err != nil {
			t.Fatal(err)
		}
		a.Close()
		if !slices.Equal(rec.batches, c.want) {
			t.Errorf("%d messages of %d bytes: batches %v, want %v", c.n, c.size, rec.batches, c.want)
		}
	}
}

// TestTransportRuns checks which workloads a transport takes part in.
func TestTransportRuns(t *testing.T) {
	plain, buffered := &Transport{}, &Transport{Buffered: true}
	small := &Transport{Buffered: true, StreamsUpTo: CopyMax}
	for _, c := range []struct {
		t         *Transport
		size      int
		roundTrip bool
		want      bool
	}{
		{plain, 64, true, true}, {plain, 1 << 20, false, true},
		{buffered, 64, true, false}, {buffered, 1 << 20, false, true},
		{small, 64, true, false}, {small, CopyMax, false, true}, {small, CopyMax + 1, false, false},
	} {
		if got := c.t.Runs(c.size, c.roundTrip); got != c.want {
			t.Errorf("%+v.Runs(%d, %v) = %v, want %v", *c.t, c.size, c.roundTrip, got, c.want)
		}
	}
}
