//go:build !linux && !windows

package sys

import "time"

// ProcessCPUTime returns the CPU time this process has used; not measured
// here.
func ProcessCPUTime() (time.Duration, error) { return 0, ErrUnsupported }
