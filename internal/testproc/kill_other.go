//go:build !(windows && amd64)

package testproc

import (
	"errors"
	"os"
	"testing"
)

// UnderWine reports whether this Windows process runs under Wine; never
// on this OS.
const UnderWine = false

func (p *Proc) childEnv() []string { return nil }
func childSetup() error            { return nil }
func (p *Proc) removeOSState()     {}

// KillHard kills the child without any code of its own running: SIGKILL,
// as Kill does on this OS. It does not wait for the child to die: Exit
// does that.
func (p *Proc) KillHard(t testing.TB) {
	t.Helper()
	p.Kill(t)
}

// OpenHandles returns how many file descriptors this process holds (the
// entries of /proc/self/fd), for leak checks: compare two counts taken in
// the same process.
func OpenHandles() (int, error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, errors.ErrUnsupported
		}
		return 0, err
	}
	return len(fds) - 1, nil // less the directory being read
}
