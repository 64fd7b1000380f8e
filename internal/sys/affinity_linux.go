package sys

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// PinProcess restricts every thread of this process to the given CPUs.
//
// Linux keeps an affinity mask per thread, and the Go runtime runs on
// several, so each one found in /proc/self/task is pinned. Threads started
// later inherit the mask of the thread that starts them; passes repeat until
// one finds no thread it has not pinned, so that a thread started from an
// unpinned one during the walk is caught too.
func PinProcess(cpus []int) error {
	if len(cpus) == 0 {
		return errors.New("pin: no CPU given")
	}
	var set unix.CPUSet
	set.Zero()
	for _, c := range cpus {
		if c < 0 || c >= len(set)*64 {
			return fmt.Errorf("pin: CPU %d out of range", c)
		}
		set.Set(c)
	}
	pinned := make(map[int]bool)
	for {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("pin: %w", err)
		}
		fresh := false
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil || pinned[tid] {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // the thread exited meanwhile
				}
				return fmt.Errorf("pin to CPUs %v: %w", cpus, err)
			}
			pinned[tid], fresh = true, true
		}
		if !fresh {
			return nil
		}
	}
}
