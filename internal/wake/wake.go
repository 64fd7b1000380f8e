package wake

import (
	"context"
	"errors"
	"os"
	"runtime"
	"sync/atomic"
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
	bell *sys.Doorbell
	end  Sleeper
	// warm and cold learn the two kinds of wait apart. A warm wait is one
	// where the peer was awake when this side last published: whatever it
	// does next, it does without waking first. A cold wait follows a
	// publish that had to ring the peer's doorbell: the answer comes no
	// sooner than the peer's wake-up, and on this machine a spin through
	// that wake-up often delays it (docs/wakeup.md), so what cold spins
	// are worth is learned on its own.
	warm, cold Policy
	// rung counts the peer's doorbells this side rang (both directions):
	// a wait after a change is cold. nil: every wait is warm.
	rung     *atomic.Uint64
	seenRung uint64
	// crowded reports whether the CPU is wanted elsewhere (crowd.go); tests
	// replace it.
	crowded func(now int64) bool
	Waits   uint64 // calls to Wait
	// Sleeps counts the waits that outlasted the spin and parked.
	Sleeps uint64
	// OnSleep, if set, runs as a wait is about to park, Waits and Sleeps
	// counting it: the owner publishes its statistics there, once per
	// sleep rather than once per wait, and they show a blocked operation
	// as blocked.
	OnSleep func()
	// pw is this waiter's place in the process's poller (poller.go),
	// pw.ready PollWith's condition (nil: no poller); polled is 1 from
	// just before a wait's last look at stop until it is out of the
	// poller again: Interrupt must then reach it there. (Atomic functions
	// rather than an atomic.Int32, so that NewWaiter can return a value.)
	pw     *pollWait
	polled int32
	// lastPark is when this waiter's last park, or the yield that took
	// its place, ended (sys.Nanotime); 0 before the first. A cold wait
	// soon after one yields the CPU before it parks (see Wait).
	lastPark int64
	// yield gives the CPU away for a moment: sys.YieldCPU; tests replace
	// it.
	yield func()
}

// yieldWithin is how soon after its last park a cold wait yields the CPU
// before parking. Links used less often than that measured slower with
// the yield (docs/wakeup.md, "Yield before a cold park").
const yieldWithin = 500 * time.Microsecond

// PollWith lets this waiter's waits go to the process's poller, which
// polls ready for them: it must say what the ready of every Wait says
// (set once, so that no wait allocates a condition for the poller). The
// poller calls it for parked waits under the lock that their wakes
// take to leave its watch (sleepers.go), so it must only read, and
// return soon.
func (w *Waiter) PollWith(ready func() (bool, error)) { w.pw.ready = ready }

// Polls reports whether this waiter's waits may go to the poller.
func (w *Waiter) Polls() bool { return w.pw.ready != nil }

// NewWaiter returns a waiter that spins at most spin (not at all if spin
// <= 0), as its Policy decides, then announces sleep through end and parks
// on bell. rung, if not nil, is the count of the peer's doorbells this
// side rang.
func NewWaiter(bell *sys.Doorbell, spin time.Duration, end Sleeper, rung *atomic.Uint64) Waiter {
	w := Waiter{bell: bell, end: end, warm: NewPolicy(spin, WarmPark), cold: NewPolicy(spin, ColdPark),
		rung: rung, crowded: newCrowded(), pw: newPollWait(), yield: sys.YieldCPU}
	w.pw.nudge = bell.Nudge
	if rung != nil {
		w.seenRung = rung.Load()
	}
	return w
}

// ErrClosed is returned when the doorbell was closed under a waiter.
var ErrClosed = errors.New("doorbell closed")

// firstPolls is how often a wait polls before it reads the clock: a
// condition that comes true within them (a busy peer) costs no clock read
// and no check of the machine.
const firstPolls = 64

