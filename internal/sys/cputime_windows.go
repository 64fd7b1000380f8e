package sys

import (
	"fmt"
	"time"

	"golang.org/x/sys/windows"
)

// ProcessCPUTime returns the user and kernel time this process has used,
// all threads together, from GetProcessTimes (100 ns units, updated at the
// scheduler's tick).
func ProcessCPUTime() (time.Duration, error) {
	var creation, exit, kernel, user windows.Filetime
	if err := windows.GetProcessTimes(windows.CurrentProcess(), &creation, &exit, &kernel, &user); err != nil {
		return 0, fmt.Errorf("GetProcessTimes: %w", err)
	}
	ticks := func(f windows.Filetime) int64 { return int64(f.HighDateTime)<<32 | int64(f.LowDateTime) }
	return time.Duration((ticks(kernel) + ticks(user)) * 100), nil
}
