package ring

import (
	"context"
	"encoding/binary"
)

// Ring is one single-producer, single-consumer byte ring inside a segment.
// Indices are free-running byte counts (they never wrap in practice: 2^64
// bytes); a position in the data area is index & mask.
type Ring struct {
	ctl  *control
	data []byte
	size uint64
	mask uint64
}

// Size is the ring's data area in bytes.
func (r *Ring) Size() uint64 { return r.size }

// Fill is how many bytes the ring holds now, from the shared indices, for
// statistics: safe to call from any goroutine, and never outside [0,
// Size] whatever the peer wrote.
func (r *Ring) Fill() uint64 {
	t, h := r.ctl.tail.Load(), r.ctl.head.Load()
	if t < h {
		return 0
	}
	return min(t-h, r.size)
}

// indices reads and validates the shared indices, for a side that attaches
// to a ring that may already hold data.
func (r *Ring) indices() (head, tail uint64, err error) {
	head, tail = r.ctl.head.Load(), r.ctl.tail.Load()
	if head > tail || tail-head > r.size || head%align != 0 || tail%align != 0 {
		return 0, 0, corruptf("ring indices head %d tail %d do not fit a ring of %d", head, tail, r.size)
	}
	return head, tail, nil
}

// Counters are the statistics one end of a ring keeps. The owner reads them
// only while it holds the lock that serialises that end.
type Counters struct {
	Messages  uint64 // whole messages written or read
	Bytes     uint64 // payload bytes written or read
	Wakeups   uint64 // times this end rang the other end's doorbell
	HighWater uint64 // most bytes seen in the ring at once
}

// Waiter is how a ring end waits for the other and wakes it; the owner
// implements it with spinning and doorbells. A wait returns nil when the
// condition may hold (the ring end re-checks) or the reason it cannot wait
// any longer, which the ring end returns to its caller. A notification
// asks the owner to ring the other side, which announced that it sleeps.
type Waiter interface {
	// WaitData is called by the consumer when the ring is empty.
	WaitData(ctx context.Context) error
	// WaitSpace is called by the producer when fewer than need bytes are free.
	WaitSpace(ctx context.Context, need uint64) error
	// NotifyData is called after a publish that found the consumer asleep.
	NotifyData()
	// NotifySpace is called after a release that found the producer asleep.
	NotifySpace()
}

// Producer is the writing end of a ring. Only one goroutine may use it at a
// time; the owner serialises writers.
type Producer struct {
	r    *Ring
	w    Waiter
	tail uint64 // ours: the peer's copy is never read back
	head uint64 // the consumer's index as last read and validated

	// pendingAbort is set when a streamed message was cut off part-way.
	pendingAbort bool
	// batching defers the publication of small messages to the end of a
	// WriteMessages; unpublished says that some are waiting for it.
	batching, unpublished bool
	bufferedFrom          uint64 // the tail when the unpublished bytes began
	// reserved says that Reserve lent room for reservedLen bytes that
	// Commit or Cancel has not ended yet (zerocopy.go).
	reserved    bool
	reservedLen uint64
	cp          copyPolicy // the store kind for large chunks (copy.go)
	// general, set by tests, turns the short path of small messages off
	// (appendWhole), so that its layout can be checked against the
	// general path's.
	general bool
	Counters
}

// NewProducer attaches a producer to r, resuming after whatever is in it.
// It waits and wakes through w.
func NewProducer(r *Ring, w Waiter) (*Producer, error) {
	head, tail, err := r.indices()
	if err != nil {
		return nil, err
	}
	return &Producer{r: r, w: w, tail: tail, head: head}, nil
}

// Free returns the bytes that can be written now, re-reading the consumer's
// index. A consumer index that moved backwards or past our own is corrupt.
func (p *Producer) Free() (uint64, error) {
	h := p.r.ctl.head.Load()
	if h < p.head || h > p.tail || h%align != 0 {
		return 0, corruptf("consumer index %d outside [%d, %d]", h, p.head, p.tail)
	}
	p.head = h
	used := p.tail - h
	if used > p.HighWater {
		p.HighWater = used
	}
	return p.r.size - used, nil
}

