package shmlink

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"

	"github.com/shmlink/shmlink/internal/ring"
	"github.com/shmlink/shmlink/internal/sys"
)

// Errors returned by shmlink, for use with errors.Is.
//
// The rule for every error this package returns: a sentinel says what
// happened, without a prefix; it reaches the caller wrapped exactly once
// with the operation and the name: as a *net.OpError with Net "shmlink"
// from the calls that have a net package counterpart (Listen, Dial, a
// Dialer, Conn and Listener methods), and as "shmlink: OP "NAME": ..."
// from the others (Open and a Link's methods, Probe, ListLinks,
// RuntimeDir). The causes below a sentinel stay in the chain, so errors.Is
// also finds the underlying context or OS error. io.EOF is returned bare,
// as io.Reader requires.
var (
	// ErrUnsupported is returned by every entry point on an operating
	// system without a backend yet. It matches errors.ErrUnsupported.
	ErrUnsupported = fmt.Errorf("not supported on %s yet: %w", runtime.GOOS, errors.ErrUnsupported)

	// ErrInvalidName reports a link name that is empty, too long, or has
	// characters outside [A-Za-z0-9._+@:-] (or, for an absolute path, one
	// that is not clean).
	ErrInvalidName = errors.New("invalid link name")

	// ErrInvalidConfig reports a Config field out of range.
	ErrInvalidConfig = errors.New("invalid config")

	// ErrNoServer reports a Dial to a name nobody listens on. Like a
	// refused socket connection, it also matches syscall.ECONNREFUSED.
	ErrNoServer error = &errnoError{"no server listening", sys.ErrnoConnRefused}

	// ErrAddrInUse reports a Listen on a name a live server already has.
	// It also matches syscall.EADDRINUSE.
	ErrAddrInUse error = &errnoError{"name in use by a live server", sys.ErrnoAddrInUse}

	// ErrBusy reports a server that serves no more clients at the moment
	// (Config.MaxClients).
	ErrBusy = errors.New("server busy")

	// ErrPermission reports a peer refused by the credential check, on
	// either side, or a name this user may not connect to.
	ErrPermission = errors.New("peer not permitted")

	// ErrHandshake reports a failed handshake: the peer spoke another
	// version or sent something invalid.
	ErrHandshake = errors.New("handshake failed")

	// ErrPeerClosed is returned by writes after the peer closed the link
	// cleanly. Reads return io.EOF once all the peer's data is read.
	ErrPeerClosed = errors.New("peer closed the link")

	// ErrNoPeer is returned by the Send of a Link configured with FailFast
	// while no peer is connected.
	ErrNoPeer = errors.New("no peer connected")

	// ErrPeerLost reports that the peer vanished without closing: its
	// process died or was killed. Reads first return everything the peer
	// had committed.
	ErrPeerLost = errors.New("peer lost")

	// ErrCorrupt reports that the peer broke the shared-memory protocol;
	// the link is closed.
	ErrCorrupt = ring.ErrCorrupt

	// ErrMessageTooLarge reports a message over the limit: a write larger
	// than the peer accepts (nothing is sent), or a received message larger
	// than Config.MaxMessageSize (it is skipped).
	ErrMessageTooLarge = ring.ErrMessageTooLarge

	// ErrTimeout is returned when a deadline passes. It satisfies net.Error
	// with Timeout() true and matches os.ErrDeadlineExceeded.
	ErrTimeout net.Error = timeoutError{}
)

// ShortBufferError is returned by ReadMessageInto when the next message does
// not fit the buffer; nothing was consumed. It matches io.ErrShortBuffer.
type ShortBufferError struct {
	Need int // the length of the next message: the buffer it needs
}

// Error says how large a buffer the message needs.
func (e *ShortBufferError) Error() string {
	return fmt.Sprintf("short buffer: next message needs %d bytes", e.Need)
}

// Is makes a ShortBufferError match io.ErrShortBuffer.
func (e *ShortBufferError) Is(target error) bool { return target == io.ErrShortBuffer }

// errnoError is a sentinel that also matches the OS error a socket would
// have given in its place.
type errnoError struct {
	msg   string
	errno error
}

func (e *errnoError) Error() string        { return e.msg }
func (e *errnoError) Is(target error) bool { return target == e.errno }

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
func (timeoutError) Is(target error) bool {
	return target == os.ErrDeadlineExceeded
}

// opErr wraps the error of an entry point that names a link and has no
// net package counterpart: the one place the "shmlink:" prefix is added.
func opErr(op, name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("shmlink: %s %q: %w", op, name, err)
}

// netErr wraps the error of Listen or Dial as the net package would.
func netErr(op, name string, err error) error {
	return &net.OpError{Op: op, Net: "shmlink", Addr: &Addr{Name: name}, Err: err}
}
