package sys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Doorbell is an event this side waits on and the peer rings. On Linux it
// is a non-blocking eventfd, which os.NewFile registers with Go's
// netpoller: a goroutine waiting on it parks without holding an OS thread,
// which is what lets one process keep thousands of idle links. One
// goroutine at a time may Wait; Ring may be called from anywhere.
type Doorbell struct {
	f        *os.File
	h        Handle
	rc       syscall.RawConn
	deadline time.Time
	buf      [8]byte
	ring     func() // d.Ring, made once
	rg       ringer
	// nudges counts Nudge's calls, each of which set a past deadline;
	// setAt is the count when Wait last set its own, seen when a Wait
	// last returned.
	nudges      atomic.Uint64
	nudged      atomic.Uint64 // nudges whose past deadline is set
	setAt, seen uint64
}

// NewDoorbell makes a doorbell.
func NewDoorbell() (*Doorbell, error) {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "eventfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	d := &Doorbell{f: f, h: Handle{f: f, fd: fd, ok: true}, rc: rc}
	d.ring = d.Ring
	watchRinger(&d.rg, fd, true)
	return d, nil
}

// Wait blocks until the doorbell rings, the deadline passes
// (os.ErrDeadlineExceeded) or the doorbell is closed (os.ErrClosed). A zero
// deadline means none. Rings that came before Wait are not lost: they make
// Wait return at once, all of them together; the caller re-checks its
// condition either way.
func (d *Doorbell) Wait(deadline time.Time) error {
	// setAt counts only nudges whose past deadline is set: one counted in
	// nudges but not yet in nudged may land after ours.
	if n := d.nudged.Load(); n != d.setAt || !deadline.Equal(d.deadline) {
		if err := d.f.SetReadDeadline(deadline); err != nil {
			return err
		}
		d.deadline, d.setAt = deadline, n
	}
	// A nudge since the last wait returned is for this one, even if the
	// deadline just set undid its own.
	if n := d.nudges.Load(); n != d.seen {
		d.seen = n
		return nil
	}
	err := d.read(deadline)
	if n := d.nudges.Load(); n != d.seen {
		d.seen = n
		if errors.Is(err, os.ErrDeadlineExceeded) && (deadline.IsZero() || time.Now().Before(deadline)) {
			return nil // the past deadline was the nudge's
		}
	}
	return err
}

func (d *Doorbell) read(deadline time.Time) error {
	if deadline.IsZero() {
		_, err := d.f.Read(d.buf[:])
		return err
	}
	// The peer shares this eventfd's file description and could clear
	// O_NONBLOCK on it: a read of the empty eventfd would then block this
	// thread, and the poller's deadline could not end it. Our own ring at
	// the deadline does. (Close and cancellation ring anyway.)
	self := time.AfterFunc(time.Until(deadline), d.ring)
	_, err := d.f.Read(d.buf[:])
	if !self.Stop() && err == nil {
		err = os.ErrDeadlineExceeded // our own ring, or one as late
	}
	return err
}

// Ring wakes the waiter, from this process (to interrupt it on close,
// cancellation or a new deadline).
func (d *Doorbell) Ring() {
	if d.rg.begin() {
		signal(d.rc)
		d.rg.end()
	}
}

// Nudge makes a Wait under way return now, or the next one at once,
// without the runtime's poller thread. A ring reaches a parked waiter only
// when the runtime polls the network, which it does when a processor has
// nothing else to run, or every 10 ms (sysmon): in a process whose
// processors never idle (a busy server, and our own poller keeps them
// busy) a rung waiter could lie there for milliseconds. A past read
// deadline readies the waiter at once, from the caller's goroutine; the
// Wait returns nil, as for a ring, and the next one sets its own deadline
// again.
func (d *Doorbell) Nudge() {
	d.nudges.Add(1)
	_ = d.f.SetReadDeadline(time.Unix(1, 0))
	d.nudged.Add(1)
}

// OnHostile makes f run, once, on another goroutine, if the peer is found
// to have made a ring of this doorbell block (ringwatch_linux.go).
func (d *Doorbell) OnHostile(f func()) { d.rg.setOnHostile(f) }

// Handle is the doorbell's handle, to send to the peer (borrowed).
func (d *Doorbell) Handle() Handle { return d.h }

// Close releases the doorbell; a waiter returns os.ErrClosed. The runtime
// closes the descriptor once no ring is under way, so a ring stuck under
// Close must still be freed: the watchdog watches a copy of the
// descriptor until the close is done (the number of ours may be reused as
// soon as it is).
func (d *Doorbell) Close() error {
	dup := -1
	_ = d.rc.Control(func(fd uintptr) { dup, _ = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) })
	if dup >= 0 {
		rewatchRinger(&d.rg, dup)
	} else {
		unwatchRinger(&d.rg) // closed already, or out of descriptors
	}
	err := d.f.Close()
	unwatchRinger(&d.rg)
	if dup >= 0 {
		unix.Close(dup)
	}
	return err
}

