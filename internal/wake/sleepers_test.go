package wake

import (
	"context"
	"runtime"
	"strings"
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
	procPoller.sleepMu.Lock()
	defer procPoller.sleepMu.Unlock()
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

// TestSleeperConditionEndsBeforeReturn: a parked wait that is rung while
// the poller is inside its condition returns only once that call is over:
// the condition reads the ring, which its link unmaps once the wait has
// returned and the link closes.
func TestSleeperConditionEndsBeforeReturn(t *testing.T) {
	freshPoller(t, time.Hour)
	keep := polledWaiter(t, &flagEnd{}, never)
	keepDone := make(chan struct{})
	go func() { defer close(keepDone); keep.Wait(context.Background(), noDeadline, never, noStop) }()
	defer func() { keep.Interrupt(); <-keepDone }()
	until(func() bool { return inPoller(keep) })

	var armed atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	w := NewWaiter(newBell(t), -1, &flagEnd{}, nil)
	w.PollWith(func() (bool, error) {
		if armed.CompareAndSwap(true, false) { // the poller's call
			close(entered)
			<-release
		}
		return false, nil
	})
	done := make(chan error, 1)
	go func() { done <- w.Wait(context.Background(), noDeadline, never, noStop) }()
	until(func() bool { return watched(&w) })
	armed.Store(true)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("the poller never looked at the sleeper")
	}
	w.bell.Ring()
	blocked := func() bool { // the woken wait, held in unwatch
		buf := make([]byte, 1<<20)
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "(*poller).unwatch") && strings.Contains(g, "[sync.Mutex.Lock") {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(10 * time.Second); !blocked(); runtime.Gosched() {
		select {
		case <-done:
			close(release)
			t.Fatal("a woken wait returned while the poller was inside its condition")
		default:
		}
		if time.Now().After(deadline) {
			close(release)
			<-done
			t.Fatal("the woken wait never reached unwatch")
		}
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestLookGoesRound: a look reads at most lookMost sleepers, and the next
// ones start where it stopped, so that with many sleepers every one is
// read within a few looks, and a ready one is nudged once.
func TestLookGoesRound(t *testing.T) {
	var p poller
	const n = 2*lookMost + lookMost/2
	var reads atomic.Int64
	ready := make([]bool, n)
	nudged := make([]int, n)
	for i := range n {
		pw := newPollWait()
		pw.ready = func() (bool, error) { reads.Add(1); return ready[i], nil }
		pw.nudge = func() { nudged[i]++ }
		p.watch(pw)
	}
	for i := range n {
		ready[i] = i%3 == 0
	}
	for look := 1; look <= 3; look++ {
		p.nextLook = 0 // always time for a look
		before := reads.Load()
		p.nudgeSleepers(1)
		if r := reads.Load() - before; r > lookMost {
			t.Fatalf("look %d read %d sleepers, want at most %d", look, r, lookMost)
		}
	}
	for i := range n {
		want := 0
		if ready[i] {
			want = 1
		}
		if nudged[i] != want {
			t.Errorf("sleeper %d (ready %v) nudged %d times after three looks, want %d", i, ready[i], nudged[i], want)
		}
	}
	if len(p.sleepers) != n-(n+2)/3 {
		t.Errorf("%d sleepers left, want the %d not ready", len(p.sleepers), n-(n+2)/3)
	}
}

// BenchmarkLookAtSleepers: looks of the poller at a thousand sleepers
// whose conditions are false; ns/sleeper is the cost of reading one.
func BenchmarkLookAtSleepers(b *testing.B) {
	var p poller
	flags := make([]atomic.Uint64, 1000*8) // one cache line each
	for i := range 1000 {
		f := &flags[i*8]
		pw := newPollWait()
		pw.ready = func() (bool, error) { return f.Load() != 0, nil }
		p.watch(pw)
	}
	for b.Loop() {
		p.nextLook = 0 // always time for a look
		p.nudgeSleepers(1)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*min(lookMost, 1000)), "ns/sleeper")
}
