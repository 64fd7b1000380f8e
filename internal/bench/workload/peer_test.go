package workload

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// streamTransports are this package's transports; the test binary,
// re-executed, is their peer.
var streamTransports = []*Transport{Unix, UnixBuffered, Pipe, PipeBuffered, TCP, TCPBuffered}

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
