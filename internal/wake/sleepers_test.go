package wake

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// sleeper returns a waiter that parks at once, with the poller watching
// it (sleepers.go), and its condition's switch.
func sleeper(t *testing.T, end *flagEnd) (*Waiter, *atomic.Bool) {
	t.Helper()
	var ready atomic.Bool
	w := NewWaiter(newBell(t), -1, end, nil)
	w.PollWith(func() (bool, error) { return ready.Load(), nil })
	return &w, &ready
}

// watched reports whether w's wait is among the poller's sleepers.
func watched(w *Waiter) bool {
	procPoller.mu.Lock()
	defer procPoller.mu.Unlock()
	return w.pw.sleeping
}

// TestPollerNudgesSleepers: while the poller runs, a parked wait whose
// condition comes true is woken without a ring, through its doorbell's
// Nudge: a process whose processors never idle would leave a rung one to
// the runtime's network poll, which comes late. With the poller idle, a
// parked wait is the doorbell's alone.
func TestPollerNudgesSleepers(t *testing.T) {
	freshPoller(t, time.Hour)
	keep := polledWaiter(t, &flagEnd{}, never) // keeps the poller running
	keepDone := make(chan struct{})
	go func() { defer close(keepDone); keep.Wait(context.Background(), noDeadline, never, noStop) }()
	until(func() bool { return inPoller(keep) })

	w, ready := sleeper(t, &flagEnd{})
	done := make(chan error, 1)
	go func() { done <- w.Wait(context.Background(), noDeadline, never, noStop) }()
	until(func() bool { return watched(w) })
	before := Nudged()
	ready.Store(true) // and no ring
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		w.bell.Ring()
		<-done
		t.Fatal("a parked wait whose condition came true was not nudged")
	}
	if Nudged() == before || w.Sleeps != 1 {
		t.Errorf("nudged %d, Sleeps %d: want the wait to park and be nudged", Nudged()-before, w.Sleeps)
	}
	keep.Interrupt()
	<-keepDone

	// The poller has stopped: a sleeper is left to its doorbell.
	until(func() bool { procPoller.mu.Lock(); defer procPoller.mu.Unlock(); return !procPoller.running })
	ready.Store(false)
	go func() { done <- w.Wait(context.Background(), noDeadline, never, noStop) }()
	until(func() bool { return watched(w) })
	ready.Store(true)
	w.bell.Ring()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if watched(w) {
		t.Error("a wait that returned is still among the sleepers")
	}
}

// BenchmarkLookAtSleepers: one look of the poller at a thousand sleepers
// whose conditions are false (ns/op over a thousand is the cost of one).
func BenchmarkLookAtSleepers(b *testing.B) {
	var p poller
	flags := make([]atomic.Uint64, 1000*8) // one cache line each
	for i := range 1000 {
		f := &flags[i*8]
		p.watch(newPollWait(), func() (bool, error) { return f.Load() != 0, nil })
	}
	now := int64(0)
	for b.Loop() {
		now += 1 << 40 // always time for a look
		p.nudgeSleepers(now)
	}
}