// free is Free without re-reading: a lower bound.
func (p *Producer) free() uint64 { return p.r.size - (p.tail - p.head) }

// Sleep announces that the producer is about to sleep until the consumer
// frees space. The caller must re-check Free afterwards (a consumer that
// freed space just before the announcement will not ring) and call Awake
// when it stops waiting.
func (p *Producer) Sleep() { p.r.ctl.writerSleeping.Store(1) }

// Awake withdraws a Sleep announcement.
func (p *Producer) Awake() { p.r.ctl.writerSleeping.Store(0) }

// publish makes everything written so far visible and wakes a sleeping
// consumer. The sequentially consistent store orders the tail before the
// load of the sleeping flag; with the consumer announcing sleep before it
// re-reads the tail, one of the two always sees the other (no lost wake-up).
func (p *Producer) publish() {
	p.unpublished = false
	raceReleaseMerge()
	p.r.ctl.tail.Store(p.tail)
	if p.r.ctl.readerSleeping.Load() != 0 && p.r.ctl.readerSleeping.Swap(0) != 0 {
		p.Wakeups++
		p.w.NotifyData()
	}
}

// Consumer is the reading end of a ring.
type Consumer struct {
	r         *Ring
	w         Waiter
	head      uint64 // ours
	tail      uint64 // the producer's index as last read and validated
	deferring bool   // a batch read: release publishes nothing until it ends
	Counters
}

// NewConsumer attaches a consumer to r, resuming at the shared read index.
// It waits and wakes through w.
func NewConsumer(r *Ring, w Waiter) (*Consumer, error) {
	head, tail, err := r.indices()
	if err != nil {
		return nil, err
	}
	return &Consumer{r: r, w: w, head: head, tail: tail}, nil
}

// Ready reports whether at least one chunk is readable, re-reading the
// producer's index if the last one read is used up.
func (c *Consumer) Ready() (bool, error) {
	if c.tail != c.head {
		return true, nil
	}
	if err := c.refresh(); err != nil {
		return false, err
	}
	return c.tail != c.head, nil
}

func (c *Consumer) refresh() error {
	t := c.r.ctl.tail.Load()
	if t < c.tail || t-c.head > c.r.size || t%align != 0 {
		return corruptf("producer index %d outside [%d, %d]", t, c.tail, c.head+c.r.size)
	}
	if t != c.tail {
		raceAcquire()
	}
	c.tail = t
	if used := t - c.head; used > c.HighWater {
		c.HighWater = used
	}
	return nil
}

// Sleep announces that the consumer is about to sleep until data arrives;
// see Producer.Sleep for the protocol.
func (c *Consumer) Sleep() { c.r.ctl.readerSleeping.Store(1) }

// Awake withdraws a Sleep announcement.
func (c *Consumer) Awake() { c.r.ctl.readerSleeping.Store(0) }

// peek decodes the chunk at the read index, if there is one.
func (c *Consumer) peek() (header, bool, error) {
	if ok, err := c.Ready(); !ok || err != nil {
		return header{}, false, err
	}
	off := c.head & c.r.mask
	avail := min(c.tail-c.head, c.r.size-off)
	h, err := decodeHeader(c.r.data[off : off+avail])
	return h, err == nil, err
}

