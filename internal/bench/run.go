package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
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
	// Workloads are what Run measures; nil means Workloads.
	Workloads  []Workload
	Transports []*workload.Transport
	// Limits adds the limit rows (package limit) to each workload: a bare
	// ping-pong for round trips, a bare ring and memcpy for one way.
	Limits bool
	// Rounds is how often each transport measures each workload.
	Rounds int
	// Duration is the length of one measurement.
	Duration time.Duration
	// Command returns a new command that runs workload.RunPeer with the
	// same transports, or limit.RunPeer: the environment that Start adds
	// tells which.
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
	// Limit marks a limit row: no transport, what the machine allows
	// (LimitPingPong, LimitRing, LimitMemcpy).
	Limit bool `json:"limit,omitempty"`
	// NotMeasured, on a limit row without figures, says why.
	NotMeasured string `json:"not_measured,omitempty"`
	Messages    int    `json:"messages"` // measured, over all rounds
	// Round trip latency, over every round trip of every round. A limit
	// row's "median" is its near-best figure: the 10th percentile of its
	// ping-pong groups (see limitBest).
	MedianNs float64 `json:"median_ns,omitempty"`
	P99Ns    float64 `json:"p99_ns,omitempty"`
	// Rates, the median of the rounds; for a limit row the 90th
	// percentile of its single batches; for round trips, round trips/s.
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
	// LimitRow names the limit row that LimitRatio is relative to: for
	// round trips LimitPingPong, for one way the faster of LimitRing and
	// LimitRingChunked. Empty on limit rows and where the limit was not
	// measured.
	LimitRow string `json:"limit_row,omitempty"`
	// LimitRatio is the fraction of the limit reached, computed as Ratio
	// is (1 would be the limit itself).
	LimitRatio float64 `json:"limit_ratio,omitempty"`
	// RoundNs holds, for the ping-pong row, each round's figure as
	// MedianNs: where the host placed the vCPUs, round by round.
	RoundNs []float64 `json:"round_ns,omitempty"`
}

// runner measures workloads: a peer process over a transport, or a limit.
type runner interface {
	RoundTrips(size, n int, lat []time.Duration) (time.Duration, error)
	OneWay(size, n int) (time.Duration, error)
}

// row says what a cell measures over: a transport or a limit.
type row struct {
	name, writes string
	buffered     bool
	limit        bool
	notMeasured  string // a limit that could not run here
}

func transportRow(tr *workload.Transport) row {
	return row{name: tr.Name, writes: tr.Writes, buffered: tr.Buffered}
}

// cell accumulates the measurements of one workload over one transport.
type cell struct {
	w      Workload
	row    row
	peer   runner
	perMsg time.Duration // from the last measurement, to size the next
	rates  []float64
	// batchRates are the rates of single batches, which the limit rows
	// report (see results).
	batchRates []float64
	lat        []time.Duration
	// roundNs are a limit round trip's median latencies, one per round.
	roundNs []float64
	msgs    int
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
	n, first := 0, len(c.lat)
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
		if el > 0 {
			// A batch under the clock's resolution tells no rate;
			// taking it as 1 ns a message would size the next batch
			// for minutes (as Windows' coarse time.Now once did).
			c.perMsg = max(el/time.Duration(k), 1)
		}
		c.batchRates = append(c.batchRates, div(float64(k), el.Seconds()))
		c.lat = append(c.lat, lat...)
		total += el
		n += k
	}
	c.rates = append(c.rates, div(float64(n), total.Seconds()))
	c.msgs += n
	if c.row.limit && c.w.RoundTrip {
		round := slices.Sorted(slices.Values(c.lat[first:]))
		c.roundNs = append(c.roundNs, float64(quantile(round, 1-limitBest)))
	}
	return nil
}

// peerCPU pins this process as o asks and returns the CPU for the peers,
// -1 for none.
func (o *Options) peerCPU() (int, error) {
	if o.Pin == nil {
		return -1, nil
	}
	if len(o.Pin) != 2 {
		return 0, fmt.Errorf("pin needs two CPUs, got %v", o.Pin)
	}
	if err := workload.Pin(o.Pin[0]); err != nil {
		return 0, err
	}
	return o.Pin[1], nil
}

