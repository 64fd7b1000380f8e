package ring

import (
	"context"
	"errors"
)

// ErrNoReservation is returned by Commit and Cancel without a Reserve
// before them.
var ErrNoReservation = errors.New("no message reserved")

// ErrNotLent is returned by Release without a Borrow before it.
var ErrNotLent = errors.New("no message borrowed")

// MaxReserve is the largest message that Reserve can place in this ring:
// one chunk that fills the whole data area.
func (p *Producer) MaxReserve() uint64 { return p.r.size - hdrLen }

// Reserve waits for room for one message of up to n bytes in one
// contiguous chunk and returns that room, in the ring, for the caller to
// fill; Commit sends it, Cancel drops it. Until then the Producer must not
// be used otherwise. n must be at most MaxReserve.
//
// A chunk that would cross the end of the data area is not split: the
// rest of the area is padded over and published first, so that the
// consumer can free it, and the chunk starts at the beginning. That costs
// up to one chunk of ring, and is why a reservation may take the whole
// ring where WriteMessage streams anything over half of it.
//
// The bytes returned are shared memory: the consumer process can read
// them (it should not before Commit) and a hostile one can write them.
func (p *Producer) Reserve(ctx context.Context, n uint64) ([]byte, error) {
	if n > p.MaxReserve() {
		return nil, ErrMessageTooLarge
	}
	if p.pendingAbort {
		if err := p.abort(ctx); err != nil {
			return nil, err
		}
	}
	full := hdrLen + align8(n)
	if toEnd := p.r.size - p.tail&p.r.mask; toEnd < full {
		if err := p.ensure(ctx, toEnd); err != nil {
			return nil, err
		}
		p.pad(toEnd)
		p.publish() // the consumer must skip the pad before the chunk fits
	}
	if err := p.ensure(ctx, full); err != nil {
		return nil, err
	}
	off := p.tail&p.r.mask + hdrLen
	p.reserved, p.reservedLen = true, n
	return p.r.data[off : off+n : off+n], nil
}

// Commit sends the first n bytes of the reservation as one message. It
// never waits: the room is already ours.
func (p *Producer) Commit(n uint64) error {
	if !p.reserved {
		return ErrNoReservation
	}
	if n > p.reservedLen {
		return errors.New("commit of more bytes than reserved")
	}
	p.reserved = false
	putHeader(p.r.data[p.tail&p.r.mask:], n, FlagBegin|FlagEnd, 0)
	p.tail += hdrLen + align8(n)
	p.commit()
	p.Messages++
	p.Bytes += n
	return nil
}

// Cancel drops the reservation: nothing of it is sent.
func (p *Producer) Cancel() error {
	if !p.reserved {
		return ErrNoReservation
	}
	p.reserved = false
	return nil
}

// Borrow returns the next message without copying it, if it lies in the
// ring in one chunk, with inPlace set: the slice is the chunk's payload in
// shared memory, valid until Release, which frees its room for the
// producer. A message that came in several chunks, or whose beginning a
// stream read already took, is assembled in a buffer of the Reader's,
// reused from loan to loan, with inPlace clear; Release must still be
// called, and ends that loan too.
//
// The chunk's header is validated before the payload is lent, but the
// payload stays writable by the producer process: a hostile peer can
// change the bytes while the caller holds them. The slice itself always
// lies within the ring, whatever the peer does.
func (r *Reader) Borrow(ctx context.Context) (_ []byte, inPlace bool, err error) {
	if r.lent {
		return nil, false, errors.New("a message is already borrowed")
	}
	for {
		if _, err := r.current(ctx, true); err != nil {
			return nil, false, err
		}
		if r.total > r.MaxMessage {
			return nil, false, r.skip()
		}
		if r.pend != nil || r.curOff != 0 || r.cur.flags != FlagBegin|FlagEnd {
			m, restart, err := r.assemble(ctx)
			if restart {
				continue
			}
			if err != nil {
				return nil, false, err
			}
			r.lent, r.lentInPlace = true, false
			return m, false, nil
		}
		r.lent, r.lentInPlace = true, true
		return r.c.payload(r.cur), true, nil
	}
}

// maxLoanBuf bounds the buffer a Reader keeps between loans of messages
// that came in pieces: one larger is dropped at Release.
const maxLoanBuf = 16 << 20

// assemble takes the rest of the current message, as ReadMessage does,
// into the Reader's loan buffer, which it keeps from one loan to the next
// so that a stream of large messages does not allocate one each.
func (r *Reader) assemble(ctx context.Context) (_ []byte, restart bool, err error) {
	buf := r.loanBuf[:0]
	if r.pend != nil {
		buf = append(buf, r.pend...)
		r.pend = nil
	}
	buf, restart, err = r.fill(ctx, buf)
	if restart {
		return nil, true, nil
	}
	if err != nil {
		// Keep what was taken for the next read, in a buffer of its own:
		// ReadMessage may hand r.pend to its caller.
		r.pend = append([]byte(nil), buf...)
		return nil, false, err
	}
	r.loanBuf = buf
	return buf, false, nil
}

// Release ends the loan of the message Borrow returned. After it, bytes
// lent in place belong to the producer again, which may overwrite them at
// once.
func (r *Reader) Release() error {
	if !r.lent {
		return ErrNotLent
	}
	r.lent = false
	if !r.lentInPlace {
		if cap(r.loanBuf) > maxLoanBuf {
			r.loanBuf = nil
		}
		return nil
	}
	n := r.cur.length
	r.c.release(r.cur)
	r.hasCur = false
	r.got += n
	r.c.Messages++
	r.c.Bytes += n
	return nil
}

// Lent reports whether a borrowed message has not been released yet.
func (r *Reader) Lent() bool { return r.lent }
