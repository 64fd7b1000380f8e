//go:build linux

package shmlink

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/shmlink/shmlink/internal/ring"
	"github.com/shmlink/shmlink/internal/testproc"
)

// BenchmarkCopyStrategy compares, between this process and a peer process,
// one-way streams of 4 KiB, 64 KiB and 1 MiB messages over every way this
// package can carry them with a bare ring, the limit, in the same run:
//
//   - bare: a busy-spin ring of 4 MiB in the link's shared memory, with no
//     framing, each message one copy in and one copy out (the limit the
//     copy strategy is measured against; docs/copy.md);
//   - copy: WriteMessage and ReadMessageInto, with the default ring and
//     with a 4 MiB one, and with the non-temporal stores of large chunks
//     (ring.NonTemporalMin) turned off, to see what they bring;
//   - zc: ReserveMessage/CommitMessage and BorrowMessage/ReleaseMessage,
//     the zero-copy calls, which copy nothing;
//   - +touch: both ends also produce and consume every byte, as an
//     application would: the writer builds each message (one copy from a
//     prepared buffer, into its own buffer for WriteMessage, into the
//     reservation for zero copy), the reader reads every word of it. Zero
//     copy saves both copies but not that work.
//
// The host moves its virtual processors between near and distant cores
// every few minutes, so every iteration runs each variant once, in turn,
// on a few MiB, and the benchmark reports each variant's median throughput
// over the iterations (MB/s) and its median ratio to the bare ring (or,
// for zc, to the copying path) of the same iteration, beside the median
// round trip of a 64-byte message (the placement: near or distant).
//
// Run it with -benchtime Nx: N iterations of every variant.
func BenchmarkCopyStrategy(b *testing.B) {
	dir := linkDir(b)
	path := dir + "/copybench.sock"
	peer := startChild(b, "copy-peer", path)
	defer peer.Wait(b)
	dial := func(ring int) *Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := Dial(ctx, path, &Config{RingSize: ring})
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	def, small, mid, big := dial(0), dial(1<<20), dial(2<<20), dial(4<<20)
	for _, c := range []*Conn{def, small, mid, big} {
		defer c.Close()
	}

	type variant struct {
		name, base string // base: the variant of the same iteration it is compared with
		run        func(size, count int) (time.Duration, error)
	}
	mode := func(m int, f func(int, int) (time.Duration, error)) func(int, int) (time.Duration, error) {
		return func(size, count int) (time.Duration, error) {
			ring.CopyMode = m
			defer func() { ring.CopyMode = ring.CopyAdaptive }()
			return f(size, count)
		}
	}
	run := func(c *Conn, op int) func(int, int) (time.Duration, error) {
		return func(size, count int) (time.Duration, error) { return copyBenchRun(c, op, size, count) }
	}
	vs := []variant{
		{"bare", "", func(s, n int) (time.Duration, error) { return copyBenchBare(big, s, n) }},
		{"copy", "bare", run(def, opCopy)},
		{"copy-ring1M", "bare", run(small, opCopy)},
		{"copy-ring1M-temporal", "bare", mode(ring.CopyTemporal, run(small, opCopy))},
		{"copy-ring1M-nt", "bare", mode(ring.CopyNonTemporal, run(small, opCopy))},
		{"copy-ring2M", "bare", run(mid, opCopy)},
		{"copy-ring2M-temporal", "bare", mode(ring.CopyTemporal, run(mid, opCopy))},
		{"copy-ring2M-nt", "bare", mode(ring.CopyNonTemporal, run(mid, opCopy))},
		{"copy-ring4M", "bare", run(big, opCopy)},
		{"copy-ring4M-runtime", "bare", mode(ring.CopyRuntime, run(big, opCopy))},
		{"zc", "copy", run(def, opZeroCopy)},
		{"zc-ring4M", "copy-ring4M", run(big, opZeroCopy)},
		{"copy+touch", "", run(def, opCopy|opTouch)},
		{"zc+touch", "copy+touch", run(def, opZeroCopy|opTouch)},
		{"copy-ring4M+touch", "", run(big, opCopy|opTouch)},
		{"zc-ring4M+touch", "copy-ring4M+touch", run(big, opZeroCopy|opTouch)},
	}
	if *copyBenchOnly != "" {
		re, err := regexp.Compile(*copyBenchOnly)
		if err != nil {
			b.Fatal(err)
		}
		vs = slices.DeleteFunc(vs, func(v variant) bool { return !re.MatchString(v.name) })
	}
	for _, size := range []int{4 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("size=%dK", size>>10), func(b *testing.B) {
			const perRun = 16 << 20
			count := perRun / size
			rate := make(map[string][]float64)
			ratio := make(map[string][]float64)
			var rtt []float64
			for range b.N {
				d, err := copyBenchRoundTrip(def)
				if err != nil {
					b.Fatal(err)
				}
				rtt = append(rtt, float64(d.Nanoseconds()))
				got := make(map[string]float64)
				if *copyBenchLog {
					defer func(line string) {
						for _, v := range vs {
							line += fmt.Sprintf(" %s=%.0f", v.name, got[v.name])
						}
						fmt.Fprintln(os.Stderr, line) // b.Log keeps only a few lines
					}(fmt.Sprintf("size=%d rtt=%d", size, d.Nanoseconds()))
				}
				for _, v := range vs {
					d, err := v.run(size, count)
					if err != nil {
						b.Fatalf("%s: %v", v.name, err)
					}
					got[v.name] = perRun / d.Seconds() / 1e6
					rate[v.name] = append(rate[v.name], got[v.name])
					if _, ok := got[v.base]; ok {
						ratio[v.name] = append(ratio[v.name], got[v.name]/got[v.base])
					}
				}
			}
			b.ReportMetric(median(rtt), "rtt64-ns")
			for _, v := range vs {
				b.ReportMetric(median(rate[v.name]), v.name+"-MB/s")
				if len(ratio[v.name]) > 0 {
					b.ReportMetric(median(ratio[v.name]), v.name+"/"+v.base)
				}
			}
		})
	}
}

