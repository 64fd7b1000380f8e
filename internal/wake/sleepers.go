package wake

// While the poller runs, it also watches the waits that have parked on
// their doorbells (the sleepers) and nudges each one whose condition has
// come true (sys.Doorbell.Nudge).
//
// Why: a peer's ring reaches a parked goroutine only when the runtime polls
// the network, which it does when a processor finds nothing else to run,
// or from sysmon every 10 ms. The poller gives up its processor between
// rounds (runtime.Gosched), so while it runs no processor is ever idle,
// and a rung waiter of this process could lie parked for milliseconds: at
// net/http with 32 requests in flight, one in six of the server's waits
// parked on a doorbell was picked up by sysmon (docs/wakeup.md). The poller
// is already reading rings; reading those of the sleepers too costs a few
// loads each (BenchmarkLookAtSleepers), tens of nanoseconds when the rings'
// lines are cold.
//
// The sleepers have their own lock, and a look reads at most lookMost of
// them, going round: with ten thousand idle links a whole look under the
// poller's lock took hundreds of microseconds (peaks of milliseconds,
// cold pages), and held up every wait of the process that entered or
// left the poller.
//
// A nudge never replaces the peer's ring: a wait parks only after it
// raised its sleeping flag and found its condition false, so a peer that
// publishes after that rings, and that ring wakes it when the poller is
// not running.

import (
	"time"

	"github.com/shmlink/shmlink/internal/sys"
)

// sleeperEvery is how often, at most, the poller looks at the sleepers: a
// nudge comes that much late at most, against the milliseconds it saves.
// With thousands of idle links a look costs microseconds, more than a
// round, so looks also keep to lookShare of the poller's time.
const (
	sleeperEvery = int64(50 * time.Microsecond)
	lookShare    = 10  // a look's cost, times this, until the next
	lookMost     = 256 // sleepers read per look, at most
)

// watch puts pw among the sleepers until unwatch. Its condition, as in the
// poller, must not be called once the wait has left, which unwatch
// ensures.
func (p *poller) watch(pw *pollWait) {
	p.sleepMu.Lock()
	pw.sleeping, pw.slot = true, len(p.sleepers)
	p.sleepers = append(p.sleepers, pw)
	p.sleepMu.Unlock()
}

// unwatch takes pw out of the sleepers, if the poller has not nudged it
// out already. Once it returns, the poller does not call pw's condition.
func (p *poller) unwatch(pw *pollWait) {
	p.sleepMu.Lock()
	if pw.sleeping {
		p.dropSleeper(pw)
	}
	p.sleepMu.Unlock()
}

// dropSleeper takes pw out of the sleepers. Callers hold p.sleepMu.
func (p *poller) dropSleeper(pw *pollWait) {
	last := len(p.sleepers) - 1
	moved := p.sleepers[last]
	p.sleepers[pw.slot], moved.slot = moved, pw.slot
	p.sleepers[last] = nil
	p.sleepers = p.sleepers[:last]
	pw.sleeping = false
}

// nudgeSleepers nudges, and takes out, each sleeper whose condition holds
// (or fails: the wait then gets the error itself) among the next lookMost,
// if it is time for a look. The conditions are called under p.sleepMu,
// which keeps unwatch, and so the link's unmapping, waiting until they
// return.
func (p *poller) nudgeSleepers(now int64) {
	if now < p.nextLook {
		return
	}
	p.sleepMu.Lock()
	defer func() {
		p.sleepMu.Unlock()
		p.nextLook = now + max(sleeperEvery, lookShare*(sys.Nanotime()-now))
	}()
	// A sleeper dropped here takes the last one into its slot, which is
	// read next: none is missed for long, though one that its own wait's
	// unwatch moves behind lookAt waits for the next time round.
	for range min(lookMost, len(p.sleepers)) {
		if p.lookAt >= len(p.sleepers) {
			p.lookAt = 0
		}
		pw := p.sleepers[p.lookAt]
		if ok, err := pw.ready(); ok || err != nil {
			p.dropSleeper(pw)
			pw.nudge()
			p.nudged.Add(1)
			continue
		}
		p.lookAt++
	}
}

// Nudged reports how many parked waits the poller has nudged (tests).
func Nudged() uint64 { return procPoller.nudged.Load() }
