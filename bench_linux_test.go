package shmlink

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/bench/workload"
	"github.com/shmlink/shmlink/internal/testproc"
)

// The benchmarks run between this process and a peer process (the test
// binary re-executed as child role "bench-peer"), each over shmlink and,
// as a baseline in the same run, over a unix stream socket carrying the
// same length-prefixed messages: BenchmarkX/shmlink against
// BenchmarkX/unix. `shmlink bench` adds pipes and TCP.

var benchPin = flag.String("shmlink.pin", "", "pin benchmark processes: `CPU,CPU` (this one, the peer)")

// benchRing4M is the larger ring tried for throughput.
const benchRing4M = 4 << 20

// childBenchPeer serves workloads to startBenchPeer over the transport it
// names in the environment.
func childBenchPeer([]string) error { return workload.RunPeer(benchTransports()...) }

// benchTransports are the transports a benchmark may use; the peer looks
// them up by name.
func benchTransports() []*workload.Transport {
	return []*workload.Transport{linkTransport("shmlink", nil), linkTransport("shmlink-ring4M", &Config{RingSize: benchRing4M}), workload.Unix}
}

// linkTransport is a benchmark transport of links with cfg.
func linkTransport(name string, cfg *Config) *workload.Transport {
	return workload.PathTransport(name,
		func(path string) (*Listener, error) { return Listen(path, cfg) },
		(*Listener).AcceptConn,
		func(path string) (*Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return Dial(ctx, path, cfg)
		})
}

// benchOver runs f as sub-benchmarks, one per named transport, each with a
// peer process started once for all of the sub-benchmark's runs.
func benchOver(b *testing.B, names []string, f func(b *testing.B, p *workload.Peer) error) {
	peerCPU := -1
	if *benchPin != "" {
		cpus := strings.Split(*benchPin, ",")
		self, err1 := strconv.Atoi(cpus[0])
		peer, err2 := strconv.Atoi(cpus[len(cpus)-1])
		if len(cpus) != 2 || err1 != nil || err2 != nil {
			b.Fatalf("-shmlink.pin=%q: want CPU,CPU", *benchPin)
		}
		if err := workload.Pin(self); err != nil {
			b.Fatal(err)
		}
		peerCPU = peer
	}
	for _, name := range names {
		i := slices.IndexFunc(benchTransports(), func(t *workload.Transport) bool { return t.Name == name })
		var p *workload.Peer // started on the first run, if -bench selects any
		b.Run(name, func(b *testing.B) {
			if p == nil {
				p = startBenchPeer(b, benchTransports()[i], peerCPU)
			}
			if err := f(b, p); err != nil {
				b.Fatal(err)
			}
		})
		if p != nil {
			if err := p.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// startBenchPeer starts a peer process serving workloads over tr, pinned
// to CPU pin if that is not negative.
func startBenchPeer(tb testing.TB, tr *workload.Transport, pin int) *workload.Peer {
	tb.Helper()
	p, err := workload.Start(tr, testproc.Command(tb, "bench-peer"), pin)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// BenchmarkRoundTrip64 sends a 64-byte message and waits for its echo.
// Besides ns/op it reports the median and 99th percentile round trip.
func BenchmarkRoundTrip64(b *testing.B) {
	benchOver(b, []string{"shmlink", "unix"}, func(b *testing.B, p *workload.Peer) error {
		lat := make([]time.Duration, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		if _, err := p.RoundTrips(64, b.N, lat); err != nil {
			return err
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		return nil
	})
}

func BenchmarkOneWay64(b *testing.B)  { benchOneWay(b, 64) }
func BenchmarkOneWay4K(b *testing.B)  { benchOneWay(b, 4<<10) }
func BenchmarkOneWay64K(b *testing.B) { benchOneWay(b, 64<<10) }
func BenchmarkOneWay1M(b *testing.B)  { benchOneWay(b, 1<<20) }

// benchOneWay streams b.N messages of size bytes to the peer, which counts
// them and acknowledges the last. shmlink runs with the default ring and
// with a 4 MiB one.
func benchOneWay(b *testing.B, size int) {
	names := []string{"shmlink", "shmlink-ring4M", "unix"}
	benchOver(b, names, func(b *testing.B, p *workload.Peer) error {
		b.SetBytes(int64(size))
		b.ReportAllocs()
		b.ResetTimer()
		if _, err := p.OneWay(size, b.N); err != nil {
			return err
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		return nil
	})
}

// TestBenchPeer runs each benchmark workload briefly against a peer
// process over every benchmark transport, so that the benchmarks' own
// machinery is tested in the default run.
func TestBenchPeer(t *testing.T) {
	for _, tr := range benchTransports() {
		t.Run(tr.Name, func(t *testing.T) {
			p := startBenchPeer(t, tr, -1)
			defer func() {
				if err := p.Close(); err != nil {
					t.Error(err)
				}
			}()
			lat := make([]time.Duration, 10)
			if _, err := p.RoundTrips(64, len(lat), lat); err != nil {
				t.Fatal(err)
			}
			for _, size := range []int{0, 64, 4 << 10, 1 << 20, 3<<20 + 5} {
				if _, err := p.OneWay(size, 5); err != nil {
					t.Fatal(fmt.Errorf("size %d: %w", size, err))
				}
			}
		})
	}
}

// TestRoundTripAllocs checks that the message path allocates nothing once
// a link is up: a round trip, with ReadMessageInto, should cost zero
// allocations on this side.
func TestRoundTripAllocs(t *testing.T) {
	p := startBenchPeer(t, benchTransports()[0], -1)
	defer p.Close()
	const n = 100
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := p.RoundTrips(64, n, nil); err != nil {
			t.Fatal(err)
		}
	})
	if allocs >= 1 {
		t.Errorf("%.0f allocations per %d round trips, want 0", allocs, n)
	}
}
