package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/shmlink/shmlink"
	"github.com/shmlink/shmlink/internal/bench"
	"github.com/shmlink/shmlink/internal/bench/workload"
)

const benchDoc = `Measures shmlink against a unix socket (SOCK_STREAM), a pair of pipes and
loopback TCP, between this process and peer processes it starts (itself,
re-executed). Every transport carries the same length-prefixed messages:
64-byte round trips, and one-way streams of 64 B, 4 KiB, 64 KiB and 1 MiB
messages. The receivers parse every length prefix and count the messages.

The sockets and pipes write each message at once (one system call each), as
request/response needs; for the one-way streams they also run buffered
("-buffered"): small messages gather in a 64 KiB buffer that is written when
full and at the end of each batch, larger ones go out from the sender's
buffer. shmlink streams with WriteMessages, one publish per batch (its
small messages gathered as the buffered sockets gather theirs); a round trip
is a WriteMessage per message.

The transports take turns, round by round, so that the rest of the machine
disturbs them alike. The table gives each figure's ratio to a baseline (above
1 is better): for round trips the unix socket, for one-way streams the
fastest of the others in the run, buffered or not. Progress goes to standard
error.

A default run takes about 40 seconds; --quick takes a few.`

// benchOptions are bench's flags.
type benchOptions struct {
	quick    bool
	json     bool
	pin      string
	ring     string
	rounds   int
	duration time.Duration
}

func runBench(args []string) error {
	var o benchOptions
	fs := newFlags("bench", "[flags]", benchDoc)
	fs.BoolVar(&o.quick, "quick", false, "a short run of a few seconds (fewer, shorter rounds)")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON instead of a table")
	fs.StringVar(&o.pin, "pin", "", "pin this process and the peers to two CPUs, `CPU,CPU`")
	fs.StringVar(&o.ring, "ring", "", "shmlink ring `size` in bytes, with an optional K or M suffix (default 1M)")
	fs.IntVar(&o.rounds, "rounds", 0, "rounds over every transport and workload (default 5, quick 2)")
	fs.DurationVar(&o.duration, "duration", 0, "length of one measurement (default 250ms, quick 40ms)")
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
	transports := bench.Transports(ring)
	if workload.PeerRequested() {
		return workload.RunPeer(transports...)
	}
	pin, err := parseCPUs(o.pin)
	if err != nil {
		return usageError{fmt.Errorf("--pin: %w", err)}
	}
	opts := bench.Options{Transports: transports, Rounds: 5, Duration: 250 * time.Millisecond, Pin: pin}
	if o.quick {
		opts.Rounds, opts.Duration = 2, 40*time.Millisecond
	}
	if o.rounds > 0 {
		opts.Rounds = o.rounds
	}
	if o.duration > 0 {
		opts.Duration = o.duration
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable for the peers: %w", err)
	}
	opts.Command = func() *exec.Cmd {
		cmd := exec.Command(exe, "bench", "--ring", strconv.Itoa(ring))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd
	}
	p := newProgress(os.Stderr)
	opts.Progress = p.show
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	started := time.Now()
	res, err := bench.Run(ctx, opts)
	p.clear()
	if err != nil {
		return err
	}
	if ring == 0 {
		ring = shmlink.DefaultRingSize
	}
	rep := benchReport{Rounds: opts.Rounds, DurationNs: opts.Duration.Nanoseconds(), RingSize: ring,
		Pin: pin, Seconds: time.Since(started).Seconds(), Results: res}
	if o.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.table(os.Stdout)
}

// benchReport is the output of a run; --json prints it as it is.
type benchReport struct {
	Rounds     int            `json:"rounds"`
	DurationNs int64          `json:"duration_ns"` // of one measurement
	RingSize   int            `json:"ring_size"`
	Pin        []int          `json:"pin,omitempty"`
	Seconds    float64        `json:"seconds"` // the whole run
	Results    []bench.Result `json:"results"`
}

func (r *benchReport) table(w io.Writer) error {
	pin := "not pinned"
	if r.Pin != nil {
		pin = fmt.Sprintf("pinned to CPUs %d and %d", r.Pin[0], r.Pin[1])
	}
	fmt.Fprintf(w, "%d rounds of %v per measurement in %.0fs; shmlink rings of %s; %s\n\n",
		r.Rounds, time.Duration(r.DurationNs), r.Seconds, sizeString(r.RingSize), pin)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\ttransport\twrites\tmedian\tp99\tmsg/s\tGB/s\tvs base\t")
	last := ""
	for _, x := range r.Results {
		name := x.Workload
		if name == last {
			name = ""
		}
		last = x.Workload
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, x.Transport, x.Writes, med, p99, si(x.MsgPerSec), gb, ratio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, `
writes: %s = a system call per message, as request/response needs;
%s = a %s buffer, written when full and at the end of each batch
(messages over %s go from the sender's buffer); WriteMessages = shmlink's
batch API, one publish per batch gathered the same way (one WriteMessage
per round trip). Every receiver parses each length prefix (shmlink:
ReadMessageInto) and counts the messages.
vs base: the ratio to the row marked base, above 1 is better; for round trips
the unix socket, for one way the fastest transport other than shmlink.
msg/s of a round trip row counts round trips.
`, workload.WritesEach, workload.WritesBatched, sizeString(workload.BufferSize), sizeString(workload.CopyMax))
	return err
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
	}
}
