package shmlink

import (
	"context"
	"errors"
)

// Zero copy. WriteMessage copies a message into the ring and ReadMessage
// copies it out; for large messages those copies are most of the cost.
// ReserveMessage lends the caller the ring room of the next message, to be
// filled in place and sent with CommitMessage; BorrowMessage lends the
// next message where it lies in the ring, until ReleaseMessage.

var (
	// ErrNotReserved is returned by CommitMessage and CancelMessage when
	// no message is reserved.
	ErrNotReserved = errors.New("no message reserved")

	// ErrNotBorrowed is returned by ReleaseMessage when no message is
	// borrowed.
	ErrNotBorrowed = errors.New("no message borrowed")
)

// ReserveMessage reserves room for a message of up to n bytes and returns
// it, for the caller to fill and send with CommitMessage, or drop with
// CancelMessage. A message that fits the ring (n at most the ring size
// less 8 bytes of header) is reserved in the ring itself, so the bytes the
// caller writes are the bytes the peer reads: no copy at all on this side.
// A larger one cannot be, and ReserveMessage then returns a buffer of the
// Conn's that CommitMessage copies through the ring as WriteMessage would;
// the calls work the same either way. Since the room must be contiguous,
// a message of half the ring or more leaves no room for the next one until
// the peer has released it: for zero copy of large messages, a ring of
// four times the message or more (Config.RingSize) lets the two sides
// overlap.
//
// A reservation is exclusive, like a lock: until it ends, other writers on
// this Conn wait, and the goroutine that holds it must not write otherwise
// (it would wait for itself). ReserveMessage waits for room until the
// write deadline, like WriteMessage; once it has returned, CommitMessage
// of a message reserved in place never waits, so the deadline no longer
// applies (the commit of a message larger than the ring copies it as
// WriteMessage does, waiting for room until the deadline). A message larger than the peer's MaxMessageSize is refused with
// ErrMessageTooLarge.
//
// The room is shared memory. The peer can read it before the commit (an
// honest peer does not) and a hostile one can write it: do not keep
// secrets in it before the commit, nor trust what you read back from it.
// The slice is the caller's until CommitMessage or CancelMessage, and no
// longer: after that the ring reuses the bytes.
//
// Close does not wait for a reservation: it closes the link at once for
// every other call, and frees its memory when the reservation ends, so
// that the slice stays valid; CommitMessage then sends nothing and returns
// an error matching net.ErrClosed.
func (c *Conn) ReserveMessage(n int) ([]byte, error) {
	return c.ReserveMessageContext(context.Background(), n)
}

// ReserveMessageContext is ReserveMessage that also gives up waiting for
// room when ctx is done, returning ctx.Err() (wrapped).
func (c *Conn) ReserveMessageContext(ctx context.Context, n int) ([]byte, error) {
	b, err := c.ep.reserve(ctx, n, c.maxSend)
	return b, c.opError("write", err)
}

// CommitMessage sends the first n bytes of the reserved room as one
// message and ends the reservation; n may be less than was reserved. If
// the link closed or failed since ReserveMessage, nothing is sent and the
// reservation ends with the error WriteMessage would return. It returns
// ErrNotReserved if no message is reserved, and an error, keeping the
// reservation, if n is more than was reserved.
func (c *Conn) CommitMessage(n int) error {
	return c.opError("write", c.ep.commit(n))
}

// CancelMessage ends the reservation without sending anything. It returns
// ErrNotReserved if no message is reserved.
func (c *Conn) CancelMessage() error {
	return c.opError("write", c.ep.cancel())
}

// BorrowMessage returns the next message without copying it, waiting for
// one until the read deadline, as ReadMessage does (with the same errors).
// The message is lent until ReleaseMessage: a message that lies in the
// ring in one piece (one of at most half the ring, as writers place them,
// or any that fits the ring when the peer reserved it) is returned where
// it lies, in shared memory; one that came in several pieces is assembled
// in a new buffer, as ReadMessage would return it.
//
// A loan is exclusive, like a lock: until ReleaseMessage, other readers on
// this Conn wait, and the goroutine that holds it must not read otherwise
// (it would wait for itself). Release promptly: the ring room of the
// message is not given back to the writer before.
//
// The bytes of a message lent in place stay writable by the peer process:
// an honest peer leaves them alone, a hostile one can change them while
// you read them. Whatever it does, the slice stays valid memory and the
// link's framing was validated before the loan, but its contents may
// differ between two reads: copy out what you must check before using it,
// and check the copy. The slice must not be used after ReleaseMessage,
// when the writer may already be overwriting it with its next message;
// keeping a part of it means copying that part. Close does not wait for a
// loan: the memory stays mapped until the release.
func (c *Conn) BorrowMessage() ([]byte, error) {
	return c.BorrowMessageContext(context.Background())
}

// BorrowMessageContext is BorrowMessage that also gives up when ctx is
// done. With ctx already done it lends nothing, even if a message is
// waiting.
func (c *Conn) BorrowMessageContext(ctx context.Context) ([]byte, error) {
	if err := c.readShutErr(); err != nil {
		return nil, err
	}
	m, err := c.ep.borrow(ctx)
	return m, c.opError("read", err)
}

// ReleaseMessage ends the loan of the message BorrowMessage returned and
// gives its ring room back to the writer. It returns ErrNotBorrowed if no
// message is borrowed, so a second release of one message is caught.
func (c *Conn) ReleaseMessage() error {
	return c.opError("read", c.ep.release())
}
