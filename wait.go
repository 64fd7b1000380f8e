package shmlink

import (
	"context"
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
	ep       *endpoint
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
	w.ep.publishStats(w.read)
	if ok, err := wake.Spin(w.ep.cfg.SpinTime, w.ready); ok || err != nil {
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
	if err := w.ep.stateErr(w.read); err != nil {
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
