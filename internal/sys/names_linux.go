package sys

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// On Linux a link name is a unix socket file. The kernel bounds the path
// of one (sun_path, less the terminating NUL).
const (
	maxSocketPath = 107
	socketSuffix  = ".sock"
)

// RuntimeDir returns the directory that holds this user's link names,
// creating it with mode 0700 if needed: override if set, else
// $XDG_RUNTIME_DIR/shmlink, else shmlink-UID in the temporary directory.
// An existing directory owned by someone else, or open to other users, is
// refused: a link name must not be something another user can squat on.
func RuntimeDir(override string) (string, error) {
	dir := override
	if dir == "" {
		if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" && filepath.IsAbs(x) {
			dir = filepath.Join(x, "shmlink")
		} else {
			dir = filepath.Join(os.TempDir(), "shmlink-"+strconv.Itoa(os.Getuid()))
		}
	}
	// Every Dial and Listen comes here: look before making, so that the
	// usual case (the directory is there) costs one system call, not two.
	fi, err := os.Lstat(dir)
	if os.IsNotExist(err) {
		if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
			return "", fmt.Errorf("create runtime dir: %w", err)
		}
		fi, err = os.Lstat(dir)
	}
	if err != nil {
		return "", fmt.Errorf("runtime dir: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("runtime dir %s is not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Getuid() {
		owner := -1
		if ok {
			owner = int(st.Uid)
		}
		return "", fmt.Errorf("runtime dir %s is owned by uid %d, not %d", dir, owner, os.Getuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("runtime dir %s has mode %v; want no group or other access", dir, fi.Mode().Perm())
	}
	return dir, nil
}

// EndpointPath is the socket file of the plain name in dir.
func EndpointPath(dir, name string) (string, error) {
	p := filepath.Join(dir, name+socketSuffix)
	if len(p) > maxSocketPath {
		return "", fmt.Errorf("socket path %s exceeds %d bytes", p, maxSocketPath)
	}
	return p, nil
}

// IsPathName reports whether name is an explicit endpoint path rather than
// a plain name: on Linux, an absolute socket path.
func IsPathName(name string) bool { return filepath.IsAbs(name) }

// CheckPathName validates an explicit endpoint path.
func CheckPathName(p string) error {
	if filepath.Clean(p) != p || len(p) > maxSocketPath {
		return fmt.Errorf("an absolute path must be clean and at most %d bytes", maxSocketPath)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("path contains NUL")
	}
	return nil
}

// ListNames returns the link names in dir: its socket files, without
// their suffix. The caller validates the names.
func ListNames(dir string) ([]Entry, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []Entry
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), socketSuffix)
		if ok && e.Type()&os.ModeSocket != 0 {
			names = append(names, Entry{Name: name, Path: filepath.Join(dir, e.Name())})
		}
	}
	return names, nil
}

// DirWatch reports changes to the entries of a name directory, so that a
// client waiting for a server learns at once that it appeared, instead of
// polling. On Linux it is an inotify descriptor read through the netpoller.
type DirWatch struct {
	f   *os.File
	buf []byte
}

// WatchDir starts watching dir for entries being created, moved in or
// changing attributes.
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

// Wait blocks until something changed in the directory, the deadline
// passes (os.ErrDeadlineExceeded) or the watch is closed. Events are
// drained, not interpreted: the caller simply tries again.
func (w *DirWatch) Wait(deadline time.Time) error {
	if err := w.f.SetReadDeadline(deadline); err != nil {
		return err
	}
	_, err := w.f.Read(w.buf)
	return err
}

// Close stops watching; a Wait in progress returns.
func (w *DirWatch) Close() error { return w.f.Close() }
