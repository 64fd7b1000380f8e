package sys

import (
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/windows"
)

// bellAccess is all a peer's doorbell handle needs: SetEvent.
const bellAccess = windows.EVENT_MODIFY_STATE

// Doorbell is an event this side waits on and the peer rings. On Windows
// it is an unnamed auto-reset event watched by a registered wait (see
// wait_windows.go): a goroutine waiting on it parks on a channel and holds
// no OS thread, which is what lets one process keep thousands of idle
// links. One goroutine at a time may Wait; Ring may be called from
// anywhere.
type Doorbell struct {
	ev     windows.Handle
	rung   chan struct{} // capacity 1: rings coalesce, as an eventfd's count
	closed chan struct{}
	wait   *registeredWait
	timer  *time.Timer
	once   sync.Once
}

// NewDoorbell makes a doorbell.
func NewDoorbell() (*Doorbell, error) {
	ev, err := windows.CreateEvent(nil, 0, 0, nil)
	if err != nil {
		if ev != 0 {
			windows.CloseHandle(ev)
		}
		return nil, fmt.Errorf("CreateEvent: %w", err)
	}
	d := &Doorbell{ev: ev, rung: make(chan struct{}, 1), closed: make(chan struct{})}
	// The registration re-arms itself after each signal; an auto-reset
	// event is reset by the wait that sees it, so each ring is one poke.
	if d.wait, err = registerWait(ev, d.rung, false); err != nil {
		windows.CloseHandle(ev)
		return nil, err
	}
	d.timer = time.NewTimer(time.Hour)
	d.timer.Stop()
	return d, nil
}

// Wait blocks until the doorbell rings, the deadline passes
// (os.ErrDeadlineExceeded) or the doorbell is closed (os.ErrClosed). A zero
// deadline means none. Rings that came before Wait are not lost: they make
// Wait return at once, all of them together; the caller re-checks its
// condition either way.
func (d *Doorbell) Wait(deadline time.Time) error {
	select {
	case <-d.rung:
		return nil
	case <-d.closed:
		return os.ErrClosed
	default:
	}
	defer d.timer.Stop()
	for {
		// Without a deadline the timer still runs, as a keep-alive: a
		// goroutine parked on a channel that only a thread-pool callback
		// feeds looks deadlocked to the Go runtime, which would abort a
		// program whose only work is waiting here. A pending timer tells it
		// that something may still happen.
		dt := keepAlive
		if !deadline.IsZero() {
			if dt = time.Until(deadline); dt <= 0 {
				return os.ErrDeadlineExceeded
			}
		}
		d.timer.Reset(dt)
		select {
		case <-d.rung:
			return nil
		case <-d.closed:
			return os.ErrClosed
		case <-d.timer.C:
		}
	}
}

// keepAlive is how often a wait with no deadline wakes up, to keep a timer
// pending (see Doorbell.Wait).
const keepAlive = time.Minute

// Ring wakes the waiter, from this process (to interrupt it on close,
// cancellation or a new deadline). It pokes the channel directly: no
// system call.
func (d *Doorbell) Ring() {
	select {
	case d.rung <- struct{}{}:
	default:
	}
}

// Nudge makes a Wait under way return now, or the next one at once. A
// waiter here parks on a channel, which Ring pokes directly: a nudge is a
// ring.
func (d *Doorbell) Nudge() { d.Ring() }

// OnHostile is for the Linux doorbell, whose ring a peer can make block;
// Ring here never blocks, so f never runs.
func (*Doorbell) OnHostile(f func()) {}

// Handle is the doorbell's handle, to send to the peer (borrowed).
func (d *Doorbell) Handle() Handle { return Handle{d.ev} }

// Close releases the doorbell; a waiter returns os.ErrClosed.
func (d *Doorbell) Close() error {
	err := os.ErrClosed
	d.once.Do(func() {
		close(d.closed)
		d.wait.stop()
		err = windows.CloseHandle(d.ev)
	})
	return err
}

// Bell rings a peer's doorbell.
type Bell struct {
	mu sync.RWMutex // Ring holds it shared, so Close cannot free h under it
	h  windows.Handle
}

// OpenBell takes h, a doorbell handle received from the peer, after
// checking that it really is an event; the handle kept may only signal it.
// On error h is closed.
func OpenBell(h Handle) (*Bell, error) {
	nh, err := take(h, "Event", "doorbell", bellAccess)
	if err != nil {
		return nil, err
	}
	return &Bell{h: nh}, nil
}

// Ring wakes the peer. It never blocks (SetEvent does not) and is safe
// against a concurrent Close (the ring is then dropped).
func (b *Bell) Ring() {
	b.mu.RLock()
	if b.h != 0 {
		_ = windows.SetEvent(b.h)
	}
	b.mu.RUnlock()
}

// OnHostile is for the Linux bell, whose ring a peer can make block:
// SetEvent cannot, so f never runs.
func (*Bell) OnHostile(f func()) {}

// Close releases the handle.
func (b *Bell) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h == 0 {
		return os.ErrClosed
	}
	err := windows.CloseHandle(b.h)
	b.h = 0
	return err
}
