package wake

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmlink/shmlink/internal/sys"
)

// The process's poller: one goroutine that polls, on behalf of every wait
// of this process that would otherwise park, the conditions those waits
// are for. A wait sitting in the poller leaves its sleeping flag down, so
// the peer publishes without ringing: while messages keep coming on any
// of the process's links, none of them costs a system call. With many
// links busy at once (a server with 32 requests in flight) per-wait
// spinning is mostly off (the CPU is crowded, and each spinner would hold
// a processor), so every message cost a wake-up on each side, as on a
// socket; one poller serves them all for the price of one spinner.
//
// The poller runs while it holds waits and conditions keep coming true
// within its budget of one another; then it sends every wait it holds to
// park the usual way. The budget is learned (a Policy) from the gaps
// between the moments the process's parking-bound waits end, whether the
// poller caught them or they had parked: on a process whose links are
// idle for milliseconds it shrinks to nothing, and waits park at once, as
// they did without it.
//
// Safety: the poller calls a wait's condition only while the wait is in
// it and marked as being polled; the wait leaves only once the poller is
// done with it (a condition reads the ring, which its link unmaps when it
// closes). Anything that changes what a wait's stop would say interrupts
// the wait (Waiter.Interrupt), in the poller as in a park.
type poller struct {
	mu      sync.Mutex
	waits   []*pollWait
	started bool          // the goroutine exists (it never ends)
	running bool          // it polls; else it waits on resume
	resume  chan struct{} // one token per idle-to-running change
	policy  Policy
	last    int64 // when the last parking-bound wait ended, 0 for never
	frozen  bool  // the budget does not learn (tests)
	// active is 1 while the goroutine polls (crowd.go leaves it out of
	// the running goroutines).
	active atomic.Int32
	// sleepers are the parked waits it watches (sleepers.go), under
	// their own lock; lookAt is where its next look starts, nextLook when
	// that may be (both its goroutine's), nudged how many it nudged.
	sleepMu  sync.Mutex
	sleepers []*pollWait
	lookAt   int
	nextLook int64
	nudged   atomic.Uint64
}

// pollWait is one wait as the poller holds it; each Waiter has one.
type pollWait struct {
	// ready is the Waiter's condition (PollWith), which the poller calls
	// for it, in its hold or parked.
	ready func() (bool, error)
	// deadline is in unix nanoseconds, 0 for none: on the clock the
	// caller checks it by (time.Now), which on Windows moves in steps of
	// milliseconds while sys.Nanotime does not.
	deadline int64
	cap      time.Duration
	since    int64 // sys.Nanotime when it came in
	in       bool  // held by the poller
	polling  bool  // the poller is calling ready, outside its lock
	kicked   bool  // interrupted: leave at once (or do not enter)
	// woken receives the outcome once the wait is out of the poller:
	// true to re-check (the condition may hold, or stop may say why not),
	// false to park.
	woken chan bool
	// held bounds a wait's time in the poller (maxHold), made once.
	held *time.Timer
	// sleeping: parked and among the poller's sleepers, at slot; nudge
	// wakes it there (its doorbell's Nudge). Under p.sleepMu, not p.mu.
	sleeping bool
	slot     int
	nudge    func()
}

// newPollWait returns a wait's place in the poller, made once per Waiter.
func newPollWait() *pollWait {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &pollWait{woken: make(chan bool, 1), held: t}
}

// maxHold is the longest a wait stays in the poller before it parks by
// itself. The poller's goroutine never sleeps while busy, so the kernel may
// preempt its thread for a time slice (milliseconds); the waits it holds
// would stall with it, their peers not ringing. A wait that outlasts
// maxHold parks, and its peer's next publish rings it.
var maxHold = time.Millisecond // a variable for the tests

var procPoller = poller{policy: NewPolicy(DefaultSpin, WarmPark), resume: make(chan struct{}, 1)}

// DefaultSpin caps the poller's budget, and is the budget it starts with.
const DefaultSpin = 100 * time.Microsecond

// budget is how long the poller keeps polling after the last condition it
// caught, for waits whose largest spin cap is cap. Callers hold p.mu.
func (p *poller) budget(cap time.Duration) time.Duration {
	return min(p.policy.Budget(), cap)
}

// worth reports whether a wait should go to the poller rather than park.
func (p *poller) worth(cap time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.budget(cap) > 0
}

// record notes that a parking-bound wait ended at now: the gap since the
// previous one is what the poller would have had to spin through.
func (p *poller) record(now int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last != 0 && now > p.last && !p.frozen {
		p.policy.Record(time.Duration(now - p.last))
	}
	p.last = now
}

