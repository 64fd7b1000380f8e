// Package appbench measures an application protocol (HTTP, gRPC) over
// shmlink, a unix socket and loopback TCP, with the server in a child
// process, as the examples' bench commands show it. The transports take
// turns round by round, so that a disturbance from the rest of the
// machine touches all of them alike, and each is compared with the unix
// socket of the same run.
package appbench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/shmlink/shmlink"
	"github.com/shmlink/shmlink/examples/internal/cmdline"
	"github.com/shmlink/shmlink/examples/internal/serverproc"
)

// Client makes requests over one transport. Do makes one request and waits
// for its answer; it is called from many goroutines at once.
type Client interface {
	Do(ctx context.Context) error
	Close() error
}

// Options describe a run.
type Options struct {
	// What is measured, for the heading: "HTTP GET of 64 B".
	What string
	// Unit names a request in the rate column: "req/s", "calls/s".
	Unit string
	// NewClient makes a client for addr that keeps inFlight requests going
	// at once, with links of Config cfg (nil: the defaults).
	NewClient func(addr string, inFlight int, cfg *shmlink.Config) (Client, error)
	// InFlight lists the numbers of requests in flight to measure.
	InFlight []int
	Rounds   int
	// Duration is the length of one measurement.
	Duration time.Duration
	// Spin, if not 0, is the links' Config.SpinTime on both sides: the
	// servers are started with --spin.
	Spin time.Duration
	// NoPoller sets the links' Config.NoPoller on both sides: the servers
	// are started with --no-poller.
	NoPoller bool
}

// Command is a bench command: it takes its options from args (usage says
// which), runs and prints the table on stdout.
func Command(o Options, usage string, args []string) error {
	cmdline.Flags(usage, args, o.flags)
	rs, err := Run(o)
	if err != nil {
		return err
	}
	return Print(os.Stdout, o, rs)
}

// flags registers the options a bench command takes on fs.
func (o *Options) flags(fs *flag.FlagSet) {
	fs.IntVar(&o.Rounds, "rounds", 5, "measurements of each transport")
	fs.DurationVar(&o.Duration, "duration", 500*time.Millisecond, "length of one measurement")
	fs.DurationVar(&o.Spin, "spin", 0, "shmlink's Config.SpinTime on both sides, negative for none (default: the library's)")
	fs.BoolVar(&o.NoPoller, "no-poller", false, "shmlink's Config.NoPoller on both sides")
	fs.Func("inflight", "comma-separated numbers of requests in flight (default 1,32)", func(s string) error {
		o.InFlight = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 {
				return fmt.Errorf("not a count: %q", f)
			}
			o.InFlight = append(o.InFlight, n)
		}
		return nil
	})
}

// Result is one transport at one number of requests in flight.
type Result struct {
	InFlight  int
	Transport string
	Requests  int
	Median    time.Duration
	P99       time.Duration
	Rate      float64 // requests per second, over every round
	// Latency and rate relative to the unix socket: its median over ours,
	// our rate over its rate; above 1 is better.
	LatencyRatio, RateRatio float64
}

// transports are measured in this order; unix is the base.
var transports = []string{"shmlink", "unix", "tcp"}

