package sys

import (
	"context"
	"errors"
	"time"
)

// Supported reports whether this operating system has a backend.
const Supported = supported

// Errors the platform files return, for the caller to translate.
var (
	// ErrUnsupported: no backend for this operating system yet.
	ErrUnsupported = errors.ErrUnsupported

	// ErrNoListener: nobody listens on the name (no endpoint, or a stale
	// one left by a dead server).
	ErrNoListener = errors.New("no listener")

	// ErrInUse: a live listener already has the name.
	ErrInUse = errors.New("name in use by a live listener")

	// ErrAccess: the OS refused access to the name's endpoint.
	ErrAccess = errors.New("access denied")

	// ErrBadHandle: a handle received from the peer is not of the kind
	// expected (a segment that is not sealed shared memory, a bell that is
	// not an event).
	ErrBadHandle = errors.New("handle of the wrong kind")

	// ErrTooManyHandles: a packet carried more handles than the receiver
	// allowed; all of them were closed.
	ErrTooManyHandles = errors.New("packet carried unexpected handles")
)

// The OS errors that a socket would give where shmlink reports ErrNoServer
// and ErrAddrInUse, so that code written for sockets recognises them, are
// ErrnoConnRefused and ErrnoAddrInUse, declared per OS (errno_*.go).
var (
	_ error = ErrnoConnRefused
	_ error = ErrnoAddrInUse
)

// Handle is an OS object that travels with a packet: a segment or a
// doorbell. Whoever holds one closes it or hands it on; a Handle from
// Segment.Handle or Doorbell.Handle is borrowed and must not be closed.
// It is declared per OS (handle_*.go): a file on Unix, a HANDLE on
// Windows. Its zero value is "no handle", and closing it does nothing.
var _ interface{ Close() error } = Handle{}

// CloseHandles closes every handle in hs.
func CloseHandles(hs []Handle) {
	for _, h := range hs {
		h.Close()
	}
}

// Cred is the identity of the process at the other end of a Conn, as the
// OS recorded it when the connection was made.
type Cred struct {
	PID      int
	UID      int   // -1 where the OS has no numeric user ids
	GID      int   // primary group, -1 where unknown
	Groups   []int // supplementary groups; nil if the OS cannot say
	SameUser bool  // the peer runs as the same user as this process
}

// The API every platform implements. These declarations compile on every
// system, so a platform's files must match them exactly.
var (
	_ func(name string, size int) (*Segment, error)            = CreateSegment
	_ func(h Handle, minSize, maxSize int64) (*Segment, error) = AttachSegment
	_ func() (*Doorbell, error)                                = NewDoorbell
	_ func(h Handle) (*Bell, error)                            = OpenBell
	_ func(ctx context.Context, path string) (*Conn, error)    = Dial
	_ func(path string, shared bool) (*Listener, error)        = Listen
	_ func(override string) (string, error)                    = RuntimeDir
	_ func(dir, name string) (string, error)                   = EndpointPath
	_ func(path string) error                                  = CheckPathName
	_ func(name string) bool                                   = IsPathName
	_ func(dir string) ([]Entry, error)                        = ListNames
	_ func(dir string) (*DirWatch, error)                      = WatchDir
	_ func(cpus []int) error                                   = PinProcess
	_ func() int64                                             = Nanotime
	_ interface {
		Mem() []byte
		Handle() Handle
		Close() error
	} = (*Segment)(nil)
	_ interface {
		Wait(deadline time.Time) error
		Ring()
		Nudge()
		OnHostile(f func())
		Handle() Handle
		Close() error
	} = (*Doorbell)(nil)
	_ interface {
		Ring()
		OnHostile(f func())
		Close() error
	} = (*Bell)(nil)
	_ interface {
		Send(b []byte, hs ...Handle) error
		Recv(b []byte, maxHandles int) (int, []Handle, error)
		PeerCred() (Cred, error)
		SetDeadline(t time.Time) error
		CloseWrite() error
		YieldToPeer()
		Close() error
	} = (*Conn)(nil)
	_ interface {
		Accept() (*Conn, error)
		Close() error
	} = (*Listener)(nil)
	_ interface {
		Wait(deadline time.Time) error
		Close() error
	} = (*DirWatch)(nil)
)

// Entry is one name found by ListNames.
type Entry struct {
	Name string // the link name
	Path string // its endpoint
}
