package limit

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/shmlink/shmlink/internal/sys"
)

// The round trip limits: a message goes through one bare ring and comes
// back through another, each side spinning. Two shapes, each with its own
// pair of rings (RTRing bytes each, after the one-way ring):
//
//   - Indexed, the shape of shmlink's protocol: the writer stores the
//     message behind its length, then a published index on a line of its
//     own; the reader polls that index, then reads the message.
//   - Stamped: the reader polls the record's header itself, which the
//     writer stores last, stamped with the ring's lap so that last lap's
//     bytes never pass for this one's. A message then crosses in the
//     lines it occupies, with no index line besides.
//
// Either way the reader publishes how far it has read on a line of its
// own, which the writer reads only when the ring looks full.

// RTRing is each round trip ring's data area: shmlink's default ring, so
// that messages cycle through as much memory as a default link's do.
const RTRing = 2 << 20

// Round trip shapes, for RingRoundTrip.
const (
	Indexed = false
	Stamped = true
)

const (
	offRT    = offData + RingSize // four rings: indexed there and back, stamped there and back
	rtLapBit = 40                 // a stamped header: lap << rtLapBit | length
	rtPad    = 1<<rtLapBit - 1    // a stamped header's length that says "skip to the ring's start"
)

// rtWords are the published and consumed indices of the four rings, each
// on a line of its own; index 2*shape+dir, dir 0 from parent to child.
var rtWords = [4][2]int{{512, 640}, {768, 896}, {1024, 1152}, {1280, 1408}}

// rtRing is one round trip ring as one side sees it.
type rtRing struct {
	data     []byte
	pub, con *atomic.Uint64 // bytes published by the writer, consumed by the reader
	stamped  bool
	pos      uint64 // ours: bytes written, or consumed
	other    uint64 // the other side's index as last read
}

// rtRings returns the ring of a shape and direction (0: parent to child).
func rtRings(mem []byte, stamped bool, dir int) rtRing {
	i := dir
	if stamped {
		i += 2
	}
	at := offRT + i*RTRing
	return rtRing{data: mem[at : at+RTRing], pub: word(mem, rtWords[i][0]), con: word(mem, rtWords[i][1]), stamped: stamped}
}

// put writes msg as one record, waiting while the ring is full.
func (r *rtRing) put(msg []byte, w *spinWatch) error {
	rec := uint64(hdrLen + align8(len(msg)))
	off := r.pos & (RTRing - 1)
	need := rec
	if off+rec > RTRing {
		need += RTRing - off
	}
	for r.pos+need-r.other > RTRing {
		if r.other = r.con.Load(); r.other > r.pos {
			return fmt.Errorf("ring consumed %d of %d bytes written", r.other, r.pos)
		}
		if err := w.check(); err != nil {
			return err
		}
	}
	if need != rec {
		r.header(off, padMarker, rtPad)
		r.pos += RTRing - off
		off = 0
	}
	copy(r.data[off+hdrLen:], msg)
	r.header(off, uint64(len(msg)), uint64(len(msg)))
	r.pos += rec
	if !r.stamped {
		r.pub.Store(r.pos)
	}
	return nil
}

// header writes a record's header at off: plain (v), as shmlink writes
// its chunk headers before it publishes the index, or stamped (n) and
// stored atomically after the payload, as a reader polls it.
func (r *rtRing) header(off, v, n uint64) {
	if r.stamped {
		r.stamp(off).Store(r.lap()<<rtLapBit | n)
		return
	}
	binary.LittleEndian.PutUint64(r.data[off:], v)
}

// stamp is the header word at off, which is 8-aligned.
func (r *rtRing) stamp(off uint64) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&r.data[off]))
}

// lap numbers the passes over the data area from 1, so that a zeroed
// ring holds no stamp of the current one.
func (r *rtRing) lap() uint64 { return r.pos/RTRing + 1 }

