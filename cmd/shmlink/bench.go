package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/shmlink/shmlink"
	"github.com/shmlink/shmlink/internal/bench"
	"github.com/shmlink/shmlink/internal/bench/limit"
	"github.com/shmlink/shmlink/internal/bench/workload"
)

const benchDoc = `Measures shmlink against a unix socket (SOCK_STREAM), a pair of pipes and
loopback TCP (on Windows: a named pipe and loopback TCP), between this
process and peer processes it starts (itself, re-executed), beside the
limit of the machine measured in the same run. Every transport carries the
same length-prefixed messages: 64-byte round trips, and one-way streams of
64 B, 4 KiB, 64 KiB and 1 MiB messages. The receivers parse every length
prefix and count the messages.

The sockets and pipes write each message at once (one system call each), as
request/response needs; for the one-way streams they also run buffered
("-buffered"): small messages gather in a 64 KiB buffer that is written when
full and at the end of each batch, larger ones go out from the sender's
buffer. shmlink streams with one publish per batch: its messages up to
1 KiB gathered as the buffered sockets gather theirs and sent with
WriteMessages, larger ones written straight into the ring with
BufferMessage; a round trip is a WriteMessage per message. The
"shmlink-batch" rows (64 B and 4 KiB) stream as a program that has its
messages in hand does: WriteMessages of 64 KiB of them at a time, passed by
reference, with no gathering copy (the buffered sockets and the shmlink
rows gather, so compare shmlink-batch with the limit).

The limit rows have nothing of shmlink in them: "ping-pong" bounces one
cache line between two processes, both spinning (its time says where the
host placed the two CPUs: about 0.1 µs near each other, 0.4 µs distant;
the header prints it); "bare ring" streams through a 4 MiB ring in shared
memory, each message one copy in and one copy out behind a length, both
sides spinning, published every 64 KiB as shmlink's batches are, and for
1 MiB also in 256 KiB chunks ("bare ring/256K", the reader copying one out
while the writer fills the next); for round trips "bare ring" sends each
message through one 2 MiB ring and back through another, each reader
polling the writer's index as shmlink's do: the least a round trip costs in
shmlink's protocol; "memcpy" is one process copying each message once. A limit's figures are near-best
(the 90th percentile of its batches), since a disturbance only slows it.

The transports take turns, round by round, so that the rest of the machine
disturbs them alike. The table gives each figure's ratio to a baseline (above
1 is better): for round trips the unix socket (the named pipe on Windows),
for one-way streams the fastest of the others in the run, buffered or not;
and to the limit: the ping-pong for round trips, the faster bare ring one
way.
Where the system has no shmlink backend, or no shared memory for the
limits, their rows say "not measured". Progress goes to standard error.

--sweep runs sections beside (or instead of) the main table, each shmlink
against the unix socket (named pipe), with CPU time (user and system of both
processes) per round trip:
  idle   64 B round trips with a pause of 0, 100 µs, 1 ms and 10 ms before
         each request (a thread sleep: the workload's think time), so that
         the receiver has been idle that long
  links  64 B round trips on 1, 8 and 32 links busy at once, to one peer
  ring   64 KiB and 1 MiB one way over rings of 256 KiB, 1 MiB and 4 MiB
  main   the main table (the default); all = main,idle,links,ring

A default run takes about a minute; --quick takes a few seconds; each
sweep about half a minute.`

// The sections of a run, for --sweep.
const (
	sectionMain  = "main"
	sectionIdle  = "idle"
	sectionLinks = "links"
	sectionRing  = "ring"
)

var allSections = []string{sectionMain, sectionIdle, sectionLinks, sectionRing}

// benchOptions are bench's flags.
type benchOptions struct {
	quick    bool
	json     bool
	pin      string
	ring     string
	sweep    string
	rounds   int
	duration time.Duration
}

// parseSections parses --sweep.
func parseSections(s string) (map[string]bool, error) {
	secs := map[string]bool{}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p == "all":
			for _, a := range allSections {
				secs[a] = true
			}
		case slices.Contains(allSections, p):
			secs[p] = true
		default:
			return nil, fmt.Errorf("unknown section %q: want some of %s or all", p, strings.Join(allSections, ","))
		}
	}
	return secs, nil
}

