package sys

import "time"

// clockBase anchors Nanotime. On Linux time.Since reads the vDSO's
// CLOCK_MONOTONIC, precise to the nanosecond, so the runtime's clock
// serves; Windows needs its own (see clock_windows.go).
var clockBase = time.Now()

// Nanotime returns a monotonic time in nanoseconds, precise enough to
// measure a spin budget of a few microseconds.
func Nanotime() int64 { return int64(time.Since(clockBase)) }