var copyBenchLog = flag.Bool("copybench.v", false, "log every BenchmarkCopyStrategy iteration: round trip and each variant's MB/s")

var copyBenchOnly = flag.String("copybench.only", "", "run only the BenchmarkCopyStrategy variants matching `regexp`")

// TestCopyBenchPeer runs each of BenchmarkCopyStrategy's ways of sending
// briefly against its peer process, so that the benchmark's machinery is
// tested in the default run.
func TestCopyBenchPeer(t *testing.T) {
	dir := linkDir(t)
	path := dir + "/copybench.sock"
	peer := startChild(t, "copy-peer", path)
	defer peer.Wait(t)
	conns := make([]*Conn, 4)
	for i, ringSize := range []int{0, 1 << 20, 2 << 20, 4 << 20} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := Dial(ctx, path, &Config{RingSize: ringSize})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	big := conns[3]
	if _, err := copyBenchRoundTrip(big); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{4 << 10, 64 << 10, 1 << 20} {
		if _, err := copyBenchBare(big, size, 9); err != nil {
			t.Fatalf("bare, %d bytes: %v", size, err)
		}
		for _, op := range []int{opCopy, opZeroCopy, opCopy | opTouch, opZeroCopy | opTouch} {
			if _, err := copyBenchRun(big, op, size, 3); err != nil {
				t.Fatalf("op %#x, %d bytes: %v", op, size, err)
			}
		}
	}
}

// median returns the middle of xs, which it sorts.
func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// The copy-peer's commands, one message each: op, size, count. It answers
// each with a message of 8 bytes, the count, once it has read them all.
const (
	opCopy     = 1 << 0 // read with ReadMessageInto
	opZeroCopy = 1 << 1 // read with BorrowMessage; the writer reserves
	opBare     = 1 << 2 // read the bare ring in the segment
	opTouch    = 1 << 3 // read every word of every message
	opEcho     = 1 << 4 // echo one message
)

