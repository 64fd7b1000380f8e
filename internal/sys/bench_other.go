//go:build !linux

package sys

import (
	"os"
	"time"
)

// InheritFile returns the file behind a borrowed handle, for a child
// process to inherit; no backend here.
func InheritFile(Handle) (*os.File, error) { return nil, ErrUnsupported }

// InheritedHandle takes an inherited file as a Handle; without a backend
// the handle only closes the file.
func InheritedHandle(f *os.File) Handle { return Handle{f} }

// SleepThread pauses for d.
func SleepThread(d time.Duration) { time.Sleep(d) }