// take copies the next record into buf and returns its length. The writer
// is trusted no further than the bounds of the ring and of buf.
func (r *rtRing) take(buf []byte, w *spinWatch) (int, error) {
	for {
		off := r.pos & (RTRing - 1)
		if off+hdrLen > RTRing {
			return 0, fmt.Errorf("ring header at %d crosses the end", off)
		}
		var n uint64
		if r.stamped {
			for {
				v := r.stamp(off).Load()
				if v>>rtLapBit == r.lap() {
					n = v & rtPad
					break
				}
				if err := w.check(); err != nil {
					return 0, err
				}
			}
			if n == rtPad {
				r.pos += RTRing - off
				continue
			}
		} else {
			for r.other == r.pos {
				if r.other = r.pub.Load(); r.other == r.pos {
					if err := w.check(); err != nil {
						return 0, err
					}
				}
			}
			if n = binary.LittleEndian.Uint64(r.data[off:]); n == padMarker {
				r.pos += RTRing - off
				continue
			}
		}
		if n > uint64(len(buf)) || off+hdrLen+n > RTRing || !r.stamped && r.other-r.pos < hdrLen+n {
			return 0, fmt.Errorf("bad record of %d bytes at %d", n, off)
		}
		copy(buf, r.data[off+hdrLen:off+hdrLen+n])
		r.pos += uint64(hdrLen + align8(int(n)))
		r.con.Store(r.pos)
		return int(n), nil
	}
}

// RingRoundTrip sends n messages of size bytes through a bare ring of the
// given shape (Indexed or Stamped) and waits for each to come back through
// another, returning the time it took; lat, if not nil, receives each
// round trip's time as PingPong does.
func (p *Peer) RingRoundTrip(size, n int, shape bool, lat []time.Duration) (time.Duration, error) {
	if size > RTRing/2 {
		return 0, fmt.Errorf("bare ring round trip: message of %d bytes over half the ring", size)
	}
	if len(p.msg) < size {
		p.msg = make([]byte, size)
	}
	if len(p.rtBuf) < size {
		p.rtBuf = make([]byte, size)
	}
	out, in := &p.rt[rtIndex(shape)][0], &p.rt[rtIndex(shape)][1]
	if out.data == nil {
		*out, *in = rtRings(p.mem, shape, 0), rtRings(p.mem, shape, 1)
	}
	op := uint64(opIndexedRT)
	if shape == Stamped {
		op = opStampedRT
	}
	if err := p.command(op, uint64(size), uint64(n)); err != nil {
		return 0, err
	}
	start := sys.Nanotime()
	t := start
	for i := range n {
		w := p.watch()
		if err := out.put(p.msg[:size], &w); err != nil {
			return 0, fmt.Errorf("limit peer: %w", err)
		}
		if k, err := in.take(p.rtBuf, &w); err != nil || k != size {
			return 0, fmt.Errorf("limit peer: echo of %d bytes, want %d: %v", k, size, err)
		}
		if lat != nil {
			t = groupTimes(lat, i, n, t)
		}
	}
	el := time.Duration(sys.Nanotime() - start)
	return el, p.waitDone(uint64(n))
}

func rtIndex(shape bool) int {
	if shape == Stamped {
		return 1
	}
	return 0
}

// roundTrip echoes count messages through the rings of a shape.
func (c *child) roundTrip(shape bool, count uint64) (uint64, error) {
	in, out := &c.rt[rtIndex(shape)][0], &c.rt[rtIndex(shape)][1]
	if in.data == nil {
		*in, *out = rtRings(c.mem, shape, 0), rtRings(c.mem, shape, 1)
	}
	for i := uint64(0); i < count; i++ {
		w := c.watch()
		n, err := in.take(c.buf, &w)
		if err != nil {
			return i, err
		}
		if err := out.put(c.buf[:n], &w); err != nil {
			return i, err
		}
	}
	return count, nil
}
