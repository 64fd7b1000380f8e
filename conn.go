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

	"github.com/shmlink/shmlink/internal/sys"
	"github.com/shmlink/shmlink/internal/wire"
)

// Session states, in session.state. A session leaves stateOpen once, for
// one of the others.
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
	ep *endpoint
	session
	endOnce        sync.Once
	controlStopped chan struct{}
	onClose        func() // set by a Listener to count its clients
	// taken, on a server whose client answers the Welcome with Taken
	// (wire.FlagTaken), is closed when that answer comes: until then the
	// client may still be pulling our doorbells out of this process.
	taken chan struct{}
}

// peer is what a handshake learned about the other side.
type peer struct {
	local, remote *Addr
	cred          sys.Cred
	maxSend       uint64    // the peer's MaxMessageSize
	flags         uint32    // what the peer understands (wire.Flag...)
	since         time.Time // when the link was set up
	peerData      *sys.Bell // rung when we publish into the peer's RX ring
	peerSpace     *sys.Bell // rung when we free space in the peer's TX ring
}

// session is one connection of an endpoint to a peer: the control
// connection, what the handshake learned, and how the connection stands.
type session struct {
	peer
	ctl      *sys.Conn
	state    atomic.Int32
	left     atomic.Int32  // how the peer left (statePeerClosed, statePeerLost), kept after Close
	shut     atomic.Bool   // this side sent Shut: it writes no more
	readShut atomic.Bool   // CloseRead: reads return io.EOF, arrivals are discarded
	peerShut atomic.Bool   // the peer sent Shut: reads end with io.EOF once the ring is empty
	done     chan struct{} // closed on leaving stateOpen
	doneOnce sync.Once
}

// newConn makes a session over ep. It does not watch the control
// connection yet: start does, once the handshake is over.
func newConn(ep *endpoint, ctl *sys.Conn, p peer) *Conn {
	p.since = time.Now()
	return &Conn{ep: ep, session: session{peer: p, ctl: ctl, done: make(chan struct{})},
		controlStopped: make(chan struct{})}
}

// start makes c the endpoint's session and begins watching the control
// connection.
func (c *Conn) start() {
	hostile := func() {
		if c.ep.sess.Load() == &c.session { // not a session that has ended
			c.ep.blockedRing()
		}
	}
	c.peerData.OnHostile(hostile)
	c.peerSpace.OnHostile(hostile)
	c.ep.sess.Store(&c.session)
	go c.control()
	// Until now a publish that found the peer asleep had no bell to ring:
	// it cleared the peer's sleeping flag and dropped the wake-up. Ring
	// the peer's bells once, after the store above, so any such wake-up
	// is made good (a spurious one only costs the peer a re-check). Our
	// own waiters may likewise have missed the peer's early wake-ups; only
	// a Link's endpoint, which outlives its sessions, can have any yet.
	//
	// A new Conn is not handed out before start, so an endpoint that is
	// not a Link's can have dropped a wake-up only if it has published
	// (data) or consumed (space) already, a server's resuming a client's
	// rings (7.1). Otherwise the rings are spurious: each is a system call
	// on Dial's path, and wakes the peer for nothing.
	if c.ep.persistent {
		c.peerData.Ring()
		c.peerSpace.Ring()
		c.ep.wakeAll()
		return
	}
	if c.ep.wr.Written() > 0 {
		c.peerData.Ring()
	}
	if c.ep.rd.Consumer().Position() > 0 {
		c.peerSpace.Ring()
	}
}

// control reads the control connection for as long as it is open. The
// peer sends nothing after the handshake but a goodbye; the connection's
// end of file tells us the peer is gone, as soon as the OS has torn its
// process down, whatever killed it.
func (c *Conn) control() {
	defer close(c.controlStopped)
	var buf [64]byte
	takenYet := false
	for {
		n, hs, err := c.ctl.Recv(buf[:], 0)
		if err != nil {
			c.peerGone(statePeerLost)
			return
		}
		m, err := wire.Decode(buf[:n], len(hs))
		if err == nil && m.Type == wire.Taken && c.taken != nil && !takenYet {
			takenYet = true
			close(c.taken)
			continue
		}
		if err == nil && m.Type != wire.Bye && m.Type != wire.Shut {
			err = fmt.Errorf("unexpected %s after handshake", m.Type)
		}
		if err != nil {
			c.ep.fail(fmt.Errorf("%w: %w", ErrHandshake, err))
			return
		}
		if m.Type == wire.Shut {
			c.peerShut.Store(true)
			c.ep.rwait.Interrupt() // a waiting reader re-checks: io.EOF once drained
			continue
		}
		c.peerGone(statePeerClosed)
	}
}

