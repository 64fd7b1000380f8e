package ring

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
)

// newTestSegment returns a segment in ordinary memory. In-process tests of
// the ring logic only; links between processes are tested in package shmlink.
func newTestSegment(t testing.TB, ringSize uint64) (Layout, []byte) {
	l := Layout{RingSize: [2]uint64{ringSize, ringSize}}
	mem := make([]byte, l.Size())
	if err := Init(mem, l); err != nil {
		t.Fatal(err)
	}
	return l, mem
}

// testWaiter stands in for package shmlink's waiting in in-process tests.
// A nil func yields the processor and reports that the condition may hold.
type testWaiter struct {
	data  func() error
	space func(need uint64) error
}

func (w *testWaiter) WaitData(context.Context) error {
	if w.data != nil {
		return w.data()
	}
	runtime.Gosched()
	return nil
}

func (w *testWaiter) WaitSpace(_ context.Context, need uint64) error {
	if w.space != nil {
		return w.space(need)
	}
	runtime.Gosched()
	return nil
}

func (w *testWaiter) NotifyData()  {}
func (w *testWaiter) NotifySpace() {}

// eofWaiter never waits: an empty or full ring ends the operation.
var eofWaiter = &testWaiter{data: func() error { return io.EOF }, space: func(uint64) error { return io.EOF }}

var bg = context.Background()