// Run starts a server per transport (see serverproc), measures and
// returns the results, in the order of o.InFlight then transports.
func Run(o Options) (_ []Result, err error) {
	if len(o.InFlight) == 0 {
		o.InFlight = []int{1, 32}
	}
	dir, err := os.MkdirTemp("", "appbench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	addrs := map[string]string{
		"shmlink": fmt.Sprintf("appbench-%d", os.Getpid()),
		"unix":    "unix:" + filepath.Join(dir, "s"),
		"tcp":     "127.0.0.1:0",
	}
	var cfg *shmlink.Config
	var extra []string
	if o.Spin != 0 || o.NoPoller {
		cfg = &shmlink.Config{SpinTime: o.Spin, NoPoller: o.NoPoller}
	}
	if o.Spin != 0 {
		extra = append(extra, "--spin", o.Spin.String())
	}
	if o.NoPoller {
		extra = append(extra, "--no-poller")
	}
	clients := map[string]map[int]Client{}
	for _, tr := range transports {
		srv, err := serverproc.Start(addrs[tr], nil, extra...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tr, err)
		}
		defer func() { err = errors.Join(err, srv.Stop()) }()
		clients[tr] = map[int]Client{}
		for _, n := range o.InFlight {
			c, err := o.NewClient(srv.Addr, n, cfg)
			if err != nil {
				return nil, fmt.Errorf("%s client: %w", tr, err)
			}
			defer c.Close()
			clients[tr][n] = c
		}
	}

	type key struct {
		tr string
		n  int
	}
	samples := map[key][]time.Duration{}
	elapsed := map[key]time.Duration{}
	// A first pass of each opens the connections and warms up.
	for round := 0; round <= o.Rounds; round++ {
		for _, n := range o.InFlight {
			for i := range transports {
				tr := transports[(i+round)%len(transports)]
				d := o.Duration
				if round == 0 {
					d = min(o.Duration, 100*time.Millisecond)
				}
				lat, took, err := measure(clients[tr][n], n, d)
				if err != nil {
					return nil, fmt.Errorf("%s, %d in flight: %w", tr, n, err)
				}
				if round > 0 {
					k := key{tr, n}
					samples[k] = append(samples[k], lat...)
					elapsed[k] += took
				}
			}
		}
	}

	var rs []Result
	for _, n := range o.InFlight {
		first := len(rs)
		for _, tr := range transports {
			lat := samples[key{tr, n}]
			slices.Sort(lat)
			rs = append(rs, Result{InFlight: n, Transport: tr, Requests: len(lat),
				Median: quantile(lat, 0.5), P99: quantile(lat, 0.99),
				Rate: float64(len(lat)) / elapsed[key{tr, n}].Seconds()})
		}
		base := rs[first+slices.Index(transports, "unix")]
		for i := first; i < len(rs); i++ {
			rs[i].LatencyRatio = float64(base.Median) / float64(rs[i].Median)
			rs[i].RateRatio = rs[i].Rate / base.Rate
		}
	}
	return rs, nil
}

// measure keeps n requests in flight on c for d, and returns the latency
// of each and how long it took.
func measure(c Client, n int, d time.Duration) ([]time.Duration, time.Duration, error) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	per := make([][]time.Duration, n)
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for i := range n {
		wg.Go(func() {
			for t := time.Now(); t.Before(end); {
				if err := c.Do(ctx); err != nil {
					cancel(err)
					return
				}
				next := time.Now()
				per[i] = append(per[i], next.Sub(t))
				t = next
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, 0, err
	}
	return slices.Concat(per...), time.Since(start), nil
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// Print writes the results as a table, with a heading and a legend.
func Print(w io.Writer, o Options, rs []Result) error {
	spin := "spin " + shmlink.DefaultSpinTime.String()
	switch {
	case o.Spin < 0:
		spin = "no spin"
	case o.Spin > 0:
		spin = "spin " + o.Spin.String()
	}
	if o.NoPoller {
		spin += ", no poller"
	}
	fmt.Fprintf(w, "%s: %d rounds of %v per measurement; shmlink rings of %d MiB, %s; server in a child process\n\n",
		o.What, o.Rounds, o.Duration, shmlink.DefaultRingSize>>20, spin)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "in flight\ttransport\tmedian\tp99\t%s\tmedian vs unix\trate vs unix\t\n", o.Unit)
	for i, r := range rs {
		n := ""
		if i == 0 || rs[i-1].InFlight != r.InFlight {
			n = strconv.Itoa(r.InFlight)
		}
		lr, rr := fmt.Sprintf("%.2f×", r.LatencyRatio), fmt.Sprintf("%.2f×", r.RateRatio)
		if r.Transport == "unix" {
			lr, rr = "base", "base"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", n, r.Transport, micros(r.Median), micros(r.P99), rate(r.Rate), lr, rr)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, `
median, p99: latency of one request, from the call to the whole answer.
vs unix: the unix socket's median over this one's, and this rate over the
unix socket's, in the same run; above 1 is better.`)
	return err
}

func micros(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d)/1e3) }

func rate(x float64) string {
	if x >= 1e3 {
		return fmt.Sprintf("%.1f k", x/1e3)
	}
	return fmt.Sprintf("%.0f", x)
}
