//go:build linux

package shmlink

import (
	"encoding/binary"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/bench/workload"
	"github.com/shmlink/shmlink/internal/sys"
	"github.com/shmlink/shmlink/internal/testproc"
)

// BenchmarkIdleGap is request/response at a low rate: the client (this
// process) pauses between requests, so that the server (a child process)
// waits that long for each one, and the client then waits for the answer
// of a server that may have gone to sleep. It runs shmlink and a unix
// socket in turn for each gap, and reports per round trip:
//
//	rt-µs        the round trip itself, the pause not counted
//	cpu-µs       CPU (user+system) of this process, the pause counted
//	peer-cpu-µs  CPU of the server process, the pause counted
//	gap-µs       the pause as it came out (a sleep oversleeps)
//
// CPU per round trip is what a policy that spins too long shows: a side
// that spins its whole budget after every message pays it at every gap.
func BenchmarkIdleGap(b *testing.B) {
	// The peers belong to the top benchmark: a child process ends with
	// the benchmark that started it.
	peers := map[string]*idlePeer{}
	for _, name := range []string{"shmlink", "unix"} {
		peers[name] = startIdlePeer(b, name)
	}
	defer func() {
		for _, p := range peers {
			p.close(b)
		}
	}()
	for _, gap := range []time.Duration{0, 100 * time.Microsecond, time.Millisecond, 10 * time.Millisecond} {
		b.Run("gap="+gapName(gap), func(b *testing.B) {
			for _, name := range []string{"shmlink", "unix"} {
				b.Run(name, func(b *testing.B) {
					peers[name].run(b, gap)
				})
			}
		})
	}
}

var idleSpin = flag.Duration("shmlink.idlespin", 0, "Config.SpinTime on both sides of BenchmarkIdleGap (0: the default)")

func gapName(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	return d.String()
}

// idleTransport returns the transport a BenchmarkIdleGap peer uses.
func idleTransport(name string, spin time.Duration) *workload.Transport {
	if name == "unix" {
		return workload.Unix
	}
	return linkTransport(name, &Config{SpinTime: spin})
}

// The idle-echo peer echoes every message except these one-byte commands.
const (
	idleReport = 'R' // answer with this process's CPU time in ns, 8 bytes
	idleQuit   = 'Q' // return
)

type idlePeer struct {
	c    workload.Conn
	ep   *workload.Endpoint
	proc *testproc.Proc
	msg  []byte
	in   []byte
}

func startIdlePeer(b *testing.B, name string) *idlePeer {
	tr := idleTransport(name, *idleSpin)
	ep, err := tr.Listen(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	proc := testproc.Start(b, "idle-echo", name, ep.Addr, idleSpin.String())
	type accepted struct {
		c   workload.Conn
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		c, err := ep.Accept()
		acc <- accepted{c, err}
	}()
	select {
	case a := <-acc:
		if a.err != nil {
			b.Fatal(a.err)
		}
		return &idlePeer{c: a.c, ep: ep, proc: proc, msg: make([]byte, 64), in: make([]byte, 64)}
	case <-time.After(30 * time.Second):
		ep.Close()
		b.Fatalf("%s peer did not connect within 30s", name)
		return nil
	}
}

// peerCPU asks the peer for its CPU time so far.
func (p *idlePeer) peerCPU(b *testing.B) time.Duration {
	if err := p.c.WriteMessage([]byte{idleReport}); err != nil {
		b.Fatal(err)
	}
	n, err := p.c.ReadMessageInto(p.in)
	if err != nil || n != 8 {
		b.Fatalf("CPU report: %d bytes, %v", n, err)
	}
	return time.Duration(binary.LittleEndian.Uint64(p.in))
}

func (p *idlePeer) run(b *testing.B, gap time.Duration) {
	// A few round trips first, so that a wait policy that learns starts
	// from this regime rather than the last one.
	for range 50 {
		p.roundTrip(b, gap)
	}
	peer0, self0 := p.peerCPU(b), selfCPU()
	var rt, slept time.Duration
	b.ResetTimer()
	for range b.N {
		s, r := p.roundTrip(b, gap)
		slept += s
		rt += r
	}
	b.StopTimer()
	self := selfCPU() - self0
	peer := p.peerCPU(b) - peer0
	n := float64(b.N)
	b.ReportMetric(rt.Seconds()*1e6/n, "rt-µs")
	b.ReportMetric(self.Seconds()*1e6/n, "cpu-µs")
	b.ReportMetric(peer.Seconds()*1e6/n, "peer-cpu-µs")
	b.ReportMetric(slept.Seconds()*1e6/n, "gap-µs")
}

func (p *idlePeer) roundTrip(b *testing.B, gap time.Duration) (slept, rt time.Duration) {
	t0 := time.Now()
	if gap > 0 {
		// Not time.Sleep: the runtime's timers wake at best a millisecond
		// late here, which would turn every gap into at least 1 ms.
		sys.SleepThread(gap)
	}
	t1 := time.Now()
	if err := p.c.WriteMessage(p.msg); err != nil {
		b.Fatal(err)
	}
	if n, err := p.c.ReadMessageInto(p.in); err != nil || n != len(p.msg) {
		b.Fatalf("echo: %d bytes, %v", n, err)
	}
	return t1.Sub(t0), time.Since(t1)
}

func (p *idlePeer) close(b *testing.B) {
	if err := p.c.WriteMessage([]byte{idleQuit}); err != nil {
		b.Error(err)
	}
	p.proc.Wait(b)
	p.c.Close()
	p.ep.Close()
}

// selfCPU is this process's user and system time.
func selfCPU() time.Duration {
	d, err := sys.ProcessCPUTime()
	if err != nil {
		panic(err)
	}
	return d
}

// childIdleEcho is BenchmarkIdleGap's server: it dials the transport
// args[0] at args[1] with SpinTime args[2] and echoes until told to quit.
func childIdleEcho(args []string) error {
	if err := childArgs(args, 3); err != nil {
		return err
	}
	spin, err := time.ParseDuration(args[2])
	if err != nil {
		return err
	}
	c, err := idleTransport(args[0], spin).Dial(args[1])
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 64)
	var out [8]byte
	for {
		n, err := c.ReadMessageInto(buf)
		if err != nil {
			return fmt.Errorf("idle-echo: %w", err)
		}
		msg := buf[:n]
		if n == 1 {
			switch buf[0] {
			case idleQuit:
				return nil
			case idleReport:
				binary.LittleEndian.PutUint64(out[:], uint64(selfCPU()))
				msg = out[:]
			}
		}
		if err := c.WriteMessage(msg); err != nil {
			return fmt.Errorf("idle-echo: %w", err)
		}
	}
}