func (o *Options) check() error {
	if o.Rounds < 1 || o.Duration <= 0 || len(o.Transports) == 0 && !o.Limits {
		return errors.New("need at least one round, a duration and a transport or the limits")
	}
	return nil
}

// closeAll closes what a run started, keeping the first error in *err.
// Nil entries (what did not start) are skipped.
func closeAll[C interface {
	comparable
	Close() error
}](cs []C, err *error) {
	var none C
	for _, c := range cs {
		if c == none {
			continue
		}
		if cerr := c.Close(); cerr != nil && *err == nil {
			*err = cerr
		}
	}
}

// startPeers starts a peer process per transport of o, with conns
// connections each. A transport without a backend on this system (its
// error matches errors.ErrUnsupported) gets a nil peer and, in why, the
// reason; peers holds what started, also on error, for the caller to
// close.
func startPeers(o Options, peerCPU, conns int) (peers []*workload.Peer, why []string, err error) {
	for _, tr := range o.Transports {
		p, err := workload.StartConns(tr, o.Command(), peerCPU, conns)
		if errors.Is(err, errors.ErrUnsupported) {
			peers, why = append(peers, nil), append(why, err.Error())
			continue
		}
		if err != nil {
			return peers, why, err
		}
		peers, why = append(peers, p), append(why, "")
	}
	return peers, why, nil
}

// start pins this process as o asks and starts the peers (see
// startPeers), returning the peers' CPU too.
func (o *Options) start(conns int) (peerCPU int, peers []*workload.Peer, why []string, err error) {
	if peerCPU, err = o.peerCPU(); err != nil {
		return 0, nil, nil, err
	}
	peers, why, err = startPeers(*o, peerCPU, conns)
	return peerCPU, peers, why, err
}

// peerOrNil returns peers[i] as a runner, nil if it did not start.
func peerOrNil(peers []*workload.Peer, i int) runner {
	if peers[i] == nil {
		return nil
	}
	return peers[i]
}

