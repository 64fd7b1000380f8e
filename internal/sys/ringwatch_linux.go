package sys

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The peer shares the file description of every eventfd of a link: ours,
// which it rings, and its own, which we ring. It can clear O_NONBLOCK on one
// and fill its counter to the top, and our next ring of it (an 8-byte write)
// then blocks the ringing thread until somebody reads the eventfd: for good,
// if the peer never does. Nothing makes that one write non-blocking (an
// eventfd refuses pwritev2's RWF_NOWAIT, and cannot be reopened through
// /proc for a file description of our own), so a watchdog frees such a
// ring instead. Every ringWatchEvery, while any doorbell or bell is open, it
// looks at each: a ring begun before the last look and not ended since, on
// an eventfd that is not writable (its counter is full, which an honest
// peer can never bring about), is the peer's doing. The watchdog then
// reads the counter through a descriptor of its own, which lets the write
// finish (drain), and tells the owner (OnHostile), which closes the link.
// A bell (the peer's eventfd) drops every later ring; a doorbell (ours)
// goes on ringing, since our own waiters still need its wake-ups, and the
// watchdog frees it again should the peer do it again.

// ringWatchEvery is how often the watchdog looks: a ring blocked by the
// peer is freed within two of these.
const ringWatchEvery = time.Second

// testRingWatchEvery, if not zero, replaces ringWatchEvery (nanoseconds).
var testRingWatchEvery atomic.Int64

func watchEvery() time.Duration {
	if d := testRingWatchEvery.Load(); d != 0 {
		return time.Duration(d)
	}
	return ringWatchEvery
}

// ringer is what the watchdog needs of a doorbell or bell. Rings may run
// concurrently, so begun and ended count them rather than flag one.
type ringer struct {
	begun, ended atomic.Uint64
	hostile      atomic.Bool
	onHostile    atomic.Pointer[func()]
	draining     atomic.Bool
	own          bool   // a doorbell of ours, not the peer's
	fd           int    // for the watchdog, under watch.mu; valid while watched
	lastBegun    uint64 // rings begun by the last look, under watch.mu
}

// begin reports whether a ring may write, and counts it as begun.
func (r *ringer) begin() bool {
	if r.hostile.Load() {
		return false
	}
	r.begun.Add(1)
	return true
}

func (r *ringer) end() { r.ended.Add(1) }

// setOnHostile makes f run, once, when the peer is found to have blocked a
// ring.
func (r *ringer) setOnHostile(f func()) { r.onHostile.Store(&f) }

var watch struct {
	mu      sync.Mutex
	ringers map[*ringer]struct{}
	timer   *time.Timer // nil while nothing is watched
}

// watchRinger starts watching r, whose eventfd is fd; own says it is one
// of our doorbells.
func watchRinger(r *ringer, fd int, own bool) {
	watch.mu.Lock()
	defer watch.mu.Unlock()
	r.fd, r.own, r.lastBegun = fd, own, r.begun.Load()
	if watch.ringers == nil {
		watch.ringers = make(map[*ringer]struct{})
	}
	watch.ringers[r] = struct{}{}
	if watch.timer == nil {
		watch.timer = time.AfterFunc(watchEvery(), look)
	}
}

// rewatchRinger makes the watchdog use fd for r from now on: a copy, for
// an owner about to close the descriptor it watched.
func rewatchRinger(r *ringer, fd int) {
	watch.mu.Lock()
	defer watch.mu.Unlock()
	r.fd = fd
}

// unwatchRinger stops watching r. Its descriptor must not be closed before
// this returns: the watchdog may be duplicating it.
func unwatchRinger(r *ringer) {
	watch.mu.Lock()
	defer watch.mu.Unlock()
	delete(watch.ringers, r)
	if len(watch.ringers) == 0 && watch.timer != nil {
		watch.timer.Stop()
		watch.timer = nil
	}
}

// look is one round of the watchdog.
func look() {
	watch.mu.Lock()
	defer watch.mu.Unlock()
	if watch.timer == nil {
		return // stopped after this round had begun
	}
	for r := range watch.ringers {
		// Stuck: a ring begun before the last look has not ended since.
		ended := r.ended.Load()
		stuck := ended < r.lastBegun
		r.lastBegun = r.begun.Load()
		if !stuck || writable(r.fd) || !r.draining.CompareAndSwap(false, true) {
			continue
		}
		// The descriptor is valid here (its owner unwatches before closing
		// it), not necessarily once we let go of the lock: drain a copy.
		dup, err := unix.FcntlInt(uintptr(r.fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			r.draining.Store(false)
			continue
		}
		if !r.own {
			r.hostile.Store(true)
		}
		go drain(r, dup, ended)
	}
	watch.timer.Reset(watchEvery())
}

// writable reports whether a write of one to the eventfd fd would go
// through now.
func writable(fd int) bool {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	n, err := unix.Poll(p, 0)
	return err != nil || n > 0 // an error: not ours to judge
}

// drainTries bounds one drain: each read also lets the peer's own blocked
// writes through, which may fill the counter again before our ring goes.
// The next look tries again.
const drainTries = 1000

// drain empties the counter of the eventfd behind fd (a copy, which it
// closes) until a ring of r has ended (the blocked one, freed), then tells
// r's owner, on a goroutine of its own: the owner may ring r again (a
// failing endpoint wakes its waiters), and that ring must find the
// watchdog free to help it. Every read is preceded by setting O_NONBLOCK
// again, on the peer's eventfd as on ours (harmless: OpenBell sets it
// too), and never waits (RWF_NOWAIT), so a peer that empties the counter
// first and clears the flag cannot make it block; on a kernel without
// RWF_NOWAIT for eventfd (before 5.12) only a peer clearing the flag
// between the two calls can, which costs this goroutine and a thread,
// never the ringer. A
// doorbell of ours is rung once at the end: a read may have taken the
// wake-up that the freed ring brought.
func drain(r *ringer, fd int, ended uint64) {
	defer unix.Close(fd)
	var kind [32]byte
	n, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(fd), kind[:])
	if err != nil || string(kind[:n]) != "anon_inode:[eventfd]" {
		r.draining.Store(false)
		return
	}
	var buf [8]byte
	iov := [][]byte{buf[:]}
	for i := 0; i < drainTries && r.ended.Load() == ended; i++ {
		// The flag set again serves our waits on our own doorbell; the
		// read never waits, whatever the peer does to the flag (eventfd
		// honours RWF_NOWAIT for reads since Linux 5.12).
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil && flags&unix.O_NONBLOCK == 0 {
			_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags|unix.O_NONBLOCK)
		}
		_, err := unix.Preadv2(fd, iov, -1, unix.RWF_NOWAIT)
		if err == unix.EOPNOTSUPP || err == unix.EINVAL || err == unix.ENOSYS {
			_, _ = unix.Read(fd, buf[:]) // EAGAIN once empty
		}
		runtime.Gosched() // for the freed ring to count itself ended
	}
	if r.own {
		_, _ = unix.Write(fd, one[:]) // non-blocking: EAGAIN if full, and then awake anyway
	}
	r.draining.Store(false)
	if f := r.onHostile.Swap(nil); f != nil {
		go (*f)()
	}
}
