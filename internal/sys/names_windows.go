package sys

import (
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unsafe"

	"golang.org/x/sys/windows"
)

// On Windows a link name is a named pipe, \\.\pipe\<dir><NAME>. The pipe
// namespace is one for the whole machine, across users and sessions, so
// the "directory" of a user's names is a prefix that carries the user's
// SID: \\.\pipe\shmlink-<SID>. (a dot after the SID, which neither a SID
// nor the start of a name can contain, so no user's prefix is a prefix of
// another's).
//
// The name is owned through an existence lock: an event named
// Global\shmlink-lock-<pipe name>, which the listener holds and which
// vanishes with its process (see Listen). Nothing else is named: segments
// and doorbells are unnamed objects.
const (
	lockPrefix = `shmlink-lock-`
	globalNS   = `Global\`
)

// RuntimeDir returns the prefix that holds this user's link names:
// \\.\pipe\shmlink-<SID>. by default. An override that is itself a pipe
// prefix (\\.\pipe\...) is used as it is; any other override, such as a
// directory path in SHMLINK_DIR, selects a private namespace of this
// user's, \\.\pipe\shmlink-<SID>~<hash of the override>., so that tests
// and programs that set their own directory are kept apart as on Linux.
// Nothing is created: a prefix is not an object.
func RuntimeDir(override string) (string, error) {
	sid, err := ownSID()
	if err != nil {
		return "", fmt.Errorf("runtime dir: %w", err)
	}
	if override == "" {
		return pipePrefix + "shmlink-" + sid.String() + ".", nil
	}
	if IsPathName(override) {
		if err := checkPipeName(override, true); err != nil {
			return "", fmt.Errorf("runtime dir %q: %w", override, err)
		}
		return override, nil
	}
	h := fnv.New64a()
	h.Write([]byte(override))
	return pipePrefix + "shmlink-" + sid.String() + "~" + strconv.FormatUint(h.Sum64(), 16) + ".", nil
}

// EndpointPath is the pipe of the plain name in dir: dir followed by name.
func EndpointPath(dir, name string) (string, error) {
	p := dir + name
	if err := checkPipeName(p, false); err != nil {
		return "", fmt.Errorf("pipe %s: %w", p, err)
	}
	return p, nil
}

// IsPathName reports whether name is an explicit endpoint path rather than
// a plain name: on Windows, a pipe path, \\.\pipe\ and a name.
func IsPathName(name string) bool {
	return len(name) >= len(pipePrefix) && strings.EqualFold(name[:len(pipePrefix)], pipePrefix)
}

// CheckPathName validates an explicit endpoint path: \\.\pipe\ then a
// name without backslashes (the lock's object name could not hold one),
// at most 256 UTF-16 units in all.
func CheckPathName(p string) error { return checkPipeName(p, false) }

func checkPipeName(p string, prefixOnly bool) error {
	if !IsPathName(p) {
		return fmt.Errorf(`a pipe path starts with %s`, pipePrefix)
	}
	rest := p[len(pipePrefix):]
	switch {
	case rest == "" && !prefixOnly:
		return errors.New("empty pipe name")
	case strings.ContainsAny(rest, "\\/\x00"):
		return errors.New("a pipe name may not contain \\, / or NUL")
	case len(utf16.Encode([]rune(p))) > maxPipePath:
		return fmt.Errorf("a pipe path has at most %d characters", maxPipePath)
	}
	return nil
}

// lockName is the name of the existence lock of the pipe at path.
func lockName(path string) string { return globalNS + lockPrefix + path[len(pipePrefix):] }

// ListNames returns the link names in dir: the names of the live
// listeners whose pipe starts with dir. Wine cannot list \\.\pipe\, and a
// pipe outlives nothing anyway, so it lists the existence locks in the
// kernel's global object directory (\BaseNamedObjects) instead, which
// works on Windows and under Wine. The caller validates the names.
func ListNames(dir string) ([]Entry, error) {
	if err := checkPipeName(dir, true); err != nil {
		return nil, fmt.Errorf("list %q: %w", dir, err)
	}
	want := lockPrefix + dir[len(pipePrefix):]
	var names []Entry
	err := listObjects(objectNameDirectoryGlobal, func(name, typ string) {
		if typ != "Event" || len(name) <= len(want) || !strings.EqualFold(name[:len(want)], want) {
			return
		}
		n := name[len(want):]
		names = append(names, Entry{Name: n, Path: dir + n})
	})
	return names, err
}

// objectDirectoryInformation is OBJECT_DIRECTORY_INFORMATION.
type objectDirectoryInformation struct {
	Name     windows.NTUnicodeString
	TypeName windows.NTUnicodeString
}

// listObjects calls f with the name and type of each object in the object
// directory dir. It asks for one entry at a time: Wine implements only
// that mode.
func listObjects(dir string, f func(name, typ string)) error {
	u, err := windows.NewNTUnicodeString(dir)
	if err != nil {
		return err
	}
	oa := windows.OBJECT_ATTRIBUTES{ObjectName: u}
	oa.Length = uint32(unsafe.Sizeof(oa))
	var dh windows.Handle
	if r, _, _ := procNtOpenDirectoryObject.Call(uintptr(unsafe.Pointer(&dh)), directoryQuery, uintptr(unsafe.Pointer(&oa))); r != 0 {
		return fmt.Errorf("open object directory %s: %w", dir, windows.NTStatus(r))
	}
	defer windows.CloseHandle(dh)
	var buf [512]uint64
	var ctx, n uint32
	for restart := uintptr(1); ; restart = 0 {
		r, _, _ := procNtQueryDirectoryObject.Call(uintptr(dh), uintptr(unsafe.Pointer(&buf[0])), unsafe.Sizeof(buf),
			1, restart, uintptr(unsafe.Pointer(&ctx)), uintptr(unsafe.Pointer(&n)))
		switch {
		case r == statusNoMoreEntries:
			return nil
		case r == statusBufferTooSmall || r == statusInfoLengthMismatch:
			continue // a name longer than any of ours: skip it
		case r != 0 && r>>30 == 3: // an error; warnings and successes go on
			return fmt.Errorf("list object directory %s: %w", dir, windows.NTStatus(r))
		}
		info := (*objectDirectoryInformation)(unsafe.Pointer(&buf[0]))
		name, ok1 := unicodeInBuffer(info.Name, buf[:])
		typ, ok2 := unicodeInBuffer(info.TypeName, buf[:])
		if ok1 && ok2 {
			f(name, typ)
		}
	}
}

// unicodeInBuffer converts s, whose characters must lie inside buf.
func unicodeInBuffer(s windows.NTUnicodeString, buf []uint64) (string, bool) {
	base := uintptr(unsafe.Pointer(&buf[0]))
	end := base + uintptr(len(buf))*8
	p := uintptr(unsafe.Pointer(s.Buffer))
	if s.Length == 0 {
		return "", true
	}
	if s.Length%2 != 0 || p < base || p+uintptr(s.Length) > end {
		return "", false
	}
	return windows.UTF16ToString(unsafe.Slice(s.Buffer, s.Length/2)), true
}

// DirWatch reports that the names of a prefix may have changed, so that a
// client waiting for a server tries again. Windows has nothing like
// inotify for \\.\pipe\, so on Windows it is a poll: Wait returns every
// watchPoll, and the caller's retry is one CreateFile.
type DirWatch struct {
	closed chan struct{}
	once   sync.Once
}

// watchPoll is how often a DirWatch says "try again": a server that
// appears is found within about this long.
const watchPoll = 5 * time.Millisecond

// WatchDir starts watching dir (a prefix or, as the caller may pass,
// \\.\pipe\ itself).
func WatchDir(dir string) (*DirWatch, error) {
	return &DirWatch{closed: make(chan struct{})}, nil
}

// Wait blocks until it is time to look again (nil), the deadline passes
// (os.ErrDeadlineExceeded) or the watch is closed (os.ErrClosed).
func (w *DirWatch) Wait(deadline time.Time) error {
	poll := time.Now().Add(watchPoll)
	over := !deadline.IsZero() && deadline.Before(poll)
	if over {
		poll = deadline
	}
	t := time.NewTimer(time.Until(poll))
	defer t.Stop()
	select {
	case <-w.closed:
		return os.ErrClosed
	case <-t.C:
		if over {
			return os.ErrDeadlineExceeded
		}
		return nil
	}
}

// Close stops watching; a Wait in progress returns.
func (w *DirWatch) Close() error {
	w.once.Do(func() { close(w.closed) })
	return nil
}
