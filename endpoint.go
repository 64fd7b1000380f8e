package shmlink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmlink/shmlink/internal/ring"
	"github.com/shmlink/shmlink/internal/sys"
	"github.com/shmlink/shmlink/internal/wake"
)

// endpoint is this side's half of a link's memory: the segment, the ring
// it writes, the ring it reads, and the doorbells the peer rings. A Conn is
// one session over an endpoint. An ordinary Conn owns its endpoint and frees
// it on Close; a client-role Link keeps its endpoint across sessions, so
// that what its rings hold survives a server restart.
//
// The endpoint is the rings' ring.Waiter: a message goes from
// Conn.WriteMessage to endpoint.writeMessage to ring.Producer.WriteMessage,
// which calls WaitSpace when the ring is full and NotifyData when the peer
// sleeps; the reader's side mirrors it.
type endpoint struct {
	cfg        Config
	seg        *sys.Segment
	dataBell   *sys.Doorbell // rung by the peer when it publishes into our RX ring
	spaceBell  *sys.Doorbell // rung by the peer when it frees space in our TX ring
	persistent bool          // sessions come and go; disconnection is not an error

	// sess is the current session, nil between sessions. It holds the
	// peer's doorbells, so a notification rings whoever is connected now.
	sess      atomic.Pointer[session]
	closed    atomic.Bool
	closeOnce sync.Once
	// buffered says BufferMessage may have left messages unpublished, so
	// that Flush costs nothing to a writer that never buffers. It is set
	// under wmu; a later publishing write leaves it set, stale but
	// harmless: the next Flush takes the lock and finds nothing.
	buffered atomic.Bool
	failErr  atomic.Pointer[error]

	readDeadline  atomic.Int64 // Unix nanoseconds, 0 for none
	writeDeadline atomic.Int64

	rmu   sync.Mutex // serialises readers; held while touching the RX ring
	rd    *ring.Reader
	rwait wake.Waiter
	rsnap statsSnapshot // for Stats while rmu is busy

	// rung counts the peer's doorbells this side rang: a wait that comes
	// after a ring is cold, the peer is waking up (wake.Policy).
	rung atomic.Uint64

	wmu   sync.Mutex // serialises writers; held while touching the TX ring
	wr    *ring.Producer
	wwait wake.Waiter
	need  uint64 // the room the writer waits for (WaitSpace), under wmu
	wsnap statsSnapshot

	zc leases // reservations and loans of ring memory (endpoint_zerocopy.go)
}

// newEndpoint attaches to the rings of a mapped segment, taking ownership
// of the segment and the doorbells only if it succeeds. A server attaching
// to rings that already hold traffic (a client resuming after a server
// restart) skips the unread tail of any message its predecessor had begun
// reading, and abandons any message its predecessor had begun writing.
func newEndpoint(cfg Config, seg *sys.Segment, layout ring.Layout, server bool,
	dataBell, spaceBell *sys.Doorbell) (*endpoint, error) {
	tx, rx := ring.ClientToServer, ring.ServerToClient
	if server {
		tx, rx = rx, tx
	}
	ep := &endpoint{cfg: cfg, seg: seg, dataBell: dataBell, spaceBell: spaceBell}
	wr, err := ring.NewProducer(layout.Ring(seg.Mem(), tx), ep)
	if err != nil {
		return nil, err
	}
	cons, err := ring.NewConsumer(layout.Ring(seg.Mem(), rx), ep)
	if err != nil {
		return nil, err
	}
	ep.wr, ep.rd = wr, ring.NewReader(cons, server && cons.Position() > 0)
	ep.rd.MaxMessage = uint64(cfg.MaxMessageSize)
	ep.rwait = wake.NewWaiter(dataBell, cfg.SpinTime, cons, &ep.rung)
	ep.wwait = wake.NewWaiter(spaceBell, cfg.SpinTime, wr, &ep.rung)
	ep.rwait.OnSleep = func() { ep.publishStats(true) }
	ep.wwait.OnSleep = func() { ep.publishStats(false) }
	if !cfg.NoPoller {
		ep.rwait.PollWith(cons.Ready)
		ep.wwait.PollWith(ep.spaceReady)
	}
	dataBell.OnHostile(ep.blockedRing)
	spaceBell.OnHostile(ep.blockedRing)
	if server && wr.Written() > 0 {
		wr.Resume()
	}
	return ep, nil
}

