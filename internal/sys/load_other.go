//go:build !linux

package sys

// Runnable would return the machine's runnable threads and its CPUs; this
// OS has no cheap way to say, so a waiter relies on its other signals.
func Runnable() (running, cpus int, ok bool) { return 0, 0, false }
