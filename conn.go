package shmlink

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmlink/shmlink/internal/ring"
	"github.com/shmlink/shmlink/internal/sys"
	"github.com/shmlink/shmlink/internal/wake"
	"github.com/shmlink/shmlink/internal/wire"
)

// Link states, in Conn.state. Transitions only go forward: open to one of
// peerClosed, peerLost or failed, and anything to closed.
const (
	stateOpen int32 = iota
	statePeerClosed
	statePeerLost
	stateFailed
	stateClosed
)

// Conn is one end of a link. It implements net.Conn for stream use and adds
// a message API: WriteMessage sends a whole message atomically with respect
// to other writers, ReadMessage and ReadMessageInto return whole messages.
//
// Reads and writes may run concurrently with each other; concurrent writers
// are serialised (messages never interleave), as are concurrent readers.
// Stream Read ignores message boundaries; after a partial Read, ReadMessage
// returns the rest of that message.
type Conn struct {
	cfg            Config
	sock           *net.UnixConn
	seg            *os.File
	mem            []byte
	local, remote  *Addr
	peerCred       sys.Cred
	maxSend        uint64         // the peer's MaxMessageSize
	dataBell       *wake.Doorbell // rung by the peer when it publishes into our RX ring
	spaceBell      *wake.Doorbell // rung by the peer when it frees space in our TX ring
	peerData       *wake.Bell
	peerSpace      *wake.Bell
	readDeadline   atomic.Int64 // Unix nanoseconds, 0 for none
	writeDeadline  atomic.Int64
	state          atomic.Int32
	failErr        atomic.Pointer[error]
	closeOnce      sync.Once
	controlStopped chan struct{}
	done           chan struct{} // closed on leaving stateOpen
	doneOnce       sync.Once

	rmu      sync.Mutex // serialises readers; held while touching the RX ring
	rd       *ring.Reader
	rwait    waiter
	rsnap    atomic.Pointer[DirectionStats] // for Stats while rmu is busy
	wmu      sync.Mutex                     // serialises writers; held while touching the TX ring
	wr       *ring.Producer
	wwait    waiter
	wsnap    atomic.Pointer[DirectionStats]
	spaceFor uint64 // bytes the waiting writer needs; under wmu

	waitSpaceFn func(uint64) error // c.waitSpace, bound once
	onClose     func()             // set by a Listener to count its clients
}

// connParts is what a handshake hands to newConn.
type connParts struct {
	cfg                 Config
	sock                *net.UnixConn
	seg                 *os.File
	mem                 []byte
	layout              ring.Layout
	server              bool
	local, remote       *Addr
	cred                sys.Cred
	maxSend             uint64
	dataBell, spaceBell *wake.Doorbell
	peerData, peerSpace *wake.Bell
}

func newConn(p connParts) (*Conn, error) {
	tx, rx := ring.ClientToServer, ring.ServerToClient
	if p.server {
		tx, rx = rx, tx
	}
	wr, err := ring.NewProducer(p.layout.Ring(p.mem, tx))
	if err != nil {
		return nil, err
	}
	cons, err := ring.NewConsumer(p.layout.Ring(p.mem, rx))
	if err != nil {
		return nil, err
	}
	c := &Conn{
		cfg: p.cfg, sock: p.sock, seg: p.seg, mem: p.mem,
		local: p.local, remote: p.remote, peerCred: p.cred, maxSend: p.maxSend,
		dataBell: p.dataBell, spaceBell: p.spaceBell, peerData: p.peerData, peerSpace: p.peerSpace,
		controlStopped: make(chan struct{}),
		done:           make(chan struct{}),
		wr:             wr,
		rd:             ring.NewReader(cons, false),
	}
	wr.Notify = c.peerData.Ring
	cons.Notify = c.peerSpace.Ring
	c.rd.MaxMessage = uint64(p.cfg.MaxMessageSize)
	c.rd.Wait = c.waitData
	c.waitSpaceFn = c.waitSpace
	c.rwait = waiter{c: c, bell: c.dataBell, deadline: &c.readDeadline, ready: c.dataReady,
		sleep: cons.Sleep, awake: cons.Awake, read: true}
	c.wwait = waiter{c: c, bell: c.spaceBell, deadline: &c.writeDeadline, ready: c.spaceReady,
		sleep: wr.Sleep, awake: wr.Awake}
	return c, nil
}

// start begins watching the socket, once the handshake is over.
func (c *Conn) start() { go c.control() }