// hold puts pw in the poller and waits for its outcome (see pollWait.woken).
// done, if not nil, ends the wait early (a context).
func (p *poller) hold(pw *pollWait, done <-chan struct{}) bool {
	p.mu.Lock()
	if pw.kicked {
		pw.kicked = false
		p.mu.Unlock()
		return true
	}
	pw.in, pw.since = true, sys.Nanotime()
	p.waits = append(p.waits, pw)
	if !p.running {
		// The goroutine stays once started, waiting while it has nothing
		// to poll: starting one per busy spell would allocate.
		p.running = true
		if !p.started {
			p.started = true
			go p.run()
		} else {
			p.resume <- struct{}{}
		}
	}
	p.mu.Unlock()
	pw.held.Reset(maxHold)
	defer pw.held.Stop()
	select {
	case ok := <-pw.woken:
		return ok
	case <-done:
		p.leave(pw)
		return true
	case <-pw.held.C:
		p.leave(pw)
		return false
	}
}

// leave takes pw out of the poller on its own account (a context, or
// maxHold): once the poller is done with it, and without leaving a kick
// for its next wait (a wait that parks re-checks stop, and whoever
// interrupts also rings).
func (p *poller) leave(pw *pollWait) {
	p.interrupt(pw)
	<-pw.woken
	p.mu.Lock()
	pw.kicked = false
	p.mu.Unlock()
}

// interrupt makes pw leave the poller at once, or, if it is not in yet,
// not enter it.
func (p *poller) interrupt(pw *pollWait) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case !pw.in:
		pw.kicked = true
	case pw.polling:
		pw.kicked = true // the poller lets it go when its poll returns
	default:
		p.release(pw, true)
	}
}

// release takes pw out of the poller and hands it its outcome. Callers
// hold p.mu.
func (p *poller) release(pw *pollWait, ok bool) {
	if i := slices.Index(p.waits, pw); i >= 0 {
		p.waits = slices.Delete(p.waits, i, i+1) // clears the freed slot
	}
	pw.in, pw.kicked = false, false
	pw.woken <- ok
}

// run is the poller's goroutine: it polls every wait it holds, round after
// round, and waits for the next one when none is left.
func (p *poller) run() {
	var batch []*pollWait
	lastHit := sys.Nanotime()
	// While it polls, the poller is one of this process's spinners, which
	// the machine's crowding leaves out (crowd.go).
	spinners.Add(1)
	p.active.Store(1)
	for {
		p.mu.Lock()
		if len(p.waits) == 0 {
			p.running = false
			p.mu.Unlock()
			p.active.Store(0)
			spinners.Add(-1)
			<-p.resume
			p.active.Store(1)
			spinners.Add(1)
			lastHit = sys.Nanotime()
			continue
		}
		batch = append(batch[:0], p.waits...)
		p.mu.Unlock()

		hit := false
		for _, pw := range batch {
			// Only the wait whose condition is being called is marked:
			// one that must leave (maxHold, a context, an interrupt)
			// while the poller is held up elsewhere in its round, its
			// thread preempted in another wait's call, leaves at once.
			p.mu.Lock()
			if !pw.in {
				p.mu.Unlock()
				continue
			}
			pw.polling = true
			p.mu.Unlock()
			// A condition that fails (a corrupt ring) counts as ready:
			// the wait re-checks and gets the error itself.
			ok, err := pw.ready()
			p.mu.Lock()
			pw.polling = false
			if ok || err != nil {
				hit = true
				p.release(pw, true)
			} else if pw.kicked {
				p.release(pw, true)
			}
			p.mu.Unlock()
		}
		now := sys.Nanotime()
		if hit {
			lastHit = now
		}
		p.nudgeSleepers(now)

		p.mu.Lock()
		batch = append(batch[:0], p.waits...)
		var cap time.Duration
		var wall int64 // time.Now, read once a round if a wait has a deadline
		for _, pw := range batch {
			if pw.deadline != 0 && wall == 0 {
				wall = time.Now().UnixNano()
			}
			if pw.deadline != 0 && wall >= pw.deadline {
				p.release(pw, true)
			} else {
				cap = max(cap, pw.cap)
			}
		}
		// A wait that came in late in a quiet spell gets its budget too.
		budget := p.budget(cap)
		for _, pw := range batch {
			if pw.in && time.Duration(now-max(lastHit, pw.since)) > budget {
				p.release(pw, false)
			}
		}
		p.mu.Unlock()
		clear(batch) // keep no closed link's wait alive
		// Let this process's other goroutines, the woken waits among
		// them, have the processor between rounds.
		runtime.Gosched()
	}
}