// Bell rings a peer's doorbell. It holds a descriptor of its own, outside
// the runtime's poller: nobody here waits on a peer's doorbell, and one
// registered with the poller would wake this process's poller thread at
// every ring (the eventfd becomes readable) and every drain by the peer
// (it becomes writable), a wake-up for nothing each time.
type Bell struct {
	mu sync.RWMutex // Ring holds it shared, Close exclusively
	fd int          // -1 once closed
	rg ringer
}

// OpenBell takes h, a doorbell handle received from the peer, after
// checking that it really is an eventfd: ringing writes 8 bytes into it, so
// a peer must not pass us a pipe or a file. On error h is closed.
func OpenBell(h Handle) (*Bell, error) {
	if !h.ok {
		return nil, fmt.Errorf("%w: no doorbell", ErrBadHandle)
	}
	if h.f != nil {
		// Not a received handle: the Bell needs a descriptor of its own.
		defer h.Close()
		var dup int
		var err error
		rc, rerr := h.f.SyscallConn()
		if rerr != nil {
			return nil, rerr
		}
		rc.Control(func(f uintptr) { dup, err = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) })
		if err != nil {
			return nil, fmt.Errorf("doorbell: dup: %w", err)
		}
		h = Handle{fd: dup, ok: true}
	}
	if err := checkBell(h.fd); err != nil {
		h.Close()
		return nil, err
	}
	b := &Bell{fd: h.fd}
	watchRinger(&b.rg, h.fd, false)
	return b, nil
}

// checkBell checks that fd is an eventfd, and makes sure it does not
// block.
func checkBell(fd int) error {
	var buf [32]byte
	n, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(fd), buf[:])
	switch {
	case err != nil:
		return fmt.Errorf("%w: doorbell: %w", ErrBadHandle, err)
	case string(buf[:n]) != "anon_inode:[eventfd]":
		return fmt.Errorf("%w: doorbell is %q, not an eventfd", ErrBadHandle, buf[:n])
	}
	// A peer could hand over a blocking eventfd and saturate it, so that
	// ringing it would block this thread. The flag lives in the file
	// description the peer shares, so a hostile peer can clear it again
	// later: the watchdog (ringwatch_linux.go) catches that. An honest
	// peer's doorbell is non-blocking already and its flags are left alone.
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err == nil && flags&unix.O_NONBLOCK == 0 {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags|unix.O_NONBLOCK)
	}
	if err != nil {
		return fmt.Errorf("doorbell: set non-blocking: %w", err)
	}
	return nil
}

// Ring wakes the peer. It is safe against a concurrent Close (the ring is
// then dropped): the lock keeps the descriptor from being closed, and its
// number reused, under the write. Errors are ignored, as for
// Doorbell.Ring. It does not block, unless the peer made it: then the
// watchdog frees it within two seconds, and every later ring is dropped.
func (b *Bell) Ring() {
	b.mu.RLock()
	if b.fd >= 0 && b.rg.begin() {
		_, _ = unix.Write(b.fd, one[:])
		b.rg.end()
	}
	b.mu.RUnlock()
}

// OnHostile makes f run, once, on another goroutine, if the peer is found
// to have made a ring of this bell block (ringwatch_linux.go).
func (b *Bell) OnHostile(f func()) { b.rg.setOnHostile(f) }

// Close releases the handle. It waits for rings under way, a blocked one
// until the watchdog frees it.
func (b *Bell) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fd < 0 {
		return os.ErrClosed
	}
	unwatchRinger(&b.rg)
	err := unix.Close(b.fd)
	b.fd = -1
	return err
}

var one = func() (b [8]byte) { binary.NativeEndian.PutUint64(b[:], 1); return }()

// signal adds one to the eventfd behind rc without ever blocking. Errors
// are ignored: EAGAIN means the counter is saturated (only a hostile peer
// can do that) and the reader is runnable anyway, and a closed descriptor
// means nobody is left to wake. RawConn keeps the descriptor alive for the
// duration of the call, so a concurrent Close cannot make us write into a
// recycled descriptor number. The callback captures nothing, so a wake-up
// allocates nothing.
func signal(rc syscall.RawConn) { _ = rc.Write(signalFD) }

func signalFD(fd uintptr) bool {
	_, _ = unix.Write(int(fd), one[:])
	return true
}
