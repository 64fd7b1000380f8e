package shmlink

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/shmlink/shmlink/internal/wake"
)

// waiter implements the wait strategy for one direction: spin on the ring,
// then announce sleep, re-check, and park on the doorbell. One goroutine at
// a time uses it (under rmu or wmu).
type waiter struct {
	c        *Conn
	bell     *wake.Doorbell
	deadline *atomic.Int64
	ready    func() (bool, error) // the ring has what we wait for
	sleep    func()               // announce sleep in shared memory
	awake    func()               // withdraw it
	read     bool
	ctx      context.Context // of the current operation, or nil
	waits    uint64
	sleeps   uint64
}

// wait returns nil when the condition may hold (the caller re-checks) or the
// reason the operation must stop.
func (w *waiter) wait() error {
	if err := w.stop(); err != nil {
		return err
	}
	w.waits++
	w.c.publishStats(w.read)
	if ok, err := wake.Spin(w.c.cfg.SpinTime, w.ready); ok || err != nil {
		return err
	}
	w.sleep()
	if ok, err := w.ready(); ok || err != nil {
		w.awake()
		return err
	}
	if err := w.stop(); err != nil {
		w.awake()
		return err
	}
	var deadline time.Time
	if d := w.deadline.Load(); d != 0 {
		deadline = time.Unix(0, d)
	}
	var unhook func() bool
	if w.ctx != nil && w.ctx.Done() != nil {
		unhook = context.AfterFunc(w.ctx, w.bell.Ring)
	}
	w.sleeps++
	err := w.bell.Wait(deadline)
	if unhook != nil {
		unhook()
	}
	w.awake()
	if err != nil && !wake.IsTimeout(err) {
		return net.ErrClosed // the doorbell was closed under us
	}
	return nil // woken or timed out: the next round decides which
}

// stop reports why the wait must end: the link's state, the deadline or
// the context. A reader whose peer has left still gets what is in the ring.
func (w *waiter) stop() error {
	if err := w.c.stateErr(w.read); err != nil {
		if w.read && (err == io.EOF || err == ErrPeerLost) {
			if ok, rerr := w.ready(); ok || rerr != nil {
				return rerr
			}
		}
		return err
	}
	if d := w.deadline.Load(); d != 0 && time.Now().UnixNano() >= d {
		return ErrTimeout
	}
	if w.ctx != nil {
		if err := w.ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Conn) waitData() error             { return c.rwait.wait() }
func (c *Conn) dataReady() (bool, error)    { return c.rd.Consumer().Ready() }
func (c *Conn) waitSpace(need uint64) error { c.spaceFor = need; return c.wwait.wait() }
func (c *Conn) spaceReady() (bool, error) {
	f, err := c.wr.Free()
	return f >= c.spaceFor, err
}

// WriteMessage sends b as one message: the peer receives it whole, never
// interleaved with another writer's message. It waits while the ring is
// full, until the write deadline. A message larger than the peer's
// MaxMessageSize is refused with ErrMessageTooLarge and nothing is sent.
// Zero-length messages are allowed.
func (c *Conn) WriteMessage(b []byte) error { return c.writeMessage(nil, b) }

// WriteMessageContext is WriteMessage that also gives up when ctx is done,
// returning ctx.Err() (wrapped). A message cut off part-way is abandoned:
// the peer sees none of it.
func (c *Conn) WriteMessageContext(ctx context.Context, b []byte) error {
	return c.writeMessage(ctx, b)
}

func (c *Conn) writeMessage(ctx context.Context, b []byte) error {
	if uint64(len(b)) > c.maxSend {
		return c.opError("write", fmt.Errorf("%w: %d bytes, peer accepts at most %d",
			ErrMessageTooLarge, len(b), c.maxSend))
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.stateErr(false); err != nil {
		return c.opError("write", err)
	}
	c.wwait.ctx = ctx
	err := c.wr.WriteMessage(b, c.waitSpaceFn)
	c.wwait.ctx = nil
	return c.opError("write", err)
}

// Write implements net.Conn: it sends all of b, as one message when b fits
// the peer's limit, as several otherwise.
func (c *Conn) Write(b []byte) (int, error) {
	n := 0
	for {
		k := min(uint64(len(b)-n), c.maxSend)
		if err := c.writeMessage(nil, b[n:n+int(k)]); err != nil {
			return n, err
		}
		n += int(k)
		if n == len(b) {
			return n, nil
		}
	}
}

// ReadMessage returns the next message in a new buffer. It waits for one
// until the read deadline. After the peer's clean close it returns io.EOF
// once every message is read; after the peer was lost, ErrPeerLost.
// A message larger than MaxMessageSize is skipped with ErrMessageTooLarge.
func (c *Conn) ReadMessage() ([]byte, error) { return c.ReadMessageContext(nil) }

// ReadMessageContext is ReadMessage that also gives up when ctx is done.
func (c *Conn) ReadMessageContext(ctx context.Context) ([]byte, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.state.Load() == stateClosed {
		return nil, c.opError("read", net.ErrClosed)
	}
	c.rwait.ctx = ctx
	m, err := c.rd.ReadMessage()
	c.rwait.ctx = nil
	return m, c.opError("read", err)
}

// ReadMessageInto copies the next message into b and returns its length,
// without allocating. If the message does not fit, it returns a
// *ShortBufferError (matching io.ErrShortBuffer) that says how many bytes
// are needed, and consumes nothing.
func (c *Conn) ReadMessageInto(b []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.state.Load() == stateClosed {
		return 0, c.opError("read", net.ErrClosed)
	}
	n, err := c.rd.ReadInto(b)
	return n, c.opError("read", err)
}

// Read implements net.Conn: it reads bytes as a stream, ignoring message
// boundaries, and returns as soon as at least one byte is available.
func (c *Conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.state.Load() == stateClosed {
		return 0, c.opError("read", net.ErrClosed)
	}
	n, err := c.rd.Read(b)
	return n, c.opError("read", err)
}
