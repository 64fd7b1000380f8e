//go:build !linux && !windows

package sys

import (
	"os"
	"time"
)

// InheritFile returns the file behind a borrowed handle, for a child
// process to inherit; no backend here.
func InheritFile(Handle) (*os.File, error) { return nil, ErrUnsupported }

// InheritedHandle takes an inherited file as a Handle; since InheritFile
// hands out nothing here, there is none to take: the file is closed.
func InheritedHandle(f *os.File) Handle { f.Close(); return Handle{} }

// SleepThread pauses for d.
func SleepThread(d time.Duration) { time.Sleep(d) }
