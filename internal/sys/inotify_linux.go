package sys

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// DirWatch reports changes to the entries of one directory, so that a
// client waiting for a server learns at once that a socket appeared,
// instead of polling.
type DirWatch struct {
	f   *os.File
	buf []byte
}

// WatchDir starts watching dir for entries being created or moved in.
func WatchDir(dir string) (*DirWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_ATTRIB); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inotify watch %s: %w", dir, err)
	}
	return &DirWatch{f: os.NewFile(uintptr(fd), "inotify"), buf: make([]byte, 4096)}, nil
}

// Wait blocks until something changed in the directory or the deadline
// passes (os.ErrDeadlineExceeded). Events are drained, not interpreted:
// the caller simply tries again.
func (w *DirWatch) Wait(deadline time.Time) error {
	if err := w.f.SetReadDeadline(deadline); err != nil {
		return err
	}
	_, err := w.f.Read(w.buf)
	return err
}

// Close stops watching.
func (w *DirWatch) Close() error { return w.f.Close() }
