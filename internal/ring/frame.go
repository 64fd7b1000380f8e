package ring

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrCorrupt is the root of every error caused by something the peer put in
// shared memory that breaks the protocol.
var ErrCorrupt = errors.New("corrupt shared memory")

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// Chunk flags (PROTOCOL.md, "Chunks").
const (
	FlagBegin = 1 << 0 // first chunk of a message
	FlagEnd   = 1 << 1 // last chunk of a message
	FlagPad   = 1 << 2 // filler up to the end of the data area; skipped
	FlagAbort = 1 << 3 // the message in progress, if any, will not be finished

	// flagsDefined are the bits version 1 gives a meaning. The others are
	// reserved: a writer leaves them zero, a reader ignores them
	// (PROTOCOL.md, "Reserved fields").
	flagsDefined = FlagBegin | FlagEnd | FlagPad | FlagAbort
)

const (
	hdrLen     = 8  // every chunk header
	hdrLenLong = 16 // a Begin chunk without End also carries the total length
	align      = 8
)

func align8(n uint64) uint64 { return (n + align - 1) &^ (align - 1) }

// header is a decoded chunk header.
type header struct {
	length uint64 // payload bytes in this chunk
	flags  uint8
	total  uint64 // whole message length; set on Begin chunks
	hlen   uint64 // header bytes before the payload
}

// frame is the number of ring bytes the chunk occupies.
func (h header) frame() uint64 { return h.hlen + align8(h.length) }

// decodeHeader validates and decodes the chunk header at the start of b,
// which holds the contiguous bytes available to the reader at that position
// (never more than the ring holds and never past the end of the data area).
func decodeHeader(b []byte) (header, error) {
	var h header
	if len(b) < hdrLen {
		return h, corruptf("chunk header cut short: %d bytes", len(b))
	}
	var raw [hdrLenLong]byte
	copy(raw[:], b) // one read of peer-writable memory; decide on the copy
	// Bytes 5 to 7 and the undefined flag bits are reserved: ignored.
	h.length = uint64(binary.LittleEndian.Uint32(raw[0:]))
	h.flags = raw[4] & flagsDefined
	h.hlen = hdrLen
	switch h.flags {
	case FlagBegin | FlagEnd:
		h.total = h.length
	case FlagBegin:
		h.hlen = hdrLenLong
		if len(b) < hdrLenLong {
			return h, corruptf("long chunk header cut short: %d bytes", len(b))
		}
		h.total = binary.LittleEndian.Uint64(raw[8:])
		if h.total <= h.length {
			return h, corruptf("first chunk of %d bytes claims message of %d", h.length, h.total)
		}
	case 0, FlagEnd, FlagPad:
	case FlagAbort:
		if h.length != 0 {
			return h, corruptf("abort chunk with %d bytes of payload", h.length)
		}
	default:
		return h, corruptf("invalid chunk flags %#x", h.flags)
	}
	if f := h.frame(); f > uint64(len(b)) {
		return h, corruptf("chunk of %d bytes overruns the %d readable bytes", f, len(b))
	}
	return h, nil
}

// putHeader writes a chunk header at the start of b and returns its length.
func putHeader(b []byte, length uint64, flags uint8, total uint64) uint64 {
	// One word, reserved bytes zero. Where flags is a constant the compiler
	// splits the store (a 4-byte one and four byte stores, go1.26 amd64);
	// one store in the short paths (appendWhole, appendWholes) measured no
	// gain in BenchmarkSoftwareCost.
	binary.LittleEndian.PutUint64(b, uint64(uint32(length))|uint64(flags)<<32)
	if flags == FlagBegin {
		binary.LittleEndian.PutUint64(b[8:], total)
		return hdrLenLong
	}
	return hdrLen
}