func runBench(args []string) error {
	var o benchOptions
	fs := newFlags("bench", "[flags]", benchDoc)
	fs.BoolVar(&o.quick, "quick", false, "a short run of a few seconds (fewer, shorter rounds)")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON instead of a table")
	fs.StringVar(&o.pin, "pin", "", "pin this process and the peers to two CPUs, `CPU,CPU`")
	fs.StringVar(&o.ring, "ring", "", fmt.Sprintf("shmlink ring `size` in bytes, with an optional K or M suffix (default %dM)", shmlink.DefaultRingSize>>20))
	fs.StringVar(&o.sweep, "sweep", sectionMain, "the `sections` to run, comma-separated: main, idle, links, ring, all")
	fs.IntVar(&o.rounds, "rounds", 0, "rounds over every transport and workload (default 5, quick 2; sweeps 3, quick 1)")
	fs.DurationVar(&o.duration, "duration", 0, "length of one measurement (default 250ms, quick 40ms; idle sweep 1s, quick 100ms)")
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	ring, err := parseSize(o.ring)
	if err != nil {
		return usageError{fmt.Errorf("--ring: %w", err)}
	}
	if err := (&shmlink.Config{RingSize: ring}).Validate(); err != nil {
		return usageError{fmt.Errorf("--ring: %w", err)}
	}
	if limit.PeerRequested() {
		return limit.RunPeer()
	}
	if workload.PeerRequested() {
		return workload.RunPeer(bench.PeerTransports(ring)...)
	}
	pin, err := parseCPUs(o.pin)
	if err != nil {
		return usageError{fmt.Errorf("--pin: %w", err)}
	}
	secs, err := parseSections(o.sweep)
	if err != nil {
		return usageError{fmt.Errorf("--sweep: %w", err)}
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable for the peers: %w", err)
	}
	command := func() *exec.Cmd {
		cmd := exec.Command(exe, "bench", "--ring", strconv.Itoa(ring))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd
	}
	p := newProgress(os.Stderr)
	// opts returns the options of a section, with its default rounds and
	// duration unless the flags say otherwise.
	opts := func(rounds, quickRounds int, d, quickD time.Duration) bench.Options {
		x := bench.Options{Rounds: rounds, Duration: d, Command: command, Pin: pin, Progress: p.show}
		if o.quick {
			x.Rounds, x.Duration = quickRounds, quickD
		}
		if o.rounds > 0 {
			x.Rounds = o.rounds
		}
		if o.duration > 0 {
			x.Duration = o.duration
		}
		return x
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if ring == 0 {
		ring = shmlink.DefaultRingSize
	}
	rep := benchReport{RingSize: ring, Pin: pin}
	started := time.Now()
	defer p.clear()
	if secs[sectionMain] {
		x := opts(5, 2, 250*time.Millisecond, 40*time.Millisecond)
		x.Transports, x.Limits = bench.Transports(ring), true
		res, err := bench.Run(ctx, x)
		if err != nil {
			return err
		}
		rep.Main = &mainSection{section: newSection(x, bench.PlacementOf(res)), Results: res}
	}
	// probe brackets a sweep with placement readings: a sweep has no
	// ping-pong of its own.
	probe := func() (bench.Placement, error) {
		return bench.ProbePlacement(ctx, command, pin, 3, 20*time.Millisecond)
	}
	sweepTransports := bench.SweepTransports(ring)
	// sweep runs one sweep between two placement readings.
	sweep := func(x bench.Options, run func(context.Context, bench.Options) ([]bench.SweepResult, error)) (*sweepSection, error) {
		x.Transports = sweepTransports
		before, err := probe()
		if err != nil {
			return nil, err
		}
		res, err := run(ctx, x)
		if err != nil {
			return nil, err
		}
		after, err := probe()
		if err != nil {
			return nil, err
		}
		return &sweepSection{section: newSection(x, before), After: after, Results: res}, nil
	}
	if secs[sectionIdle] {
		idle := func(ctx context.Context, x bench.Options) ([]bench.SweepResult, error) {
			return bench.RunIdle(ctx, x, bench.IdleGaps)
		}
		if rep.Idle, err = sweep(opts(3, 1, time.Second, 100*time.Millisecond), idle); err != nil {
			return err
		}
	}
	if secs[sectionLinks] {
		links := func(ctx context.Context, x bench.Options) ([]bench.SweepResult, error) {
			return bench.RunLinks(ctx, x, bench.LinkCounts)
		}
		if rep.Links, err = sweep(opts(3, 1, 250*time.Millisecond, 40*time.Millisecond), links); err != nil {
			return err
		}
	}
	if secs[sectionRing] {
		x := opts(3, 1, 250*time.Millisecond, 40*time.Millisecond)
		x.Transports = bench.RingTransports()
		x.Limits = true
		x.Workloads = bench.RingWorkloads
		before, err := probe()
		if err != nil {
			return err
		}
		res, err := bench.Run(ctx, x)
		if err != nil {
			return err
		}
		rep.Rings = &mainSection{section: newSection(x, before), Results: res}
	}
	p.clear()
	rep.Seconds = time.Since(started).Seconds()
	if o.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.table(os.Stdout)
}

// benchReport is the output of a run; --json prints it as it is. A
// section is nil if the run left it out.
type benchReport struct {
	RingSize int           `json:"ring_size"`
	Pin      []int         `json:"pin,omitempty"`
	Seconds  float64       `json:"seconds"` // the whole run
	Main     *mainSection  `json:"main,omitempty"`
	Idle     *sweepSection `json:"idle,omitempty"`
	Links    *sweepSection `json:"links,omitempty"`
	Rings    *mainSection  `json:"rings,omitempty"`
}

// section is what every section of a report has.
type section struct {
	Rounds     int   `json:"rounds"`
	DurationNs int64 `json:"duration_ns"` // of one measurement
	// Placement is where the vCPUs were: for the main table and the ring
	// sweep from its ping-pong rows, for a sweep read just before it.
	Placement bench.Placement `json:"placement"`
}

func newSection(o bench.Options, p bench.Placement) section {
	return section{Rounds: o.Rounds, DurationNs: o.Duration.Nanoseconds(), Placement: p}
}

// mainSection is the main table or the ring sweep.
type mainSection struct {
	section
	Results []bench.Result `json:"results"`
}

// sweepSection is the idle or the concurrency sweep.
type sweepSection struct {
	section
	After   bench.Placement     `json:"placement_after"` // read just after it
	Results []bench.SweepResult `json:"results"`
}

func (r *benchReport) table(w io.Writer) error {
	pin := "not pinned"
	if r.Pin != nil {
		pin = fmt.Sprintf("pinned to CPUs %d and %d", r.Pin[0], r.Pin[1])
	}
	fmt.Fprintf(w, "shmlink bench in %.0fs; shmlink rings of %s; %s\n", r.Seconds, sizeString(r.RingSize), pin)
	if r.Main != nil {
		fmt.Fprintf(w, "\n%d rounds of %v per measurement; %v\n\n",
			r.Main.Rounds, time.Duration(r.Main.DurationNs), r.Main.Placement)
		if err := resultTable(w, r.Main.Results); err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, mainLegend, workload.WritesEach, workload.WritesBatched,
			sizeString(workload.BufferSize), sizeString(workload.CopyMax), bench.RoundTripBaseline); err != nil {
			return err
		}
	}
	if r.Idle != nil {
		fmt.Fprintf(w, "\nidle receiver: %d B round trips, a pause before each request; %d rounds of %v per point\nbefore: %v; after: %v\n\n",
			bench.SweepSize, r.Idle.Rounds, time.Duration(r.Idle.DurationNs), r.Idle.Placement, r.Idle.After)
		if err := idleTable(w, r.Idle.Results); err != nil {
			return err
		}
	}
	if r.Links != nil {
		fmt.Fprintf(w, "\nlinks busy at once: %d B round trips, a goroutine per link, one peer process; %d rounds of %v per point\nbefore: %v; after: %v\n\n",
			bench.SweepSize, r.Links.Rounds, time.Duration(r.Links.DurationNs), r.Links.Placement, r.Links.After)
		if err := linksTable(w, r.Links.Results); err != nil {
			return err
		}
	}
	if r.Rings != nil {
		fmt.Fprintf(w, "\nring sizes: one way; %d rounds of %v per measurement; before: %v\n\n",
			r.Rings.Rounds, time.Duration(r.Rings.DurationNs), r.Rings.Placement)
		if err := resultTable(w, r.Rings.Results); err != nil {
			return err
		}
	}
	if r.Idle != nil || r.Links != nil {
		_, err := fmt.Fprintf(w, sweepLegend, bench.RoundTripBaseline)
		return err
	}
	return nil
}