// peerGone records that the peer left and wakes every waiter, so that each
// re-checks the state and returns.
func (c *Conn) peerGone(s int32) {
	if c.state.CompareAndSwap(stateOpen, s) {
		if s == statePeerLost {
			c.ep.cfg.log(slog.LevelWarn, "shmlink: peer lost", "name", c.local.Name, "peer_pid", c.remote.PID)
		} else {
			c.ep.cfg.log(slog.LevelInfo, "shmlink: peer closed", "name", c.local.Name, "peer_pid", c.remote.PID)
		}
		c.left.Store(s)
		c.ep.wakeAll()
		c.markDone()
	}
}

func (s *session) markDone() { s.doneOnce.Do(func() { close(s.done) }) }

// leftErr is the error for an operation that found the session torn down
// because its peer had left: ErrPeerLost or ErrPeerClosed, or nil.
func (s *session) leftErr() error {
	switch s.left.Load() {
	case statePeerLost:
		return ErrPeerLost
	case statePeerClosed:
		return ErrPeerClosed
	}
	return nil
}

// fail ends the session as failed; endpoint.fail calls it.
func (s *session) fail() {
	for {
		st := s.state.Load()
		if st == stateClosed || st == stateFailed || s.state.CompareAndSwap(st, stateFailed) {
			break
		}
	}
	s.ctl.CloseWrite() // the peer sees end of file: for it, we are lost
	s.markDone()
}

// end finishes the session: it says goodbye if the peer is still there
// and bye is set, closes the control connection and the peer's doorbells.
func (c *Conn) end(bye bool) {
	c.endOnce.Do(func() {
		prev := c.state.Swap(stateClosed)
		if prev == stateFailed {
			c.state.Store(stateFailed)
		}
		if bye && prev == stateOpen {
			_ = c.ctl.Send(wire.Encode(nil, wire.Msg{Type: wire.Bye}))
		}
		if c.taken != nil && prev != stateFailed {
			// Our doorbells close after this: not under a client that
			// has yet to take them. It answers at once or leaves; one
			// that does neither within the handshake timeout of the
			// WELCOME is not waited for.
			if wait := time.Until(c.since.Add(c.ep.cfg.HandshakeTimeout)); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-c.taken:
				case <-c.controlStopped:
				case <-t.C:
				}
				t.Stop()
			}
		}
		c.ctl.Close()
		<-c.controlStopped
		c.markDone()
		c.ep.sess.CompareAndSwap(&c.session, nil)
		c.peerData.Close()
		c.peerSpace.Close()
		if c.onClose != nil {
			c.onClose()
		}
	})
}

// Close closes the link. A peer blocked in a read gets io.EOF once it has
// read everything sent before Close; calls blocked on this side return
// net.ErrClosed. All memory and descriptors of the link are released.
// Closing twice returns an error matching net.ErrClosed.
func (c *Conn) Close() error {
	// The goodbye goes out with both ring locks held, so after the last
	// byte of the last message.
	if !c.ep.close(func() { c.end(true) }) {
		return c.opError("close", net.ErrClosed)
	}
	return nil
}

// CloseWrite shuts down the sending direction, as on a *net.UnixConn: the
// peer reads everything sent before it, then io.EOF, and may go on
// sending; this side may go on reading. Later writes fail with an error
// matching net.ErrClosed. Close must still be called. A peer that did not
// announce half-close in the handshake (an older implementation) cannot be
// told: CloseWrite then fails with an error matching errors.ErrUnsupported
// and changes nothing.
func (c *Conn) CloseWrite() error {
	if c.flags&wire.FlagHalfClose == 0 {
		return c.opError("close", fmt.Errorf("%w: the peer does not support half-close", errors.ErrUnsupported))
	}
	ep := c.ep
	// Under the writers' lock the Shut goes out after the last byte of the
	// last message, as the goodbye does.
	ep.wmu.Lock()
	defer ep.wmu.Unlock()
	if err := ep.stateErr(false); err != nil {
		return c.opError("close", err)
	}
	ep.publishBuffered()
	c.shut.Store(true)
	if err := c.ctl.Send(wire.Encode(nil, wire.Msg{Type: wire.Shut})); err != nil {
		return c.opError("close", err)
	}
	return nil
}