// The bare ring's indices, in reserved bytes of the segment's header page
// (PROTOCOL.md 3.1), on lines of their own; the link's own rings stay idle
// while it runs. Its data area is ring 0's.
const (
	bareTail = 2048
	bareHead = 2048 + 128
)

func bareIndex(mem []byte, off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&mem[off]))
}

// copyBenchCommand sends a command to the peer.
func copyBenchCommand(c *Conn, op, size, count int) error {
	var cmd [17]byte
	cmd[0] = byte(op)
	binary.LittleEndian.PutUint64(cmd[1:], uint64(size))
	binary.LittleEndian.PutUint64(cmd[9:], uint64(count))
	return c.WriteMessage(cmd[:])
}

// copyBenchAck waits for the peer's acknowledgement of count messages.
func copyBenchAck(c *Conn, count int) error {
	var ack [8]byte
	n, err := c.ReadMessageInto(ack[:])
	if err != nil {
		return err
	}
	if n != 8 || binary.LittleEndian.Uint64(ack[:]) != uint64(count) {
		return fmt.Errorf("bad ack %x for %d messages", ack[:n], count)
	}
	return nil
}

// copyBenchSource is what the writers send: a pattern, prepared once.
var copyBenchSource = func() []byte {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(i*7 + 1)
	}
	return b
}()

// copyBenchBuffer is where a copying writer that touches its messages
// builds each one before it sends it.
var copyBenchBuffer = make([]byte, 1<<20)

// copyBenchRun streams count messages of size bytes to the peer through
// the link's rings, as op says, and returns the time until the peer
// acknowledged them.
func copyBenchRun(c *Conn, op, size, count int) (time.Duration, error) {
	if err := copyBenchCommand(c, op, size, count); err != nil {
		return 0, err
	}
	src := copyBenchSource[:size]
	start := time.Now()
	own := copyBenchBuffer[:size]
	for range count {
		if op&opZeroCopy == 0 {
			m := src
			if op&opTouch != 0 { // the message is built, then sent
				copy(own, src)
				m = own
			}
			if err := c.WriteMessage(m); err != nil {
				return 0, err
			}
			continue
		}
		m, err := c.ReserveMessage(size)
		if err != nil {
			return 0, err
		}
		if op&opTouch != 0 {
			copy(m, src)
		}
		if err := c.CommitMessage(size); err != nil {
			return 0, err
		}
	}
	err := copyBenchAck(c, count)
	return time.Since(start), err
}

// copyBenchBare streams count messages of size bytes to the peer through
// the bare ring in c's memory, and returns the time until the peer
// acknowledged them.
func copyBenchBare(c *Conn, size, count int) (time.Duration, error) {
	mem := c.ep.seg.Mem()
	data := mem[ring.HeaderSize : ring.HeaderSize+c.ep.wr.Size()]
	tail, head := bareIndex(mem, bareTail), bareIndex(mem, bareHead)
	tail.Store(0)
	head.Store(0)
	if err := copyBenchCommand(c, opBare, size, count); err != nil {
		return 0, err
	}
	// The command lies in the same data area: start once the peer has it.
	if err := copyBenchAck(c, 0); err != nil {
		return 0, err
	}
	src := copyBenchSource[:size]
	start := time.Now()
	n := uint64(len(data))
	var t uint64
	for range count {
		for t+uint64(size)-head.Load() > n {
		}
		off := t % n
		copy(data[off:off+uint64(size)], src)
		t += uint64(size)
		tail.Store(t)
	}
	err := copyBenchAck(c, count)
	return time.Since(start), err
}

