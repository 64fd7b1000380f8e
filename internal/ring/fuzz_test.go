package ring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
	"unsafe"
)

// within reports whether b lies inside area.
func within(b, area []byte) bool {
	lo, hi := uintptr(unsafe.Pointer(&area[0])), uintptr(unsafe.Pointer(&area[0]))+uintptr(len(area))
	p := uintptr(unsafe.Pointer(&b[0]))
	return p >= lo && p+uintptr(len(b)) <= hi
}

// fuzzRing is a ring of MinRingSize holding data and the indices head and
// tail, as a peer may have left them.
func fuzzRing(t *testing.T, data []byte, head, tail uint64) *Ring {
	l, mem := newTestSegment(t, MinRingSize)
	r := l.Ring(mem, ClientToServer)
	copy(r.data, data)
	r.ctl.head.Store(head)
	r.ctl.tail.Store(tail)
	return r
}

// FuzzReader feeds arbitrary ring contents and indices to the chunk decoder.
// Whatever a peer writes, the reader must return messages or an error, and
// never panic, loop forever or allocate beyond its limit; a message lent
// in place by Borrow must lie within the ring's data area.
func FuzzReader(f *testing.F) {
	// Seeds: real traffic, then some hand-made damage.
	l, mem := newTestSegment(f, MinRingSize)
	r := l.Ring(mem, ClientToServer)
	p, _ := NewProducer(r, eofWaiter)
	for _, n := range []int{0, 5, 100, 3000} {
		p.WriteMessage(bg, make([]byte, n))
	}
	f.Add(append([]byte(nil), r.data...), uint64(0), p.tail, false)
	f.Add(append([]byte(nil), r.data...), uint64(8), p.tail, true)
	long := make([]byte, 64)
	binary.LittleEndian.PutUint32(long, 16)
	long[4] = FlagBegin
	binary.LittleEndian.PutUint64(long[8:], 1<<40)
	f.Add(long, uint64(0), uint64(64), false)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, FlagBegin | FlagEnd, 0, 0, 0}, uint64(0), uint64(8), false)
	f.Add([]byte{8, 0, 0, 0, FlagPad, 0, 0, 0}, uint64(MinRingSize-8), uint64(MinRingSize+8), false)

	f.Fuzz(func(t *testing.T, data []byte, head, tail uint64, resumed bool) {
		r := fuzzRing(t, data, head, tail)
		c, err := NewConsumer(r, eofWaiter)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("NewConsumer: %v", err)
			}
			return
		}
		rd := NewReader(c, resumed)
		rd.MaxMessage = 1 << 20
		buf := make([]byte, 512)
		for i := 0; i < 1000; i++ {
			var err error
			switch i % 4 {
			case 0:
				var m []byte
				m, err = rd.ReadMessage(bg)
				if uint64(len(m)) > rd.MaxMessage {
					t.Fatalf("message of %d bytes over the limit", len(m))
				}
			case 1:
				_, err = rd.ReadInto(bg, buf)
				var sb *ShortBufferError
				if errors.As(err, &sb) {
					_, err = rd.ReadMessage(bg)
				}
			case 2:
				_, err = rd.Read(bg, buf)
			case 3:
				var m []byte
				var inPlace bool
				m, inPlace, err = rd.Borrow(bg)
				if err == nil {
					if inPlace && len(m) > 0 && !within(m, r.data) {
						t.Fatalf("lent %d bytes outside the ring", len(m))
					}
					if uint64(len(m)) > rd.MaxMessage {
						t.Fatalf("lent message of %d bytes over the limit", len(m))
					}
					if err := rd.Release(); err != nil {
						t.Fatalf("release: %v", err)
					}
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return
			}
			if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrMessageTooLarge) {
				t.Fatalf("unexpected error %v", err)
			}
			if errors.Is(err, ErrCorrupt) {
				return
			}
		}
	})
}

