package wake

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// freshPoller gives the process's poller a new policy whose budget is
// spin, and puts the old one back after the test: a test's waits must not
// depend on what earlier tests taught it. Nor does the budget learn from
// the test's own waits: on a slow machine (Wine) their gaps of
// milliseconds dropped it to nothing, and a wait that the test expected
// in the poller parked.
func freshPoller(t *testing.T, spin time.Duration) {
	t.Helper()
	// No test here runs in parallel: the poller is the process's.
	oldHold := maxHold
	maxHold = time.Hour // a slow test machine must not make waits leave
	t.Cleanup(func() { maxHold = oldHold })
	procPoller.mu.Lock()
	old, oldLast := procPoller.policy, procPoller.last
	procPoller.policy, procPoller.last, procPoller.frozen = NewPolicy(spin, WarmPark), 0, true
	procPoller.mu.Unlock()
	t.Cleanup(func() {
		procPoller.mu.Lock()
		procPoller.policy, procPoller.last, procPoller.frozen = old, oldLast, false
		procPoller.mu.Unlock()
	})
}

// polledWaiter is a waiter whose own spin never runs (as on a crowded
// machine), so that a wait that does not hold at once goes to the poller.
func polledWaiter(t *testing.T, end *flagEnd, cond func() (bool, error)) *Waiter {
	t.Helper()
	w := NewWaiter(newBell(t), time.Second, end, nil)
	w.crowded = func(int64) bool { return true }
	w.warm.budget, w.cold.budget = 0, 0
	w.PollWith(cond)
	return &w
}

// endedInPoller fails the test if one of w's waits parked.
func endedInPoller(t *testing.T, w *Waiter) {
	t.Helper()
	if w.Sleeps != 0 {
		t.Errorf("Sleeps = %d, want every wait to end in the poller", w.Sleeps)
	}
}

// inPoller reports whether w's wait is held by the poller.
func inPoller(w *Waiter) bool {
	procPoller.mu.Lock()
	defer procPoller.mu.Unlock()
	return w.pw.in
}

// TestPollerCatchesWithoutSleeping: a wait in the poller returns once its
// condition holds, without announcing sleep, so the peer never rings.
func TestPollerCatchesWithoutSleeping(t *testing.T) {
	freshPoller(t, time.Hour)
	end := &flagEnd{}
	var ready atomic.Bool
	cond := func() (bool, error) { return ready.Load(), nil }
	w := polledWaiter(t, end, cond)
	go func() {
		until(func() bool { return inPoller(w) })
		ready.Store(true)
	}()
	if err := w.Wait(context.Background(), noDeadline, cond, noStop); err != nil {
		t.Fatal(err)
	}
	if !ready.Load() {
		t.Fatal("returned before the condition held")
	}
	endedInPoller(t, w)
}

// TestPollerSendsToPark: a wait leaves the poller to park the usual way,
// where the doorbell wakes it, once the poller has caught nothing within
// its budget, and once it has held the wait for maxHold however busy it
// is (a poller whose thread the kernel preempted must not stall its waits
// for a time slice).
func TestPollerSendsToPark(t *testing.T) {
	for _, c := range []struct {
		name            string
		budget, maxHold time.Duration
	}{{"budget", 50 * time.Microsecond, time.Hour}, {"maxHold", time.Hour, time.Millisecond}} {
		t.Run(c.name, func(t *testing.T) {
			freshPoller(t, c.budget)
			maxHold = c.maxHold
			end := &flagEnd{}
			w := polledWaiter(t, end, never)
			waitRungAsleep(t, w, w.bell, end)
			if w.Sleeps != 1 {
				t.Errorf("Sleeps = %d, want the wait to leave the poller and park", w.Sleeps)
			}
		})
	}
}

// TestPollerInterrupt: Interrupt takes a wait out of the poller at once.
func TestPollerInterrupt(t *testing.T) {
	freshPoller(t, time.Hour)
	w := polledWaiter(t, &flagEnd{}, never)
	go func() {
		until(func() bool { return inPoller(w) })
		w.Interrupt()
	}()
	if err := w.Wait(context.Background(), noDeadline, never, noStop); err != nil {
		t.Fatal(err)
	}
	endedInPoller(t, w)
}

// TestPollerDeadline: the poller keeps a wait's deadline.
func TestPollerDeadline(t *testing.T) {
	freshPoller(t, time.Hour)
	w := polledWaiter(t, &flagEnd{}, never)
	start := time.Now()
	if err := w.Wait(context.Background(), func() time.Time { return start.Add(5 * time.Millisecond) }, never, noStop); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 5*time.Millisecond {
		t.Error("returned before the deadline")
	}
	endedInPoller(t, w)
}