// copyBenchRoundTrip measures one 64-byte round trip over c, the best of
// a few, to tell the placement of the two processes.
func copyBenchRoundTrip(c *Conn) (time.Duration, error) {
	best := time.Duration(1 << 62)
	msg := make([]byte, 64)
	for range 50 {
		if err := copyBenchCommand(c, opEcho, 64, 1); err != nil {
			return 0, err
		}
		start := time.Now()
		if err := c.WriteMessage(msg); err != nil {
			return 0, err
		}
		if _, err := c.ReadMessageInto(msg); err != nil {
			return 0, err
		}
		best = min(best, time.Since(start))
	}
	return best, nil
}

// childCopyPeer listens on args[0] and serves the commands of
// BenchmarkCopyStrategy on every link, until each closes.
func childCopyPeer(args []string) error {
	if err := childArgs(args, 1); err != nil {
		return err
	}
	l, err := Listen(args[0], nil)
	if err != nil {
		return err
	}
	defer l.Close()
	testproc.Ready()
	const links = 4
	errc := make(chan error, links)
	for range links {
		c, err := l.AcceptConn()
		if err != nil {
			return err
		}
		go func() { errc <- copyPeerServe(c) }()
	}
	var errs []error
	for range links {
		errs = append(errs, <-errc)
	}
	return errors.Join(errs...)
}

func copyPeerServe(c *Conn) error {
	defer c.Close()
	buf := make([]byte, 1<<20)
	var sum uint64
	for {
		var cmd [17]byte
		k, err := c.ReadMessageInto(cmd[:])
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if k != len(cmd) {
			return fmt.Errorf("command of %d bytes", k)
		}
		op := int(cmd[0])
		size := int(binary.LittleEndian.Uint64(cmd[1:]))
		count := int(binary.LittleEndian.Uint64(cmd[9:]))
		switch {
		case op == opEcho:
			k, err := c.ReadMessageInto(buf)
			if err == nil {
				err = c.WriteMessage(buf[:k])
			}
			if err != nil {
				return err
			}
			continue
		case op&opBare != 0:
			var ack [8]byte // 0: got the command, go
			if err := c.WriteMessage(ack[:]); err != nil {
				return err
			}
			copyPeerBare(c, buf[:size], count)
		default:
			for range count {
				var m []byte
				if op&opZeroCopy != 0 {
					m, err = c.BorrowMessage()
				} else {
					var k int
					k, err = c.ReadMessageInto(buf)
					m = buf[:k]
				}
				if err != nil {
					return err
				}
				if len(m) != size {
					return fmt.Errorf("message of %d bytes, want %d", len(m), size)
				}
				if op&opTouch != 0 {
					sum += touch(m)
				}
				if op&opZeroCopy != 0 {
					if err := c.ReleaseMessage(); err != nil {
						return err
					}
				}
			}
		}
		var ack [8]byte
		touched = sum // keeps the reading
		binary.LittleEndian.PutUint64(ack[:], uint64(count))
		if err := c.WriteMessage(ack[:]); err != nil {
			return err
		}
	}
}

// copyPeerBare reads count messages from the bare ring into dst.
func copyPeerBare(c *Conn, dst []byte, count int) {
	mem := c.ep.seg.Mem()
	data := mem[ring.HeaderSize : ring.HeaderSize+c.ep.wr.Size()]
	tail, head := bareIndex(mem, bareTail), bareIndex(mem, bareHead)
	n, size := uint64(len(data)), uint64(len(dst))
	var h uint64
	for range count {
		for tail.Load() < h+size {
		}
		off := h % n
		copy(dst, data[off:off+size])
		h += size
		head.Store(h)
	}
}

// touched keeps what touch computes, so that the reads are not dropped.
var touched uint64

// touch reads every 8-byte word of b, as a consumer of the message would.
func touch(b []byte) uint64 {
	var s uint64
	for len(b) >= 8 {
		s += binary.LittleEndian.Uint64(b)
		b = b[8:]
	}
	return s
}
