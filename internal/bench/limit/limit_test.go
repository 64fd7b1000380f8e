package limit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/sys"
)

// envDie makes the child a fake that says it is ready for its first
// command and exits, leaving the parent spinning.
const envDie = "LIMIT_TEST_DIE"

func TestMain(m *testing.M) {
	if PeerRequested() && os.Getenv(envDie) != "" {
		var cmd [cmdLen]byte
		if _, err := io.ReadFull(os.NewFile(4, "commands"), cmd[:]); err == nil {
			os.NewFile(5, "ready").Write([]byte{1})
		}
		os.Exit(0)
	}
	if PeerRequested() {
		if err := RunPeer(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(envMiddle) != "" {
		os.Exit(orphanAChild())
	}
	os.Exit(m.Run())
}

// envMiddle makes the process start a limit peer, set it spinning on a
// ping-pong, print its pid and exit without a word, orphaning it.
const envMiddle = "LIMIT_TEST_MIDDLE"

func orphanAChild() int {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Stderr = os.Stderr // the test reads it to its end: until the orphan has gone too
	p, err := Start(cmd, -1)
	if err == nil {
		err = p.command(opPingPong, 0, 1<<40)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println(p.proc.Process.Pid)
	return 0
}

func start(t testing.TB) *Peer {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Stderr = os.Stderr
	p, err := Start(cmd, -1)
	if !sys.Supported {
		if !errors.Is(err, ErrNotMeasured) {
			t.Fatalf("Start without a backend: %v, want ErrNotMeasured", err)
		}
		t.Skip("no shared memory backend")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// TestPingPong bounces the line in runs that do and do not fill a clock
// group, and checks that every round trip got a time.
func TestPingPong(t *testing.T) {
	p := start(t)
	for _, n := range []int{1, GroupSize, GroupSize*3 + 5, 0} {
		lat := make([]time.Duration, n)
		el, err := p.PingPong(n, lat)
		if err != nil {
			t.Fatalf("%d ping-pongs: %v", n, err)
		}
		for i, l := range lat {
			if l <= 0 || l > el {
				t.Fatalf("%d ping-pongs: round trip %d took %v of %v", n, i, l, el)
			}
		}
	}
	if _, err := p.PingPong(100, nil); err != nil {
		t.Fatal(err)
	}
}

// TestRing streams through the bare ring with sizes that wrap it at
// every alignment, including a pad at the very end, whole and in chunks,
// and switches sizes between commands.
func TestRing(t *testing.T) {
	p := start(t)
	for _, c := range []struct{ size, n, chunk int }{
		{64, 100000, 0}, {0, 10, 0}, {0, 10, 4096}, {4 << 10, 3000, 0}, {RingSize/2 - 8, 9, 0}, {1 << 20, 13, 0},
		{1 << 20, 13, 256 << 10}, {1<<20 + 5, 11, 300 << 10}, {13, 70000, 0}, {64 << 10, 200, 0}, {64 << 10, 200, 1 << 20}, {64, 0, 0},
	} {
		if _, err := p.Ring(c.size, c.n, c.chunk); err != nil {
			t.Fatalf("%d messages of %d bytes in chunks of %d: %v", c.n, c.size, c.chunk, err)
		}
	}
	if _, err := p.Ring(RingSize/2+1, 1, 0); err == nil {
		t.Error("a message over half the ring was accepted")
	}
	if _, err := p.Ring(1<<20, 1, RingSize/4+1); err == nil {
		t.Error("a chunk over a quarter of the ring was accepted")
	}
}

// TestRingRoundTrip echoes messages through both round trip shapes, with
// sizes that wrap the rings at several alignments, switching shapes and
// sizes between commands, and checks that every round trip got a time.
func TestRingRoundTrip(t *testing.T) {
	p := start(t)
	for _, c := range []struct{ size, n int }{
		{64, 100000}, {0, 10}, {13, 70000}, {RTRing/2 - 8, 9}, {4 << 10, 3000}, {64, 0}, {1, GroupSize*3 + 5},
	} {
		for _, shape := range []bool{Indexed, Stamped} {
			lat := make([]time.Duration, c.n)
			el, err := p.RingRoundTrip(c.size, c.n, shape, lat)
			if err != nil {
				t.Fatalf("%d round trips of %d bytes, stamped %v: %v", c.n, c.size, shape, err)
			}
			for i, l := range lat {
				if l <= 0 || l > el {
					t.Fatalf("%d round trips of %d bytes: round trip %d took %v of %v", c.n, c.size, i, l, el)
				}
			}
		}
	}
	if _, err := p.RingRoundTrip(RTRing/2+1, 1, Indexed, nil); err == nil {
		t.Error("a message over half the ring was accepted")
	}
}

// BenchmarkRoundTripShapes measures the round trip of a 64-byte message
// through a bare ring of each shape, interleaved with the ping-pong in
// short rounds (the host moves the vCPUs every few minutes), and reports
// each shape's median ratio to the ping-pong of its round: the least a
// round trip over shmlink's protocol can cost (indexed) and what a reader
// polling the header would save (stamped).
func BenchmarkRoundTripShapes(b *testing.B) {
	p := start(b)
	const per = 20000
	var pp, ix, st []float64
	b.ResetTimer()
	for range max(b.N/per, 1) {
		a, err1 := p.PingPong(per, nil)
		x, err2 := p.RingRoundTrip(64, per, Indexed, nil)
		y, err3 := p.RingRoundTrip(64, per, Stamped, nil)
		if err := errors.Join(err1, err2, err3); err != nil {
			b.Fatal(err)
		}
		pp = append(pp, float64(a)/per)
		ix = append(ix, float64(x)/float64(a))
		st = append(st, float64(y)/float64(a))
	}
	b.ReportMetric(medianOf(pp), "pingpong-ns")
	b.ReportMetric(medianOf(ix), "indexed/pingpong")
	b.ReportMetric(medianOf(st), "stamped/pingpong")
}

func medianOf(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

// TestCopier copies across the end of its buffer.
func TestCopier(t *testing.T) {
	var c Copier
	for _, size := range []int{64, 1 << 20, 3 << 20, 0} {
		if el := c.Copy(size, 10); el < 0 {
			t.Fatalf("copy of %d bytes took %v", size, el)
		}
	}
}

// TestChildDies checks that a child that exits while the parent spins for
// it fails the measurement instead of hanging it, in both limits.
func TestChildDies(t *testing.T) {
	for _, run := range []func(p *Peer) error{
		func(p *Peer) error { _, err := p.PingPong(10, nil); return err },
		func(p *Peer) error { _, err := p.Ring(1<<20, 100, 0); return err },
		func(p *Peer) error { _, err := p.RingRoundTrip(64, 100, Indexed, nil); return err },
		func(p *Peer) error { _, err := p.RingRoundTrip(64, 100, Stamped, nil); return err },
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envDie+"=1")
		cmd.Stderr = os.Stderr
		p, err := Start(cmd, -1)
		if !sys.Supported {
			t.Skip("no shared memory backend")
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := run(p); err == nil {
			t.Error("a measurement with a dead child succeeded")
		}
		p.Close()
	}
}