// Wait returns nil once ready may report true (the caller re-checks), or
// the first error of ready or stop. stop says why waiting must end (the
// link's state, an expired deadline); it is asked before spinning and
// again after the sleep is announced. A sleep lasts until the doorbell
// rings, the deadline (as deadline returns it) passes, or ctx is done; a
// zero deadline means none. deadline is read after stop's last look, so that
// one moved meanwhile, which interrupts (Interrupt), is never missed.
func (w *Waiter) Wait(ctx context.Context, deadline func() time.Time, ready func() (bool, error), stop func() error) error {
	if err := stop(); err != nil {
		return err
	}
	w.Waits++
	p := &w.warm
	if w.rung != nil {
		if r := w.rung.Load(); r != w.seenRung {
			w.seenRung, p = r, &w.cold
		}
	}
	if p.Spins() {
		for range firstPolls {
			if ok, err := ready(); ok || err != nil {
				if ok {
					p.Record(0)
				}
				return err
			}
		}
	}
	start := sys.Nanotime()
	// The poller is for waits that could not spin: the CPU was crowded
	// (many links busy at once), or spinning stopped paying for this link.
	// One that spun its budget through parks, as before the poller.
	pollable := w.pw.ready != nil && p.Spins()
	if budget := p.Budget(); budget > 0 {
		ok, crowded, err := w.spin(start, budget, ready)
		if ok || err != nil {
			if ok {
				p.Record(time.Duration(sys.Nanotime() - start))
			}
			return err
		}
		pollable = pollable && crowded
	}
	// The poller learns from the waits it could have served, and only
	// from those: a link that never uses it says nothing about its worth.
	if pollable {
		defer func() { procPoller.record(sys.Nanotime()) }()
	}
	if pollable && procPoller.worth(p.Cap) {
		if ok, err := w.poll(ctx, deadline, stop); ok || err != nil {
			if ok {
				p.Record(time.Duration(sys.Nanotime() - start))
			}
			return err
		}
	}
	// A cold wait follows a ring of a peer that was asleep, and the kernel
	// often runs that peer on this CPU, behind us. Parked, we would let it
	// run only after our park's own work, and its answer would then wake
	// us on the other, idle CPU: tens of microseconds on the VMs measured
	// (docs/wakeup.md). Yielding first lets it run now, as a socket's
	// synchronous wake-up does; if it answers before we are back, neither
	// side sleeps. The catch is not recorded: it says what a yield is
	// worth, not a spin.
	yield := p == &w.cold && w.lastPark != 0 && start-w.lastPark < int64(yieldWithin)
	defer func() { w.lastPark = sys.Nanotime() }()
	if yield {
		w.yield()
		if ok, err := ready(); ok || err != nil {
			return err
		}
	}
	w.end.Sleep()
	defer w.end.Awake()
	if ok, err := ready(); ok || err != nil {
		if ok {
			// Caught without parking: as cheap as a spin of that long.
			p.Record(time.Duration(sys.Nanotime() - start))
		}
		return err
	}
	if err := stop(); err != nil {
		return err
	}
	if ctx.Done() != nil {
		defer context.AfterFunc(ctx, w.bell.Ring)()
	}
	w.Sleeps++
	if w.OnSleep != nil {
		w.OnSleep()
	}
	if w.pw.ready != nil {
		// Parked, but watched by the poller while it runs (sleepers.go).
		procPoller.watch(w.pw)
		defer procPoller.unwatch(w.pw)
	}
	err := w.bell.Wait(deadline())
	p.Record(time.Duration(sys.Nanotime() - start))
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return ErrClosed
	}
	return nil // rung or timed out: the caller's next round decides which
}

// poll hands the wait to the process's poller, and reports whether it
// came back with the condition possibly true (or stop's error): false
// means park. The sleeping flag stays down meanwhile: the peer publishes
// without ringing, and the poller sees it.
func (w *Waiter) poll(ctx context.Context, deadline func() time.Time, stop func() error) (bool, error) {
	pw := w.pw
	atomic.StoreInt32(&w.polled, 1)
	defer atomic.StoreInt32(&w.polled, 0)
	// After polled is up, a change that stop or deadline would see
	// interrupts us (Interrupt); one before it is seen here.
	if err := stop(); err != nil {
		return false, err
	}
	pw.cap, pw.deadline = w.warm.Cap, 0
	if dl := deadline(); !dl.IsZero() {
		pw.deadline = dl.UnixNano()
	}
	return procPoller.hold(pw, ctx.Done()), nil
}

// Interrupt makes a wait under way re-check stop, wherever it waits: in
// the poller, or parked on the doorbell (which it rings, as anyone in
// this process who must wake the waiter does).
func (w *Waiter) Interrupt() {
	if atomic.LoadInt32(&w.polled) != 0 {
		procPoller.interrupt(w.pw)
	}
	w.bell.Ring()
}

// spin polls ready from start until it reports true, fails, budget
// elapses, or the CPU turns out to be wanted elsewhere (see crowd.go), and
// reports whether the condition became true. It yields the processor now
// and then so that a goroutine of this process that would make the
// condition true (in-process tests, or a peer sharing the CPU) is not
// starved.
func (w *Waiter) spin(start int64, budget time.Duration, ready func() (bool, error)) (ok, crowded bool, err error) {
	spinners.Add(1)
	defer spinners.Add(-1)
	if w.crowded(start) {
		return false, true, nil
	}
	for i := 1; ; i++ {
		ok, err := ready()
		if ok || err != nil {
			return ok, false, err
		}
		if i&63 == 0 {
			now := sys.Nanotime()
			if time.Duration(now-start) > budget {
				return false, false, nil
			}
			if i&1023 == 0 {
				if w.crowded(now) {
					return false, true, nil
				}
				runtime.Gosched()
			}
		}
	}
}
