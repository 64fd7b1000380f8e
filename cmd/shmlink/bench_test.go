package main

import (
	"encoding/json"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/shmlink/shmlink/internal/bench"
	"github.com/shmlink/shmlink/internal/bench/workload"
	"github.com/shmlink/shmlink/internal/sys"
)

// benchJSON runs bench with --json and the given flags and parses the
// report.
func benchJSON(t *testing.T, args ...string) benchReport {
	t.Helper()
	stdout, stderr, code := runCLI(t, "", append([]string{"bench", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	return rep
}

// wantRow is a row a run should have: a limit or a transport.
type wantRow struct {
	w                 bench.Workload
	name, writes      string
	buffered, isLimit bool
}

// wantRows returns the rows of a run of works over ts with the limits:
// each workload's limits first, then its transports (buffered ones one
// way only).
func wantRows(works []bench.Workload, ts []*workload.Transport) []wantRow {
	var want []wantRow
	for _, w := range works {
		if w.RoundTrip {
			want = append(want, wantRow{w: w, name: bench.LimitPingPong, isLimit: true},
				wantRow{w: w, name: bench.LimitRing, isLimit: true})
		} else {
			want = append(want, wantRow{w: w, name: bench.LimitRing, isLimit: true})
			if w.Size > bench.LimitChunk {
				want = append(want, wantRow{w: w, name: bench.LimitRingChunked, isLimit: true})
			}
			want = append(want, wantRow{w: w, name: bench.LimitMemcpy, isLimit: true})
		}
		for _, tr := range ts {
			if tr.Runs(w.Size, w.RoundTrip) {
				want = append(want, wantRow{w, tr.Name, tr.Writes, tr.Buffered, false})
			}
		}
	}
	return want
}

// checkResults checks that a run has the rows it should, each with
// figures, and that each ratio is against the baseline and the limit it
// names. It asserts nothing about speed.
func checkResults(t *testing.T, rs []bench.Result, want []wantRow) {
	t.Helper()
	if len(rs) != len(want) {
		t.Fatalf("%d results, want %d: %+v", len(rs), len(want), rs)
	}
	base := map[string]bench.Result{}  // a workload's baseline row
	limit := map[string]bench.Result{} // a workload's limit row
	for i, r := range rs {
		w := want[i]
		if r.Workload != w.w.Name || r.Transport != w.name || r.Limit != w.isLimit ||
			!w.isLimit && (r.Writes != w.writes || r.Buffered != w.buffered) {
			t.Errorf("row %d is %s over %s (%q, buffered %v, limit %v), want %s over %s (%q, buffered %v, limit %v)",
				i, r.Workload, r.Transport, r.Writes, r.Buffered, r.Limit, w.w.Name, w.name, w.writes, w.buffered, w.isLimit)
		}
		if r.NotMeasured != "" {
			if sys.Supported {
				t.Errorf("row %d not measured: %s", i, r.NotMeasured)
			}
			continue
		}
		positive := r.Messages > 0 && r.MsgPerSec > 0 && r.Ratio > 0
		if w.w.RoundTrip {
			positive = positive && r.MedianNs > 0 && r.P99Ns >= r.MedianNs
		} else {
			positive = positive && r.GBPerSec > 0
		}
		if !positive {
			t.Errorf("row %d lacks figures: %+v", i, r)
		}
		if r.Transport == r.Baseline {
			base[r.Workload] = r
		}
		switch l, ok := limit[r.Workload]; {
		case r.RoundTrip:
			if r.Transport == bench.LimitPingPong {
				limit[r.Workload] = r // the bare ring beside it is the protocol's floor, not the limit
			}
		case r.Limit && r.Transport != bench.LimitMemcpy && (!ok || r.MsgPerSec > l.MsgPerSec):
			limit[r.Workload] = r // the faster bare ring
		}
	}
	ratio := func(r, b bench.Result) float64 {
		if r.RoundTrip {
			return b.MedianNs / r.MedianNs
		}
		return r.MsgPerSec / b.MsgPerSec
	}
	for _, r := range rs {
		if r.NotMeasured != "" {
			continue
		}
		b, ok := base[r.Workload]
		switch {
		case !ok:
			t.Errorf("%s: no row is the baseline %q", r.Workload, r.Baseline)
		case r.Baseline != b.Transport || b.Limit:
			t.Errorf("%s over %s: baseline %q, another row's %q", r.Workload, r.Transport, r.Baseline, b.Transport)
		case r.RoundTrip && (b.Transport != bench.RoundTripBaseline || !near(r.Ratio, ratio(r, b))):
			t.Errorf("%s over %s: ratio %v against %s, want the latency ratio to %s",
				r.Workload, r.Transport, r.Ratio, b.Transport, bench.RoundTripBaseline)
		case !r.RoundTrip && (bench.IsSubject(b.Transport) || !near(r.Ratio, ratio(r, b))):
			t.Errorf("%s over %s: ratio %v against %s, want the rate ratio to the fastest other transport",
				r.Workload, r.Transport, r.Ratio, b.Transport)
		case !r.RoundTrip && !r.Limit && !bench.IsSubject(r.Transport) && r.MsgPerSec > b.MsgPerSec:
			t.Errorf("%s: %s is faster than the baseline %s", r.Workload, r.Transport, b.Transport)
		}
		l, ok := limit[r.Workload]
		switch {
		case r.Limit:
			if r.LimitRow != "" || r.LimitRatio != 0 {
				t.Errorf("%s: limit row %s has a limit ratio", r.Workload, r.Transport)
			}
		case !ok:
			if sys.Supported {
				t.Errorf("%s: no limit row", r.Workload)
			}
		case r.LimitRow != l.Transport || !near(r.LimitRatio, ratio(r, l)):
			t.Errorf("%s over %s: limit ratio %v against %q, want %v against %q",
				r.Workload, r.Transport, r.LimitRatio, r.LimitRow, ratio(r, l), l.Transport)
		}
	}
}

// checkPlacement checks that a placement was read, where the system has
// the shared memory to read it.
func checkPlacement(t *testing.T, what string, p bench.Placement) {
	t.Helper()
	if !sys.Supported {
		if p.NotMeasured == "" {
			t.Errorf("%s: placement %+v without shared memory", what, p)
		}
		return
	}
	if p.PingPongNs <= 0 || p.MinNs > p.PingPongNs || p.MaxNs < p.PingPongNs ||
		!slices.Contains([]string{"near", "distant", "contended", "moved"}, p.Where) {
		t.Errorf("%s: placement %+v", what, p)
	}
}

// TestBenchQuickJSON runs a quick benchmark end to end, peers and all,
// and checks that every workload has its limit rows and a row per
// transport, with figures and ratios, and the run its placement.
func TestBenchQuickJSON(t *testing.T) {
	rep := benchJSON(t, "--quick", "--rounds", "1")
	if rep.Main == nil || rep.Idle != nil || rep.Links != nil || rep.Rings != nil {
		t.Fatalf("sections: main %v, idle %v, links %v, rings %v; want the main one only",
			rep.Main != nil, rep.Idle != nil, rep.Links != nil, rep.Rings != nil)
	}
	checkResults(t, rep.Main.Results, wantRows(bench.Workloads, bench.Transports(0)))
	checkPlacement(t, "main", rep.Main.Placement)
	unixBuffered := map[string]bool{}
	for _, r := range rep.Main.Results {
		if r.Transport == workload.PlainBuffered.Name && r.Buffered && r.Writes == workload.WritesBatched {
			unixBuffered[r.Workload] = true
		}
	}
	for _, w := range bench.Workloads {
		if !w.RoundTrip && !unixBuffered[w.Name] {
			t.Errorf("%s: no buffered unix socket row", w.Name)
		}
	}
}

// cpuExact says whether every sweep point must have its CPU time (and so
// its CPU ratio): where sys.ProcessCPUTime is exact (Linux's getrusage).
// Windows samples it at the scheduler's tick, so a short point of a few
// mostly idle round trips can show none, and then has no CPU ratio, nor
// has a point whose unix socket showed none.
var cpuExact = sys.Supported && runtime.GOOS != "windows"

// TestBenchSweepsJSON runs every sweep briefly and checks their points:
// each with figures, CPU time where the system tells it, and ratios to the
// unix socket of the same point. It asserts nothing about speed.
func TestBenchSweepsJSON(t *testing.T) {
	rep := benchJSON(t, "--quick", "--rounds", "1", "--duration", "30ms", "--sweep", "idle,links,ring")
	if rep.Main != nil || rep.Idle == nil || rep.Links == nil || rep.Rings == nil {
		t.Fatalf("sections: main %v, idle %v, links %v, rings %v; want the sweeps",
			rep.Main != nil, rep.Idle != nil, rep.Links != nil, rep.Rings != nil)
	}
	names := []string{bench.Subject, workload.Plain.Name}
	// pauses takes the idle sweep's pause-only rows out, one after the
	// transports of each gap but 0, and checks them.
	pauses := func(s *sweepSection) {
		var rest []bench.SweepResult
		seen := 0
		for _, r := range s.Results {
			if r.Transport != bench.PauseOnly {
				rest = append(rest, r)
				continue
			}
			seen++
			if r.GapNs <= 0 || r.MeanGapNs < float64(r.GapNs) || r.RoundTrips <= 0 || r.Ratio != 0 ||
				cpuExact && r.CPUPerRTNs <= 0 {
				t.Errorf("pause-only row %+v", r)
			}
		}
		if seen != len(bench.IdleGaps)-1 {
			t.Errorf("%d pause-only rows, want %d", seen, len(bench.IdleGaps)-1)
		}
		s.Results = rest
	}
	pauses(rep.Idle)
	check := func(what string, s *sweepSection, n int, point func(i int, r bench.SweepResult) bool) {
		checkPlacement(t, what+" before", s.Placement)
		checkPlacement(t, what+" after", s.After)
		if len(s.Results) != n*len(names) {
			t.Fatalf("%s: %d points, want %d: %+v", what, len(s.Results), n*len(names), s.Results)
		}
		for i, r := range s.Results {
			if r.NotMeasured != "" && !sys.Supported {
				continue
			}
			if r.Transport != names[i%len(names)] || !point(i/len(names), r) {
				t.Errorf("%s: point %d is %+v", what, i, r)
			}
			if r.RoundTrips <= 0 || r.RTPerSec <= 0 || r.Ratio <= 0 || r.CPURatio > 0 && r.CPUPerRTNs <= 0 ||
				cpuExact && (r.CPUPerRTNs <= 0 || r.CPURatio <= 0) {
				t.Errorf("%s: point %d lacks figures: %+v", what, i, r)
			}
			unix := s.Results[i-i%len(names)+1]
			if r.Transport == workload.Plain.Name && (r.Ratio != 1 || r.CPURatio != 0 && r.CPURatio != 1) {
				t.Errorf("%s: unix point %d is not its own base: %+v", what, i, r)
			}
			if r.CPURatio > 0 && !near(r.CPURatio, unix.CPUPerRTNs/r.CPUPerRTNs) {
				t.Errorf("%s: point %d CPU ratio %v, want %v", what, i, r.CPURatio, unix.CPUPerRTNs/r.CPUPerRTNs)
			}
		}
	}
	check("idle", rep.Idle, len(bench.IdleGaps), func(i int, r bench.SweepResult) bool {
		gap := bench.IdleGaps[i]
		// A sleep never ends early, so the pause measured covers the one
		// asked for.
		return r.GapNs == gap.Nanoseconds() && (gap == 0 && r.MeanGapNs == 0 || r.MeanGapNs >= float64(gap)) &&
			r.MedianNs > 0 && r.P99Ns >= r.MedianNs
	})
	for i, r := range rep.Idle.Results {
		if u := rep.Idle.Results[i|1]; r.NotMeasured == "" && !near(r.Ratio, u.MedianNs/r.MedianNs) {
			t.Errorf("idle: point %d latency ratio %v, want %v", i, r.Ratio, u.MedianNs/r.MedianNs)
		}
	}
	check("links", rep.Links, len(bench.LinkCounts), func(i int, r bench.SweepResult) bool {
		return r.Links == bench.LinkCounts[i] && r.GapNs == 0
	})
	for i, r := range rep.Links.Results {
		if u := rep.Links.Results[i|1]; r.NotMeasured == "" && !near(r.Ratio, r.RTPerSec/u.RTPerSec) {
			t.Errorf("links: point %d rate ratio %v, want %v", i, r.Ratio, r.RTPerSec/u.RTPerSec)
		}
	}
	checkResults(t, rep.Rings.Results, wantRows(bench.RingWorkloads, bench.RingTransports()))
}

func near(a, b float64) bool { return a > b*(1-1e-9) && a < b*(1+1e-9) }

// TestBenchUsage checks that bad flags are usage errors, before any peer
// starts.
func TestBenchUsage(t *testing.T) {
	for _, args := range [][]string{{"--pin", "0"}, {"--pin", "a,b"}, {"--ring", "3000"}, {"--ring", "x"}, {"extra"},
		{"--sweep", "idle,bogus"}, {"--sweep", ""}} {
		_, stderr, code := runCLI(t, "", append([]string{"bench"}, args...)...)
		if code != 2 || stderr == "" {
			t.Errorf("bench %v: exit %d, stderr %q; want 2 and a message", args, code, stderr)
		}
	}
	stdout, _, code := runCLI(t, "", "bench", "--help")
	if code != 0 || stdout == "" {
		t.Errorf("bench --help: exit %d, stdout %q", code, stdout)
	}
}

// TestParseSections checks --sweep's lists.
func TestParseSections(t *testing.T) {
	for s, want := range map[string][]string{
		"main": {"main"}, "idle,ring": {"idle", "ring"}, " links , idle": {"idle", "links"},
		"all": {"idle", "links", "main", "ring"}, "idle,all": {"idle", "links", "main", "ring"},
	} {
		secs, err := parseSections(s)
		var got []string
		for k := range secs {
			got = append(got, k)
		}
		slices.Sort(got)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseSections(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
}

// lineWith returns the first line of s holding every one of want, or "".
func lineWith(s string, want ...string) string {
	for _, l := range strings.Split(s, "\n") {
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			return l
		}
	}
	return ""
}

// TestBenchTable checks that the tables name how each row writes, mark
// each workload's baseline and limit, say what was not measured, and print
// the placement and the sweeps.
func TestBenchTable(t *testing.T) {
	place := bench.Placement{PingPongNs: 120, MinNs: 110, MaxNs: 130, Where: "near"}
	rep := benchReport{RingSize: 1 << 20, Seconds: 3,
		Main: &mainSection{section: section{Rounds: 1, DurationNs: 1e6, Placement: place}, Results: []bench.Result{
			{Workload: "64 B round trip", RoundTrip: true, Transport: bench.LimitPingPong, Writes: "spin, 1 line", Limit: true, MedianNs: 120, P99Ns: 200, MsgPerSec: 8e6, Baseline: "unix", Ratio: 150},
			{Workload: "64 B round trip", RoundTrip: true, Transport: "shmlink", Writes: "WriteMessages", MedianNs: 400, P99Ns: 900, MsgPerSec: 2e6, Baseline: "unix", Ratio: 45, LimitRow: bench.LimitPingPong, LimitRatio: 0.3},
			{Workload: "64 B round trip", RoundTrip: true, Transport: "unix", Writes: workload.WritesEach, MedianNs: 18000, P99Ns: 50000, MsgPerSec: 5e4, Baseline: "unix", Ratio: 1, LimitRow: bench.LimitPingPong, LimitRatio: 120. / 18000},
			{Workload: "64 B one way", Transport: bench.LimitRing, Writes: "spin, 4 MiB ring", Limit: true, NotMeasured: "not measured: no backend"},
			{Workload: "64 B one way", Transport: bench.LimitMemcpy, Writes: "1 process", Limit: true, MsgPerSec: 1e8, GBPerSec: 6.4, Baseline: "unix-buffered", Ratio: 7},
			{Workload: "64 B one way", Transport: "shmlink", Writes: "WriteMessages", MsgPerSec: 7e6, GBPerSec: 0.45, Baseline: "unix-buffered", Ratio: 0.5},
			{Workload: "64 B one way", Transport: "unix", Writes: workload.WritesEach, MsgPerSec: 2e5, GBPerSec: 0.01, Baseline: "unix-buffered", Ratio: 2e5 / 14e6},
			{Workload: "64 B one way", Transport: "unix-buffered", Writes: workload.WritesBatched, Buffered: true, MsgPerSec: 14e6, GBPerSec: 0.9, Baseline: "unix-buffered", Ratio: 1},
		}},
		Idle: &sweepSection{section: section{Rounds: 1, DurationNs: 1e9, Placement: place}, After: bench.Placement{PingPongNs: 400, MinNs: 390, MaxNs: 410, Where: "distant"}, Results: []bench.SweepResult{
			{Transport: "shmlink", GapNs: 1e6, MeanGapNs: 1.06e6, RoundTrips: 900, MedianNs: 30e3, P99Ns: 90e3, RTPerSec: 3e4, CPUPerRTNs: 40e3, Ratio: 0.8, CPURatio: 0.5},
			{Transport: "unix", GapNs: 1e6, MeanGapNs: 1.07e6, RoundTrips: 900, MedianNs: 24e3, P99Ns: 80e3, RTPerSec: 4e4, CPUPerRTNs: 20e3, Ratio: 1, CPURatio: 1},
			{Transport: bench.PauseOnly, GapNs: 1e6, MeanGapNs: 1.05e6, RoundTrips: 200, CPUPerRTNs: 9e3},
		}},
		Links: &sweepSection{section: section{Rounds: 1, DurationNs: 1e8, Placement: place}, After: place, Results: []bench.SweepResult{
			{Transport: "shmlink", Links: 32, RoundTrips: 1000, RTPerSec: 9e5, Ratio: 3},
			{Transport: "unix", Links: 32, RoundTrips: 1000, RTPerSec: 3e5, Ratio: 1},
		}},
	}
	var b strings.Builder
	if err := rep.table(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range [][]string{
		{"bare ping-pong 0.12 µs: vCPUs near"},
		{"workload", "transport", "writes", "msg/s", "vs base", "vs limit"},
		{"64 B round trip", "ping-pong", "spin, 1 line", "0.12 µs", "150.00×", "limit"},
		{"shmlink", "WriteMessages", "0.40 µs", "45.00×", "0.30×"},
		{"unix", "per message", "18.00 µs", "base", "0.01×"},
		{"64 B one way", "bare ring", "not measured"},
		{"memcpy", "1 process", "100.00 M", "7.00×"},
		{"shmlink", "WriteMessages", "7.00 M", "0.50×"},
		{"unix-buffered", "batched", "14.00 M", "base"},
		{"per message = "}, {"batched = a 64 KiB buffer"}, {"over 4 KiB"}, {"vs base: "}, {"vs limit: "},
		{"idle receiver: 64 B round trips"}, {"before: bare ping-pong 0.12 µs", "after: bare ping-pong 0.40 µs: vCPUs distant"},
		{"pause", "transport", "measured pause", "median", "CPU/RT", "vs " + bench.RoundTripBaseline, "CPU vs " + bench.RoundTripBaseline},
		{"1ms", "shmlink", "1060.00 µs", "30.00 µs", "90.00 µs", "40.00 µs", "0.80×", "0.50×"},
		{"unix", "1070.00 µs", "24.00 µs", "20.00 µs", "1.00×"},
		{"pause only", "1050.00 µs", "9.00 µs"},
		{"links busy at once"},
		{"32", "shmlink", "900.00 k", "n/a", "3.00×"},
		{"CPU/RT: user and system time"},
	} {
		if lineWith(out, want...) == "" {
			t.Errorf("no line has all of %q:\n%s", want, out)
		}
	}
	if l := lineWith(out, "memcpy"); strings.Contains(l, "limit") {
		t.Errorf("memcpy is marked as the limit: %q", l)
	}
}

// TestPlacementString checks the header's placement for each case.
func TestPlacementString(t *testing.T) {
	for _, c := range []struct {
		p    bench.Placement
		want string
	}{
		{bench.Placement{PingPongNs: 110, MinNs: 100, MaxNs: 120, Where: "near"}, "bare ping-pong 0.11 µs: vCPUs near"},
		{bench.Placement{PingPongNs: 300, MinNs: 110, MaxNs: 420, Where: "moved"}, "vCPUs moved (rounds from 0.11 to 0.42 µs)"},
		{bench.Placement{NotMeasured: "no backend"}, "placement not measured (no backend)"},
		{bench.Placement{PingPongNs: 3000, MinNs: 2500, MaxNs: 4000, Where: "contended"}, "3.00 µs: contended"},
	} {
		if got := c.p.String(); !strings.Contains(got, c.want) {
			t.Errorf("%+v: %q, want %q in it", c.p, got, c.want)
		}
	}
}
