package ring

import (
	"encoding/binary"
	"errors"
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
		l, mem := newTestSegment(t, MinRingSize)
		r := l.Ring(mem, ClientToServer)
		copy(r.data, data)
		r.ctl.head.Store(head)
		r.ctl.tail.Store(tail)
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
