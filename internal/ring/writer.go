package ring

import (
	"context"
	"encoding/binary"
	"time"
)

// minChunk is the least payload worth a chunk of a streamed message; less
// room than that before the end of the data area is padded over instead.
const minChunk = 64

// WriteMessage copies msg into the ring as one message. A message whose
// frame fits in half the ring goes in one contiguous chunk, padding over the
// end of the data area if needed, so small messages are never split; a
// larger one streams through in chunks of at most a quarter of the ring,
// so the consumer drains one chunk while the next is written.
//
// The producer waits for space through its Waiter, with ctx. If a wait
// fails part-way through a streamed message, the error is returned and the
// next WriteMessage first tells the consumer that the message was
// abandoned.
func (p *Producer) WriteMessage(ctx context.Context, msg []byte) error {
	if p.appendWhole(msg) {
		p.commit()
		return nil
	}
	if p.pendingAbort {
		if err := p.abort(ctx); err != nil {
			return err
		}
	}
	if full := hdrLen + align8(uint64(len(msg))); full <= p.r.size/2 {
		return p.writeSmall(ctx, msg, full)
	}
	return p.writeLarge(ctx, msg)
}

// WriteMessages writes msgs in order, each as WriteMessage would, and
// publishes them together: one index store, and at most one wake-up of the
// consumer, for as many as the ring holds at once. Before it waits for
// space it publishes what it has written, so the consumer can make room.
// It returns how many messages were written whole; those are published
// even if a later one fails.
func (p *Producer) WriteMessages(ctx context.Context, msgs [][]byte) (int, error) {
	p.batching = true
	defer func() {
		p.batching = false
		p.Flush()
	}()
	for i := 0; i < len(msgs); {
		if k := p.appendWholes(msgs[i:]); k > 0 {
			p.unpublished = true
			i += k
			continue
		}
		if err := p.WriteMessage(ctx, msgs[i]); err != nil {
			return i, err
		}
		i++
	}
	return len(msgs), nil
}

// appendWholes writes the leading messages of msgs that appendWhole would
// take, in one loop with the indexes kept out of memory (a stream of small
// messages pays this per message), and returns how many it wrote.
func (p *Producer) appendWholes(msgs [][]byte) int {
	if p.pendingAbort || p.general {
		return 0
	}
	tail, data, mask, size := p.tail, p.r.data, p.r.mask, p.r.size
	free := p.free()
	var bytes uint64
	i := 0
	for ; i < len(msgs); i++ {
		m := msgs[i]
		full := hdrLen + align8(uint64(len(m)))
		off := tail & mask
		if len(m) >= ntMin || full > size/2 || full > free || full > size-off {
			break
		}
		binary.LittleEndian.PutUint64(data[off:], uint64(len(m))|(FlagBegin|FlagEnd)<<32)
		copy(data[off+hdrLen:off+full], m)
		tail += full
		free -= full
		bytes += uint64(len(m))
	}
	p.tail = tail
	p.Messages += uint64(i)
	p.Bytes += bytes
	return i
}

// appendWhole writes a small message as writeSmall would, if it fits
// before the end of the data area in the room already known to be free,
// and reports whether it did; the caller publishes it or leaves it for a
// batch's end. Otherwise writeSmall or writeLarge decides (padding,
// waiting, an abort owed). This is the common case of small messages made
// short, as Consumer.whole is on the reading side.
func (p *Producer) appendWhole(m []byte) bool {
	full := hdrLen + align8(uint64(len(m)))
	off := p.tail & p.r.mask
	if p.pendingAbort || len(m) >= ntMin || full > p.r.size/2 || full > p.free() || full > p.r.size-off || p.general {
		return false
	}
	binary.LittleEndian.PutUint64(p.r.data[off:], uint64(len(m))|(FlagBegin|FlagEnd)<<32)
	copy(p.r.data[off+hdrLen:off+full], m)
	p.tail += full
	p.Messages++
	p.Bytes += uint64(len(m))
	return true
}

// BufferMessage writes msg as WriteMessage does but leaves it unpublished,
// with whatever was buffered before it, until Flush or the next publishing
// write, or until bufferMax bytes wait (so that a long stream keeps
// flowing); a wait for room publishes too, as the consumer can only make
// room from what it sees.
func (p *Producer) BufferMessage(ctx context.Context, msg []byte) error {
	if !p.unpublished {
		p.bufferedFrom = p.tail
	}
	p.batching = true
	err := p.WriteMessage(ctx, msg)
	p.batching = false
	if p.unpublished && p.tail-p.bufferedFrom >= min(bufferMax, p.r.size/4) {
		p.publish()
	}
	return err
}

