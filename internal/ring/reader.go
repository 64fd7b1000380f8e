package ring

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// ErrMessageTooLarge is returned for a message longer than a configured
// maximum, by the writer before sending or by the reader, which skips it.
var ErrMessageTooLarge = errors.New("message too large")

// ShortBufferError is returned by ReadInto when the next message does not fit
// the caller's buffer. Nothing was consumed: retry with Need bytes.
type ShortBufferError struct{ Need uint64 }

func (e *ShortBufferError) Error() string {
	return fmt.Sprintf("short buffer: next message needs %d bytes", e.Need)
}

// Is makes a ShortBufferError match io.ErrShortBuffer.
func (e *ShortBufferError) Is(target error) bool { return target == io.ErrShortBuffer }

// Reader reassembles messages from the chunks of a Consumer and checks that
// the chunk sequence is well formed. Like the Consumer, it is used by one
// goroutine at a time.
type Reader struct {
	c *Consumer

	// MaxMessage bounds what ReadMessage will allocate.
	MaxMessage uint64

	cur    header // the chunk being read, still in the ring
	curOff uint64 // payload bytes of cur already delivered
	hasCur bool

	inMsg    bool   // a Begin was taken and its End was not
	total    uint64 // length of the current message
	got      uint64 // bytes of the current message taken from the ring
	pend     []byte // of those, bytes not yet handed to a caller
	syncing  bool   // attached mid-stream: skip to the next Begin
	skipping bool   // dropping the rest of an oversized message

	// lent says that Borrow lent a message that Release has not ended;
	// lentInPlace, that it is r.cur's payload in the ring (zerocopy.go).
	lent, lentInPlace bool
	loanBuf           []byte // where Borrow assembles a message in pieces

	// Aborted counts messages abandoned part-way by the producer.
	Aborted uint64

	// general, set by tests, turns the short path of whole messages off,
	// so that its results can be checked against the general path's.
	general bool
}

// NewReader returns a Reader over c. If resumed is set, the consumer took over
// a ring from a previous reader and chunks before the next message start are
// skipped rather than treated as corrupt.
func NewReader(c *Consumer, resumed bool) *Reader {
	return &Reader{c: c, syncing: resumed, MaxMessage: 1 << 62}
}

// Consumer returns the underlying consumer.
func (r *Reader) Consumer() *Consumer { return r.c }

// current makes sure r.cur holds a chunk with payload semantics (not a pad or
// an abort), taking the next one from the ring and waiting for it if block
// is set. It reports false only when !block and nothing is ready. A wait
// that ends with io.EOF (the producer left cleanly) inside a message is
// io.ErrUnexpectedEOF.
func (r *Reader) current(ctx context.Context, block bool) (bool, error) {
	if r.hasCur {
		return true, nil
	}
	for {
		h, ok, err := r.c.peek()
		if err != nil {
			return false, err
		}
		if !ok {
			if !block {
				return false, nil
			}
			if err := r.c.w.WaitData(ctx); err != nil {
				if err == io.EOF && r.inMsg {
					err = io.ErrUnexpectedEOF
				}
				return false, err
			}
			continue
		}
		switch {
		case h.flags == FlagPad:
			r.c.release(h)
			continue
		case h.flags == FlagAbort:
			r.c.release(h)
			if r.inMsg {
				r.inMsg, r.skipping, r.pend = false, false, nil
				r.Aborted++
			}
			continue
		case h.flags&FlagBegin != 0:
			if r.inMsg && !r.syncing {
				return false, corruptf("message begins inside another (%d of %d bytes read)", r.got, r.total)
			}
			r.syncing = false
			r.total, r.got = h.total, 0
		case !r.inMsg:
			if r.syncing {
				r.c.release(h)
				continue
			}
			return false, corruptf("continuation chunk outside a message")
		}
		end := r.got + h.length
		if end > r.total || (h.flags&FlagEnd != 0 && end != r.total) {
			return false, corruptf("chunk of %d bytes at %d does not fit a message of %d", h.length, r.got, r.total)
		}
		r.inMsg = h.flags&FlagEnd == 0
		if r.skipping {
			r.got = end
			r.c.release(h)
			r.skipping = r.inMsg
			continue
		}
		r.cur, r.curOff, r.hasCur = h, 0, true
		return true, nil
	}
}

