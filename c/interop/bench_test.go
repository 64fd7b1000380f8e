//go:build linux

package interop

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/shmlink/shmlink"
	"github.com/shmlink/shmlink/internal/cpeer"
	"github.com/shmlink/shmlink/internal/testproc"
)

// The benchmark puts a Go client (this process) against two servers in
// child processes, in the same run: the C test peer built with -O2
// (peer.c's bench-server) and a Go server doing the same (goBenchServer).
// Each workload runs against both, one after the other:
//
//	go test -run '^$' -bench . ./c/interop
//
// roundtrip-64B: a 64-byte message and its echo, ns/op per round trip;
// to-peer-1MiB and from-peer-1MiB: 1 MiB messages one way, MB/s.

// benchPeers starts both servers and dials each, with default rings.
func benchPeers(t testing.TB) map[string]*shmlink.Conn {
	linkDir(t)
	cBench := cpeer.Build(t, cpeer.Optimized, "peer", "shmlink.c", "test/peer.c")
	testproc.Options{Name: "C bench-server", WaitReady: true}.Exec(t, cBench, "bench-server", "bench-c")
	startGo(t, "go-bench-server", "bench-go")
	return map[string]*shmlink.Conn{"c": dial(t, "bench-c", nil), "go": dial(t, "bench-go", nil)}
}

func roundTrips(c *shmlink.Conn, n int) error {
	msg, buf := make([]byte, 64), make([]byte, 64)
	msg[0] = 'E'
	for range n {
		if err := c.WriteMessage(msg); err != nil {
			return err
		}
		if k, err := c.ReadMessageInto(buf); err != nil || k != 64 {
			return fmt.Errorf("echo: %d bytes, %v", k, err)
		}
	}
	return nil
}

// toPeer sends n messages of size bytes and waits until the peer counted
// them all.
func toPeer(c *shmlink.Conn, n, size int) error {
	msg := make([]byte, size)
	for range n {
		if err := c.WriteMessage(msg); err != nil {
			return err
		}
	}
	if err := c.WriteMessage([]byte("?")); err != nil {
		return err
	}
	ack, err := c.ReadMessage()
	if err != nil || len(ack) != 8 || binary.LittleEndian.Uint64(ack) != uint64(n) {
		return fmt.Errorf("peer counted %x, want %d (%v)", ack, n, err)
	}
	return nil
}

// fromPeer asks the peer for n messages of size bytes and reads them.
func fromPeer(c *shmlink.Conn, buf []byte, n, size int) error {
	req := []byte{'S'}
	req = binary.LittleEndian.AppendUint64(req, uint64(n))
	req = binary.LittleEndian.AppendUint64(req, uint64(size))
	if err := c.WriteMessage(req); err != nil {
		return err
	}
	for range n {
		if k, err := c.ReadMessageInto(buf); err != nil || k != size {
			return fmt.Errorf("got %d bytes, %v", k, err)
		}
	}
	return nil
}

func BenchmarkInterop(b *testing.B) {
	conns := benchPeers(b)
	buf := make([]byte, 1<<20)
	workloads := []struct {
		name  string
		bytes int64
		run   func(c *shmlink.Conn, n int) error
	}{
		{"roundtrip-64B", 0, roundTrips},
		{"to-peer-1MiB", 1 << 20, func(c *shmlink.Conn, n int) error { return toPeer(c, n, 1<<20) }},
		{"from-peer-1MiB", 1 << 20, func(c *shmlink.Conn, n int) error { return fromPeer(c, buf, n, 1<<20) }},
	}
	for _, w := range workloads {
		for _, peer := range []string{"go", "c"} {
			b.Run(w.name+"/"+peer, func(b *testing.B) {
				b.SetBytes(w.bytes)
				if err := w.run(conns[peer], b.N); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// TestBenchPeers runs each workload of the benchmark a little, so that
// both bench servers are checked by every test run.
func TestBenchPeers(t *testing.T) {
	buf := make([]byte, 1<<20)
	for peer, c := range benchPeers(t) {
		if err := roundTrips(c, 100); err != nil {
			t.Fatalf("%s: round trips: %v", peer, err)
		}
		if err := toPeer(c, 5, 1<<20); err != nil {
			t.Fatalf("%s: to peer: %v", peer, err)
		}
		if err := fromPeer(c, buf, 5, 1<<20); err != nil {
			t.Fatalf("%s: from peer: %v", peer, err)
		}
	}
}
