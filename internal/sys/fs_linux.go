package sys

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// LockDir takes an exclusive flock on directory dir and returns the function
// that releases it. The kernel drops the lock if the process dies, so a
// crashed holder never wedges the directory.
func LockDir(dir string) (unlock func(), err error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("flock %s: %w", dir, err)
	}
	return func() { unix.Close(fd) }, nil
}

// Owner returns the numeric owner of the file that fi describes.
func Owner(fi os.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// IsConnRefused reports whether err is the kernel saying that nobody listens
// on a socket file, which is how a stale name is recognised.
func IsConnRefused(err error) bool { return errors.Is(err, unix.ECONNREFUSED) }

// IsNotExist reports ENOENT from a dial.
func IsNotExist(err error) bool { return errors.Is(err, unix.ENOENT) }

// IsPermission reports EACCES or EPERM, as from connecting to a socket file
// this user may not write.
func IsPermission(err error) bool { return errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) }
