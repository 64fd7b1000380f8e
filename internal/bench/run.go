package bench

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"time"

	"github.com/shmlink/shmlink/internal/bench/workload"
)

// Workload is one measurement: round trips or a one-way stream of
// messages of one size.
type Workload struct {
	Name      string
	Size      int
	RoundTrip bool
}

// Workloads are the measurements of a run, in order.
var Workloads = []Workload{
	{"64 B round trip", 64, true},
	{"64 B one way", 64, false},
	{"4 KiB one way", 4 << 10, false},
	{"64 KiB one way", 64 << 10, false},
	{"1 MiB one way", 1 << 20, false},
}

// Options describe a run.
type Options struct {
	Transports []*workload.Transport
	// Rounds is how often each transport measures each workload.
	Rounds int
	// Duration is the length of one measurement.
	Duration time.Duration
	// Command returns a new command that runs workload.RunPeer with the
	// same transports.
	Command func() *exec.Cmd
	// Pin, if set, holds two CPUs: this process's and the peers'.
	Pin []int
	// Progress, if set, is called before each measurement.
	Progress func(Progress)
}

// Progress says where a run is.
type Progress struct {
	Done, Total int // measurements
	Round       int // from 1
	Workload    string
	Transport   string
}

// Result holds the figures of one workload over one transport.
type Result struct {
	Workload  string `json:"workload"`
	Size      int    `json:"size"`
	RoundTrip bool   `json:"round_trip"`
	Transport string `json:"transport"`
	// Writes and Buffered are the transport's: how a message goes out.
	Writes   string `json:"writes"`
	Buffered bool   `json:"buffered"`
	Messages int    `json:"messages"` // measured, over all rounds
	// Round trip latency, over every round trip of every round.
	MedianNs float64 `json:"median_ns,omitempty"`
	P99Ns    float64 `json:"p99_ns,omitempty"`
	// Rates, the median of the rounds; for round trips, round trips/s.
	MsgPerSec float64 `json:"msg_per_sec"`
	GBPerSec  float64 `json:"gb_per_sec,omitempty"` // one way only; 1 GB = 1e9 bytes
	// Baseline names the transport that Ratio is relative to, the same for
	// every row of a workload: for round trips RoundTripBaseline, for one
	// way the fastest transport other than the Subject in this run. Empty
	// if the run had no such transport.
	Baseline string `json:"baseline,omitempty"`
	// Ratio is how many times better than the baseline: its median
	// latency over ours, or our rate over its rate.
	Ratio float64 `json:"ratio,omitempty"`
}

// cell accumulates the measurements of one workload over one transport.
type cell struct {
	w      Workload
	tr     *workload.Transport
	peer   *workload.Peer
	perMsg time.Duration // from the last measurement, to size the next
	rates  []float64
	lat    []time.Duration
	msgs   int
}

// maxMessages bounds one batch, whatever the calibration says.
const maxMessages = 1 << 26

// batches is how many batches a measurement takes, give or take.
const batches = 8

func (c *cell) run(n int, lat []time.Duration) (time.Duration, error) {
	if c.w.RoundTrip {
		return c.peer.RoundTrips(c.w.Size, n, lat)
	}
	return c.peer.OneWay(c.w.Size, n)
}

// measure runs the workload for about d and records the figures. It runs
// in batches sized from the last rate seen, so that a rate that collapses
// meanwhile overshoots d by one batch at most.
func (c *cell) measure(d time.Duration) error {
	if c.perMsg == 0 {
		// Calibrate (and warm up) with growing counts until one run
		// lasts long enough to tell the rate.
		for n := 16; ; n *= 4 {
			el, err := c.run(n, nil)
			if err != nil {
				return err
			}
			if el >= d/batches || n >= maxMessages {
				c.perMsg = max(el/time.Duration(n), 1)
				break
			}
		}
	}
	var total time.Duration
	n := 0
	for total < d {
		k := int(min(max(d/batches/c.perMsg, 1), maxMessages))
		var lat []time.Duration
		if c.w.RoundTrip {
			lat = make([]time.Duration, k)
		}
		el, err := c.run(k, lat)
		if err != nil {
			return err
		}
		c.perMsg = max(el/time.Duration(k), 1)
		c.lat = append(c.lat, lat...)
		total += el
		n += k
	}
	c.rates = append(c.rates, float64(n)/total.Seconds())
	c.msgs += n
	return nil
}

