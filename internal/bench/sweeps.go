package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/shmlink/shmlink/internal/bench/workload"
	"github.com/shmlink/shmlink/internal/sys"
)

// The sweeps put shmlink and the unix socket through the regimes beside
// the busy one of Run: a receiver idle between requests, many links busy at
// once. Each measures 64 B round trips, both transports interleaved round
// by round as Run does, and the CPU time (user and system, both processes)
// that they cost.

// IdleGaps are the idle sweep's pauses before each request.
var IdleGaps = []time.Duration{0, 100 * time.Microsecond, time.Millisecond, 10 * time.Millisecond}

// LinkCounts are the concurrency sweep's numbers of links busy at once.
var LinkCounts = []int{1, 8, 32}

// SweepSize is the message size of the sweeps' round trips.
const SweepSize = 64

// SweepResult holds the figures of one point of a sweep over one
// transport.
type SweepResult struct {
	Transport string `json:"transport"`
	// GapNs is the idle sweep's asked pause before each request, and
	// MeanGapNs the pause measured (a thread sleep overshoots by the
	// timer's slack).
	GapNs     int64   `json:"gap_ns,omitempty"`
	MeanGapNs float64 `json:"mean_gap_ns,omitempty"`
	// Links is the concurrency sweep's number of links (connections, for
	// the unix socket) busy at once, each on its own goroutine, all to one
	// peer process.
	Links      int `json:"links,omitempty"`
	RoundTrips int `json:"round_trips"` // measured, over all rounds
	// Round trip latency, over every round trip of every round (the idle
	// sweep only).
	MedianNs float64 `json:"median_ns,omitempty"`
	P99Ns    float64 `json:"p99_ns,omitempty"`
	// RTPerSec is the median over the rounds of round trips per second of
	// wall time, every link together; for the idle sweep, pauses excluded.
	RTPerSec float64 `json:"rt_per_sec"`
	// CPUPerRTNs is the median over the rounds of the CPU time (user and
	// system) of both processes per round trip; 0 if the system cannot
	// tell. The idle sweep's includes the sleep calls of the pauses, the
	// same for every transport.
	CPUPerRTNs float64 `json:"cpu_per_rt_ns,omitempty"`
	// Ratio is how many times better than the unix socket: its median
	// latency over ours (idle sweep) or our rate over its (concurrency);
	// CPURatio its CPU per round trip over ours.
	Ratio    float64 `json:"ratio,omitempty"`
	CPURatio float64 `json:"cpu_ratio,omitempty"`
	// NotMeasured says why a point has no figures: the transport has no
	// backend on this system.
	NotMeasured string `json:"not_measured,omitempty"`
}

// point accumulates one sweep point over one transport.
type point struct {
	res   SweepResult
	peer  *workload.Peer
	lat   []time.Duration
	rates []float64
	cpus  []float64
	gaps  time.Duration
	noCPU bool
}

// cpuNow returns the CPU time of this process and of p's peer process.
func cpuNow(p *workload.Peer) (time.Duration, error) {
	self, err := sys.ProcessCPUTime()
	if err != nil {
		return 0, err
	}
	peer, err := p.PeerCPU()
	if err != nil {
		return 0, err
	}
	return self + peer, nil
}

// measureIdle runs round trips with the point's pause before each for
// about d of wall time.
func (pt *point) measureIdle(d time.Duration) error {
	gap := time.Duration(pt.res.GapNs)
	// Batches of about an eighth of d, so that the clock is read rarely
	// but a collapse overshoots d little.
	k := int(max(1, min(1000, d/8/(gap+20*time.Microsecond))))
	cpu0, cpuErr := cpuNow(pt.peer)
	var busy, idle time.Duration
	n := 0
	for start := sys.Nanotime(); time.Duration(sys.Nanotime()-start) < d; {
		lat := make([]time.Duration, k)
		b, i, err := pt.peer.RoundTripsIdle(SweepSize, k, gap, lat)
		if err != nil {
			return err
		}
		busy, idle, n = busy+b, idle+i, n+k
		pt.lat = append(pt.lat, lat...)
	}
	cpu1, err := cpuNow(pt.peer)
	pt.record(n, busy, cpu1-cpu0, errors.Join(cpuErr, err))
	pt.gaps += idle
	return nil
}