// newClientEndpoint allocates a link's memory, as a client does.
func newClientEndpoint(cfg Config, name string) (_ *endpoint, err error) {
	var undo cleanup
	defer undo.onError(&err)
	layout := ring.Layout{RingSize: [2]uint64{uint64(cfg.RingSize), uint64(cfg.RingSize)}}
	seg, err := sys.CreateSegment("shmlink:"+name, int(layout.Size()))
	if err != nil {
		return nil, err
	}
	undo.add(seg.Close)
	if err := ring.Init(seg.Mem(), layout); err != nil {
		return nil, err
	}
	data, space, err := newDoorbells(&undo)
	if err != nil {
		return nil, err
	}
	return newEndpoint(cfg, seg, layout, false, data, space)
}

// newDoorbells makes an endpoint's two doorbells, leaving their release to
// undo.
func newDoorbells(undo *cleanup) (data, space *sys.Doorbell, err error) {
	if data, err = sys.NewDoorbell(); err != nil {
		return nil, nil, err
	}
	undo.add(data.Close)
	if space, err = sys.NewDoorbell(); err != nil {
		return nil, nil, err
	}
	undo.add(space.Close)
	return data, space, nil
}

// WaitData implements ring.Waiter for the reader.
func (ep *endpoint) WaitData(ctx context.Context) error {
	err := ep.rwait.Wait(ctx, ep.readDeadlineTime, ep.rd.Consumer().Ready,
		func() error { return ep.stop(ctx, true) })
	return waitErr(err)
}

// WaitSpace implements ring.Waiter for the writer.
func (ep *endpoint) WaitSpace(ctx context.Context, need uint64) error {
	ep.need = need
	err := ep.wwait.Wait(ctx, ep.writeDeadlineTime, ep.spaceReady,
		func() error { return ep.stop(ctx, false) })
	if hook := testHookSpaceWaited.Load(); hook != nil {
		(*hook)(ep)
	}
	return waitErr(err)
}

// spaceReady reports whether the room a writer waits for is free: need
// bytes, as the writer holding the lock last asked for.
func (ep *endpoint) spaceReady() (bool, error) {
	f, err := ep.wr.Free()
	return f >= ep.need, err
}

// testHookSpaceWaited, if set, runs after each wait for space: tests use
// it to widen a race.
var testHookSpaceWaited atomic.Pointer[func(*endpoint)]

// NotifyData implements ring.Waiter: it rings the peer's data doorbell, if
// a peer is connected (a session's start rings it anyway).
func (ep *endpoint) NotifyData() {
	if s := ep.sess.Load(); s != nil {
		ep.rung.Add(1)
		s.peerData.Ring()
	}
}

// NotifySpace implements ring.Waiter for the reader's releases.
func (ep *endpoint) NotifySpace() {
	if s := ep.sess.Load(); s != nil {
		ep.rung.Add(1)
		s.peerSpace.Ring()
	}
}

// readDeadlineTime and writeDeadlineTime are the deadlines as a waiter
// reads them, after its last look at stop (wake.Waiter.Wait).
func (ep *endpoint) readDeadlineTime() time.Time  { return nanoTime(ep.readDeadline.Load()) }
func (ep *endpoint) writeDeadlineTime() time.Time { return nanoTime(ep.writeDeadline.Load()) }