const mainLegend = `
writes: %s = a system call per message, as request/response needs;
%s = a %s buffer, written when full and at the end of each batch
(messages over %s go from the sender's buffer); WriteMessages = shmlink's
batch APIs, one publish per batch: messages up to 1 KiB gathered the same
way for WriteMessages, larger ones BufferMessage'd straight into the ring
(one WriteMessage per round trip); batch in hand = WriteMessages of 64 KiB
of messages by reference, no gathering copy. Every receiver parses each
length prefix (shmlink: ReadMessageInto, or ReadMessagesInto up to 4 KiB)
and counts the messages.
limit rows: ping-pong = one cache line bounced between two processes, both
spinning (its latency is the mean over 64 round trips); bare ring = a 4 MiB
ring in shared memory, one copy in and one copy out per message behind a
length, both spinning, published per 64 KiB (bare ring/256K: messages over
256 KiB in chunks of it; for round trips there and back through two 2 MiB
rings, each reader polling the writer's index, as shmlink's protocol does);
memcpy = one process copying each message once.
A limit's figures are near-best: the 90th percentile of its batches, a
round trip limit's the 10th of its 64-round-trip groups (its p99 is theirs): a bare
spinner stalls whole time slices when a third thread wants its CPU, and
only ever loses by it.
vs base: the ratio to the row marked base, above 1 is better; for round trips
the %[5]s row, for one way the fastest transport other than shmlink.
vs limit: the same ratio to the row marked limit: the ping-pong (round trips)
or the faster bare ring (one way); 1 would be the limit.
msg/s of a round trip row counts round trips.
`

