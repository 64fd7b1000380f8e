package wake

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/sys"
)

// flagEnd is a ring end whose sleeping flag the test can watch.
type flagEnd struct{ sleeping atomic.Bool }

func (e *flagEnd) Sleep() { e.sleeping.Store(true) }
func (e *flagEnd) Awake() { e.sleeping.Store(false) }

func newBell(t *testing.T) *sys.Doorbell {
	t.Helper()
	if !sys.Supported {
		t.Skip("no doorbells on this OS yet")
	}
	b, err := sys.NewDoorbell()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func never() (bool, error) { return false, nil }

// until spins until cond holds, for at most ten seconds: long enough for
// any machine, short enough that a broken Wait fails the test rather than
// leaving a goroutine spinning.
func until(cond func() bool) {
	for deadline := time.Now().Add(10 * time.Second); !cond() && time.Now().Before(deadline); {
		runtime.Gosched()
	}
}
func noStop() error { return nil }

// noDeadline is a wait without a deadline.
func noDeadline() time.Time { return time.Time{} }

func TestSpinSeesConditionWithoutSleeping(t *testing.T) {
	end := &flagEnd{}
	w := NewWaiter(newBell(t), time.Second, end, nil)
	w.crowded = func(int64) bool { return false } // a busy test machine must not stop the spin
	var polls atomic.Int32
	ready := func() (bool, error) { return polls.Add(1) > 100, nil }
	if err := w.Wait(context.Background(), noDeadline, ready, noStop); err != nil {
		t.Fatal(err)
	}
	if w.Sleeps != 0 || end.sleeping.Load() {
		t.Errorf("slept %d times (flag %v), want a spin only", w.Sleeps, end.sleeping.Load())
	}
	if w.Waits != 1 {
		t.Errorf("Waits = %d", w.Waits)
	}
}

// waitRungAsleep runs a wait on w whose condition never holds, and rings
// bell once end says the waiter sleeps: the wait must return nil.
func waitRungAsleep(t *testing.T, w *Waiter, bell *sys.Doorbell, end *flagEnd) {
	t.Helper()
	go func() {
		until(end.sleeping.Load)
		bell.Ring()
	}()
	if err := w.Wait(context.Background(), noDeadline, never, noStop); err != nil {
		t.Fatal(err)
	}
}

// TestSleepUntilRung is the sleep protocol: announce, re-check, park; the
// other side, seeing the announcement, rings.
func TestSleepUntilRung(t *testing.T) {
	bell := newBell(t)
	end := &flagEnd{}
	w := NewWaiter(bell, -1, end, nil) // no spin: straight to sleep
	waitRungAsleep(t, &w, bell, end)
	if w.Sleeps != 1 {
		t.Errorf("Sleeps = %d, want 1", w.Sleeps)
	}
	if end.sleeping.Load() {
		t.Error("sleep announcement not withdrawn")
	}
}

// TestRecheckAfterAnnounce: a condition that became true just before the
// announcement must be seen without parking, since its producer will not
// ring.
func TestRecheckAfterAnnounce(t *testing.T) {
	end := &flagEnd{}
	w := NewWaiter(newBell(t), -1, end, nil)
	ready := func() (bool, error) { return end.sleeping.Load(), nil }
	if err := w.Wait(context.Background(), noDeadline, ready, noStop); err != nil {
		t.Fatal(err)
	}
	if w.Sleeps != 0 {
		t.Errorf("parked although the re-check succeeded")
	}
}

func TestDeadlineEndsSleep(t *testing.T) {
	w := NewWaiter(newBell(t), -1, &flagEnd{}, nil)
	start := time.Now()
	if err := w.Wait(context.Background(), func() time.Time { return start.Add(20 * time.Millisecond) }, never, noStop); err != nil {
		t.Fatalf("Wait = %v; a deadline returns nil and the caller's stop decides", err)
	}
	if time.Since(start) < 20*time.Millisecond {
		t.Errorf("returned before the deadline")
	}
}

func TestContextEndsSleep(t *testing.T) {
	end := &flagEnd{}
	w := NewWaiter(newBell(t), -1, end, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		until(end.sleeping.Load)
		cancel()
	}()
	done := make(chan error, 1)
	go func() { done <- w.Wait(ctx, noDeadline, never, noStop) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelled context did not end the sleep")
	}
}

func TestStopAndReadyErrors(t *testing.T) {
	w := NewWaiter(newBell(t), time.Millisecond, &flagEnd{}, nil)
	stopErr := errors.New("stop")
	if err := w.Wait(context.Background(), noDeadline, never, func() error { return stopErr }); err != stopErr {
		t.Errorf("stop: got %v", err)
	}
	readyErr := errors.New("corrupt")
	bad := func() (bool, error) { return false, readyErr }
	if err := w.Wait(context.Background(), noDeadline, bad, noStop); err != readyErr {
		t.Errorf("ready: got %v", err)
	}
}

// TestStopCheckedAfterAnnounce: a state change (the peer left) that comes
// while spinning must end the wait before parking.
func TestStopCheckedAfterAnnounce(t *testing.T) {
	end := &flagEnd{}
	w := NewWaiter(newBell(t), -1, end, nil)
	gone := errors.New("peer gone")
	stop := func() error {
		if end.sleeping.Load() {
			return gone
		}
		return nil
	}
	if err := w.Wait(context.Background(), noDeadline, never, stop); err != gone {
		t.Fatalf("got %v, want the stop error", err)
	}
}

func TestClosedDoorbell(t *testing.T) {
	bell := newBell(t)
	end := &flagEnd{}
	w := NewWaiter(bell, -1, end, nil)
	go func() {
		until(end.sleeping.Load)
		bell.Close()
	}()
	if err := w.Wait(context.Background(), noDeadline, never, noStop); err != ErrClosed {
		t.Fatalf("got %v, want ErrClosed", err)
	}
}

// TestColdWaitsLearnApart: a wait after this side rang the peer is cold
// and goes to its own policy, so that the peer's wake-ups do not teach
// the warm waits; the next wait, with no ring between, is warm again.
func TestColdWaitsLearnApart(t *testing.T) {
	var rung atomic.Uint64
	w := NewWaiter(newBell(t), time.Millisecond, &flagEnd{}, &rung)
	now := func() (bool, error) { return true, nil }
	wait := func() {
		t.Helper()
		if err := w.Wait(context.Background(), noDeadline, now, noStop); err != nil {
			t.Fatal(err)
		}
	}
	wait()
	if w.warm.records != 1 || w.cold.records != 0 {
		t.Fatalf("first wait: warm %d, cold %d records; want a warm one", w.warm.records, w.cold.records)
	}
	rung.Add(1)
	wait()
	if w.warm.records != 1 || w.cold.records != 1 {
		t.Fatalf("after a ring: warm %d, cold %d records; want a cold one", w.warm.records, w.cold.records)
	}
	wait()
	if w.warm.records != 2 || w.cold.records != 1 {
		t.Fatalf("no ring since: warm %d, cold %d records; want a warm one", w.warm.records, w.cold.records)
	}
}

// TestCrowdedSpinParks: a spin that finds the CPU wanted elsewhere parks
// at once instead of spinning its budget.
func TestCrowdedSpinParks(t *testing.T) {
	bell := newBell(t)
	end := &flagEnd{}
	w := NewWaiter(bell, time.Hour, end, nil)
	w.crowded = func(int64) bool { return true }
	waitRungAsleep(t, &w, bell, end)
	if w.Sleeps != 1 {
		t.Errorf("Sleeps = %d, want 1: a crowded spin parks", w.Sleeps)
	}
}

// TestColdWaitYieldsFirst: a cold wait soon after the waiter last parked
// gives the CPU away before parking, and if the condition came true
// meanwhile (the peer ran on our CPU and answered) returns without
// announcing a sleep; a warm wait, or a cold one long after the last
// park, parks as before.
func TestColdWaitYieldsFirst(t *testing.T) {
	var rung atomic.Uint64
	bell := newBell(t)
	end := &flagEnd{}
	w := NewWaiter(bell, -1, end, &rung) // no spin: every wait reaches the park
	var yields atomic.Int32
	var answered atomic.Bool // set by the "peer" during a yield
	w.yield = func() {
		yields.Add(1)
		answered.Store(true)
	}
	var announced atomic.Bool
	ready := func() (bool, error) {
		announced.Store(announced.Load() || end.sleeping.Load())
		return answered.Load(), nil
	}
	// A deadline, so that a wait that parks by mistake returns, and fails
	// the checks below, rather than hanging the test.
	soon := func() time.Time { return time.Now().Add(2 * time.Second) }
	wait := func(what string, cold bool) {
		t.Helper()
		if cold {
			rung.Add(1)
		}
		if err := w.Wait(context.Background(), soon, ready, noStop); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// The first cold wait has no park before it: it parks, and is rung.
	go func() {
		until(end.sleeping.Load)
		bell.Ring()
	}()
	wait("first cold wait", true)
	if yields.Load() != 0 || w.Sleeps != 1 {
		t.Fatalf("first cold wait: %d yields, %d sleeps; want a park without a yield", yields.Load(), w.Sleeps)
	}

	announced.Store(false)
	wait("cold wait right after a park", true)
	if yields.Load() != 1 || w.Sleeps != 1 || announced.Load() {
		t.Fatalf("cold wait right after a park: %d yields, %d sleeps, sleep announced %v; want one yield and no sleep",
			yields.Load(), w.Sleeps, announced.Load())
	}

	wait("warm wait", false) // answered already: the re-check after the announcement catches it
	if yields.Load() != 1 {
		t.Fatalf("warm wait yielded")
	}

	w.lastPark = sys.Nanotime() - 2*int64(yieldWithin)
	wait("cold wait long after the last park", true)
	if yields.Load() != 1 {
		t.Fatalf("cold wait %v after the last park yielded", 2*yieldWithin)
	}
}
