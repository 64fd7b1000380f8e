package ring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// TestReadBatchShortPathMatchesGeneral: ReadBatch with Consumer.wholes
// gives, on rings laid out by hand (as a peer may), the same messages,
// errors, indices and counters (HighWater included) as the general path.
// Each case targets one check of wholes that FuzzShortPath lets go.
func TestReadBatchShortPathMatchesGeneral(t *testing.T) {
	type chunk struct {
		at, length uint64
		flags      uint8
	}
	const end = MinRingSize
	cases := []struct {
		name       string
		head, tail uint64
		chunks     []chunk
		max        uint64
		buf        int
	}{
		// wholes ends on head == tail and refreshes: HighWater must be
		// computed from the head it reached (c.head = head first).
		{"counters", 0, 64, []chunk{{0, 5, 3}, {16, 0, 3}, {24, 20, 3}, {56, 1, 3}}, 1000, 512},
		// MaxMessage below the buffer: the l > max check.
		{"max", 0, 88, []chunk{{0, 10, 3}, {24, 50, 3}}, 20, 512},
		// A Begin|End chunk whose frame runs past the end of the data area
		// (the published bytes wrap): hdrLen+align8(l) > avail.
		{"past end", end - 32, end + 8, []chunk{{end - 32, 8, 3}, {end - 16, 12, 3}}, 1000, 512},
		// A Begin|End chunk whose frame runs past the published tail.
		{"past tail", 0, 40, []chunk{{0, 8, 3}, {16, 100, 3}}, 1000, 512},
		// A message ending exactly at the end of the data area, then one
		// after the wrap.
		{"at end", end - 32, end + 16, []chunk{{end - 32, 8, 3}, {end - 16, 8, 3}, {end, 3, 3}}, 1000, 512},
		// The buffer filled exactly, then zero-length messages.
		{"zero length", 0, 40, []chunk{{0, 8, 3}, {16, 8, 3}, {32, 0, 3}}, 1000, 16},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got [2]string
			for k, general := range []bool{false, true} {
				l, mem := newTestSegment(t, MinRingSize)
				r := l.Ring(mem, ClientToServer)
				for i := range r.data {
					r.data[i] = 0xAA // what a peer left beyond the tail
				}
				for _, c := range tc.chunks {
					binary.LittleEndian.PutUint64(r.data[c.at&r.mask:], c.length|uint64(c.flags)<<32)
					for i := uint64(0); i < c.length; i++ {
						r.data[(c.at+8+i)&r.mask] = byte(c.at + i)
					}
				}
				r.ctl.head.Store(tc.head)
				r.ctl.tail.Store(tc.tail)
				c, err := NewConsumer(r, eofWaiter)
				if err != nil {
					t.Fatal(err)
				}
				rd := NewReader(c, false)
				rd.general = general
				rd.MaxMessage = tc.max
				var s string
				for call := 0; call < 3; call++ {
					buf := make([]byte, tc.buf)
					sizes := make([]int, 8)
					n, err := rd.ReadBatch(bg, buf, sizes)
					s += fmt.Sprintf("call %d: n=%d err=%s sizes=%v head=%d tail=%d msgs=%d bytes=%d high=%d\n",
						call, n, errClass(err), sizes[:n], c.head, c.tail, c.Messages, c.Bytes, c.HighWater)
					off := 0
					for _, sz := range sizes[:n] {
						s += fmt.Sprintf("  %x\n", buf[off:off+sz])
						off += sz
					}
					if err != nil && errClass(err) != "too large" {
						break
					}
				}
				got[k] = s
			}
			if got[0] != got[1] {
				t.Errorf("short path:\n%s\ngeneral path:\n%s", got[0], got[1])
			}
		})
	}
}

// TestWriteMessagesRoomAndCounters: a batch of small messages into a ring
// whose free room wraps (the reader has read up to the middle) stops at
// the room it has, leaves what was written intact, and counts it.
func TestWriteMessagesRoomAndCounters(t *testing.T) {
	p, rd := pair(t, 4096)
	full := errors.New("full")
	p.w.(*testWaiter).space = func(uint64) error { return full }
	if err := p.WriteMessage(bg, message(1000, 2000)); err != nil {
		t.Fatal(err)
	}
	if _, err := rd.ReadMessage(bg); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Free(); err != nil { // the producer sees the room
		t.Fatal(err)
	}
	msgs0, bytes0 := p.Messages, p.Bytes
	var batch [][]byte
	for i := range 100 {
		batch = append(batch, message(uint32(i), 50))
	}
	n, err := p.WriteMessages(bg, batch)
	if err != full || n != 63 { // 32 to the end, 1 after the pad, 30 more
		t.Fatalf("WriteMessages = %d, %v; want 63, full", n, err)
	}
	if p.Messages-msgs0 != uint64(n) || p.Bytes-bytes0 != uint64(n*50) {
		t.Errorf("producer counted %d messages, %d bytes; want %d, %d", p.Messages-msgs0, p.Bytes-bytes0, n, n*50)
	}
	for i := range n {
		got, err := rd.ReadMessage(bg)
		if err != nil || !bytes.Equal(got, batch[i]) {
			t.Fatalf("message %d: %x, %v", i, got, err)
		}
	}
}

// TestWriteMessagesAbortOwed: TestAbortOwedWithRoom for a batch: the ABORT
// owed for a cut-off message comes before a batch of small messages
// (appendWholes' pendingAbort check).
func TestWriteMessagesAbortOwed(t *testing.T) {
	p, rd := cutOffWithRoom(t)
	batch := [][]byte{message(8, 50), message(9, 30)}
	if n, err := p.WriteMessages(bg, batch); n != 2 || err != nil {
		t.Fatal(n, err)
	}
	for i, want := range batch {
		got, err := rd.ReadMessage(bg)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("message %d: %d bytes, %v", i, len(got), err)
		}
	}
	if rd.Aborted != 1 {
		t.Errorf("Aborted = %d", rd.Aborted)
	}
}

// TestWriteMessagesLargeStreams: in a batch, a message whose frame is more
// than half the ring streams (chunks of at most a quarter) as WriteMessage
// streams it, even with the room free for it in one chunk.
func TestWriteMessagesLargeStreams(t *testing.T) {
	batched, _ := pair(t, 4096)
	single, _ := pair(t, 4096)
	single.general = true
	msg := message(1, 3000)
	if _, err := batched.WriteMessages(bg, [][]byte{message(0, 8), msg}); err != nil {
		t.Fatal(err)
	}
	for _, m := range [][]byte{message(0, 8), msg} {
		if err := single.WriteMessage(bg, m); err != nil {
			t.Fatal(err)
		}
	}
	if batched.tail != single.tail || !bytes.Equal(batched.r.data, single.r.data) {
		t.Errorf("batch left the ring at %d, WriteMessage at %d, or the bytes differ", batched.tail, single.tail)
	}
}
