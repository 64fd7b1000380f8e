package shmlink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"github.com/shmlink/shmlink/internal/ring"
	"github.com/shmlink/shmlink/internal/sys"
	"github.com/shmlink/shmlink/internal/wake"
)

// endpoint is this side's half of a link's memory: the mapping, the ring it
// writes, the ring it reads, and the doorbells the peer rings. A Conn is
// one session over an endpoint. An ordinary Conn owns its endpoint and frees
// it on Close; a client-role Link keeps its endpoint across sessions, so
// that what its rings hold survives a server restart.
type endpoint struct {
	cfg        Config
	seg        *os.File
	mem        []byte
	dataBell   *wake.Doorbell // rung by the peer when it publishes into our RX ring
	spaceBell  *wake.Doorbell // rung by the peer when it frees space in our TX ring
	persistent bool           // sessions come and go; disconnection is not an error

	sess      atomic.Pointer[Conn] // the current session, nil between sessions
	closed    atomic.Bool
	closeOnce sync.Once
	failErr   atomic.Pointer[error]

	readDeadline  atomic.Int64 // Unix nanoseconds, 0 for none
	writeDeadline atomic.Int64

	rmu   sync.Mutex // serialises readers; held while touching the RX ring
	rd    *ring.Reader
	rwait waiter
	rsnap statsSnapshot // for Stats while rmu is busy

	wmu         sync.Mutex // serialises writers; held while touching the TX ring
	wr          *ring.Producer
	wwait       waiter
	wsnap       statsSnapshot
	spaceFor    uint64             // bytes the waiting writer needs; under wmu
	waitSpaceFn func(uint64) error // ep.waitSpace, bound once
}

// newEndpoint attaches to the rings of a mapped segment. A server attaching
// to rings that already hold traffic (a client resuming after a server
// restart) skips the unread tail of any message its predecessor had begun
// reading, and abandons any message its predecessor had begun writing.
func newEndpoint(cfg Config, seg *os.File, mem []byte, layout ring.Layout, server bool,
	dataBell, spaceBell *wake.Doorbell) (*endpoint, error) {
	tx, rx := ring.ClientToServer, ring.ServerToClient
	if server {
		tx, rx = rx, tx
	}
	wr, err := ring.NewProducer(layout.Ring(mem, tx))
	if err != nil {
		return nil, err
	}
	cons, err := ring.NewConsumer(layout.Ring(mem, rx))
	if err != nil {
		return nil, err
	}
	ep := &endpoint{cfg: cfg, seg: seg, mem: mem, dataBell: dataBell, spaceBell: spaceBell,
		wr: wr, rd: ring.NewReader(cons, server && cons.Position() > 0)}
	if server && wr.Written() > 0 {
		wr.Resume()
	}
	wr.Notify = ep.ringPeerData
	cons.Notify = ep.ringPeerSpace
	ep.rd.MaxMessage = uint64(cfg.MaxMessageSize)
	ep.rd.Wait = ep.waitData
	ep.waitSpaceFn = ep.waitSpace
	ep.rwait = waiter{ep: ep, bell: dataBell, deadline: &ep.readDeadline, ready: cons.Ready,
		sleep: cons.Sleep, awake: cons.Awake, read: true}
	ep.wwait = waiter{ep: ep, bell: spaceBell, deadline: &ep.writeDeadline, ready: ep.spaceReady,
		sleep: wr.Sleep, awake: wr.Awake}
	return ep, nil
}

// newClientEndpoint allocates a link's memory, as a client does.
func newClientEndpoint(cfg Config, name string) (_ *endpoint, err error) {
	var undo []func() error
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	layout := ring.Layout{RingSize: [2]uint64{uint64(cfg.RingSize), uint64(cfg.RingSize)}}
	seg, err := sys.CreateSegment("shmlink:"+name, int64(layout.Size()))
	if err != nil {
		return nil, err
	}
	undo = append(undo, seg.Close)
	mem, err := sys.Map(seg, int(layout.Size()))
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() error { return sys.Unmap(mem) })
	if err := ring.Init(mem, layout); err != nil {
		return nil, err
	}
	dataBell, err := wake.NewDoorbell()
	if err != nil {
		return nil, err
	}
	undo = append(undo, dataBell.Close)
	spaceBell, err := wake.NewDoorbell()
	if err != nil {
		return nil, err
	}
	undo = append(undo, spaceBell.Close)
	return newEndpoint(cfg, seg, mem, layout, false, dataBell, spaceBell)
}