// CloseRead shuts down the receiving direction: later reads return io.EOF
// and what the peer sends from then on is discarded as it arrives, so that
// the peer's writes never wait for a reader that will not come (where a
// unix socket would fail them with EPIPE instead). This side may go on
// writing. Close must still be called.
func (c *Conn) CloseRead() error {
	if c.ep.closed.Load() || !c.readShut.CompareAndSwap(false, true) {
		return c.opError("close", net.ErrClosed)
	}
	// Reads are over, so read deadlines are too (SetReadDeadline ignores
	// them from now on): the discarding must not stop at one.
	c.ep.readDeadline.Store(0)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.ep.read(buf); err != nil && !errors.Is(err, ErrMessageTooLarge) {
				return // the peer is done, or this side closed
			}
		}
	}()
	return nil
}

// readShutErr is io.EOF after CloseRead (unless closed since: then the
// read reports that).
func (c *Conn) readShutErr() error {
	if c.readShut.Load() && !c.ep.closed.Load() {
		return io.EOF
	}
	return nil
}

// opError wraps err the way net.Conn implementations do, leaving io.EOF bare
// so that io.Copy and friends recognise it.
func (c *Conn) opError(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	return &net.OpError{Op: op, Net: "shmlink", Source: c.local, Addr: c.remote, Err: err}
}

// LocalAddr returns this end's address.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the peer's address; its PID is the peer process.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// PeerUID returns the user id of the peer process, as the kernel reported
// it when the link was set up.
func (c *Conn) PeerUID() int { return c.cred.UID }

// SetDeadline sets both the read and the write deadline.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the deadline for reads, including one already
// blocked. A zero t means no deadline. Once it has passed, every read fails
// at once with an error matching ErrTimeout and os.ErrDeadlineExceeded,
// even if a message is waiting, until the deadline is moved. After Close it
// returns an error matching net.ErrClosed.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.ep.closed.Load() {
		return c.opError("set", net.ErrClosed)
	}
	if c.readShut.Load() {
		return nil // after CloseRead reads return io.EOF at once anyway
	}
	c.ep.readDeadline.Store(unixNano(t))
	c.ep.rwait.Interrupt()
	return nil
}

// SetWriteDeadline sets the deadline for writes, including one already
// blocked; once it has passed, every write fails at once, even with room in
// the ring. A message cut off by a deadline is abandoned: the peer never
// sees any of it.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if c.ep.closed.Load() {
		return c.opError("set", net.ErrClosed)
	}
	c.ep.writeDeadline.Store(unixNano(t))
	c.ep.wwait.Interrupt()
	return nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// WriteMessage sends b as one message: the peer receives it whole, never
// interleaved with another writer's message. It waits while the ring is
// full, until the write deadline. A message larger than the peer's
// MaxMessageSize is refused with ErrMessageTooLarge and nothing is sent.
// Zero-length messages are allowed.
func (c *Conn) WriteMessage(b []byte) error {
	return c.opError("write", c.ep.writeMessage(context.Background(), b, c.maxSend))
}

// WriteMessageContext is WriteMessage that also gives up when ctx is done,
// returning ctx.Err() (wrapped); with ctx already done it sends nothing. A
// message cut off part-way is abandoned: the peer sees none of it.
func (c *Conn) WriteMessageContext(ctx context.Context, b []byte) error {
	return c.opError("write", c.ep.writeMessage(ctx, b, c.maxSend))
}