func nanoTime(ns int64) time.Time {
	if ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// waitErr maps a doorbell closed under a waiter to the error of a closed
// link: the endpoint is being freed.
func waitErr(err error) error {
	if err == wake.ErrClosed {
		return net.ErrClosed
	}
	return err
}

// stop reports why a wait must end: the link's state, the deadline or the
// context. A reader whose peer has left still gets what is in the ring.
func (ep *endpoint) stop(ctx context.Context, read bool) error {
	if err := ep.stateErr(read); err != nil {
		if read && (err == io.EOF || err == ErrPeerLost) {
			if ok, rerr := ep.rd.Consumer().Ready(); ok || rerr != nil {
				return rerr
			}
		}
		return err
	}
	if err := ep.expired(read); err != nil {
		return err
	}
	return ctx.Err()
}

// expired reports ErrTimeout once the direction's deadline has passed. An
// operation checks it before it starts, as the net package does: a passed
// deadline fails reads and writes at once, even with data in the ring or
// room for the message.
func (ep *endpoint) expired(read bool) error {
	d := &ep.writeDeadline
	if read {
		d = &ep.readDeadline
	}
	if ns := d.Load(); ns != 0 && time.Now().UnixNano() >= ns {
		return ErrTimeout
	}
	return nil
}

// wakeAll makes every waiter of this endpoint re-check its state.
func (ep *endpoint) wakeAll() {
	ep.rwait.Interrupt()
	ep.wwait.Interrupt()
}

// stateErr returns why an operation cannot go on, or nil. For a reader,
// the peer's departure is not an error until the ring is drained; stop
// checks that.
func (ep *endpoint) stateErr(read bool) error {
	if ep.closed.Load() {
		return net.ErrClosed
	}
	if p := ep.failErr.Load(); p != nil {
		return *p
	}
	if ep.persistent {
		return nil
	}
	s := ep.sess.Load()
	switch s.state.Load() {
	case statePeerClosed:
		if read {
			return io.EOF
		}
		return ErrPeerClosed
	case statePeerLost:
		return ErrPeerLost
	}
	switch {
	case read && s.peerShut.Load():
		return io.EOF
	case !read && s.shut.Load():
		return errWriteShut
	}
	return nil
}

// errWriteShut is the error of a write after CloseWrite.
var errWriteShut = fmt.Errorf("%w: write after CloseWrite", net.ErrClosed)

// fail is the one way a link fails: the peer broke the protocol, so its
// memory can no longer be trusted. The session ends; the memory stays
// mapped until close, since a reader may be in it. Every error that says
// so passes through check, which calls fail.
func (ep *endpoint) fail(err error) {
	if !ep.failErr.CompareAndSwap(nil, &err) {
		return
	}
	s := ep.sess.Load()
	if s != nil {
		s.fail()
	}
	if ep.cfg.Logger != nil {
		args := []any{"error", err.Error()}
		if s != nil {
			args = append(args, "name", s.local.Name, "peer_pid", s.remote.PID)
		}
		ep.cfg.log(slog.LevelError, "shmlink: corruption detected, link closed", args...)
	}
	ep.wakeAll()
}

// blockedRing fails the endpoint: the peer made a ring of one of the
// link's eventfds block (internal/sys frees the ring).
func (ep *endpoint) blockedRing() {
	ep.fail(fmt.Errorf("%w: the peer made a doorbell block (cleared O_NONBLOCK and filled its counter)", ErrCorrupt))
}

// check fails the endpoint if err says the peer corrupted the memory.
func (ep *endpoint) check(err error) error {
	if err != nil && errors.Is(err, ErrCorrupt) {
		ep.fail(err)
	}
	return err
}

// close marks the endpoint closed, waits until no reader or writer is inside
// the rings, runs last (with both locks held, e.g. to say goodbye after the
// last data) and frees everything. While a zero-copy reservation or loan
// lends the caller ring memory, all but the marking waits for its end.
//
// Only the first call does anything; it reports whether it was the first.
func (ep *endpoint) close(last func()) (first bool) {
	ep.closeOnce.Do(func() {
		first = true
		ep.closed.Store(true)
		ep.wakeAll()
		rest := func() { ep.free(last) }
		if !ep.deferClose(rest) { // a reservation or loan lends our memory
			rest()
		}
	})
	return first
}

// free is the end of close: with both locks, last, then the memory and
// the doorbells.
func (ep *endpoint) free(last func()) {
	ep.wmu.Lock()
	defer ep.wmu.Unlock()
	ep.rmu.Lock()
	defer ep.rmu.Unlock()
	ep.publishBuffered() // buffered messages are sent: the goodbye comes after them
	if last != nil {
		last()
	}
	ep.seg.Close()
	ep.dataBell.Close()
	ep.spaceBell.Close()
}

// writeMessage is WriteMessage for any session of the endpoint.
func (ep *endpoint) writeMessage(ctx context.Context, b []byte, limit uint64) error {
	if uint64(len(b)) > limit {
		return tooLarge(len(b), limit)
	}
	if ep.closed.Load() { // before the lock, which a reservation may hold
		return net.ErrClosed
	}
	ep.wmu.Lock()
	defer ep.wmu.Unlock() // a deferred unlock survives a panic under the lock (a Logger's, say)
	if err := ep.writable(ctx); err != nil {
		return err
	}
	return ep.check(ep.wr.WriteMessage(ctx, b))
}

// bufferMessage is BufferMessage.
func (ep *endpoint) bufferMessage(ctx context.Context, b []byte, limit uint64) error {
	if uint64(len(b)) > limit {
		return tooLarge(len(b), limit)
	}
	if ep.closed.Load() {
		return net.ErrClosed
	}
	ep.wmu.Lock()
	defer ep.wmu.Unlock()
	if err := ep.writable(ctx); err != nil {
		return err
	}
	err := ep.wr.BufferMessage(ctx, b)
	if ep.wr.Unpublished() && !ep.buffered.Load() { // a load is cheaper than a store
		ep.buffered.Store(true)
	}
	return ep.check(err)
}

func tooLarge(n int, limit uint64) error {
	return fmt.Errorf("%w: %d bytes, peer accepts at most %d", ErrMessageTooLarge, n, limit)
}

// writable makes the checks every write makes under the writer lock: the
// link's state, the deadline and ctx.
func (ep *endpoint) writable(ctx context.Context) error {
	if err := ep.stateErr(false); err != nil {
		return err
	}
	if err := ep.expired(false); err != nil {
		return err
	}
	return ctx.Err()
}

// flush is Flush: it publishes what bufferMessage left waiting.
func (ep *endpoint) flush() error {
	if !ep.buffered.Load() {
		return nil
	}
	if ep.closed.Load() {
		return net.ErrClosed
	}
	ep.wmu.Lock()
	defer ep.wmu.Unlock()
	if !ep.wr.Unpublished() {
		ep.buffered.Store(false)
		return nil
	}
	if err := ep.stateErr(false); err != nil {
		return err
	}
	ep.publishBuffered()
	return nil
}

// publishBuffered publishes what BufferMessage left; the caller holds wmu.
func (ep *endpoint) publishBuffered() {
	ep.wr.Flush()
	ep.buffered.Store(false)
}

// writeMessages is WriteMessages for any session of the endpoint. Every
// message is checked against the limit before any is sent.
func (ep *endpoint) writeMessages(ctx context.Context, msgs [][]byte, limit uint64) (int, error) {
	for i, b := range msgs {
		if uint64(len(b)) > limit {
			return 0, fmt.Errorf("%w: message %d of the batch has %d bytes, peer accepts at most %d; none sent",
				ErrMessageTooLarge, i, len(b), limit)
		}
	}
	if ep.closed.Load() {
		return 0, net.ErrClosed
	}
	ep.wmu.Lock()
	defer ep.wmu.Unlock()
	if err := ep.writable(ctx); err != nil {
		return 0, err
	}
	n, err := ep.wr.WriteMessages(ctx, msgs)
	return n, ep.check(err)
}

// lockRead takes the reader lock unless the endpoint is closed (its memory
// may then be gone) or the read deadline has passed.
func (ep *endpoint) lockRead() error {
	if ep.closed.Load() { // before the lock, which a loan may hold
		return net.ErrClosed
	}
	ep.rmu.Lock()
	if ep.closed.Load() {
		ep.rmu.Unlock()
		return net.ErrClosed
	}
	if err := ep.expired(true); err != nil {
		ep.rmu.Unlock()
		return err
	}
	return nil
}

// readMessage is ReadMessageContext for any session of the endpoint. A
// context that is already done takes nothing, even from a full ring: a
// Link closing must not consume messages it will not deliver.
func (ep *endpoint) readMessage(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := ep.lockRead(); err != nil {
		return nil, err
	}
	defer ep.rmu.Unlock()
	m, err := ep.rd.ReadMessage(ctx)
	return m, ep.check(err)
}

func (ep *endpoint) readInto(b []byte) (int, error) {
	if err := ep.lockRead(); err != nil {
		return 0, err
	}
	defer ep.rmu.Unlock()
	n, err := ep.rd.ReadInto(context.Background(), b)
	if sb, ok := err.(*ring.ShortBufferError); ok {
		return 0, &ShortBufferError{Need: int(sb.Need)}
	}
	return n, ep.check(err)
}

func (ep *endpoint) readBatch(b []byte, sizes []int) (int, error) {
	if err := ep.lockRead(); err != nil {
		return 0, err
	}
	defer ep.rmu.Unlock()
	n, err := ep.rd.ReadBatch(context.Background(), b, sizes)
	if sb, ok := err.(*ring.ShortBufferError); ok {
		return 0, &ShortBufferError{Need: int(sb.Need)}
	}
	return n, ep.check(err)
}

func (ep *endpoint) read(b []byte) (int, error) {
	if err := ep.lockRead(); err != nil {
		return 0, err
	}
	defer ep.rmu.Unlock()
	n, err := ep.rd.Read(context.Background(), b)
	return n, ep.check(err)
}