// TestPollerDeadlineMoved: a deadline set while a wait is on its way into
// the poller, then Interrupt, is the one the poller keeps: the wait reads
// its deadline after announcing itself, not when it began.
func TestPollerDeadlineMoved(t *testing.T) {
	freshPoller(t, time.Hour)
	var dl atomic.Int64
	deadline := func() time.Time {
		if ns := dl.Load(); ns != 0 {
			return time.Unix(0, ns)
		}
		return time.Time{}
	}
	passed := func() bool { ns := dl.Load(); return ns != 0 && time.Now().UnixNano() >= ns }
	w := polledWaiter(t, &flagEnd{}, never)
	raceInterrupt(t, w, 300, "the wait missed a deadline moved on its way into the poller",
		func() { dl.Store(0) },
		func() bool {
			if passed() {
				return true
			}
			if err := w.Wait(context.Background(), deadline, never, noStop); err != nil {
				t.Error(err)
				return true
			}
			return false
		},
		func() { dl.Store(time.Now().Add(time.Millisecond).UnixNano()) })
}

// raceInterrupt runs rounds of a wait on w against a change and an
// Interrupt, the change made after a different number of yields each
// round so that it lands anywhere on the wait's way: wait is called
// until it reports the wait over, which each round must within ten
// seconds: the poller never gives up on the wait by itself, so only the
// interrupt can end it. reset starts a round.
func raceInterrupt(t *testing.T, w *Waiter, rounds int, lost string, reset func(), wait func() bool, change func()) {
	t.Helper()
	w.warm.Cap, w.cold.Cap = time.Hour, time.Hour
	for i := range rounds {
		reset()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for !wait() {
			}
		}()
		for range i % 7 {
			runtime.Gosched()
		}
		change()
		w.Interrupt()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: %s", i, lost)
		}
	}
}

// TestPollerContext: a done context takes a wait out of the poller.
func TestPollerContext(t *testing.T) {
	freshPoller(t, time.Hour)
	w := polledWaiter(t, &flagEnd{}, never)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		until(func() bool { return inPoller(w) })
		cancel()
	}()
	if err := w.Wait(ctx, noDeadline, never, noStop); err != nil {
		t.Fatal(err)
	}
	endedInPoller(t, w)
}

// TestPollerInterruptNeverLost: a change that stop sees, then Interrupt,
// ends the wait in every interleaving: before the wait looks at stop,
// between that look and the poller taking it, in the poller, or parked.
func TestPollerInterruptNeverLost(t *testing.T) {
	freshPoller(t, time.Hour)
	var stopped atomic.Bool
	stop := func() error {
		if stopped.Load() {
			return context.Canceled
		}
		return nil
	}
	w := polledWaiter(t, &flagEnd{}, never)
	raceInterrupt(t, w, 500, "an interrupt was lost",
		func() { stopped.Store(false) },
		func() bool { return w.Wait(context.Background(), noDeadline, never, stop) != nil },
		func() { stopped.Store(true) })
}

// TestPollerNeverPollsAfterLeave: the poller calls a wait's condition
// only while that wait is under way. A condition reads a ring that its
// link unmaps once the wait has returned and the link closes: a call
// after the return would read freed memory.
func TestPollerNeverPollsAfterLeave(t *testing.T) {
	freshPoller(t, time.Hour)
	const waiters, waits = 8, 400
	var violations atomic.Int64
	var wg sync.WaitGroup
	for g := range waiters {
		var inside, ready atomic.Bool
		cond := func() (bool, error) {
			if !inside.Load() {
				violations.Add(1)
			}
			return ready.Load(), nil
		}
		end := &flagEnd{}
		w := polledWaiter(t, end, cond)
		if g%2 == 1 {
			// Never in the poller, but among its sleepers once parked.
			w.warm.Cap, w.cold.Cap = 0, 0
		}
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range waits {
				ready.Store(false)
				inside.Store(true)
				// Each round ends the wait one way or another, and always
				// with an Interrupt, which also wakes a wait that parked.
				how := r.IntN(3)
				stopper := make(chan struct{})
				go func() {
					defer close(stopper)
					switch how {
					case 0:
						ready.Store(true)
					case 1:
						w.Interrupt()
						ready.Store(true)
					default:
						until(func() bool { return inPoller(w) || end.sleeping.Load() })
						ready.Store(true)
					}
					w.Interrupt()
				}()
				for {
					if err := w.Wait(context.Background(), noDeadline, cond, noStop); err != nil {
						t.Error(err)
						break
					}
					if ok, _ := cond(); ok {
						break
					}
				}
				<-stopper
				inside.Store(false)
			}
		})
	}
	wg.Wait()
	if n := violations.Load(); n != 0 {
		t.Fatalf("the poller called a condition %d times after its wait returned", n)
	}
}

