package sys

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Support for the benchmarks (internal/bench): handing a segment to a child
// process at start, the process's CPU time, and a sleep precise enough to
// be a workload's think time.

// InheritFile returns the file behind a borrowed handle, for a child
// process to inherit (exec.Cmd.ExtraFiles). It stays owned by the handle's
// holder.
func InheritFile(h Handle) (*os.File, error) {
	if h.f == nil {
		return nil, fmt.Errorf("%w: no handle to inherit", ErrBadHandle)
	}
	return h.f, nil
}

// InheritedHandle takes a file that this process inherited (from
// os.NewFile on the descriptor) as a Handle, for AttachSegment.
func InheritedHandle(f *os.File) Handle { return fileHandle(f) }

// ProcessCPUTime returns the user and system time this process has used,
// all threads together, from getrusage: on Linux the sum is exact to the
// microsecond (the scheduler's runtime), not sampled per tick.
func ProcessCPUTime() (time.Duration, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// SleepThread blocks the calling thread for d in nanosleep. Go's
// time.Sleep rounds a short sleep up to the netpoller's millisecond when
// no other goroutine is due, so it cannot make a 100 µs pause; nanosleep
// overshoots only by the timer slack (50 µs by default).
func SleepThread(d time.Duration) {
	ts := unix.NsecToTimespec(d.Nanoseconds())
	for {
		var rem unix.Timespec
		err := unix.Nanosleep(&ts, &rem)
		if !errors.Is(err, unix.EINTR) {
			return
		}
		ts = rem
	}
}
