package limit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
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
	os.Exit(m.Run())
}

func start(t *testing.T) *Peer {
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
