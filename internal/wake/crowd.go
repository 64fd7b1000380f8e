package wake

import (
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"github.com/shmlink/shmlink/internal/sys"
)

// A spin takes a CPU that something else may need. Two signals say so,
// both checked only once a wait has outlasted its first polls:
//
//   - The machine: more than machineOver threads running or runnable per
//     CPU online (/proc/loadavg's nr_running), not counting this
//     process's own spinners: a ping-pong on two CPUs keeps both busy, one of them with
//     our spin, and that is no crowd. A pread of it costs about 1.5 µs, so
//     the whole process samples it at most once per machineEvery,
//     whichever waiter comes first, and every waiter uses the last sample.
//   - This process: a goroutine waiting for a P
//     (/sched/goroutines/runnable), which the spinner would keep waiting.
//     Reading it costs about 0.1 µs, so every spin reads it at its start
//     and at each of its yields.
//
// Either one ends the spin: the waiter parks at once.

// machineEvery is how old a sample of the machine's load may be.
const machineEvery = int64(time.Millisecond)

// spinners counts this process's waiters that are spinning now.
var spinners atomic.Int32

var machine struct {
	next atomic.Int64 // sys.Nanotime after which to sample again
	// over counts the consecutive samples with more runnable threads than
	// CPUs. One is not enough: on a shared machine short bursts of other
	// work tip single samples over all the time, and a spin given up for
	// such a blip parks, makes the peer ring, and can cost a busy link its
	// hot path for many round trips (docs/wakeup.md). A crowd that lasts
	// machineSamples samples is real.
	over atomic.Int32
}

// machineSamples is how many consecutive samples must show a crowd, and
// machineOver how many runnable threads per CPU make one. With one per CPU
// (no idle CPU at all) the signal fired all through single-link
// request/response on this shared 2-vCPU machine, whose Go runtimes and
// neighbours keep nr_running above 2 most of the time, and cost net/http
// with one request in flight 3× its latency (docs/wakeup.md); two per CPU
// is a crowd that spinning can only make worse.
const (
	machineSamples = 4
	machineOver    = 2
)

// machineCrowded reports whether the last machineSamples samples of the
// machine's load, taken again if the last is older than machineEvery, all
// showed more than machineOver runnable threads per CPU.
func machineCrowded(now int64) bool {
	if n := machine.next.Load(); now >= n && machine.next.CompareAndSwap(n, now+machineEvery) {
		if running, cpus, ok := sys.Runnable(); ok && running-int(spinners.Load()) > machineOver*cpus {
			machine.over.Add(1)
		} else {
			machine.over.Store(0)
		}
	}
	return machine.over.Load() >= machineSamples
}

// The runtime's counts of goroutines waiting for a P and running on one:
// the process is crowded when one waits and every P is taken (a waiting
// goroutine with a P idle is about to be picked up, which the runtime
// does without our help).
const (
	runnableMetric = "/sched/goroutines/runnable:goroutines"
	runningMetric  = "/sched/goroutines/running:goroutines"
)

// newCrowded returns a waiter's check of both signals. It has its own
// metrics samples, since metrics.Read writes into them.
func newCrowded() func(now int64) bool {
	s := []metrics.Sample{{Name: runnableMetric}, {Name: runningMetric}}
	return func(now int64) bool {
		if machineCrowded(now) {
			return true
		}
		metrics.Read(s)
		if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
			return false
		}
		// The poller's goroutine gives up its processor after every round
		// (runtime.Gosched), so the runnable ones do not wait for it:
		// counted, it made every link see a crowd and stop spinning (8
		// busy links lost a third of their round trips). Counting it only
		// within its rounds, as exact as the runtime's figures allow,
		// halved 32 busy links' round trips (docs/wakeup.md): a spinner
		// may thus spin while the poller waits for a processor, until its
		// next Gosched.
		running := s[1].Value.Uint64()
		if n := uint64(procPoller.active.Load()); running >= n {
			running -= n
		}
		return s[0].Value.Uint64() > 0 && running >= uint64(runtime.GOMAXPROCS(0))
	}
}
