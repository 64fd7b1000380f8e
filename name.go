package shmlink

import (
	"fmt"
	"os"

	"github.com/shmlink/shmlink/internal/sys"
)

// MaxNameLen bounds a plain link name. An absolute path is bounded by the
// operating system's limit on an endpoint path instead (107 bytes for a
// unix socket on Linux).
const MaxNameLen = 64

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

// endpointPath resolves a link name to the endpoint the OS layer listens
// on. A name that is an absolute path is taken as that path; any other
// name lives in RuntimeDir, which is created if needed.
func endpointPath(name string) (string, error) {
	if err := platformCheck(); err != nil {
		return "", err
	}
	if sys.IsPathName(name) {
		if err := sys.CheckPathName(name); err != nil {
			return "", fmt.Errorf("%w: %q: %w", ErrInvalidName, name, err)
		}
		return name, nil
	}
	if err := validName(name); err != nil {
		return "", err
	}
	dir, err := runtimeDir()
	if err != nil {
		return "", err
	}
	p, err := sys.EndpointPath(dir, name)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %w", ErrInvalidName, name, err)
	}
	return p, nil
}

// RuntimeDir returns the directory that holds this user's link names,
// creating it if needed: $SHMLINK_DIR if set, else $XDG_RUNTIME_DIR/shmlink,
// else shmlink-UID in the temporary directory. On Linux it has mode 0700;
// an existing directory owned by someone else, or open to other users, is
// refused: a link name must not be something another user can squat on.
func RuntimeDir() (string, error) {
	dir, err := runtimeDir()
	if err != nil {
		return "", fmt.Errorf("shmlink: %w", err)
	}
	return dir, nil
}

func runtimeDir() (string, error) {
	if err := platformCheck(); err != nil {
		return "", err
	}
	return sys.RuntimeDir(os.Getenv(RuntimeDirEnv))
}

// platformCheck comes first in every entry point: without a backend,
// nothing else can be meaningful.
func platformCheck() error {
	if !sys.Supported {
		return ErrUnsupported
	}
	return nil
}
