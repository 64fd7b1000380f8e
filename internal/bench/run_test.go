package bench

import (
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/bench/workload"
)

// TestResultsBaseline checks which row each workload's ratios are
// relative to: the plain unix socket for round trips, the fastest
// transport other than shmlink for one way.
func TestResultsBaseline(t *testing.T) {
	rt, ow := Workload{"rt", 64, true}, Workload{"ow", 64, false}
	// The plain transport is the unix socket, or on Windows the named pipe.
	shm, unix, unixBuf := Shmlink(0), workload.Plain, workload.PlainBuffered
	u, ub := unix.Name, unixBuf.Name
	lat := func(us ...int) []time.Duration {
		var d []time.Duration
		for _, u := range us {
			d = append(d, time.Duration(u)*time.Microsecond)
		}
		return d
	}
	cells := [][]*cell{
		{
			{w: rt, row: transportRow(shm), rates: []float64{1e6}, lat: lat(1, 1, 2), msgs: 3},
			{w: rt, row: transportRow(workload.Pipe), rates: []float64{1e5}, lat: lat(5, 5, 9), msgs: 3},
			{w: rt, row: transportRow(unix), rates: []float64{4e4}, lat: lat(10, 20, 30), msgs: 3},
		},
		{
			// shmlink is faster than every other, yet not the baseline.
			{w: ow, row: transportRow(shm), rates: []float64{8e6, 6e6, 7e6}, msgs: 3},
			{w: ow, row: transportRow(unix), rates: []float64{2e5}, msgs: 1},
			{w: ow, row: transportRow(unixBuf), rates: []float64{1.4e6, 1.5e6}, msgs: 2},
			{w: ow, row: transportRow(workload.Pipe), rates: []float64{7e5}, msgs: 1},
		},
	}
	want := []struct {
		transport, writes, baseline string
		ratio                       float64
	}{
		{"shmlink", "WriteMessages", u, 20},
		{"pipe", workload.WritesEach, u, 4},
		{u, workload.WritesEach, u, 1},
		{"shmlink", "WriteMessages", ub, 7 / 1.45},
		{u, workload.WritesEach, ub, 0.2 / 1.45},
		{ub, workload.WritesBatched, ub, 1},
		{"pipe", workload.WritesEach, ub, 0.7 / 1.45},
	}
	rs := results(cells)
	if len(rs) != len(want) {
		t.Fatalf("%d results, want %d", len(rs), len(want))
	}
	for i, w := range want {
		r := rs[i]
		if r.Transport != w.transport || r.Writes != w.writes || r.Baseline != w.baseline ||
			r.Buffered != (w.writes == workload.WritesBatched) || !near(r.Ratio, w.ratio) {
			t.Errorf("row %d: %+v; want %+v", i, r, w)
		}
	}
	if r := rs[3]; !near(r.MsgPerSec, 7e6) || !near(r.GBPerSec, 7e6*64/1e9) {
		t.Errorf("shmlink one way: %v msg/s, %v GB/s; want the median round, 7e6 msg/s", r.MsgPerSec, r.GBPerSec)
	}
	if r := rs[2]; r.MedianNs != 20e3 || r.P99Ns != 30e3 {
		t.Errorf("unix round trip: median %v ns, p99 %v ns; want 20000, 30000", r.MedianNs, r.P99Ns)
	}
}

// TestResultsNoBaseline checks that a run without a competitor has no
// ratios rather than wrong ones.
func TestResultsNoBaseline(t *testing.T) {
	c := &cell{w: Workload{"ow", 64, false}, row: transportRow(Shmlink(0)), rates: []float64{1e6}, msgs: 1}
	rs := results([][]*cell{{c}})
	if len(rs) != 1 || rs[0].Baseline != "" || rs[0].Ratio != 0 {
		t.Errorf("results %+v, want one row without baseline or ratio", rs)
	}
}

func near(a, b float64) bool { return a > b*(1-1e-9) && a < b*(1+1e-9) }

// TestPlacementOf checks how the ping-pong's rounds classify a run.
func TestPlacementOf(t *testing.T) {
	for _, c := range []struct {
		rounds []float64
		where  string
	}{
		{[]float64{100, 120}, "near"}, {[]float64{400, 450}, "distant"}, {[]float64{110, 420}, "moved"},
		{[]float64{3000, 9000}, "contended"}, {[]float64{400, 3000}, "moved"},
	} {
		p := PlacementOf([]Result{{Transport: LimitPingPong, Limit: true, MedianNs: c.rounds[0], RoundNs: c.rounds}})
		if p.Where != c.where || p.MinNs != c.rounds[0] || p.MaxNs != c.rounds[1] {
			t.Errorf("rounds %v: %+v, want %s", c.rounds, p, c.where)
		}
	}
	if p := PlacementOf(nil); p.NotMeasured == "" {
		t.Errorf("no ping-pong: %+v", p)
	}
}

