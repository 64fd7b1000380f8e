// Package wake is the sleeping half of shmlink's wait strategy. A side that
// finds nothing to do spins for a short budget (the common case, where the
// peer answers within microseconds, never sleeps), then announces in shared
// memory that it sleeps, re-checks, and parks on a Doorbell. The peer sees
// the announcement after its next publish and rings the Doorbell through a
// Bell.
//
// A Doorbell is an eventfd read through Go's netpoller, so a parked
// goroutine holds no OS thread: a process with a thousand idle links runs a
// handful of threads. docs/wakeup.md records the measurements behind this
// choice and the spin budget.
package wake

import (
	"errors"
	"os"
	"runtime"
	"syscall"
	"time"

	"github.com/shmlink/shmlink/internal/sys"
)

// Doorbell is the end a side waits on. One goroutine at a time may Wait;
// Ring may be called from anywhere.
type Doorbell struct {
	f        *os.File
	rc       syscall.RawConn
	deadline time.Time
	buf      [8]byte
}

// NewDoorbell makes a doorbell backed by a fresh eventfd.
func NewDoorbell() (*Doorbell, error) {
	f, err := sys.NewEventfd()
	if err != nil {
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Doorbell{f: f, rc: rc}, nil
}

// File is the descriptor to hand to the peer, which rings it with a Bell.
func (d *Doorbell) File() *os.File { return d.f }

// Wait blocks until the doorbell rings, the deadline passes
// (os.ErrDeadlineExceeded) or the doorbell is closed. A zero deadline means
// none. A ring that came before Wait is not lost: it makes Wait return at
// once, and the caller re-checks its condition either way.
func (d *Doorbell) Wait(deadline time.Time) error {
	if !deadline.Equal(d.deadline) {
		if err := d.f.SetReadDeadline(deadline); err != nil {
			return err
		}
		d.deadline = deadline
	}
	_, err := d.f.Read(d.buf[:])
	return err
}

// Ring wakes the waiter, from this process (to interrupt it on close or
// cancellation).
func (d *Doorbell) Ring() { sys.Signal(d.rc) }

// Close releases the eventfd and wakes a waiter with os.ErrClosed.
func (d *Doorbell) Close() error { return d.f.Close() }

// Bell rings a peer's doorbell.
type Bell struct {
	f  *os.File
	rc syscall.RawConn
}

// NewBell takes ownership of f, a descriptor received from the peer, after
// checking that it really is an eventfd.
func NewBell(f *os.File) (*Bell, error) {
	if err := sys.CheckEventfd(f); err != nil {
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &Bell{f: f, rc: rc}, nil
}

// Ring wakes the peer. It never blocks and is safe against a concurrent
// Close (the ring is then dropped).
func (b *Bell) Ring() { sys.Signal(b.rc) }

// Close releases the descriptor.
func (b *Bell) Close() error { return b.f.Close() }

// Spin polls ready until it reports true, fails, or budget elapses, and
// reports whether the condition became true. It yields the processor now and
// then so that a goroutine of this process that would make the condition
// true (in-process tests, or a peer sharing the CPU) is not starved.
func Spin(budget time.Duration, ready func() (bool, error)) (bool, error) {
	if budget <= 0 {
		return false, nil
	}
	var start time.Time
	for i := 1; ; i++ {
		ok, err := ready()
		if ok || err != nil {
			return ok, err
		}
		if i&63 == 0 {
			if start.IsZero() {
				start = time.Now()
			} else if time.Since(start) > budget {
				return false, nil
			}
			if i&1023 == 0 {
				runtime.Gosched()
			}
		}
	}
}

// IsTimeout reports whether err is a doorbell deadline.
func IsTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
