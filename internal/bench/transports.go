package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shmlink/shmlink"
	"github.com/shmlink/shmlink/internal/bench/workload"
)

// Subject names the transport measured against the others: shmlink's.
const Subject = "shmlink"

// RoundTripBaseline names the transport that the ratios of round trips
// and of the sweeps are relative to. Buffering cannot help a round trip,
// so the plain unix socket is the usual alternative (workload.Plain: a
// named pipe on Windows). One-way ratios are relative to the fastest
// transport other than the Subject (see Result.Baseline).
var RoundTripBaseline = workload.Plain.Name

// Shmlink is a shmlink link whose rings have ring bytes (0: the default).
func Shmlink(ring int) *workload.Transport {
	t := linkTransport(Subject, ring, newBatchConn)
	// shmlink's best APIs for a stream: WriteMessages for small
	// messages, BufferMessage for the rest, one publish per batch. Round
	// trips flush every message, so they are a WriteMessages of one. Reads
	// are ReadMessageInto.
	t.Writes = "WriteMessages"
	return t
}

// BatchName names ShmlinkBatch's transport.
const BatchName = Subject + "-batch"

// ShmlinkBatch is Shmlink(ring) for a program that has its messages in
// hand: a one-way stream hands them to WriteMessages by reference, as
// many as a buffered socket gathers at once (workload.BatchWriter), with
// no gathering copy. It has no round-trip row (Buffered: a round trip is a
// WriteMessage, as Shmlink's), nor streams of messages over 4 KiB: for
// those Shmlink's BufferMessage hands the ring one message at a time too.
func ShmlinkBatch(ring int) *workload.Transport {
	t := linkTransport(BatchName, ring, func(c *shmlink.Conn, err error) (*shmlink.Conn, error) { return c, err })
	t.Writes, t.Buffered, t.StreamsUpTo = "batch in hand", true, workload.CopyMax
	return t
}

// linkTransport is a transport of links with rings of ring bytes, each
// Conn, accepted or dialled, passed through wrap.
func linkTransport[C workload.Conn](name string, ring int, wrap func(*shmlink.Conn, error) (C, error)) *workload.Transport {
	cfg := &shmlink.Config{RingSize: ring}
	return workload.PathTransport(name,
		func(path string) (*shmlink.Listener, error) { return shmlink.Listen(path, cfg) },
		func(l *shmlink.Listener) (C, error) { return wrap(l.AcceptConn()) },
		func(path string) (C, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return wrap(shmlink.Dial(ctx, path, cfg))
		})
}

// batchConn gathers the small messages of a batch, as a buffered socket
// does, and sends them with one WriteMessages when the driver flushes (at
// the end of a batch, after a message that must be answered) or when
// BufferSize bytes are waiting. A larger message, over gatherMax, goes
// into the ring at once with BufferMessage, after what was waiting, and is
// published with the rest (BufferMessage publishes every 64 KiB by itself,
// as a buffered socket writes a full buffer): copying it into the batch
// first would cost more than BufferMessage's lock.
//
// It holds the Conn rather than embedding it, so that it is not itself a
// workload.BatchWriter: its driver hands it one message at a time.
type batchConn struct {
	c     *shmlink.Conn
	arena []byte // the waiting messages' bytes; never grows
	msgs  [][]byte
}

func (b *batchConn) ReadMessageInto(m []byte) (int, error) { return b.c.ReadMessageInto(m) }

// ReadMessagesInto makes the peer's sink of small messages drain many per
// call (workload.BatchReader).
func (b *batchConn) ReadMessagesInto(m []byte, sizes []int) (int, error) {
	return b.c.ReadMessagesInto(m, sizes)
}

func (b *batchConn) Close() error { return b.c.Close() }

// gatherMax is the largest message batchConn gathers. Measured with
// `shmlink bench`: BufferMessage is 0.6-0.7x gathering at 64 B, 1.3x at
// 4 KiB.
const gatherMax = 1 << 10

func newBatchConn(c *shmlink.Conn, err error) (*batchConn, error) {
	if err != nil {
		return nil, err
	}
	return &batchConn{c: c, arena: make([]byte, 0, workload.BufferSize)}, nil
}

func (b *batchConn) WriteMessage(m []byte) error {
	if len(m) > gatherMax {
		if err := b.sendGathered(); err != nil {
			return err
		}
		return b.c.BufferMessage(m)
	}
	if len(b.arena)+len(m) > cap(b.arena) {
		if err := b.sendGathered(); err != nil {
			return err
		}
	}
	start := len(b.arena)
	b.arena = append(b.arena, m...)
	b.msgs = append(b.msgs, b.arena[start:len(b.arena):len(b.arena)])
	return nil
}

// Flush sends the waiting messages.
func (b *batchConn) Flush() error {
	if len(b.msgs) == 0 {
		return b.c.Flush()
	}
	return b.sendGathered() // publishes what BufferMessage left too
}

// sendGathered sends the gathered messages, if any.
func (b *batchConn) sendGathered() error {
	if len(b.msgs) == 0 {
		return nil
	}
	_, err := b.c.WriteMessages(b.msgs)
	b.msgs, b.arena = b.msgs[:0], b.arena[:0]
	return err
}

// Transports returns every transport of a run, shmlink's with the given
// ring size, then this system's competitors (workload.Competitors): each
// stream transport writing every message at once, then buffered.
func Transports(ring int) []*workload.Transport {
	return append([]*workload.Transport{Shmlink(ring), ShmlinkBatch(ring)}, workload.Competitors...)
}

// SweepTransports are the transports of the idle and links sweeps:
// shmlink's and the plain alternative.
func SweepTransports(ring int) []*workload.Transport {
	return []*workload.Transport{Shmlink(ring), workload.Plain}
}

// RingTransports are the transports of the ring sweep: shmlink's with
// each of SweepRings, and the plain alternative, written per message and
// buffered.
func RingTransports() []*workload.Transport {
	var ts []*workload.Transport
	for _, r := range SweepRings {
		ts = append(ts, ShmlinkRing(r))
	}
	return append(ts, workload.Plain, workload.PlainBuffered)
}

// IsSubject reports whether a transport is shmlink's, at any ring size.
func IsSubject(name string) bool {
	return name == Subject || strings.HasPrefix(name, Subject+"-")
}

// SweepRings are the ring sizes of the ring sweep.
var SweepRings = []int{256 << 10, 1 << 20, 4 << 20}

// ShmlinkRing is Shmlink(ring) named for its ring size, for a run that
// compares ring sizes: "shmlink-256K".
func ShmlinkRing(ring int) *workload.Transport {
	t := Shmlink(ring)
	t.Name = fmt.Sprintf("%s-%dK", Subject, ring>>10)
	if ring%(1<<20) == 0 {
		t.Name = fmt.Sprintf("%s-%dM", Subject, ring>>20)
	}
	return t
}

// PeerTransports are every transport a peer process may be asked for: a
// run's (Transports(ring)) and the ring sweep's.
func PeerTransports(ring int) []*workload.Transport {
	ts := Transports(ring)
	for _, r := range SweepRings {
		ts = append(ts, ShmlinkRing(r))
	}
	return ts
}