// TestResultsLimits checks the limit rows: near-best figures, never a
// baseline, and the faster bare ring as the one-way limit.
func TestResultsLimits(t *testing.T) {
	rt, ow := Workload{"rt", 64, true}, Workload{"ow", 1 << 20, false}
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Microsecond)
	}
	batches := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	pp := row{name: LimitPingPong, limit: true}
	cells := [][]*cell{
		{
			{w: rt, row: pp, rates: []float64{1}, batchRates: batches, lat: lat, msgs: 100, roundNs: []float64{10e3, 12e3}},
			{w: rt, row: transportRow(workload.Plain), rates: []float64{1}, lat: []time.Duration{20 * time.Microsecond}, msgs: 1},
			// The round trip's bare ring, faster here than the ping-pong
			// (a contended one): still not the limit.
			{w: rt, row: row{name: LimitRing, limit: true}, rates: []float64{1}, batchRates: batches, lat: []time.Duration{time.Microsecond}, msgs: 1},
		},
		{
			{w: ow, row: row{name: LimitRing, limit: true}, rates: []float64{1}, batchRates: []float64{1e3, 2e3}, msgs: 1},
			{w: ow, row: row{name: LimitRingChunked, limit: true}, rates: []float64{1}, batchRates: []float64{3e3, 4e3}, msgs: 1},
			{w: ow, row: row{name: LimitMemcpy, limit: true}, rates: []float64{1}, batchRates: []float64{9e3}, msgs: 1},
			{w: ow, row: transportRow(Shmlink(0)), rates: []float64{2e3}, msgs: 1},
			{w: ow, row: transportRow(workload.Plain), rates: []float64{1e3}, msgs: 1},
			{w: ow, row: row{name: LimitRing, limit: true, notMeasured: "why"}},
		},
	}
	rs := results(cells)
	// The ping-pong reports the 10th percentile of its groups and the
	// 90th of its batch rates.
	if r := rs[0]; r.MedianNs != 10e3 || r.MsgPerSec != 9 || r.LimitRow != "" || r.Baseline != RoundTripBaseline {
		t.Errorf("ping-pong: %+v", r)
	}
	if r := rs[1]; r.LimitRow != LimitPingPong || !near(r.LimitRatio, 0.5) {
		t.Errorf("round trip against the ping-pong: %+v", r)
	}
	if r := rs[2]; r.LimitRow != "" || r.Baseline != RoundTripBaseline || r.MedianNs != 1e3 {
		t.Errorf("the round trip's bare ring: %+v", r)
	}
	if p := PlacementOf(rs); p.PingPongNs != 10e3 || p.Where != "contended" {
		t.Errorf("placement %+v", p)
	}
	// The chunked ring is the faster; memcpy is faster still but not the
	// limit, and no limit is the baseline.
	for _, r := range rs[3:8] {
		if r.Baseline != workload.Plain.Name {
			t.Errorf("%s: baseline %q, want %q", r.Transport, r.Baseline, workload.Plain.Name)
		}
		if !r.Limit && (r.LimitRow != LimitRingChunked || !near(r.LimitRatio, r.MsgPerSec/4e3)) {
			t.Errorf("%s: limit ratio %v against %q", r.Transport, r.LimitRatio, r.LimitRow)
		}
	}
	if r := rs[8]; r.NotMeasured != "why" || r.MsgPerSec != 0 || r.Baseline != "" {
		t.Errorf("a limit not measured: %+v", r)
	}
}

// TestRatioOfNoFigure checks that a figure of zero (under the clock's
// resolution, or missing) gives no ratio rather than an infinite one,
// which encoding/json refuses.
func TestRatioOfNoFigure(t *testing.T) {
	zero := Result{RoundTrip: true}
	some := Result{RoundTrip: true, MedianNs: 100}
	for _, c := range []struct {
		r, base Result
		want    float64
	}{
		{some, zero, 0}, {zero, some, 0}, {zero, zero, 0}, {some, some, 1},
		{Result{MsgPerSec: 5}, Result{}, 0}, {Result{MsgPerSec: 5}, Result{MsgPerSec: 10}, 0.5},
	} {
		if got := ratio(c.r, c.base); got != c.want {
			t.Errorf("ratio(%+v, %+v) = %v, want %v", c.r, c.base, got, c.want)
		}
	}
}
