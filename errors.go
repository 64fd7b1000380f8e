package shmlink

import (
	"errors"
	"net"
	"os"

	"github.com/shmlink/shmlink/internal/ring"
)

// Errors returned by shmlink, for use with errors.Is. Most arrive wrapped
// with context (a *net.OpError from Conn methods).
var (
	// ErrInvalidName reports a link name that is empty, too long, or has
	// characters outside [A-Za-z0-9._+@:-] (or, for an absolute path, one
	// that is not clean).
	ErrInvalidName = errors.New("shmlink: invalid link name")

	// ErrInvalidConfig reports a Config field out of range.
	ErrInvalidConfig = errors.New("shmlink: invalid config")

	// ErrNoServer reports a Dial to a name nobody listens on.
	ErrNoServer = errors.New("shmlink: no server listening")

	// ErrAddrInUse reports a Listen on a name a live server already has.
	ErrAddrInUse = errors.New("shmlink: name in use by a live server")

	// ErrPermission reports a peer refused by the credential check, on
	// either side.
	ErrPermission = errors.New("shmlink: peer not permitted")

	// ErrHandshake reports a failed handshake: the peer spoke another
	// version or sent something invalid.
	ErrHandshake = errors.New("shmlink: handshake failed")

	// ErrPeerClosed is returned by writes after the peer closed the link
	// cleanly. Reads return io.EOF once all the peer's data is read.
	ErrPeerClosed = errors.New("shmlink: peer closed the link")

	// ErrNoPeer is returned by the Send of a Link configured with FailFast
	// while no peer is connected.
	ErrNoPeer = errors.New("shmlink: no peer connected")

	// ErrPeerLost reports that the peer vanished without closing: its
	// process died or was killed. Reads first return everything the peer
	// had committed.
	ErrPeerLost = errors.New("shmlink: peer lost")

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
// not fit; nothing was consumed. It matches io.ErrShortBuffer.
type ShortBufferError = ring.ShortBufferError

type timeoutError struct{}

func (timeoutError) Error() string   { return "shmlink: i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
func (timeoutError) Is(target error) bool {
	return target == os.ErrDeadlineExceeded
}