// bufferMax is the most BufferMessage leaves unpublished: as much as a
// buffered socket gathers before it writes.
const bufferMax = 64 << 10

// commit publishes a written message, or leaves it for Flush in a batch.
func (p *Producer) commit() {
	if p.batching {
		p.unpublished = true
		return
	}
	p.publish()
}

// Unpublished reports whether something written is not published yet.
func (p *Producer) Unpublished() bool { return p.unpublished }

// Flush publishes what a batch or BufferMessage has written and not yet
// published.
func (p *Producer) Flush() {
	if p.unpublished {
		p.publish()
	}
}

// Resume prepares a producer that takes over a ring from a dead one, which
// may have stopped part-way through a message: the consumer is told to drop
// that message now if there is room, else before the next message.
func (p *Producer) Resume() {
	p.pendingAbort = true
	if p.free() >= hdrLen {
		_ = p.abort(context.Background()) // cannot wait: there is room
	}
}

func (p *Producer) abort(ctx context.Context) error {
	if err := p.ensure(ctx, hdrLen); err != nil {
		return err
	}
	p.tail += putHeader(p.r.data[p.tail&p.r.mask:], 0, FlagAbort, 0)
	p.publish()
	p.pendingAbort = false
	return nil
}

// ensure returns once need bytes are free.
func (p *Producer) ensure(ctx context.Context, need uint64) error {
	if p.free() >= need {
		return nil
	}
	for {
		f, err := p.Free()
		if err != nil {
			return err
		}
		if f >= need {
			return nil
		}
		p.Flush() // the consumer can only make room from what it sees
		if err := p.w.WaitSpace(ctx, need); err != nil {
			return err
		}
	}
}

func (p *Producer) pad(n uint64) {
	putHeader(p.r.data[p.tail&p.r.mask:], n-hdrLen, FlagPad, 0)
	p.tail += n
}

func (p *Producer) writeSmall(ctx context.Context, msg []byte, full uint64) error {
	var start time.Time
	if len(msg) >= ntMin {
		start = time.Now()
	}
	toEnd := p.r.size - p.tail&p.r.mask
	need := full
	if toEnd < full {
		need += toEnd
	}
	if err := p.ensure(ctx, need); err != nil {
		return err
	}
	if toEnd < full {
		p.pad(toEnd)
	}
	b := p.r.data[p.tail&p.r.mask:]
	h := putHeader(b, uint64(len(msg)), FlagBegin|FlagEnd, 0)
	p.cp.copyChunk(b[h:], msg, start, p.r.size)
	p.tail += full
	p.commit()
	p.Messages++
	p.Bytes += uint64(len(msg))
	return nil
}

func (p *Producer) writeLarge(ctx context.Context, msg []byte) error {
	n := uint64(len(msg))
	quarter := p.r.size / 4
	for sent := uint64(0); sent < n; {
		rem := n - sent
		var start time.Time // for the copy policy, which only sees chunks of ntMin or more
		if quarter >= ntMin {
			start = time.Now()
		}
		flags := uint8(0)
		hl := uint64(hdrLen)
		if sent == 0 {
			flags, hl = FlagBegin, hdrLenLong
		}
		full := hl + align8(rem)
		toEnd := p.r.size - p.tail&p.r.mask
		want := min(full, quarter)
		if toEnd < want && toEnd < hl+minChunk {
			if err := p.ensure(ctx, toEnd); err != nil {
				p.pendingAbort = sent > 0
				return err
			}
			p.pad(toEnd)
			continue
		}
		want = min(want, toEnd)
		if err := p.ensure(ctx, want); err != nil {
			p.pendingAbort = sent > 0
			return err
		}
		room := min(p.free(), toEnd, quarter)
		length := min(rem, room-hl)
		if length == rem {
			flags |= FlagEnd
		}
		b := p.r.data[p.tail&p.r.mask:]
		hl = putHeader(b, length, flags, n)
		p.cp.copyChunk(b[hl:hl+length], msg[sent:], start, p.r.size)
		p.tail += hl + align8(length)
		p.publish()
		sent += length
		p.Bytes += length
	}
	p.Messages++
	return nil
}