// FuzzShortPath checks the short path of whole messages against the
// general one: two readers of the same arbitrary ring contents and
// indices (the readable bytes may wrap), one with the short path off, must
// return the same messages, the same kinds of error and the same indices
// and counters, call by call, with ReadInto, ReadMessage, ReadBatch, Read
// and Borrow mixed and buffers too short now and then.
func FuzzShortPath(f *testing.F) {
	l, mem := newTestSegment(f, MinRingSize)
	r := l.Ring(mem, ClientToServer)
	p, _ := NewProducer(r, eofWaiter)
	for _, n := range []int{0, 5, 100, 600, 3000, 64} {
		p.WriteMessage(bg, make([]byte, n))
	}
	f.Add(append([]byte(nil), r.data...), uint64(0), p.tail, uint16(0), false)
	f.Add(append([]byte(nil), r.data...), uint64(0), p.tail, uint16(0x5555), true)
	f.Add(append([]byte(nil), r.data...), uint64(MinRingSize-64), uint64(MinRingSize+1024), uint16(0x1234), false)
	// A stream of small messages, which ReadBatch's wholes takes in one loop
	// (the seeds above never reach it with a message it takes).
	l2, mem2 := newTestSegment(f, MinRingSize)
	r2 := l2.Ring(mem2, ClientToServer)
	p2, _ := NewProducer(r2, eofWaiter)
	for i := range 40 {
		p2.WriteMessage(bg, make([]byte, i%3*7))
	}
	f.Add(append([]byte(nil), r2.data...), uint64(0), p2.tail, uint16(0x0004), false)
	f.Add(append([]byte(nil), r2.data...), uint64(0), p2.tail, uint16(0xc004), false)
	f.Fuzz(func(t *testing.T, data []byte, head, tail uint64, pattern uint16, resumed bool) {
		var readers [2]*Reader
		for i := range readers {
			c, err := NewConsumer(fuzzRing(t, data, head, tail), eofWaiter)
			if err != nil {
				return
			}
			readers[i] = NewReader(c, resumed)
			readers[i].MaxMessage = 1000 >> (pattern >> 14) // 1000, 500, 250, 125: below the buffers too
		}
		readers[1].general = true
		for i := 0; i < 100; i++ {
			var got [2][]byte
			var errs [2]error
			mode := (int(pattern>>(i%16)&1)*3 + i) % 5
			for k, rd := range readers {
				buf := make([]byte, 7+i*13%700)
				var n int
				switch mode {
				case 0:
					got[k], errs[k] = rd.ReadMessage(bg)
				case 1:
					n, errs[k] = rd.ReadInto(bg, buf)
					got[k] = buf[:n]
				case 2:
					var sizes [5]int
					n, errs[k] = rd.ReadBatch(bg, buf, sizes[:])
					got[k] = fmt.Appendf(nil, "%v", sizes[:n])
					for _, size := range sizes[:n] {
						got[k] = append(got[k], buf[:size]...)
						buf = buf[size:]
					}
				case 3:
					n, errs[k] = rd.Read(bg, buf[:1+i%40])
					got[k] = buf[:n]
				case 4:
					var m []byte
					m, _, errs[k] = rd.Borrow(bg)
					got[k] = append([]byte(nil), m...)
					if errs[k] == nil {
						if err := rd.Release(); err != nil {
							t.Fatal(err)
						}
					}
				}
				got[k] = fmt.Appendf(got[k], "|%d %d %d %d %d", rd.c.head, rd.c.tail, rd.c.Messages, rd.c.Bytes, rd.c.HighWater)
			}
			if string(got[0]) != string(got[1]) || errClass(errs[0]) != errClass(errs[1]) {
				t.Fatalf("call %d mode %d: short path %q, %v; general path %q, %v", i, mode, got[0], errs[0], got[1], errs[1])
			}
			if errs[0] != nil && errClass(errs[0]) != "short buffer" && errClass(errs[0]) != "too large" {
				return
			}
		}
	})
}

// errClass names the kind of a reader's error, for comparisons.
func errClass(err error) string {
	var sb *ShortBufferError
	switch {
	case err == nil:
		return "nil"
	case errors.As(err, &sb):
		return "short buffer"
	case errors.Is(err, ErrCorrupt):
		return "corrupt"
	case errors.Is(err, ErrMessageTooLarge):
		return "too large"
	}
	return err.Error()
}