// Run starts a peer process per transport (and one for the limits) and
// measures every workload over every transport, interleaved, for the
// given number of rounds.
func Run(ctx context.Context, o Options) (_ []Result, err error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	works := o.Workloads
	if works == nil {
		works = Workloads
	}
	peerCPU, peers, why, err := o.start(1)
	defer func() { closeAll(peers, &err) }()
	if err != nil {
		return nil, err
	}
	var lim *limits
	if o.Limits {
		if lim, err = startLimits(o.Command, peerCPU); err != nil {
			return nil, err
		}
		defer func() { closeAll([]*limits{lim}, &err) }()
	}
	cells := make([][]*cell, len(works))
	total := 0
	for i, w := range works {
		if lim != nil {
			cells[i] = lim.cells(w)
		}
		for j, tr := range o.Transports {
			if tr.Runs(w.Size, w.RoundTrip) {
				r := transportRow(tr)
				r.notMeasured = why[j]
				cells[i] = append(cells[i], &cell{w: w, row: r, peer: peerOrNil(peers, j)})
			}
		}
		total += o.Rounds * len(cells[i])
	}
	done := 0
	for r := range o.Rounds {
		for i, w := range works {
			for _, c := range cells[i] {
				if err := ctx.Err(); err != nil {
					return nil, fmt.Errorf("stopped after %d of %d measurements: %w", done, total, err)
				}
				if o.Progress != nil {
					o.Progress(Progress{done, total, r + 1, w.Name, c.row.name})
				}
				if c.row.notMeasured != "" {
					done++
					continue
				}
				if err := c.measure(o.Duration); err != nil {
					if ctx.Err() != nil {
						// An interrupt reaches the peers too; their
						// departure is not the news.
						err = ctx.Err()
					}
					return nil, fmt.Errorf("%s over %s: %w", w.Name, c.row.name, err)
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
				Transport: c.row.name, Writes: c.row.writes, Buffered: c.row.buffered,
				Limit: c.row.limit, NotMeasured: c.row.notMeasured,
				Messages: c.msgs, MsgPerSec: median(c.rates)}
			if c.row.limit {
				// Both sides of a bare limit spin without end: when the
				// machine runs a third thread, one of them waits for the
				// other's time slice (milliseconds), and on a busy
				// machine most batches hold such a stall. Disturbance
				// only ever slows a limit down, so a near-best batch
				// tells what the machine allows.
				r.MsgPerSec = quantileF(c.batchRates, limitBest)
			}
			if c.row.name == LimitPingPong {
				r.RoundNs = c.roundNs
			}
			if c.row.notMeasured != "" {
				rs[j] = r
				continue
			}
			if c.w.RoundTrip {
				slices.Sort(c.lat)
				r.MedianNs = float64(quantile(c.lat, 0.5))
				if c.row.limit {
					r.MedianNs = float64(quantile(c.lat, 1-limitBest))
				}
				r.P99Ns = float64(quantile(c.lat, 0.99))
			} else {
				r.GBPerSec = r.MsgPerSec * float64(c.w.Size) / 1e9
			}
			rs[j] = r
		}
		if b := baseline(rs); b >= 0 {
			for k := range rs {
				if rs[k].NotMeasured == "" {
					rs[k].Baseline = rs[b].Transport
					rs[k].Ratio = ratio(rs[k], rs[b])
				}
			}
		}
		if l := limitRow(rs); l >= 0 {
			for k := range rs {
				if !rs[k].Limit {
					rs[k].LimitRow = rs[l].Transport
					rs[k].LimitRatio = ratio(rs[k], rs[l])
				}
			}
		}
		out = append(out, rs...)
	}
	return out
}

// ratio is how many times better r is than base: for round trips base's
// median latency over r's, for one way r's rate over base's.
func ratio(r, base Result) float64 {
	if r.RoundTrip {
		return div(base.MedianNs, r.MedianNs)
	}
	return div(r.MsgPerSec, base.MsgPerSec)
}

// div is a/b, or 0 (no figure) where b is none: 0 where a figure is
// missing or under the clock's resolution. A report's rate or ratio is
// never infinite: JSON cannot carry it, and it would mean nothing.
func div(a, b float64) float64 {
	if b <= 0 || math.IsInf(a, 0) || math.IsNaN(a) {
		return 0
	}
	return a / b
}

// limitRow returns the index of the limit row that the others of one
// workload are compared with, or -1 if none was measured: the ping-pong
// for round trips, the faster bare ring one way.
func limitRow(rs []Result) int {
	best := -1
	for i, r := range rs {
		if !r.Limit || r.NotMeasured != "" {
			continue
		}
		switch r.Transport {
		case LimitPingPong:
			return i
		case LimitRing, LimitRingChunked:
			if best < 0 || r.MsgPerSec > rs[best].MsgPerSec {
				best = i
			}
		}
	}
	return best
}

// baseline returns the index of the row among one workload's that the
// others are compared with, or -1 if there is none: for a round trip the
// RoundTripBaseline, for one way the strongest competitor, the fastest
// transport other than the Subject, buffered or not.
func baseline(rs []Result) int {
	best := -1
	for i, r := range rs {
		switch {
		case r.Limit:
		case r.RoundTrip:
			if r.Transport == RoundTripBaseline {
				return i
			}
		case !IsSubject(r.Transport) && (best < 0 || r.MsgPerSec > rs[best].MsgPerSec):
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

// limitBest is the quantile of a limit's batches (of its ping-pong groups,
// from the fast end) that the limit rows report.
const limitBest = 0.9

// quantileF returns the q-quantile of xs (nearest rank), 0 for none.
func quantileF(xs []float64, q float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s) == 0 {
		return 0
	}
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// quantile returns the q-quantile of sorted samples (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// RingWorkloads are the workloads of the ring sweep.
var RingWorkloads = []Workload{Workloads[3], Workloads[4]}
