//go:build linux || windows

package shmlink

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/sys"
	"github.com/shmlink/shmlink/internal/testproc"
)

// BenchmarkDial measures setting up and tearing down a link to a live
// server in another process: socket connect, memfd and eventfds, the
// handshake, and the close. ns/op is a whole dial and close; the
// dial-p50-ns and dial-p99-ns metrics are percentiles of Dial alone (until
// it returns the Conn), which is what a caller waits for. Run it with a
// fixed count (-benchtime 2000x) for stable percentiles.
//
// The server is the usual echo server: its reader spins for its budget on
// each new link before it sleeps, and that spin competes for the CPUs with
// the dial.
func BenchmarkDial(b *testing.B) {
	benchDial(b, "echo-server", 0)
}

// BenchmarkDialIdle is BenchmarkDial with both processes idle for 2 ms
// before each dial (not timed), as a program's first dial finds them: the
// server wakes from sleep, and nothing of the last link is still being
// torn down.
func BenchmarkDialIdle(b *testing.B) {
	benchDial(b, "echo-server", 2*time.Millisecond)
}

// BenchmarkDialQuietServer is BenchmarkDial against a server whose links
// never spin (SpinTime < 0): what the handshake itself costs, without a
// reader of the previous link busy on a CPU.
func BenchmarkDialQuietServer(b *testing.B) {
	benchDial(b, "dial-bench-server", 0)
}

func benchDial(b *testing.B, server string, pause time.Duration) {
	linkDir(b)
	srv := startChild(b, server, "dialbench")
	ctx := context.Background()
	var cfg *Config // the default ring, as users dial
	lat := make([]time.Duration, 0, b.N)
	cpu0, srv0 := cpuTime(os.Getpid()), cpuTime(srv.Pid())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		c, err := Dial(ctx, "dialbench", cfg)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		c.Close()
		if pause > 0 {
			b.StopTimer()
			sys.SleepThread(pause) // time.Sleep would oversleep by a millisecond here
			b.StartTimer()
		}
	}
	b.StopTimer()
	// CPU time is steadier than latency on a shared machine, and on two
	// processors what one side burns the other may be waiting for.
	b.ReportMetric(float64(cpuTime(os.Getpid())-cpu0)/float64(b.N), "client-cpu-ns/op")
	b.ReportMetric(float64(cpuTime(srv.Pid())-srv0)/float64(b.N), "server-cpu-ns/op")
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "dial-p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "dial-p99-ns")
}

// childDialBenchServer accepts links on args[0] and reads each until it
// ends, as the echo server does, but with spinning turned off.
func childDialBenchServer(args []string) error {
	l, err := Listen(args[0], &Config{SpinTime: -1})
	if err != nil {
		return err
	}
	defer l.Close()
	testproc.Ready()
	for {
		c, err := l.AcceptConn()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			for {
				if _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
}

// cpuTime is the CPU time, in nanoseconds, that the threads of process pid
// have used (the first field of each /proc/PID/task/TID/schedstat).
func cpuTime(pid int) int64 {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, _ := os.ReadDir(dir)
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		if err != nil {
			continue // the thread has just exited
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			sum += n
		}
	}
	return sum
}

func init() { childRoles["dial-bench-server"] = childDialBenchServer }

// BenchmarkPingPong is the placement probe to run beside BenchmarkDial: a
// bare round trip of one cache line between two threads of this process
// (about 0.1µs when the host gives the two vCPUs near cores, 0.4µs when
// distant ones). Dial's wake-ups cost tens of microseconds either way, but
// a figure means little without it.
func BenchmarkPingPong(b *testing.B) {
	var line [2]atomic.Int64 // [0] the ball, [1] the end
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer close(done)
		for v := int64(1); ; v += 2 {
			for line[0].Load() != v {
				if line[1].Load() != 0 {
					return
				}
			}
			line[0].Store(v + 1)
		}
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v := int64(2*i + 1)
		line[0].Store(v)
		for line[0].Load() != v+1 {
		}
	}
	b.StopTimer()
	line[1].Store(1)
	<-done
}