// WriteMessages sends each of msgs as one message, in order, as
// WriteMessage would, but publishes them together: one index update, and
// at most one wake-up of the peer, for as many as the ring holds, where
// WriteMessage pays both for every message. It is the way to stream many
// small messages. No other writer's message comes between them. It returns
// how many were sent; on an error those are delivered and the rest are not
// sent. If any message is larger than the peer accepts, none is sent.
func (c *Conn) WriteMessages(msgs [][]byte) (int, error) {
	n, err := c.ep.writeMessages(context.Background(), msgs, c.maxSend)
	return n, c.opError("write", err)
}

// BufferMessage writes b into the ring as WriteMessage does, but does not
// publish it yet: the peer sees it, with every message buffered before it,
// at the next Flush, WriteMessage or WriteMessages, at CloseWrite or Close,
// or as soon as 64 KiB (a quarter of a smaller ring) are waiting, so that a
// long stream keeps flowing. Until then the peer is neither shown nor
// woken for anything. That makes a stream of small messages cheap: one
// index update and at most one wake-up per batch, as WriteMessages, and
// no copy but the one into the ring (WriteMessages needs the batch
// gathered first). Its limits, errors and deadline are WriteMessage's; a
// message that must wait for room publishes what was buffered first.
func (c *Conn) BufferMessage(b []byte) error {
	return c.opError("write", c.ep.bufferMessage(context.Background(), b, c.maxSend))
}

// Flush publishes the messages BufferMessage left waiting and wakes the
// peer if it sleeps. With none waiting it does nothing and returns nil,
// whatever the link's state. Otherwise it fails as a write would on a link
// that is closed, failed or shut for writing; messages the peer can no
// longer take are lost with the link, as written ones are.
func (c *Conn) Flush() error { return c.opError("write", c.ep.flush()) }

// Write implements net.Conn: it sends all of b, as one message when b fits
// the peer's limit, as several otherwise.
func (c *Conn) Write(b []byte) (int, error) {
	n := 0
	for {
		k := int(min(uint64(len(b)-n), c.maxSend))
		if err := c.ep.writeMessage(context.Background(), b[n:n+k], c.maxSend); err != nil {
			return n, c.opError("write", err)
		}
		n += k
		if n == len(b) {
			return n, nil
		}
	}
}

// ReadMessage returns the next message in a new buffer. It waits for one
// until the read deadline. After the peer's clean close it returns io.EOF
// once every message is read; after the peer was lost, ErrPeerLost.
// A message larger than MaxMessageSize is skipped with ErrMessageTooLarge.
func (c *Conn) ReadMessage() ([]byte, error) { return c.ReadMessageContext(context.Background()) }

// ReadMessageContext is ReadMessage that also gives up when ctx is done.
// With ctx already done it reads nothing, even if a message is waiting.
func (c *Conn) ReadMessageContext(ctx context.Context) ([]byte, error) {
	if err := c.readShutErr(); err != nil {
		return nil, err
	}
	m, err := c.ep.readMessage(ctx)
	return m, c.opError("read", err)
}

// ReadMessageInto copies the next message into b and returns its length,
// without allocating. If the message does not fit, it returns a
// *ShortBufferError (matching io.ErrShortBuffer) that says how many bytes
// are needed, and consumes nothing.
func (c *Conn) ReadMessageInto(b []byte) (int, error) {
	if err := c.readShutErr(); err != nil {
		return 0, err
	}
	n, err := c.ep.readInto(b)
	return n, c.opError("read", err)
}

// ReadMessagesInto reads the next message as ReadMessageInto does, waiting
// for it, and then, without waiting, as many more as are already there and
// fit: their bytes back to back in b, their lengths in sizes. It gives the
// ring's room back to the peer once for all of them. It returns how many
// messages it read, at most len(sizes). It is the reading half of
// WriteMessages: a stream of small messages costs one call per batch.
func (c *Conn) ReadMessagesInto(b []byte, sizes []int) (int, error) {
	if err := c.readShutErr(); err != nil {
		return 0, err
	}
	n, err := c.ep.readBatch(b, sizes)
	return n, c.opError("read", err)
}

// Read implements net.Conn: it reads bytes as a stream, ignoring message
// boundaries, and returns as soon as at least one byte is available.
func (c *Conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if err := c.readShutErr(); err != nil {
		return 0, err
	}
	n, err := c.ep.read(b)
	return n, c.opError("read", err)
}