func (ep *endpoint) ringPeerData() {
	if s := ep.sess.Load(); s != nil {
		s.peerData.Ring()
	}
}

func (ep *endpoint) ringPeerSpace() {
	if s := ep.sess.Load(); s != nil {
		s.peerSpace.Ring()
	}
}

// wakeAll makes every waiter of this endpoint re-check its state.
func (ep *endpoint) wakeAll() {
	ep.dataBell.Ring()
	ep.spaceBell.Ring()
}

// stateErr returns why an operation cannot go on, or nil. For a reader,
// the peer's departure is not an error until the ring is drained; the
// waiter checks that.
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
	switch ep.sess.Load().state.Load() {
	case statePeerClosed:
		if read {
			return io.EOF
		}
		return ErrPeerClosed
	case statePeerLost:
		return ErrPeerLost
	}
	return nil
}

// fail poisons the endpoint after the peer broke the protocol: its memory
// can no longer be trusted. The session is ended; the memory stays mapped
// until close, since a reader may be in it.
func (ep *endpoint) fail(err error) {
	if !ep.failErr.CompareAndSwap(nil, &err) {
		return
	}
	if s := ep.sess.Load(); s != nil {
		s.fail()
	}
	ep.wakeAll()
}

// close marks the endpoint closed, waits until no reader or writer is inside
// the rings, runs last (with both locks held, e.g. to say goodbye after the
// last data) and frees everything.
//
// Only the first call does anything; it reports whether it was the first.
func (ep *endpoint) close(last func()) (first bool) {
	ep.closeOnce.Do(func() {
		first = true
		ep.doClose(last)
	})
	return first
}

func (ep *endpoint) doClose(last func()) {
	ep.closed.Store(true)
	ep.wakeAll()
	ep.wmu.Lock()
	ep.rmu.Lock()
	if last != nil {
		last()
	}
	_ = sys.Unmap(ep.mem)
	ep.mem = nil
	ep.seg.Close()
	ep.dataBell.Close()
	ep.spaceBell.Close()
	ep.rmu.Unlock()
	ep.wmu.Unlock()
}

func (ep *endpoint) waitData() error             { return ep.rwait.wait() }
func (ep *endpoint) waitSpace(need uint64) error { ep.spaceFor = need; return ep.wwait.wait() }
func (ep *endpoint) spaceReady() (bool, error) {
	f, err := ep.wr.Free()
	return f >= ep.spaceFor, err
}

// writeMessage is WriteMessage for any session of the endpoint.
func (ep *endpoint) writeMessage(ctx context.Context, b []byte, limit uint64) error {
	if uint64(len(b)) > limit {
		return fmt.Errorf("%w: %d bytes, peer accepts at most %d", ErrMessageTooLarge, len(b), limit)
	}
	ep.wmu.Lock()
	defer ep.wmu.Unlock()
	if err := ep.stateErr(false); err != nil {
		return err
	}
	ep.wwait.ctx = ctx
	err := ep.wr.WriteMessage(b, ep.waitSpaceFn)
	ep.wwait.ctx = nil
	return ep.check(err)
}

// check fails the endpoint if err says the peer corrupted the memory.
func (ep *endpoint) check(err error) error {
	if err != nil && errors.Is(err, ring.ErrCorrupt) {
		ep.fail(err)
	}
	return err
}

// lockRead takes the reader lock unless the endpoint is closed (its memory
// may then be gone).
func (ep *endpoint) lockRead() error {
	ep.rmu.Lock()
	if ep.closed.Load() {
		ep.rmu.Unlock()
		return net.ErrClosed
	}
	return nil
}

func (ep *endpoint) readMessage(ctx context.Context) ([]byte, error) {
	if err := ep.lockRead(); err != nil {
		return nil, err
	}
	defer ep.rmu.Unlock()
	ep.rwait.ctx = ctx
	m, err := ep.rd.ReadMessage()
	ep.rwait.ctx = nil
	return m, ep.check(err)
}

func (ep *endpoint) readInto(b []byte) (int, error) {
	if err := ep.lockRead(); err != nil {
		return 0, err
	}
	defer ep.rmu.Unlock()
	n, err := ep.rd.ReadInto(b)
	return n, ep.check(err)
}

func (ep *endpoint) read(b []byte) (int, error) {
	if err := ep.lockRead(); err != nil {
		return 0, err
	}
	defer ep.rmu.Unlock()
	n, err := ep.rd.Read(b)
	return n, ep.check(err)
}
