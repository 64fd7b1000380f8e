package wake

import "time"

// Policy decides how long a wait spins before it parks, from what recent
// waits cost. It is pure bookkeeping (no clock, no system calls), so that
// tests can feed it outcomes and check its decisions; Waiter measures the
// outcomes, keeps one Policy for warm and one for cold waits, and asks.
//
// Wait durations go into a histogram of power-of-two buckets that forgets
// old outcomes (every decayEvery waits it halves its counts), and the
// budget is the one that would have cost least over that history: a wait
// shorter than the budget costs its own length in spinning, a longer one
// costs the whole budget and then a park and wake-up, which costs Park (in
// CPU and latency together, expressed as spinning time). That shrinks the
// budget to nothing when spins keep timing out, and grows it again as
// soon as waits that parked turn out short: a parked wait's duration,
// wake-up included, is recorded like any other, so a short one says that
// a spin of about that length would have caught it.
//
// One exception keeps a busy link busy: while nearly every wait (all but
// one in floorShare) is one that spinning catches cheaply, the budget
// stays at the cap, although the costs alone would pick less (say none,
// when every wait ended within the first polls). Otherwise the first wait
// a little longer than usual would park, make the peer ring, and could put
// both sides to sleep for every message after (docs/wakeup.md).
type Policy struct {
	// Cap bounds the budget (Config.SpinTime); zero or negative: never
	// spin, not even the first polls.
	Cap time.Duration
	// Park is what a park and wake-up cost, as spinning time.
	Park time.Duration

	hist    [nBuckets]uint32 // decayed counts of warm waits, unit histUnit
	records uint32           // warm waits since the last decay
	budget  time.Duration    // for warm waits
}

// Histogram buckets: bucket 0 holds waits that ended within the first
// polls, before a spin reads the clock (about a microsecond); bucket k,
// for 1 <= k < nBuckets-1, waits under 2^k µs; the last one every longer
// wait.
const (
	nBuckets   = 10
	histUnit   = 256 // one wait, in histogram counts; halving keeps detail
	decayEvery = 32  // warm waits between halvings: a memory of about 64
)

// What Waiter assumes a park and wake-up cost, as spinning time. A park
// itself costs each side about 9 µs of CPU and 7 µs of latency here (more
// across distant vCPUs; docs/wakeup.md), but a warm wait that parks costs
// more than that: the peer then finds this side asleep and rings, its own
// next wait turns cold, and a ping-pong that was spinning on both sides
// can fall into paying two wake-ups per round trip. So a warm wait is
// spun through unless it is longer than the default cap; only waits of an
// idle peer (hundreds of microseconds and more) shrink its budget. A cold
// wait has already lost that game (the peer was asleep), and spinning
// through the peer's wake-up often delayed it here, so only cold waits
// shorter than a park are worth a spin.
const (
	WarmPark = 100 * time.Microsecond
	ColdPark = 30 * time.Microsecond
)

// NewPolicy returns a policy capped at spin that starts by spinning the
// cap, as every wait did before the policy learned, so that a busy link
// is fast from its first message.
func NewPolicy(spin, park time.Duration) Policy {
	p := Policy{Cap: spin, Park: park}
	p.budget = max(spin, 0)
	return p
}

// Spins reports whether waits may poll at all.
func (p *Policy) Spins() bool { return p.Cap > 0 }

// Budget returns how long the next wait may spin after its first polls.
// The caller reports the outcome with Record.
func (p *Policy) Budget() time.Duration {
	if p.Cap <= 0 {
		return 0
	}
	return p.budget
}

// Record reports a wait: how long it took until the condition held, the
// wake-up included if it parked (a parked wait is simply a long one).
func (p *Policy) Record(d time.Duration) {
	b := bucket(d)
	p.hist[b] += histUnit
	if p.records++; p.records >= decayEvery {
		p.records = 0
		for i := range p.hist {
			p.hist[i] /= 2
		}
		p.choose()
	} else if b > 0 {
		// A wait that took long enough to read the clock may change the
		// decision; one caught in the first polls only confirms it.
		p.choose()
	}
}

// bucket returns the histogram bucket of a wait of d.
func bucket(d time.Duration) int {
	us := d / time.Microsecond
	b := 0
	for us > 0 && b < nBuckets-1 {
		us >>= 1
		b++
	}
	return b
}

// bucketEdge is the upper edge of bucket b (not the last).
func bucketEdge(b int) time.Duration { return time.Microsecond << b }

// choose sets the budget that would have cost least over the histogram.
// Candidate budgets are the buckets' upper edges: a budget of edge(k)
// catches buckets 0 to k, each at a typical length of three quarters of
// its edge, and costs the others the budget and a park. A budget of 0
// still catches bucket 0 (the first polls always run). Ties go to the
// smaller budget, the one that spends less CPU. An edge over the cap
// means the cap.
func (p *Policy) choose() {
	var total uint64
	for _, n := range p.hist {
		total += uint64(n)
	}
	if total == 0 {
		return
	}
	park := float64(p.Park)
	// caught is the spinning cost of the buckets caught so far, rest the
	// count of those not caught.
	caught := float64(p.hist[0]) * float64(p.typical(0))
	rest := float64(total - uint64(p.hist[0]))
	bestCost, best := caught+rest*park, time.Duration(0)
	for k := 1; k < nBuckets-1; k++ {
		edge := bucketEdge(k)
		if edge/2 >= p.Cap {
			break // the cap already caught what it can
		}
		n := float64(p.hist[k])
		caught += n * float64(p.typical(k))
		rest -= n
		b := min(edge, p.Cap)
		if cost := caught + rest*(float64(b)+park); cost < bestCost {
			bestCost, best = cost, b
		}
	}
	// The floor (see Policy): the rare timeout the cap costs is the
	// insurance.
	var cheap uint64
	for k := 0; k < nBuckets-1 && p.typical(k) < p.Park && (k == 0 || bucketEdge(k)/2 < p.Cap); k++ {
		cheap += uint64(p.hist[k])
	}
	if cheap*floorShare >= total*(floorShare-1) {
		best = p.Cap
	}
	p.budget = best
}

// floorShare: the floor holds while at most one wait in floorShare is not
// cheap to catch.
const floorShare = 16

// typical is the length choose assumes for a wait of bucket k.
func (p *Policy) typical(k int) time.Duration {
	if k == 0 {
		return time.Microsecond / 2
	}
	return bucketEdge(k) * 3 / 4
}