// whole returns the payload of the chunk at the read index if it is a
// whole message (Begin and End) of at most max bytes, as a peer-writable
// view to copy out before releaseWhole. Anything else (nothing ready,
// another kind of chunk, a header to refuse) is left for the general path
// of peek and decodeHeader, which decides on it: this is only the common
// case made short, a round trip's and a small message's.
func (c *Consumer) whole(max uint64) ([]byte, bool) {
	if c.tail == c.head && (c.refresh() != nil || c.tail == c.head) {
		return nil, false
	}
	off := c.head & c.r.mask
	avail := min(c.tail-c.head, c.r.size-off)
	if avail < hdrLen {
		return nil, false
	}
	// One read of the peer-writable header, as decodeHeader makes; the
	// reserved bits are ignored as there.
	raw := binary.LittleEndian.Uint64(c.r.data[off:])
	n := raw & (1<<32 - 1)
	if uint8(raw>>32)&flagsDefined != FlagBegin|FlagEnd || n > max || hdrLen+align8(n) > avail {
		return nil, false
	}
	return c.r.data[off+hdrLen : off+hdrLen+n : off+hdrLen+n], true
}

// wholes copies the whole-message chunks at the read index into b from
// off, back to back, and their lengths into sizes, while they come (a
// refresh when it runs out) and fit (each at most max bytes, and in what
// is left of b); it releases them as one (deferring or not, the caller
// publishes the head) and returns how many it took and the new offset.
// It is whole and releaseWhole in one loop, the indexes kept out of
// memory, for ReadBatch: a stream of small messages pays this per
// message. It stops at the first chunk of any other kind, which the
// general path decides on.
func (c *Consumer) wholes(b []byte, off int, sizes []int, max uint64) (int, int) {
	head, tail := c.head, c.tail
	data, mask, size := c.r.data, c.r.mask, c.r.size
	n := 0
	var bytes uint64
	for n < len(sizes) {
		if head == tail {
			c.head = head
			if c.refresh() != nil || c.tail == head {
				break
			}
			tail = c.tail
		}
		o := head & mask
		avail := min(tail-head, size-o)
		if avail < hdrLen {
			break
		}
		raw := binary.LittleEndian.Uint64(data[o:]) // one read, as in whole
		l := raw & (1<<32 - 1)
		if uint8(raw>>32)&flagsDefined != FlagBegin|FlagEnd || l > max || l > uint64(len(b)-off) || hdrLen+align8(l) > avail {
			break
		}
		copy(b[off:], data[o+hdrLen:o+hdrLen+l])
		sizes[n] = int(l)
		off += int(l)
		n++
		bytes += l
		head += hdrLen + align8(l)
	}
	c.head = head
	c.Messages += uint64(n)
	c.Bytes += bytes
	return n, off
}

// releaseWhole releases the chunk that whole returned, of n payload bytes.
func (c *Consumer) releaseWhole(n int) {
	c.release(header{length: uint64(n), hlen: hdrLen})
	c.Messages++
	c.Bytes += uint64(n)
}

// payload is the peer-writable view of h's bytes; h was decoded at head.
func (c *Consumer) payload(h header) []byte {
	off := c.head&c.r.mask + h.hlen
	return c.r.data[off : off+h.length : off+h.length]
}

// release gives the chunk's bytes back to the producer, at once or, while
// deferring, at the next publishHead.
func (c *Consumer) release(h header) {
	c.head += h.frame()
	if c.deferring {
		return
	}
	c.publishHead()
}

// publishHead stores the read index and wakes a sleeping producer.
func (c *Consumer) publishHead() {
	c.r.ctl.head.Store(c.head)
	if c.r.ctl.writerSleeping.Load() != 0 && c.r.ctl.writerSleeping.Swap(0) != 0 {
		c.Wakeups++
		c.w.NotifySpace()
	}
}

// Size is the ring's data area in bytes.
func (p *Producer) Size() uint64 { return p.r.size }

// Fill is how many bytes the ring holds now (see Ring.Fill).
func (p *Producer) Fill() uint64 { return p.r.Fill() }

// Fill is how many bytes the ring holds now (see Ring.Fill).
func (c *Consumer) Fill() uint64 { return c.r.Fill() }

// Written is the producer's index: bytes written since the ring was made.
func (p *Producer) Written() uint64 { return p.tail }

// Position is the consumer's index: bytes consumed since the ring was made.
func (c *Consumer) Position() uint64 { return c.head }
