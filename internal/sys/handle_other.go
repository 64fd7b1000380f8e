//go:build !windows

package sys

import (
	"os"

	"golang.org/x/sys/unix"
)

// Handle is an OS object that travels with a packet (see api.go): on Unix
// a descriptor. One of ours (Segment.Handle, Doorbell.Handle) comes with
// the *os.File that owns it; a received one is a bare descriptor, so that
// taking it costs no poller registration and no allocation.
type Handle struct {
	f  *os.File // the owner of fd, if any
	fd int      // valid if ok
	ok bool
}

// fileHandle is the handle of a descriptor that f owns. Its number is read
// through SyscallConn: os.File.Fd would switch f to blocking mode, and a
// doorbell's eventfd must never block (nor can one that a peer shares).
func fileHandle(f *os.File) Handle {
	h := Handle{f: f}
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { h.fd, h.ok = int(fd), true })
	}
	return h
}

// HandlesPulled says whether a packet's handles must be pulled out of the
// sender's process by the receiver. On Unix they travel in the packet
// (SCM_RIGHTS), and the sender may close its own at once.
const HandlesPulled = false

// Close releases a received handle.
func (h Handle) Close() error {
	switch {
	case h.f != nil:
		return h.f.Close()
	case h.ok:
		return unix.Close(h.fd)
	}
	return nil
}
