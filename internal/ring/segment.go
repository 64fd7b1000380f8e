package ring

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Segment layout (see PROTOCOL.md, "Memory layout"). All integers are
// little-endian; the client writes the header once, before it passes the
// memory on, and the server copies what it needs out of it exactly once.
const (
	HeaderSize  = 4096    // segment header page, holds both control blocks
	MinRingSize = 4096    // smallest data area of one ring
	MaxRingSize = 1 << 30 // largest data area of one ring

	Magic   = "SHMLINK\x00"
	Version = 1

	offMagic    = 0
	offVersion  = 8
	offHdrSize  = 12
	offTotal    = 16
	offRingSize = 24 // [2]uint64
	offControl  = 1024
	controlSize = 512 // four 128-byte lines per ring
)

// Direction names one of the two rings of a segment.
type Direction int

const (
	ClientToServer Direction = 0
	ServerToClient Direction = 1
)

// Layout is what a segment header says, after validation.
type Layout struct {
	RingSize [2]uint64
}

// Size is the number of bytes a segment with this layout occupies.
func (l Layout) Size() uint64 { return HeaderSize + l.RingSize[0] + l.RingSize[1] }

// CheckRingSize reports whether n is usable as a ring size.
func CheckRingSize(n uint64) error {
	if n < MinRingSize || n > MaxRingSize || n&(n-1) != 0 {
		return fmt.Errorf("ring size %d is not a power of two in [%d, %d]", n, MinRingSize, MaxRingSize)
	}
	return nil
}

// Init writes a fresh header for l into mem, which must be zeroed and exactly
// l.Size() bytes long (a new memfd is).
func Init(mem []byte, l Layout) error {
	for _, n := range l.RingSize {
		if err := CheckRingSize(n); err != nil {
			return err
		}
	}
	if uint64(len(mem)) != l.Size() {
		return fmt.Errorf("segment is %d bytes, layout needs %d", len(mem), l.Size())
	}
	copy(mem[offMagic:], Magic)
	binary.LittleEndian.PutUint32(mem[offVersion:], Version)
	binary.LittleEndian.PutUint32(mem[offHdrSize:], HeaderSize)
	binary.LittleEndian.PutUint64(mem[offTotal:], l.Size())
	binary.LittleEndian.PutUint64(mem[offRingSize:], l.RingSize[0])
	binary.LittleEndian.PutUint64(mem[offRingSize+8:], l.RingSize[1])
	return nil
}

// Parse validates the header of a segment received from a peer. mem is the
// whole mapping; its length is the sealed size of the memfd, so nothing the
// header says can point outside it.
func Parse(mem []byte) (Layout, error) {
	var l Layout
	if len(mem) < HeaderSize {
		return l, corruptf("segment of %d bytes is smaller than its header", len(mem))
	}
	// Copy the header out first: the peer may keep writing to it.
	var h [offRingSize + 16]byte
	copy(h[:], mem)
	if string(h[offMagic:offMagic+8]) != Magic {
		return l, corruptf("bad segment magic %q", h[offMagic:offMagic+8])
	}
	if v := binary.LittleEndian.Uint32(h[offVersion:]); v != Version {
		return l, corruptf("segment version %d, want %d", v, Version)
	}
	if hs := binary.LittleEndian.Uint32(h[offHdrSize:]); hs != HeaderSize {
		return l, corruptf("segment header size %d, want %d", hs, HeaderSize)
	}
	l.RingSize[0] = binary.LittleEndian.Uint64(h[offRingSize:])
	l.RingSize[1] = binary.LittleEndian.Uint64(h[offRingSize+8:])
	for _, n := range l.RingSize {
		if err := CheckRingSize(n); err != nil {
			return l, corruptf("%v", err)
		}
	}
	total := binary.LittleEndian.Uint64(h[offTotal:])
	if total != l.Size() || total != uint64(len(mem)) {
		return l, corruptf("segment size %d, header says %d, rings need %d", len(mem), total, l.Size())
	}
	return l, nil
}

// Ring returns the ring for direction d of a segment with layout l.
func (l Layout) Ring(mem []byte, d Direction) *Ring {
	dataOff := uint64(HeaderSize)
	if d == ServerToClient {
		dataOff += l.RingSize[0]
	}
	size := l.RingSize[d]
	return &Ring{
		ctl:  (*control)(unsafe.Pointer(&mem[offControl+int(d)*controlSize])),
		data: mem[dataOff : dataOff+size : dataOff+size],
		size: size,
		mask: size - 1,
	}
}

// control is one ring's shared control block. Each field sits alone on a
// 128-byte line (two 64-byte lines, so adjacent-line prefetch does not pair
// them): the producer writes tail, the consumer writes head, and each
// sleeping flag is written only by the side it describes, rarely, so the
// other side's check of it after every publish hits a clean line.
type control struct {
	tail           atomic.Uint64
	_              [120]byte
	head           atomic.Uint64
	_              [120]byte
	readerSleeping atomic.Uint32
	_              [124]byte
	writerSleeping atomic.Uint32
	_              [124]byte
}

var _ [controlSize - unsafe.Sizeof(control{})]byte // control must fit its slot