// take copies up to len(b) bytes of the current chunk into b.
func (r *Reader) take(b []byte) int {
	k := copy(b, r.c.payload(r.cur)[r.curOff:])
	r.curOff += uint64(k)
	r.got += uint64(k)
	r.c.Bytes += uint64(k)
	if r.curOff == r.cur.length {
		r.c.release(r.cur)
		r.hasCur = false
		if r.cur.flags&FlagEnd != 0 {
			r.c.Messages++
		}
	}
	return k
}

// fill takes the rest of the current message from the ring, appending to
// buf, which grows as chunks arrive (up to the message's length) so that
// the allocation follows the bytes received, not the length claimed. It
// reports restart if the producer abandoned the message meanwhile.
func (r *Reader) fill(ctx context.Context, buf []byte) (_ []byte, restart bool, err error) {
	aborted := r.Aborted
	for {
		if _, err := r.current(ctx, true); err != nil {
			return buf, false, err
		}
		if r.Aborted != aborted {
			return nil, true, nil
		}
		end := r.cur.flags&FlagEnd != 0
		if want := int(r.cur.length - r.curOff); cap(buf)-len(buf) < want {
			nb := make([]byte, len(buf), min(int(r.total), max(2*cap(buf), len(buf)+want)))
			copy(nb, buf)
			buf = nb
		}
		k := r.take(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if end && !r.hasCur {
			return buf, false, nil
		}
	}
}

// initialAlloc caps the first allocation for a message: a peer that claims
// a huge message must actually send the bytes before we allocate them.
const initialAlloc = 64 << 10

// ReadMessage returns the next message (or what remains of one that stream
// reads started) in a new buffer. If it fails part-way (a deadline, say),
// what it took is kept for the next read: nothing is lost.
func (r *Reader) ReadMessage(ctx context.Context) ([]byte, error) {
	if r.between() {
		m, ok, err := r.whole(ctx)
		if err != nil {
			return nil, err
		}
		if ok {
			buf := make([]byte, len(m))
			copy(buf, m)
			r.c.releaseWhole(len(m))
			return buf, nil
		}
	}
	for {
		if _, err := r.current(ctx, true); err != nil {
			return nil, err
		}
		if r.total > r.MaxMessage {
			return nil, r.skip()
		}
		buf := r.pend
		r.pend = nil
		if buf == nil {
			buf = make([]byte, 0, min(int(r.total-r.got), initialAlloc))
		}
		buf, restart, err := r.fill(ctx, buf)
		if restart {
			continue
		}
		if err != nil {
			r.pend = buf
			return nil, err
		}
		return buf, nil
	}
}

// whole waits for the next chunk and returns its payload if it is a whole
// message that Consumer.whole takes, to be copied out before
// releaseWhole; otherwise it reports false for the general path. The
// reader must be between messages.
func (r *Reader) whole(ctx context.Context) ([]byte, bool, error) {
	for {
		if m, ok := r.c.whole(r.MaxMessage); ok {
			return m, true, nil
		}
		if ok, err := r.c.Ready(); ok || err != nil {
			return nil, false, nil // a chunk the general path must decide on, or an error it reports
		}
		if err := r.c.w.WaitData(ctx); err != nil {
			return nil, false, err
		}
	}
}

// ReadInto copies the next message (or what remains of one that stream
// reads started) into b and returns its length. If it does not fit, it
// returns a *ShortBufferError and consumes nothing.
func (r *Reader) ReadInto(ctx context.Context, b []byte) (int, error) {
	for r.between() {
		m, ok, err := r.whole(ctx)
		if err != nil {
			return 0, err
		}
		if !ok || len(m) > len(b) {
			break
		}
		n := copy(b, m)
		r.c.releaseWhole(n)
		return n, nil
	}
	for {
		if _, err := r.current(ctx, true); err != nil {
			return 0, err
		}
		if r.total > r.MaxMessage {
			return 0, r.skip()
		}
		need := r.total - r.got + uint64(len(r.pend))
		if need > uint64(len(b)) {
			return 0, &ShortBufferError{Need: need}
		}
		n := copy(b, r.pend)
		r.pend = nil
		buf, restart, err := r.fill(ctx, b[:n:need])
		if restart {
			continue
		}
		if err != nil {
			// Keep what was taken; the caller's buffer is theirs.
			r.pend = append([]byte(nil), buf...)
			return 0, err
		}
		return len(buf), nil
	}
}

// between reports whether the reader is between messages with nothing
// held back: the state in which a whole-message chunk can be taken on
// the short path (Consumer.whole).
func (r *Reader) between() bool {
	return !r.hasCur && !r.inMsg && r.pend == nil && !r.syncing && !r.skipping && !r.lent && !r.general
}

// Read reads bytes in stream fashion, ignoring message boundaries. It blocks
// only until at least one byte is available.
func (r *Reader) Read(ctx context.Context, b []byte) (int, error) {
	n := copy(b, r.pend)
	r.pend = r.pend[n:]
	if len(r.pend) == 0 {
		r.pend = nil
	}
	for n < len(b) {
		ok, err := r.current(ctx, n == 0)
		if err != nil {
			if n > 0 {
				return n, nil // the error will come again on the next call
			}
			return 0, err
		}
		if !ok {
			break
		}
		n += r.take(b[n:])
	}
	return n, nil
}

// skip refuses the oversized message whose first chunk is current: it
// fails at once, and the message's remaining chunks are dropped as they
// arrive, during later reads.
func (r *Reader) skip() error {
	total := r.total
	r.got += r.cur.length - r.curOff
	r.c.release(r.cur)
	r.hasCur, r.pend = false, nil
	r.skipping = r.inMsg
	return fmt.Errorf("%w: %d bytes, limit %d; skipped", ErrMessageTooLarge, total, r.MaxMessage)
}

// ReadBatch reads the next message as ReadInto does (waiting for it), then,
// without waiting, as many more whole messages as are already in the ring
// and fit: their bytes back to back in b, their lengths in sizes. It
// gives their room back to the producer once, at the end, rather than
// message by message. It returns how many messages it read.
func (r *Reader) ReadBatch(ctx context.Context, b []byte, sizes []int) (int, error) {
	if len(sizes) == 0 {
		return 0, nil
	}
	k, err := r.ReadInto(ctx, b)
	if err != nil {
		return 0, err
	}
	sizes[0] = k
	n, off := 1, k
	r.c.deferring = true
	defer func() {
		r.c.deferring = false
		r.c.publishHead()
	}()
	for n < len(sizes) && !r.hasCur && !r.inMsg && r.pend == nil && !r.syncing && !r.skipping {
		if !r.general {
			k, o := r.c.wholes(b, off, sizes[n:], r.MaxMessage)
			n, off = n+k, o
			if n == len(sizes) {
				break
			}
		}
		h, ok, err := r.c.peek()
		if err != nil || !ok {
			return n, nil // an error comes again on the next read
		}
		if h.flags == FlagPad {
			r.c.release(h)
			continue
		}
		if h.flags != FlagBegin|FlagEnd || h.length > uint64(len(b)-off) || h.length > r.MaxMessage {
			break // for the next read, which handles every case
		}
		copy(b[off:], r.c.payload(h))
		r.c.release(h)
		r.c.Messages++
		r.c.Bytes += h.length
		sizes[n] = int(h.length)
		off += int(h.length)
		n++
	}
	return n, nil
}