// measureLinks runs round trips on every link of the peer at once, each
// from its own goroutine, for about d.
func (pt *point) measureLinks(d time.Duration) error {
	cpu0, cpuErr := cpuNow(pt.peer)
	var wg sync.WaitGroup
	counts := make([]int, len(pt.peer.Drivers))
	errs := make([]error, len(pt.peer.Drivers))
	start := sys.Nanotime()
	for i, drv := range pt.peer.Drivers {
		wg.Go(func() {
			for time.Duration(sys.Nanotime()-start) < d {
				if _, err := drv.RoundTrips(SweepSize, 64, nil); err != nil {
					errs[i] = err
					return
				}
				counts[i] += 64
			}
		})
	}
	wg.Wait()
	el := time.Duration(sys.Nanotime() - start)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	cpu1, err := cpuNow(pt.peer)
	n := 0
	for _, c := range counts {
		n += c
	}
	pt.record(n, el, cpu1-cpu0, errors.Join(cpuErr, err))
	return nil
}

func (pt *point) record(n int, el, cpu time.Duration, cpuErr error) {
	pt.res.RoundTrips += n
	pt.rates = append(pt.rates, div(float64(n), el.Seconds()))
	if cpuErr != nil {
		pt.noCPU = true
	} else {
		pt.cpus = append(pt.cpus, float64(cpu)/float64(n))
	}
}

// finish computes the point's figures.
func (pt *point) finish() SweepResult {
	r := pt.res
	r.RTPerSec = median(pt.rates)
	if !pt.noCPU {
		r.CPUPerRTNs = median(pt.cpus)
	}
	if len(pt.lat) > 0 {
		slices.Sort(pt.lat)
		r.MedianNs = float64(quantile(pt.lat, 0.5))
		r.P99Ns = float64(quantile(pt.lat, 0.99))
	}
	if r.RoundTrips > 0 && r.GapNs > 0 {
		r.MeanGapNs = float64(pt.gaps) / float64(r.RoundTrips)
	}
	if r.Transport == PauseOnly {
		r.RTPerSec = 0 // pauses, not round trips
	}
	return r
}

// sweepRatios sets each result's ratios to the RoundTripBaseline's result
// of the same point (the same gap or link count); PauseOnly rows have none.
func sweepRatios(rs []SweepResult, idle bool) {
	for k := range rs {
		r := &rs[k]
		if r.Transport == PauseOnly || r.NotMeasured != "" {
			continue
		}
		b := slices.IndexFunc(rs, func(x SweepResult) bool {
			return x.Transport == RoundTripBaseline && x.GapNs == r.GapNs && x.Links == r.Links
		})
		if b < 0 || rs[b].NotMeasured != "" {
			continue
		}
		base := rs[b]
		if idle {
			r.Ratio = div(base.MedianNs, r.MedianNs)
		} else {
			r.Ratio = div(r.RTPerSec, base.RTPerSec)
		}
		if r.CPUPerRTNs > 0 && base.CPUPerRTNs > 0 {
			r.CPURatio = base.CPUPerRTNs / r.CPUPerRTNs
		}
	}
}

// PauseOnly names the idle sweep's row of each pause by itself, no round
// trip: what the pauses cost this process, to read the others' CPU time
// against.
const PauseOnly = "pause only"

// measurePause pauses for about d/4 and records the CPU time per pause.
func (pt *point) measurePause(d time.Duration) error {
	gap := time.Duration(pt.res.GapNs)
	cpu0, err0 := sys.ProcessCPUTime()
	n := 0
	start := sys.Nanotime()
	for time.Duration(sys.Nanotime()-start) < d/4 {
		sys.SleepThread(gap)
		n++
	}
	el := time.Duration(sys.Nanotime() - start)
	cpu1, err1 := sys.ProcessCPUTime()
	pt.res.RoundTrips += n
	pt.gaps += el
	if err0 != nil || err1 != nil {
		pt.noCPU = true
	} else {
		pt.cpus = append(pt.cpus, float64(cpu1-cpu0)/float64(n))
	}
	pt.rates = append(pt.rates, div(float64(n), el.Seconds()))
	return nil
}

