package wake

import (
	"testing"
	"time"
)

const us = time.Microsecond

func newTestPolicy() Policy { return NewPolicy(100*us, ColdPark) }

// warm records n waits of d.
func warm(p *Policy, n int, d time.Duration) {
	for range n {
		p.Record(d)
	}
}

func TestPolicyStartsAtCap(t *testing.T) {
	p := newTestPolicy()
	if b := p.Budget(); b != 100*us {
		t.Errorf("first budget %v, want the cap", b)
	}
}

func TestPolicyNeverSpinsWithoutCap(t *testing.T) {
	for _, c := range []time.Duration{0, -1} {
		p := NewPolicy(c, ColdPark)
		warm(&p, 100, 0)
		if p.Spins() {
			t.Errorf("cap %v: Spins", c)
		}
		if b := p.Budget(); b != 0 {
			t.Fatalf("cap %v: budget %v", c, b)
		}
	}
}

// TestPolicyShrinksWhenSpinsTimeOut: a peer that answers only after a
// millisecond makes every spin a loss; the budget goes to nothing within
// a few waits, and stays there.
func TestPolicyShrinksWhenSpinsTimeOut(t *testing.T) {
	p := newTestPolicy()
	warm(&p, 1, time.Millisecond)
	if b := p.Budget(); b != 0 {
		t.Errorf("after one long wait and no history: budget %v, want 0", b)
	}
	p = newTestPolicy()
	warm(&p, 200, 0) // a busy history first
	n := 0
	for ; n < 200; n++ {
		if b := p.Budget(); b == 0 {
			break
		}
		warm(&p, 1, time.Millisecond)
	}
	if n == 200 {
		t.Fatal("budget never shrank under waits that all time out")
	}
	if n > 100 {
		t.Errorf("took %d timed-out spins to stop spinning", n)
	}
	warm(&p, 500, time.Millisecond)
	if b := p.Budget(); b != 0 {
		t.Errorf("budget %v after 500 long waits", b)
	}
}

// TestPolicyGrowsBackWhenParkedWaitsAreShort: once the budget is 0, waits
// park; when they come back short (the peer turned busy), a spin of about
// that length would have caught them, and the budget grows to cover them.
func TestPolicyGrowsBackWhenParkedWaitsAreShort(t *testing.T) {
	p := newTestPolicy()
	warm(&p, 100, time.Millisecond)
	if b := p.Budget(); b != 0 {
		t.Fatalf("budget %v, want 0", b)
	}
	warm(&p, 100, 12*us)
	b := p.Budget()
	if b < 12*us || b > 100*us {
		t.Errorf("after parked waits of 12µs: budget %v, want at least 12µs and at most the cap", b)
	}
	// Then caught: the budget stays.
	warm(&p, 1000, 3*us)
	if b := p.Budget(); b < 3*us {
		t.Errorf("after spins that caught: budget %v", b)
	}
}

// TestPolicyIgnoresAHiccup: one late answer among many quick ones must not
// send the link to sleep (both sides would then pay a wake-up per message).
func TestPolicyIgnoresAHiccup(t *testing.T) {
	p := newTestPolicy()
	warm(&p, 300, 0)
	for range 3 {
		warm(&p, 1, 5*time.Millisecond)
		if b := p.Budget(); b != 100*us {
			t.Fatalf("after a hiccup: budget %v, want the cap", b)
		}
		warm(&p, 50, 0)
	}
}

// TestPolicyWaitsLongerThanParkAreNotSpun: waits that take longer than a
// park costs are cheaper parked.
func TestPolicyWaitsLongerThanParkAreNotSpun(t *testing.T) {
	p := NewPolicy(100*us, 10*us)
	warm(&p, 200, 70*us)
	if b := p.Budget(); b != 0 {
		t.Errorf("waits of 70µs, park 10µs: budget %v, want 0", b)
	}
	p = NewPolicy(100*us, 100*us)
	warm(&p, 200, 70*us)
	if b := p.Budget(); b != 100*us {
		t.Errorf("waits of 70µs, park 100µs: budget %v, want the cap", b)
	}
}

func TestPolicyBudgetWithinCap(t *testing.T) {
	for _, c := range []time.Duration{1, 3 * us, 50 * us, 100 * us, time.Millisecond} {
		p := NewPolicy(c, time.Second)
		for _, d := range []time.Duration{0, us, 10 * us, 90 * us, 200 * us, time.Millisecond} {
			warm(&p, 40, d)
			if b := p.Budget(); b < 0 || b > c {
				t.Errorf("cap %v, waits of %v: budget %v", c, d, b)
			}
		}
	}
}

func TestBucket(t *testing.T) {
	for d, want := range map[time.Duration]int{0: 0, 999: 0, us: 1, 2*us - 1: 1, 2 * us: 2, 100 * us: 7,
		255 * us: 8, 256 * us: nBuckets - 1, time.Hour: nBuckets - 1} {
		if got := bucket(d); got != want {
			t.Errorf("bucket(%v) = %d, want %d", d, got, want)
		}
	}
}