const sweepLegend = `
CPU/RT: user and system time of both processes per round trip; the idle
sweep's includes the pause's own cost, alike for every transport: its
"pause only" row is that cost by itself, the pauses alone in this process.
vs %[1]s: the %[1]s row's latency over ours (idle) or our round trips/s
over its (links); CPU vs %[1]s: its CPU per round trip over ours; above 1 is
better.
`

// resultTable prints the rows of a main table or ring sweep.
func resultTable(w io.Writer, rs []bench.Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\ttransport\twrites\tmedian\tp99\tmsg/s\tGB/s\tvs base\tvs limit\t")
	limits := map[string]string{} // the limit row of each workload
	for _, x := range rs {
		if x.LimitRow != "" {
			limits[x.Workload] = x.LimitRow
		}
	}
	last := ""
	for _, x := range rs {
		name := x.Workload
		if name == last {
			name = ""
		}
		last = x.Workload
		if x.NotMeasured != "" {
			fmt.Fprintf(tw, "%s\t%s\t%s\t\t\tnot measured\t\t\t\t\n", name, x.Transport, x.Writes)
			continue
		}
		med, p99, gb := "", "", ""
		if x.RoundTrip {
			med, p99 = micros(x.MedianNs), micros(x.P99Ns)
		} else {
			gb = fmt.Sprintf("%.2f", x.GBPerSec)
		}
		ratio := ""
		switch x.Baseline {
		case "":
		case x.Transport:
			ratio = "base"
		default:
			ratio = fmt.Sprintf("%.2f×", x.Ratio)
		}
		lim := ""
		switch {
		case x.LimitRow != "":
			lim = fmt.Sprintf("%.2f×", x.LimitRatio)
		case x.Limit && limits[x.Workload] == x.Transport:
			lim = "limit"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, x.Transport, x.Writes, med, p99, si(x.MsgPerSec), gb, ratio, lim)
	}
	return tw.Flush()
}