// RunIdle measures 64 B round trips over every transport of o (one peer
// process each) with each of gaps as the pause before every request: the
// receiver has been idle that long when a request comes. After the
// transports of each gap but 0 comes a PauseOnly row. o.Duration is the
// wall time of one point over one transport; Workloads and Limits are not
// used.
func RunIdle(ctx context.Context, o Options, gaps []time.Duration) (_ []SweepResult, err error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	_, peers, why, err := o.start(1)
	defer func() { closeAll(peers, &err) }()
	if err != nil {
		return nil, err
	}
	for i, p := range peers {
		// Warm up: the first round trips of a link pay for page faults.
		if p == nil {
			continue
		}
		if _, err := p.RoundTrips(SweepSize, 1000, nil); err != nil {
			return nil, fmt.Errorf("warm up %s: %w", o.Transports[i].Name, err)
		}
	}
	var pts []*point
	for _, g := range gaps {
		for i, tr := range o.Transports {
			pts = append(pts, &point{res: SweepResult{Transport: tr.Name, GapNs: g.Nanoseconds(), NotMeasured: why[i]}, peer: peers[i]})
		}
		if g > 0 {
			pts = append(pts, &point{res: SweepResult{Transport: PauseOnly, GapNs: g.Nanoseconds()}})
		}
	}
	err = sweep(ctx, o, pts, func(pt *point) string { return "idle " + time.Duration(pt.res.GapNs).String() },
		func(pt *point, d time.Duration) error {
			if pt.peer == nil {
				return pt.measurePause(d)
			}
			return pt.measureIdle(d)
		})
	if err != nil {
		return nil, err
	}
	return finishSweep(pts, true), nil
}

// RunLinks measures 64 B round trips on counts links at once over every
// transport of o, all links of a count to one peer process. Workloads and
// Limits are not used.
func RunLinks(ctx context.Context, o Options, counts []int) (_ []SweepResult, err error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	peerCPU, err := o.peerCPU()
	if err != nil {
		return nil, err
	}
	var peers []*workload.Peer
	defer func() { closeAll(peers, &err) }()
	var pts []*point
	for _, n := range counts {
		ps, why, err := startPeers(o, peerCPU, n)
		peers = append(peers, ps...)
		if err != nil {
			return nil, err
		}
		for i, tr := range o.Transports {
			pts = append(pts, &point{res: SweepResult{Transport: tr.Name, Links: n, NotMeasured: why[i]}, peer: ps[i]})
		}
	}
	err = sweep(ctx, o, pts, func(pt *point) string { return fmt.Sprintf("%d links", pt.res.Links) },
		(*point).measureLinks)
	if err != nil {
		return nil, err
	}
	return finishSweep(pts, false), nil
}

// sweep measures every point, round by round.
func sweep(ctx context.Context, o Options, pts []*point, name func(*point) string, measure func(*point, time.Duration) error) error {
	total := o.Rounds * len(pts)
	for r := range o.Rounds {
		for i, pt := range pts {
			done := r*len(pts) + i
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("stopped after %d of %d measurements: %w", done, total, err)
			}
			if o.Progress != nil {
				o.Progress(Progress{done, total, r + 1, name(pt), pt.res.Transport})
			}
			if pt.res.NotMeasured != "" {
				continue
			}
			if err := measure(pt, o.Duration); err != nil {
				if ctx.Err() != nil {
					err = ctx.Err()
				}
				return fmt.Errorf("%s over %s: %w", name(pt), pt.res.Transport, err)
			}
		}
	}
	return nil
}

func finishSweep(pts []*point, idle bool) []SweepResult {
	rs := make([]SweepResult, len(pts))
	for i, pt := range pts {
		rs[i] = pt.finish()
	}
	sweepRatios(rs, idle)
	return rs
}
