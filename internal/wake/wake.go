package wake

import (
	"context"
	"errors"
	"os"
	"runtime"
	"time"

	"github.com/shmlink/shmlink/internal/sys"
)

// Sleeper is the ring end a Waiter waits for: it announces in shared
// memory that it is about to sleep, and withdraws the announcement.
type Sleeper interface {
	Sleep()
	Awake()
}

// Waiter waits for one direction of a ring. One goroutine at a time uses
// it (the owner holds that direction's lock).
type Waiter struct {
	bell  *sys.Doorbell
	spin  time.Duration
	end   Sleeper
	Waits uint64 // calls to Wait
	// Sleeps counts the waits that outlasted the spin and parked.
	Sleeps uint64
}

// NewWaiter returns a waiter that spins for spin (none if spin <= 0), then
// announces sleep through end and parks on bell.
func NewWaiter(bell *sys.Doorbell, spin time.Duration, end Sleeper) Waiter {
	return Waiter{bell: bell, spin: spin, end: end}
}

// ErrClosed is returned when the doorbell was closed under a waiter.
var ErrClosed = errors.New("doorbell closed")

// Wait returns nil once ready may report true (the caller re-checks), or
// the first error of ready or stop. stop says why waiting must end (the
// link's state, an expired deadline); it is asked before spinning and
// again after the sleep is announced. A sleep lasts until the doorbell
// rings, the deadline passes or ctx is done; a zero deadline means none.
func (w *Waiter) Wait(ctx context.Context, deadline time.Time, ready func() (bool, error), stop func() error) error {
	if err := stop(); err != nil {
		return err
	}
	w.Waits++
	if ok, err := Spin(w.spin, ready); ok || err != nil {
		return err
	}
	w.end.Sleep()
	defer w.end.Awake()
	if ok, err := ready(); ok || err != nil {
		return err
	}
	if err := stop(); err != nil {
		return err
	}
	if ctx.Done() != nil {
		defer context.AfterFunc(ctx, w.bell.Ring)()
	}
	w.Sleeps++
	if err := w.bell.Wait(deadline); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return ErrClosed
	}
	return nil // rung or timed out: the caller's next round decides which
}

// Spin polls ready until it reports true, fails, or budget elapses, and
// reports whether the condition became true. It yields the processor now
// and then so that a goroutine of this process that would make the
// condition true (in-process tests, or a peer sharing the CPU) is not
// starved.
func Spin(budget time.Duration, ready func() (bool, error)) (bool, error) {
	if budget <= 0 {
		return false, nil
	}
	var start int64
	for i := 1; ; i++ {
		ok, err := ready()
		if ok || err != nil {
			return ok, err
		}
		if i&63 == 0 {
			if start == 0 {
				start = sys.Nanotime()
			} else if time.Duration(sys.Nanotime()-start) > budget {
				return false, nil
			}
			if i&1023 == 0 {
				runtime.Gosched()
			}
		}
	}
}
