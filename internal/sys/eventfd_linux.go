package sys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// NewEventfd returns a non-blocking eventfd. Because it is non-blocking,
// os.NewFile registers it with Go's netpoller: a goroutine reading it parks
// without holding an OS thread, which is what lets one process keep
// thousands of idle links.
func NewEventfd() (*os.File, error) {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	return os.NewFile(uintptr(fd), "eventfd"), nil
}

// ErrNotEventfd reports a peer-supplied descriptor of the wrong kind.
var ErrNotEventfd = errors.New("descriptor is not an eventfd")

// CheckEventfd verifies that f is an eventfd. Signalling writes 8 bytes into
// the descriptor, so a peer must not be able to pass us a pipe or a file.
func CheckEventfd(f *os.File) error {
	link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotEventfd, err)
	}
	if link != "anon_inode:[eventfd]" {
		return fmt.Errorf("%w: %q", ErrNotEventfd, link)
	}
	return nil
}

var one = func() (b [8]byte) { binary.NativeEndian.PutUint64(b[:], 1); return }()

// Signal adds one to the eventfd behind rc without ever blocking. Errors
// are ignored: EAGAIN means the counter is saturated (only a hostile peer
// can do that) and the reader is runnable anyway, and a closed descriptor
// means nobody is left to wake. RawConn keeps the descriptor alive for the
// duration of the call, so a concurrent Close cannot make us write into a
// recycled descriptor number. The callback captures nothing, so a wake-up
// allocates nothing.
func Signal(rc syscall.RawConn) {
	_ = rc.Write(signalFD)
}

func signalFD(fd uintptr) bool {
	_, _ = unix.Write(int(fd), one[:])
	return true
}