// Run starts a peer process per transport and measures every workload over
// every transport, interleaved, for the given number of rounds.
func Run(ctx context.Context, o Options) (_ []Result, err error) {
	if o.Rounds < 1 || o.Duration <= 0 || len(o.Transports) == 0 {
		return nil, errors.New("need at least one round, a duration and a transport")
	}
	peerCPU := -1
	if o.Pin != nil {
		if len(o.Pin) != 2 {
			return nil, fmt.Errorf("pin needs two CPUs, got %v", o.Pin)
		}
		if err := workload.Pin(o.Pin[0]); err != nil {
			return nil, err
		}
		peerCPU = o.Pin[1]
	}
	peers := make([]*workload.Peer, 0, len(o.Transports))
	defer func() {
		for _, p := range peers {
			if cerr := p.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}
	}()
	for _, tr := range o.Transports {
		p, err := workload.Start(tr, o.Command(), peerCPU)
		if err != nil {
			return nil, err
		}
		peers = append(peers, p)
	}
	// Round trips leave buffered transports out: a round trip flushes
	// every message, so they would only repeat the plain ones.
	cells := make([][]*cell, len(Workloads))
	total := 0
	for i, w := range Workloads {
		for j, p := range peers {
			if tr := o.Transports[j]; !w.RoundTrip || !tr.Buffered {
				cells[i] = append(cells[i], &cell{w: w, tr: tr, peer: p})
			}
		}
		total += o.Rounds * len(cells[i])
	}
	done := 0
	for r := range o.Rounds {
		for i, w := range Workloads {
			for _, c := range cells[i] {
				if err := ctx.Err(); err != nil {
					return nil, fmt.Errorf("stopped after %d of %d measurements: %w", done, total, err)
				}
				if o.Progress != nil {
					o.Progress(Progress{done, total, r + 1, w.Name, c.tr.Name})
				}
				if err := c.measure(o.Duration); err != nil {
					if ctx.Err() != nil {
						// An interrupt reaches the peers too; their
						// departure is not the news.
						err = ctx.Err()
					}
					return nil, fmt.Errorf("%s over %s: %w", w.Name, c.tr.Name, err)
				}
				done++
			}
		}
	}
	return results(cells), nil
}

func results(cells [][]*cell) []Result {
	var out []Result
	for _, row := range cells {
		rs := make([]Result, len(row))
		for j, c := range row {
			r := Result{Workload: c.w.Name, Size: c.w.Size, RoundTrip: c.w.RoundTrip,
				Transport: c.tr.Name, Writes: c.tr.Writes, Buffered: c.tr.Buffered,
				Messages: c.msgs, MsgPerSec: median(c.rates)}
			if c.w.RoundTrip {
				slices.Sort(c.lat)
				r.MedianNs = float64(quantile(c.lat, 0.5))
				r.P99Ns = float64(quantile(c.lat, 0.99))
			} else {
				r.GBPerSec = r.MsgPerSec * float64(c.w.Size) / 1e9
			}
			rs[j] = r
		}
		if b := baseline(rs); b >= 0 {
			for k := range rs {
				rs[k].Baseline = rs[b].Transport
				if rs[b].RoundTrip {
					rs[k].Ratio = rs[b].MedianNs / rs[k].MedianNs
				} else {
					rs[k].Ratio = rs[k].MsgPerSec / rs[b].MsgPerSec
				}
			}
		}
		out = append(out, rs...)
	}
	return out
}

// baseline returns the index of the row among one workload's that the
// others are compared with, or -1 if there is none: for a round trip the
// RoundTripBaseline, for one way the strongest competitor, the fastest
// transport other than the Subject, buffered or not.
func baseline(rs []Result) int {
	best := -1
	for i, r := range rs {
		switch {
		case r.RoundTrip:
			if r.Transport == RoundTripBaseline {
				return i
			}
		case r.Transport != Subject && (best < 0 || r.MsgPerSec > rs[best].MsgPerSec):
			best = i
		}
	}
	return best
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

// quantile returns the q-quantile of sorted samples (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
