package workload

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// streamTransports are this system's transports; the test binary,
// re-executed, is their peer.
var streamTransports = Competitors

func TestMain(m *testing.M) {
	if PeerRequested() {
		if err := RunPeer(streamTransports...); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestPeer runs the workloads briefly against a peer process over every
// stream transport, with counts that fill a buffered stream's buffer
// several times and sizes on both sides of CopyMax.
func TestPeer(t *testing.T) {
	for _, tr := range streamTransports {
		t.Run(tr.Name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Stderr = os.Stderr
			p, err := Start(tr, cmd, -1)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := p.Close(); err != nil {
					t.Error(err)
				}
			}()
			lat := make([]time.Duration, 100)
			if _, err := p.RoundTrips(64, len(lat), lat); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct{ size, n int }{
				{0, 10}, {64, 5000}, {CopyMax, 100}, {CopyMax + 1, 100}, {BufferSize, 10}, {3<<20 + 5, 3}, {64, 0},
			} {
				if _, err := p.OneWay(c.size, c.n); err != nil {
					t.Fatalf("%d messages of %d bytes: %v", c.n, c.size, err)
				}
			}
		})
	}
}

// TestPeerConns runs round trips on several connections to one peer
// process at once, asks for the peer's CPU time around them, and checks
// that the idle round trips pause as asked.
func TestPeerConns(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Stderr = os.Stderr
	p, err := StartConns(Plain, cmd, -1, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	}()
	if len(p.Drivers) != 4 || p.Driver != p.Drivers[0] {
		t.Fatalf("%d drivers, want 4, the first embedded", len(p.Drivers))
	}
	before, cpuErr := p.PeerCPU()
	errs := make(chan error, len(p.Drivers))
	for _, d := range p.Drivers {
		go func() {
			_, err := d.RoundTrips(64, 500, nil)
			errs <- err
		}()
	}
	for range p.Drivers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	lat := make([]time.Duration, 5)
	busy, idle, err := p.Drivers[2].RoundTripsIdle(64, len(lat), time.Millisecond, lat)
	if err != nil {
		t.Fatal(err)
	}
	if idle < 5*time.Millisecond || busy <= 0 || lat[4] <= 0 {
		t.Errorf("idle round trips: busy %v, idle %v (want ≥ 5ms), last %v", busy, idle, lat[4])
	}
	after, err := p.PeerCPU()
	if cpuErr != nil || err != nil {
		t.Skipf("no CPU time here: %v, %v", cpuErr, err)
	}
	if after < before {
		t.Errorf("peer CPU time went from %v to %v", before, after)
	}
}

// TestStartConnsPipe checks that a transport of inherited descriptors
// refuses several connections.
func TestStartConnsPipe(t *testing.T) {
	if _, err := StartConns(Pipe, exec.Command(os.Args[0], "-test.run=^$"), -1, 2); err == nil {
		t.Fatal("two connections over pipes were accepted")
	}
}
