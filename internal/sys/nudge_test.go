//go:build linux || windows

package sys

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestDoorbellNudge: a nudge ends a parked wait without a ring (and, on
// Linux, without the runtime's network poll), and the next wait keeps its
// own deadline and its rings.
func TestDoorbellNudge(t *testing.T) {
	d, err := NewDoorbell()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	nudgeParked(t, d)
	if err := d.Wait(time.Now().Add(20 * time.Millisecond)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("wait after a nudge: %v, want its own timeout", err)
	}
	go d.Ring()
	if err := d.Wait(time.Time{}); err != nil {
		t.Fatalf("wait for a ring after a nudge: %v", err)
	}
}

// nudgeParked fails the test unless a nudge ends a wait without a deadline
// with nil, as a ring would, and no ring: one that comes first (the next
// wait returns at once), and one that comes while the wait is under way.
func nudgeParked(t *testing.T, d *Doorbell) {
	t.Helper()
	for _, first := range []bool{true, false} {
		if first {
			d.Nudge()
		}
		done := make(chan error, 1)
		go func() { done <- d.Wait(time.Time{}) }()
		if !first {
			untilParked(t)
			d.Nudge()
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("nudged wait (nudge first: %v): %v, want nil", first, err)
			}
		case <-time.After(10 * time.Second):
			d.Ring()
			<-done
			t.Fatalf("a nudge did not end the wait (nudge first: %v)", first)
		}
	}
}

// untilParked returns once a goroutine is parked in a Doorbell's Wait (the
// runtime's "IO wait" on Linux, a select on Windows), or fails the test
// after ten seconds.
func untilParked(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); runtime.Gosched() {
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "(*Doorbell).Wait") && (strings.Contains(g, "[IO wait") || strings.Contains(g, "[select")) {
				return
			}
		}
	}
	t.Fatal("no wait parked on the doorbell")
}
