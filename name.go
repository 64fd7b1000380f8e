package shmlink

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/shmlink/shmlink/internal/sys"
)

// MaxNameLen bounds a plain link name. An absolute path is bounded by the
// kernel's limit on a unix socket path instead (107 bytes).
const MaxNameLen = 64

const (
	maxSocketPath = 107
	socketSuffix  = ".sock"
)

// RuntimeDirEnv, if set, names the directory where plain link names live,
// overriding $XDG_RUNTIME_DIR/shmlink and the per-user temporary directory.
const RuntimeDirEnv = "SHMLINK_DIR"

// validName reports whether name is a plain name: 1 to MaxNameLen bytes of
// [A-Za-z0-9._+@:-], not starting with a dot. That rules out path tricks
// ("/", "..", NUL) by construction.
func validName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: %q: must be 1 to %d bytes", ErrInvalidName, name, MaxNameLen)
	}
	if name[0] == '.' {
		return fmt.Errorf("%w: %q: must not start with a dot", ErrInvalidName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.' || c == '_' || c == '-' || c == '+' || c == '@' || c == ':':
		default:
			return fmt.Errorf("%w: %q: byte %q not allowed (use letters, digits and ._+@:-, or an absolute path)",
				ErrInvalidName, name, c)
		}
	}
	return nil
}

// socketPath resolves a link name to its socket file. A name starting with
// "/" is taken as that path; any other name lives in RuntimeDir, which is
// created if needed.
func socketPath(name string) (string, error) {
	if filepath.IsAbs(name) {
		if filepath.Clean(name) != name || len(name) > maxSocketPath {
			return "", fmt.Errorf("%w: %q: an absolute path must be clean and at most %d bytes",
				ErrInvalidName, name, maxSocketPath)
		}
		for i := 0; i < len(name); i++ {
			if name[i] == 0 {
				return "", fmt.Errorf("%w: %q contains NUL", ErrInvalidName, name)
			}
		}
		return name, nil
	}
	if err := validName(name); err != nil {
		return "", err
	}
	dir, err := RuntimeDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, name+socketSuffix)
	if len(p) > maxSocketPath {
		return "", fmt.Errorf("%w: %q: socket path %s exceeds %d bytes", ErrInvalidName, name, p, maxSocketPath)
	}
	return p, nil
}

// RuntimeDir returns the directory that holds this user's link sockets,
// creating it with mode 0700 if needed: $SHMLINK_DIR if set, else
// $XDG_RUNTIME_DIR/shmlink, else shmlink-UID in the temporary directory.
// An existing directory owned by someone else, or open to other users, is
// refused: a link name must not be something another user can squat on.
func RuntimeDir() (string, error) {
	dir := os.Getenv(RuntimeDirEnv)
	if dir == "" {
		if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" && filepath.IsAbs(x) {
			dir = filepath.Join(x, "shmlink")
		} else {
			dir = filepath.Join(os.TempDir(), "shmlink-"+strconv.Itoa(os.Getuid()))
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return "", fmt.Errorf("shmlink: create runtime dir: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", fmt.Errorf("shmlink: runtime dir: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("shmlink: runtime dir %s is not a directory", dir)
	}
	if owner := sys.Owner(fi); owner != os.Getuid() {
		return "", fmt.Errorf("shmlink: runtime dir %s is owned by uid %d, not %d", dir, owner, os.Getuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("shmlink: runtime dir %s has mode %v; want no group or other access",
			dir, fi.Mode().Perm())
	}
	return dir, nil
}