func idleTable(w io.Writer, rs []bench.SweepResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "pause\ttransport\tmeasured pause\tmedian\tp99\tCPU/RT\tvs %[1]s\tCPU vs %[1]s\t\n", bench.RoundTripBaseline)
	last := int64(-1)
	for _, x := range rs {
		gap, meas := "", ""
		if x.GapNs != last {
			gap = time.Duration(x.GapNs).String()
		}
		last = x.GapNs
		if x.NotMeasured != "" {
			fmt.Fprintf(tw, "%s\t%s\tnot measured\t\t\t\t\t\t\n", gap, x.Transport)
			continue
		}
		if x.Transport == bench.PauseOnly {
			fmt.Fprintf(tw, "%s\t%s\t%s\t\t\t%s\t\t\t\n", gap, x.Transport, micros(x.MeanGapNs), cpuString(x.CPUPerRTNs))
			continue
		}
		if x.GapNs > 0 {
			meas = micros(x.MeanGapNs)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", gap, x.Transport, meas,
			micros(x.MedianNs), micros(x.P99Ns), cpuString(x.CPUPerRTNs), times(x.Ratio), times(x.CPURatio))
	}
	return tw.Flush()
}

func linksTable(w io.Writer, rs []bench.SweepResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "links\ttransport\tround trips/s\tCPU/RT\tvs %[1]s\tCPU vs %[1]s\t\n", bench.RoundTripBaseline)
	last := 0
	for _, x := range rs {
		n := ""
		if x.Links != last {
			n = strconv.Itoa(x.Links)
		}
		last = x.Links
		if x.NotMeasured != "" {
			fmt.Fprintf(tw, "%s\t%s\tnot measured\t\t\t\t\n", n, x.Transport)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", n, x.Transport, si(x.RTPerSec),
			cpuString(x.CPUPerRTNs), times(x.Ratio), times(x.CPURatio))
	}
	return tw.Flush()
}

func cpuString(ns float64) string {
	if ns <= 0 {
		return "n/a"
	}
	return micros(ns)
}

// times renders a ratio, or nothing for none.
func times(x float64) string {
	if x == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f×", x)
}

func micros(ns float64) string { return fmt.Sprintf("%.2f µs", ns/1e3) }

// si renders a rate with a metric prefix.
func si(x float64) string {
	switch {
	case x >= 1e9:
		return fmt.Sprintf("%.2f G", x/1e9)
	case x >= 1e6:
		return fmt.Sprintf("%.2f M", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.2f k", x/1e3)
	}
	return fmt.Sprintf("%.0f", x)
}

func sizeString(n int) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// parseSize parses a byte count with an optional binary K, M or G suffix;
// "" is 0.
func parseSize(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	shift := 0
	num := strings.TrimSuffix(strings.TrimSuffix(s, "iB"), "B")
	if num != "" {
		switch num[len(num)-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		}
	}
	if shift > 0 {
		num = num[:len(num)-1]
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || n > 1<<(62-shift) {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n << shift, nil
}

// parseCPUs parses "CPU,CPU"; "" is no pinning.
func parseCPUs(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) != 2 {
		return nil, fmt.Errorf("want two CPUs as CPU,CPU, got %q", s)
	}
	cpus := make([]int, 2)
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bad CPU %q", p)
		}
		cpus[i] = n
	}
	return cpus, nil
}

// progress shows where a run is on standard error: one line redrawn in
// place on a terminal, a line per round otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	round int
	drawn bool
}

func newProgress(f *os.File) *progress {
	fi, err := f.Stat()
	return &progress{w: f, tty: err == nil && fi.Mode()&os.ModeCharDevice != 0}
}

func (p *progress) show(s bench.Progress) {
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[Kbench: %3d%%  round %d  %s over %s", 100*s.Done/s.Total, s.Round, s.Workload, s.Transport)
		p.drawn = true
		return
	}
	if s.Round != p.round {
		p.round = s.Round
		fmt.Fprintf(p.w, "bench: round %d, %d of %d measurements done\n", s.Round, s.Done, s.Total)
	}
}

func (p *progress) clear() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}