func pair(t testing.TB, ringSize uint64) (*Producer, *Reader) {
	l, mem := newTestSegment(t, ringSize)
	got, err := Parse(mem)
	if err != nil || got != l {
		t.Fatalf("Parse = %v, %v", got, err)
	}
	r := l.Ring(mem, ClientToServer)
	p, err := NewProducer(r, &testWaiter{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConsumer(r, &testWaiter{})
	if err != nil {
		t.Fatal(err)
	}
	rd := NewReader(c, false)
	return p, rd
}

// message builds a payload of n bytes whose first bytes carry seq and a
// checksum of the rest, so any loss, duplication or corruption shows.
func message(seq uint32, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(int(seq)*7 + i)
	}
	if n >= 8 {
		binary.LittleEndian.PutUint32(b, seq)
		binary.LittleEndian.PutUint32(b[4:], crc32.ChecksumIEEE(b[8:]))
	}
	return b
}

func TestMessagesOfEverySize(t *testing.T) {
	const ring = 4096
	sizes := []int{0, 1, 7, 8, 9, 63, 64, ring/2 - 9, ring/2 - 8, ring/2 - 7, ring - 1, ring, ring + 1, 5*ring + 3, 64 << 10}
	for _, mode := range []string{"ReadMessage", "ReadInto", "Read"} {
		t.Run(mode, func(t *testing.T) {
			p, rd := pair(t, ring)
			var want [][]byte
			for round := 0; round < 3; round++ {
				for i, n := range sizes {
					want = append(want, message(uint32(round*100+i), n))
				}
			}
			done := make(chan error, 1)
			go func() {
				for _, m := range want {
					if err := p.WriteMessage(bg, m); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			buf := make([]byte, 64<<10)
			for i, w := range want {
				var got []byte
				var err error
				switch mode {
				case "ReadMessage":
					got, err = rd.ReadMessage(bg)
				case "ReadInto":
					var n int
					n, err = rd.ReadInto(bg, buf)
					got = buf[:n]
				case "Read":
					got = make([]byte, len(w))
					_, err = io.ReadFull(readerFunc(func(b []byte) (int, error) { return rd.Read(bg, b) }), got)
				}
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if !bytes.Equal(got, w) {
					t.Fatalf("message %d (%d bytes): got %d bytes, content differs", i, len(w), len(got))
				}
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if mode != "Read" && rd.c.Messages != uint64(len(want)) {
				t.Errorf("Messages = %d, want %d", rd.c.Messages, len(want))
			}
		})
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

func TestRandomSizesStress(t *testing.T) {
	p, rd := pair(t, 8192)
	const n = 3000
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := make([]int, n)
	for i := range sizes {
		sizes[i] = rng.IntN(20000)
	}
	go func() {
		for i, s := range sizes {
			if err := p.WriteMessage(bg, message(uint32(i), s)); err != nil {
				panic(err)
			}
		}
	}()
	for i, s := range sizes {
		got, err := rd.ReadMessage(bg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, message(uint32(i), s)) {
			t.Fatalf("message %d differs", i)
		}
	}
}

func TestShortBufferConsumesNothing(t *testing.T) {
	p, rd := pair(t, 4096)
	m := message(1, 100)
	if err := p.WriteMessage(bg, m); err != nil {
		t.Fatal(err)
	}
	_, err := rd.ReadInto(bg, make([]byte, 10))
	var sb *ShortBufferError
	if !errors.As(err, &sb) || sb.Need != 100 || !errors.Is(err, io.ErrShortBuffer) {
		t.Fatalf("err = %v", err)
	}
	got, err := rd.ReadMessage(bg)
	if err != nil || !bytes.Equal(got, m) {
		t.Fatalf("after short buffer: %v", err)
	}
}

func TestOversizedMessageSkipped(t *testing.T) {
	p, rd := pair(t, 4096)
	rd.MaxMessage = 1000
	go func() {
		for _, n := range []int{10, 5000, 1001, 20} {
			p.WriteMessage(bg, message(uint32(n), n))
		}
	}()
	for _, want := range []int{10, -5000, -1001, 20} {
		got, err := rd.ReadMessage(bg)
		if want < 0 {
			if !errors.Is(err, ErrMessageTooLarge) {
				t.Fatalf("want ErrMessageTooLarge, got %v", err)
			}
			continue
		}
		if err != nil || len(got) != want {
			t.Fatalf("got %d bytes, %v; want %d", len(got), err, want)
		}
	}
}

func TestAbortedMessageDropped(t *testing.T) {
	p, rd := pair(t, 4096)
	stop := errors.New("stop")
	calls := 0
	// The writer gives up part-way through a streamed message.
	p.w.(*testWaiter).space = func(uint64) error {
		calls++
		return stop
	}
	err := p.WriteMessage(bg, make([]byte, 10000))
	p.w.(*testWaiter).space = nil
	if err != stop {
		t.Fatalf("WriteMessage = %v", err)
	}
	go func() {
		if err := p.WriteMessage(bg, message(9, 50)); err != nil {
			panic(err)
		}
	}()
	got, err := rd.ReadMessage(bg)
	if err != nil || !bytes.Equal(got, message(9, 50)) {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
	if rd.Aborted != 1 {
		t.Errorf("Aborted = %d", rd.Aborted)
	}
}

func TestCorruptIndices(t *testing.T) {
	l, mem := newTestSegment(t, 4096)
	r := l.Ring(mem, ClientToServer)
	c, _ := NewConsumer(r, eofWaiter)
	rd := NewReader(c, false)
	r.ctl.tail.Store(4096 + 8) // more than the ring holds
	if _, err := rd.ReadMessage(bg); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
	p, _ := NewProducer(l.Ring(mem, ServerToClient), eofWaiter)
	l.Ring(mem, ServerToClient).ctl.head.Store(64) // consumer ahead of producer
	if _, err := p.Free(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
}

func TestParseRejectsBadHeaders(t *testing.T) {
	l, mem := newTestSegment(t, 4096)
	cases := map[string]func([]byte){
		"magic":    func(m []byte) { m[0] = 'X' },
		"version":  func(m []byte) { m[offVersion] = 9 },
		"ringsize": func(m []byte) { binary.LittleEndian.PutUint64(m[offRingSize:], 5000) },
		"total":    func(m []byte) { binary.LittleEndian.PutUint64(m[offTotal:], 1<<40) },
	}
	for name, mutate := range cases {
		m := bytes.Clone(mem)
		mutate(m)
		if _, err := Parse(m); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if _, err := Parse(mem[:l.Size()-8]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short mapping accepted")
	}
}

// TestWriteMessagesBatch: a batch of every size, larger than the ring, so
// that the producer must publish part of it to make room, arrives whole
// and in order; small messages of a batch that fits are published once.
func TestWriteMessagesBatch(t *testing.T) {
	const ring = 4096
	p, rd := pair(t, ring)
	var batch [][]byte
	for i, n := range []int{0, 1, 64, 100, ring/2 - 8, 3000, 64 << 10, 8, 8, 8} {
		batch = append(batch, message(uint32(i), n))
	}
	done := make(chan error, 1)
	go func() {
		n, err := p.WriteMessages(bg, batch)
		if err == nil && n != len(batch) {
			err = errors.New("short batch")
		}
		done <- err
	}()
	for i, want := range batch {
		got, err := rd.ReadMessage(bg)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("message %d: %d bytes, %v; want %d", i, len(got), err, len(want))
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	small := [][]byte{message(1, 10), message(2, 20), message(3, 30)}
	before := p.r.ctl.tail.Load()
	if n, err := p.WriteMessages(bg, small); n != 3 || err != nil {
		t.Fatalf("WriteMessages = %d, %v", n, err)
	}
	if after := p.r.ctl.tail.Load(); after != p.tail || after == before {
		t.Fatalf("published tail %d, producer at %d", after, p.tail)
	}
	for _, want := range small {
		if got, err := rd.ReadMessage(bg); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("got %q, %v", got, err)
		}
	}
}

// TestWriteMessagesLayout: a batch, with the short path of small messages,
// lays its messages out in the ring exactly as the general path of
// WriteMessage does one by one (writeSmall), pads among them, at every
// offset of a ring that wraps many times. Messages go in one chunk each:
// how a streamed one is cut depends on the room the reader has made at
// that moment (TestHalfRingStreams checks that those do stream).
func TestWriteMessagesLayout(t *testing.T) {
	for _, ring := range []int{MinRingSize, 8192} {
		t.Run(fmt.Sprint(ring), func(t *testing.T) { testWriteMessagesLayout(t, ring) })
	}
}

func testWriteMessagesLayout(t *testing.T, ring int) {
	batched, rb := pair(t, uint64(ring))
	single, rs := pair(t, uint64(ring))
	single.general = true
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 4*ring)
	for round := 0; round < 2000; round++ {
		var batch [][]byte
		for total := 0; len(batch) < 1+rng.IntN(20); {
			n := rng.IntN(300)
			if rng.IntN(10) == 0 {
				n = rng.IntN(ring/2 - hdrLen)
			}
			if total+n+16 > ring/2 && len(batch) > 0 {
				break
			}
			total += n + 16
			batch = append(batch, message(uint32(round), n))
		}
		done := make(chan error, 1)
		go func() {
			_, err := batched.WriteMessages(bg, batch)
			done <- err
		}()
		for i := range batch {
			if n, err := rb.ReadInto(bg, buf); err != nil || !bytes.Equal(buf[:n], batch[i]) {
				t.Fatalf("round %d, message %d: %d bytes, %v", round, i, n, err)
			}
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		go func() {
			for _, m := range batch {
				if err := single.WriteMessage(bg, m); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		for range batch {
			if _, err := rs.ReadInto(bg, buf); err != nil {
				t.Fatal(err)
			}
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if batched.tail != single.tail || !bytes.Equal(batched.r.data, single.r.data) {
			t.Fatalf("round %d: the batch left the ring at %d, differing from WriteMessage's at %d", round, batched.tail, single.tail)
		}
	}
}

// TestWriteMessagesPublishesWhatFits: a batch cut off by a failed wait
// reports how many messages went whole, and those are published.
func TestWriteMessagesPublishesWhatFits(t *testing.T) {
	p, rd := pair(t, 4096)
	p.w.(*testWaiter).space = func(uint64) error { return io.ErrClosedPipe }
	batch := [][]byte{message(1, 1500), message(2, 1500), message(3, 1500)} // two fit a 4 KiB ring
	n, err := p.WriteMessages(bg, batch)
	if err != io.ErrClosedPipe || n != 2 {
		t.Fatalf("WriteMessages = %d, %v; want 2 and the wait's error", n, err)
	}
	for i := 0; i < n; i++ {
		if got, err := rd.ReadMessage(bg); err != nil || !bytes.Equal(got, batch[i]) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
}

// TestReadBatch: whole small messages already in the ring come in one
// call; a streamed message, or one that does not fit, waits for the next.
func TestReadBatch(t *testing.T) {
	p, rd := pair(t, 8192)
	want := [][]byte{message(1, 10), message(2, 0), message(3, 300), message(4, 5000), message(5, 20), message(6, 3000)}
	written := make(chan error, 1)
	go func() { _, err := p.WriteMessages(bg, want); written <- err }()
	buf := make([]byte, 6000)
	sizes := make([]int, 8)
	var got [][]byte
	for len(got) < len(want) {
		n, err := rd.ReadBatch(bg, buf, sizes)
		if err != nil || n == 0 {
			t.Fatalf("ReadBatch = %d, %v", n, err)
		}
		off := 0
		for _, s := range sizes[:n] {
			got = append(got, bytes.Clone(buf[off:off+s]))
			off += s
		}
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("message %d differs", i)
		}
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	if rd.c.r.ctl.head.Load() != rd.c.head {
		t.Errorf("read index not published after the batch")
	}
}

// TestReservedIgnored: reserved chunk bytes, undefined flag bits and unused
// header bytes are ignored (PROTOCOL.md, "Reserved fields"), while an
// invalid combination of the defined flags is still corruption.
func TestReservedIgnored(t *testing.T) {
	l, mem := newTestSegment(t, 4096)
	for i := offRingSize + 16; i < offControl; i++ {
		mem[i] = 0xA5 // unused header bytes
	}
	if got, err := Parse(mem); err != nil || got != l {
		t.Fatalf("Parse with unused header bytes set: %v, %v", got, err)
	}
	r := l.Ring(mem, ClientToServer)
	// A whole message with every reserved bit and byte set.
	putHeader(r.data, 5, FlagBegin|FlagEnd, 0)
	r.data[4] |= 0xF0
	r.data[5], r.data[6], r.data[7] = 0xFF, 0x01, 0x80
	copy(r.data[8:], "hello")
	// Then a defined but invalid combination.
	putHeader(r.data[16:], 0, FlagBegin|FlagPad, 0)
	r.ctl.tail.Store(24)
	c, _ := NewConsumer(r, eofWaiter)
	rd := NewReader(c, false)
	if m, err := rd.ReadMessage(bg); err != nil || string(m) != "hello" {
		t.Fatalf("got %q, %v; want hello", m, err)
	}
	if _, err := rd.ReadMessage(bg); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("BEGIN|PAD: %v, want ErrCorrupt", err)
	}
}

// TestPadLength: a PAD chunk's length, like every chunk's, counts the bytes
// after its 8-byte header: with 64 bytes left before the end of the data
// area, the pad says 56 (PROTOCOL.md, "Chunks").
func TestPadLength(t *testing.T) {
	p, rd := pair(t, 4096)
	for range 2 { // two chunks of 2016 bytes leave 64 to the end
		if err := p.WriteMessage(bg, make([]byte, 2016-8)); err != nil {
			t.Fatal(err)
		}
		if _, err := rd.ReadMessage(bg); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.WriteMessage(bg, make([]byte, 100)); err != nil { // does not fit in 64
		t.Fatal(err)
	}
	pad := p.r.data[4096-64:]
	if n, f := binary.LittleEndian.Uint32(pad), pad[4]; n != 56 || f != FlagPad {
		t.Fatalf("pad chunk: length %d flags %#x, want 56 and PAD", n, f)
	}
	if m, err := rd.ReadMessage(bg); err != nil || len(m) != 100 {
		t.Fatalf("after the pad: %d bytes, %v", len(m), err)
	}
}

// TestReadIntoRefusesOversized: ReadInto, like ReadMessage, skips a message
// that claims more than MaxMessage instead of asking for a buffer of that
// size (a hostile peer may claim 2^64-1 bytes).
func TestReadIntoRefusesOversized(t *testing.T) {
	p, rd := pair(t, 4096)
	rd.MaxMessage = 1000
	go func() {
		p.WriteMessage(bg, make([]byte, 3000))
		p.WriteMessage(bg, message(7, 20))
	}()
	buf := make([]byte, 100)
	if _, err := rd.ReadInto(bg, buf); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversized message: %v, want ErrMessageTooLarge", err)
	}
	n, err := rd.ReadInto(bg, buf)
	if err != nil || !bytes.Equal(buf[:n], message(7, 20)) {
		t.Fatalf("the next message: %d bytes, %v", n, err)
	}
}

// TestBufferMessage: buffered messages stay unpublished until Flush or a
// publishing write; a run of them publishes itself once bufferMax bytes
// (a quarter of a smaller ring) wait; a message that must wait for room
// publishes what was buffered, so the consumer can make it; nothing is
// lost or reordered.
func TestBufferMessage(t *testing.T) {
	p, rd := pair(t, 1<<20)
	published := func() uint64 { return p.r.ctl.tail.Load() }
	for i := range 3 {
		if err := p.BufferMessage(bg, message(uint32(i), 100)); err != nil {
			t.Fatal(err)
		}
	}
	if published() != 0 {
		t.Fatalf("tail published at %d before Flush", published())
	}
	p.Flush()
	if published() != p.tail {
		t.Fatalf("tail published at %d after Flush, producer at %d", published(), p.tail)
	}
	if err := p.BufferMessage(bg, message(3, 100)); err != nil {
		t.Fatal(err)
	}
	before := published()
	if err := p.WriteMessage(bg, message(4, 100)); err != nil || published() != p.tail || published() == before {
		t.Fatalf("WriteMessage after a buffered one: %v, published %d, producer at %d", err, published(), p.tail)
	}
	// 64 KiB of buffered messages publish themselves.
	sent := 5
	for ; published() != p.tail || sent == 5; sent++ {
		if sent > 5+bufferMax/1000+1 {
			t.Fatalf("%d bytes buffered and still unpublished", p.tail-published())
		}
		if err := p.BufferMessage(bg, message(uint32(sent), 1000)); err != nil {
			t.Fatal(err)
		}
	}
	if got := p.tail - before; got < bufferMax || got > bufferMax+2000 {
		t.Errorf("published itself after %d bytes, want about %d", got, bufferMax)
	}
	for i := range sent {
		if got, err := rd.ReadMessage(bg); err != nil || binary.LittleEndian.Uint32(got) != uint32(i) {
			t.Fatalf("message %d: %d bytes, %v", i, len(got), err)
		}
	}

	// In a small ring: buffered messages, then one that needs room.
	p, rd = pair(t, 4096)
	waited := false
	p.w.(*testWaiter).space = func(uint64) error {
		if !waited && p.r.ctl.tail.Load() != p.tail {
			t.Error("waiting for room with messages unpublished")
		}
		waited = true
		runtime.Gosched()
		return nil
	}
	done := make(chan error, 1)
	sizes := []int{500, 500, 500, 3000, 8, 64 << 10, 8}
	go func() {
		for i, n := range sizes {
			if err := p.BufferMessage(bg, message(uint32(i), n)); err != nil {
				done <- err
				return
			}
		}
		p.Flush()
		done <- nil
	}()
	for i, n := range sizes {
		want := message(uint32(i), n)
		if got, err := rd.ReadMessage(bg); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("message %d: %d bytes, %v; want %d", i, len(got), err, n)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestHalfRingStreams: a message whose chunk is over half the ring streams
// in chunks of at most a quarter of it (WriteMessage; PROTOCOL.md 4.1: both
// implementations split alike), even when the room is free: the short path
// of small messages must not take it whole on a small ring.
func TestHalfRingStreams(t *testing.T) {
	p, _ := pair(t, MinRingSize)
	msg := make([]byte, 3000) // chunk 3008 > 2048, half of the ring
	if err := p.WriteMessage(bg, msg); err != nil {
		t.Fatal(err)
	}
	raw := binary.LittleEndian.Uint64(p.r.data)
	length, flags := uint32(raw), uint8(raw>>32)
	if flags != FlagBegin || uint64(length)+hdrLenLong > p.r.size/4 {
		t.Fatalf("first chunk: %d bytes, flags %#x; want a streamed Begin chunk of at most a quarter of the ring (%d)", length, flags, p.r.size/4)
	}
}

// TestWholeAtEnd: a Begin|End chunk at the end of the data area whose
// frame fits the published bytes (which wrap) but not the bytes before the
// end of the data area is corrupt, on the short path as on the general one.
func TestWholeAtEnd(t *testing.T) {
	for _, general := range []bool{false, true} {
		l, mem := newTestSegment(t, MinRingSize)
		r := l.Ring(mem, ClientToServer)
		off := uint64(MinRingSize - 16)
		binary.LittleEndian.PutUint64(r.data[off:], 12|uint64(FlagBegin|FlagEnd)<<32)
		r.ctl.head.Store(off)
		r.ctl.tail.Store(off + 24) // 16 bytes to the end, 8 after the wrap
		c, err := NewConsumer(r, eofWaiter)
		if err != nil {
			t.Fatal(err)
		}
		rd := NewReader(c, false)
		rd.general = general
		buf := make([]byte, 64)
		if _, err := rd.ReadInto(bg, buf); errClass(err) != "corrupt" {
			t.Fatalf("general=%v: ReadInto: %v, want corrupt", general, err)
		}
	}
}

// cutOffWithRoom returns a ring pair whose producer cut off a streamed
// message part-way (it owes an ABORT) and whose reader then took all that
// was published of it, leaving the ring empty.
func cutOffWithRoom(t *testing.T) (*Producer, *Reader) {
	t.Helper()
	p, rd := pair(t, 4096)
	stop := errors.New("stop")
	p.w.(*testWaiter).space = func(uint64) error { return stop }
	if err := p.WriteMessage(bg, make([]byte, 10000)); err != stop {
		t.Fatalf("WriteMessage = %v", err)
	}
	p.w.(*testWaiter).space = nil
	buf := make([]byte, 10000)
	for p.head != p.tail {
		if n, err := rd.Read(bg, buf); err != nil || n == 0 {
			t.Fatal(n, err)
		}
		if _, err := p.Free(); err != nil {
			t.Fatal(err)
		}
	}
	return p, rd
}

// TestAbortOwedWithRoom: a streamed message cut off part-way, then
// room made by the reader, then a small message: the ABORT owed must come
// before it, on the short path too (appendWhole's pendingAbort check),
// which TestAbortedMessageDropped, with its ring still full, never takes.
func TestAbortOwedWithRoom(t *testing.T) {
	p, rd := cutOffWithRoom(t)
	if err := p.WriteMessage(bg, message(9, 50)); err != nil {
		t.Fatal(err)
	}
	got, err := rd.ReadMessage(bg)
	if err != nil || !bytes.Equal(got, message(9, 50)) {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
	if rd.Aborted != 1 {
		t.Errorf("Aborted = %d", rd.Aborted)
	}
}

// TestWholeInsideMessage: a stream read that ends exactly at the end
// of a message's first chunk leaves the reader inside the message with no
// chunk current and nothing pending; a Begin|End chunk next is corrupt on
// the short path too (between's !inMsg), for each read that has one.
func TestWholeInsideMessage(t *testing.T) {
	for _, call := range []string{"ReadInto", "ReadMessage", "ReadBatch"} {
		l, mem := newTestSegment(t, MinRingSize)
		r := l.Ring(mem, ClientToServer)
		d := r.data
		binary.LittleEndian.PutUint64(d[0:], 8|uint64(FlagBegin)<<32) // first chunk: 8 of 16 bytes
		binary.LittleEndian.PutUint64(d[8:], 16)
		binary.LittleEndian.PutUint64(d[24:], 8|uint64(FlagBegin|FlagEnd)<<32) // a whole message inside it
		r.ctl.tail.Store(40)
		c, err := NewConsumer(r, eofWaiter)
		if err != nil {
			t.Fatal(err)
		}
		rd := NewReader(c, false)
		buf := make([]byte, 64)
		if n, err := rd.Read(bg, buf[:8]); n != 8 || err != nil {
			t.Fatal(n, err)
		}
		switch call {
		case "ReadInto":
			_, err = rd.ReadInto(bg, buf)
		case "ReadMessage":
			_, err = rd.ReadMessage(bg)
		case "ReadBatch":
			_, err = rd.ReadBatch(bg, buf, make([]int, 4))
		}
		if errClass(err) != "corrupt" {
			t.Errorf("%s: %v, want corrupt", call, err)
		}
	}
}