// TestPollerLearnsIdle: the poller's budget goes to nothing when the
// waits it would spin for end milliseconds apart, and comes back when
// they end microseconds apart.
func TestPollerLearnsIdle(t *testing.T) {
	p := poller{policy: NewPolicy(DefaultSpin, WarmPark)}
	now := int64(1e12)
	for range 200 {
		now += int64(2 * time.Millisecond)
		p.record(now)
	}
	if p.worth(DefaultSpin) {
		t.Fatal("still worth polling for waits 2 ms apart")
	}
	for range 200 {
		now += int64(10 * time.Microsecond)
		p.record(now)
	}
	if !p.worth(DefaultSpin) {
		t.Fatal("not worth polling for waits 10 µs apart")
	}
}

// TestPollerMaxHoldSlowRound: a wait leaves at maxHold even while the
// poller is held up in another wait's condition (its thread preempted, in
// real use): only the wait being polled is pinned to the poller.
func TestPollerMaxHoldSlowRound(t *testing.T) {
	freshPoller(t, time.Hour)
	maxHold = 20 * time.Millisecond
	endB := &flagEnd{}
	b := polledWaiter(t, endB, never)
	b.warm.Cap, b.cold.Cap = time.Hour, time.Hour
	bDone := make(chan struct{})
	go func() { defer close(bDone); b.Wait(context.Background(), noDeadline, never, noStop) }()
	until(func() bool { return inPoller(b) })
	unblock := make(chan struct{})
	var blocked atomic.Bool
	slow := func() (bool, error) {
		if blocked.CompareAndSwap(false, true) {
			<-unblock // the poller, stuck in this call
		}
		return true, nil
	}
	a := polledWaiter(t, &flagEnd{}, slow)
	aDone := make(chan struct{})
	go func() { defer close(aDone); a.Wait(context.Background(), noDeadline, never, noStop) }()
	until(blocked.Load)
	// b must park by itself within maxHold, with the poller still stuck.
	until(endB.sleeping.Load)
	parked := endB.sleeping.Load()
	close(unblock)
	until(func() bool { return !inPoller(a) })
	a.bell.Ring() // a's own maxHold may have sent it to park meanwhile
	<-aDone
	b.bell.Ring()
	<-bDone
	if !parked {
		t.Fatal("a wait stayed in a stalled poller far beyond maxHold")
	}
}

// TestPollerContextReuse: a wait that left the poller for its context
// leaves nothing behind: the next wait of the same waiter is caught in the
// poller as usual (a value left in its channel would make the poller's
// next release block under its lock).
func TestPollerContextReuse(t *testing.T) {
	freshPoller(t, time.Hour)
	var ready atomic.Bool
	cond := func() (bool, error) { return ready.Load(), nil }
	w := polledWaiter(t, &flagEnd{}, cond)
	for range 50 {
		ready.Store(false)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { until(func() bool { return inPoller(w) }); cancel() }()
		if err := w.Wait(ctx, noDeadline, cond, noStop); err != nil {
			t.Fatal(err)
		}
		cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				w.Wait(context.Background(), noDeadline, cond, noStop)
				if ok, _ := cond(); ok {
					return
				}
			}
		}()
		until(func() bool { return inPoller(w) })
		ready.Store(true)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			w.bell.Ring()
			t.Fatal("the wait after a context's leave was not caught")
		}
	}
	endedInPoller(t, w)
}

// TestPollerHandsError: a condition that fails (a corrupt ring) ends the
// wait at once, as a true one does; the wait's owner then sees the error.
func TestPollerHandsError(t *testing.T) {
	freshPoller(t, time.Hour)
	var bad atomic.Bool
	errCorrupt := errors.New("corrupt")
	cond := func() (bool, error) {
		if bad.Load() {
			return false, errCorrupt
		}
		return false, nil
	}
	w := polledWaiter(t, &flagEnd{}, cond)
	go func() { until(func() bool { return inPoller(w) }); bad.Store(true) }()
	start := time.Now()
	err := w.Wait(context.Background(), func() time.Time { return start.Add(3 * time.Second) }, never, noStop)
	if err != nil && !errors.Is(err, errCorrupt) {
		t.Fatal(err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("the poller held a failing condition until the deadline")
	}
}