// control reads the link's socket for as long as it is open. The peer sends
// nothing after the handshake but a goodbye; the socket's end-of-file tells
// us the peer is gone, within the kernel's process teardown, whatever
// killed it.
func (c *Conn) control() {
	defer close(c.controlStopped)
	var buf [64]byte
	for {
		n, files, err := sys.RecvMsg(c.sock, buf[:], 0)
		if err != nil {
			c.peerGone(statePeerLost)
			return
		}
		m, err := wire.Decode(buf[:n], len(files))
		if err != nil || m.Type != wire.Bye {
			if err == nil {
				err = fmt.Errorf("unexpected %s after handshake", m.Type)
			}
			c.fail(fmt.Errorf("%w: %v", ErrHandshake, err))
			return
		}
		c.peerGone(statePeerClosed)
	}
}

// peerGone records that the peer left and wakes every waiter on this side,
// so that each re-checks the state and returns.
func (c *Conn) peerGone(s int32) {
	if c.state.CompareAndSwap(stateOpen, s) {
		c.dataBell.Ring()
		c.spaceBell.Ring()
		c.markDone()
	}
}

func (c *Conn) markDone() { c.doneOnce.Do(func() { close(c.done) }) }

// fail closes the link because of err (a protocol violation by the peer).
// Memory stays mapped until Close, since a reader may be using it.
func (c *Conn) fail(err error) {
	if !c.failErr.CompareAndSwap(nil, &err) {
		return
	}
	for {
		s := c.state.Load()
		if s == stateClosed || c.state.CompareAndSwap(s, stateFailed) {
			break
		}
	}
	c.sock.CloseWrite() // the peer sees end-of-file: for it, we are lost
	c.dataBell.Ring()
	c.spaceBell.Ring()
	c.markDone()
}

// Close closes the link. A peer blocked in a read gets io.EOF once it has
// read everything sent before Close; calls blocked on this side return
// net.ErrClosed. All memory and descriptors of the link are released.
// Closing twice returns an error matching net.ErrClosed.
func (c *Conn) Close() error {
	err := fmt.Errorf("close %s: %w", c.local.Name, net.ErrClosed)
	c.closeOnce.Do(func() {
		err = nil
		prev := c.state.Swap(stateClosed)
		c.dataBell.Ring()
		c.spaceBell.Ring()
		c.markDone()
		// Waiters see the state and return; then nobody touches the memory.
		c.wmu.Lock()
		c.rmu.Lock()
		if prev == stateOpen {
			_ = sys.SendMsg(c.sock, wire.Encode(nil, wire.Msg{Type: wire.Bye}))
		}
		c.sock.Close()
		<-c.controlStopped
		_ = sys.Unmap(c.mem)
		c.mem = nil
		c.seg.Close()
		c.dataBell.Close()
		c.spaceBell.Close()
		c.peerData.Close()
		c.peerSpace.Close()
		c.rmu.Unlock()
		c.wmu.Unlock()
		if c.onClose != nil {
			c.onClose()
		}
	})
	return err
}

// stateErr returns why an operation cannot go on, or nil. For a reader,
// the peer's departure is not an error until the ring is drained; the
// caller checks that.
func (c *Conn) stateErr(read bool) error {
	switch c.state.Load() {
	case stateOpen:
		return nil
	case statePeerClosed:
		if read {
			return io.EOF
		}
		return ErrPeerClosed
	case statePeerLost:
		return ErrPeerLost
	case stateFailed:
		return *c.failErr.Load()
	}
	return net.ErrClosed
}

// opError wraps err the way net.Conn implementations do, leaving io.EOF bare
// so that io.Copy and friends recognise it.
func (c *Conn) opError(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if errors.Is(err, ErrCorrupt) {
		c.fail(err)
	}
	return &net.OpError{Op: op, Net: "shmlink", Source: c.local, Addr: c.remote, Err: err}
}

// LocalAddr returns this end's address.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the peer's address; its PID is the peer process.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// PeerUID returns the user id of the peer process, as the kernel reported
// it when the link was set up.
func (c *Conn) PeerUID() int { return c.peerCred.UID }

// SetDeadline sets both the read and the write deadline.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	c.SetWriteDeadline(t)
	return nil
}

// SetReadDeadline sets the deadline for reads, including one already
// blocked. A zero t means no deadline. After it passes, reads that would
// wait fail with an error matching ErrTimeout and os.ErrDeadlineExceeded.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.readDeadline.Store(unixNano(t))
	c.dataBell.Ring()
	return nil
}

// SetWriteDeadline sets the deadline for writes, including one already
// blocked. A message cut off by a deadline is abandoned: the peer never
// sees any of it.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.writeDeadline.Store(unixNano(t))
	c.spaceBell.Ring()
	return nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
