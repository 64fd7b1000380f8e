package sys

import (
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
// looks at each: a ring that has not ended since the last look, on an
// eventfd that is not writable (its counter is full, which an honest peer
// can never bring about), is the peer's doing. The watchdog then reads the
// counter through a descriptor of its own, which lets the write finish,
// and tells the owner (OnHostile), which closes the link. A bell (the
// peer's eventfd) drops every later ring; a doorbell (ours) gets its
// O_NONBLOCK back and goes on ringing, since our own waiters still need its
// wake-ups, and the watchdog frees it again should the peer do it again.

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
	fd           int    // for the watchdog; valid while it is watched
	lastEnded    uint64 // the watchdog's, under watch.mu
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
	r.fd, r.own, r.lastEnded = fd, own, r.ended.Load()
	if watch.ringers == nil {
		watch.ringers = make(map[*ringer]struct{})
	}
	watch.ringers[r] = struct{}{}
	if watch.timer == nil {
		watch.timer = time.AfterFunc(watchEvery(), look)
	}
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
		ended := r.ended.Load()
		stuck := ended == r.lastEnded && r.begun.Load() != ended
		r.lastEnded = ended
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
		go drain(r, dup)
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

// drain empties the counter of the eventfd behind fd (a copy, which it
// closes), so that the blocked ring finishes, and tells r's owner. The
// read could itself block if the peer emptied the counter first (the ring
// then went through anyway), so it runs on its own goroutine and reads only
// what poll says is there; a peer racing it can cost this goroutine and
// one thread, never the ringer.
func drain(r *ringer, fd int) {
	defer unix.Close(fd)
	defer r.draining.Store(false)
	var kind [32]byte
	n, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(fd), kind[:])
	if err != nil || string(kind[:n]) != "anon_inode:[eventfd]" {
		return
	}
	if r.own {
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil {
			_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags|unix.O_NONBLOCK)
		}
	}
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if n, _ := unix.Poll(p, 0); n > 0 {
		var buf [8]byte
		_, _ = unix.Read(fd, buf[:])
	}
	if f := r.onHostile.Swap(nil); f != nil {
		(*f)()
	}
}
