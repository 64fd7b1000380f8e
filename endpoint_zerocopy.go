package shmlink

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

// The endpoint's half of the zero-copy API (zerocopy.go). A reservation
// holds the writers' lock from ReserveMessage to CommitMessage or
// CancelMessage, and a loan holds the readers' lock from BorrowMessage to
// ReleaseMessage: the reserved room is at the ring's tail and the lent
// chunk at its head, so no other writer, or reader, may touch the ring
// meanwhile, and waiting for the lock is how concurrent writers (readers)
// take turns, as they do for WriteMessage.
//
// Both lend memory of the segment to the caller, so the segment must stay
// mapped until the lease ends, even if Close comes first: Close does not
// wait for a lease (the caller may hold it on the goroutine that closes),
// it leaves the freeing to whoever ends the last one.

// leases counts an endpoint's outstanding reservation and loan, and holds
// the end of a Close that came while one was outstanding.
type leases struct {
	mu        sync.Mutex
	n         int
	closeRest func() // the rest of close, run when n drops to 0

	// reserved and lent say that a reservation, a loan, is outstanding.
	// Ending one swaps its flag to false first, so that of two calls
	// that race to end it only one does (and unlocks the lock).
	reserved, lent atomic.Bool
	resv           reservation
}

// reservation is the outstanding ReserveMessage, written under the
// writers' lock before leases.reserved is set.
type reservation struct {
	inPlace  bool   // in the ring; otherwise in buf, copied at commit
	buf      []byte // the fallback for a message larger than the ring
	reserved int
}

// leaseStart records a new lease, unless the endpoint is closed.
func (ep *endpoint) leaseStart() error {
	ep.zc.mu.Lock()
	defer ep.zc.mu.Unlock()
	if ep.closed.Load() {
		return net.ErrClosed
	}
	ep.zc.n++
	return nil
}

// leaseEnd ends a lease, after its owner let go of its ring lock, and
// finishes a Close that waited for it.
func (ep *endpoint) leaseEnd() {
	ep.zc.mu.Lock()
	ep.zc.n--
	var rest func()
	if ep.zc.n == 0 {
		rest, ep.zc.closeRest = ep.zc.closeRest, nil
	}
	ep.zc.mu.Unlock()
	if rest != nil {
		rest()
	}
}

// deferClose leaves rest, the part of close that takes the ring locks and
// frees the memory, to the end of the outstanding leases, if there are
// any, and reports whether it did.
func (ep *endpoint) deferClose(rest func()) bool {
	ep.zc.mu.Lock()
	defer ep.zc.mu.Unlock()
	if ep.zc.n == 0 {
		return false
	}
	ep.zc.closeRest = rest
	return true
}

// reserve is ReserveMessage for any session of the endpoint.
func (ep *endpoint) reserve(ctx context.Context, n int, limit uint64) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("negative message length %d", n)
	}
	if uint64(n) > limit {
		return nil, fmt.Errorf("%w: %d bytes, peer accepts at most %d", ErrMessageTooLarge, n, limit)
	}
	if ep.closed.Load() { // before the lock, which a reservation may hold
		return nil, net.ErrClosed
	}
	ep.wmu.Lock()
	buf, err := ep.reserveLocked(ctx, n)
	if err != nil {
		ep.wmu.Unlock()
		return nil, err
	}
	return buf, nil
}

func (ep *endpoint) reserveLocked(ctx context.Context, n int) ([]byte, error) {
	if err := ep.stateErr(false); err != nil {
		return nil, err
	}
	if err := ep.expired(false); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &ep.zc.resv
	if uint64(n) > ep.wr.MaxReserve() {
		// Larger than the ring: no room can hold it at once. It goes the
		// copying way at commit, from a buffer of ours.
		if cap(r.buf) < n {
			r.buf = make([]byte, n)
		}
		if err := ep.leaseStart(); err != nil {
			return nil, err
		}
		*r = reservation{buf: r.buf, reserved: n}
		ep.zc.reserved.Store(true)
		return r.buf[:n:n], nil
	}
	buf, err := ep.wr.Reserve(ctx, uint64(n))
	if err != nil {
		return nil, ep.check(err)
	}
	if err := ep.leaseStart(); err != nil {
		_ = ep.wr.Cancel()
		return nil, err
	}
	*r = reservation{inPlace: true, buf: r.buf, reserved: n}
	ep.zc.reserved.Store(true)
	return buf, nil
}

// commit is CommitMessage: it sends the first n bytes of the reservation
// and ends it. A link that closed or failed meanwhile sends nothing.
func (ep *endpoint) commit(n int) error {
	r := &ep.zc.resv
	if !ep.zc.reserved.Load() {
		return ErrNotReserved
	}
	if n < 0 || n > r.reserved {
		return fmt.Errorf("commit of %d bytes, %d reserved; still reserved", n, r.reserved)
	}
	if !ep.zc.reserved.CompareAndSwap(true, false) {
		return ErrNotReserved
	}
	err := ep.stateErr(false)
	switch {
	case err != nil:
		if r.inPlace {
			_ = ep.wr.Cancel()
		}
	case r.inPlace:
		err = ep.wr.Commit(uint64(n))
	default:
		err = ep.check(ep.wr.WriteMessage(context.Background(), r.buf[:n]))
	}
	ep.wmu.Unlock()
	ep.leaseEnd()
	return err
}

// cancel is CancelMessage.
func (ep *endpoint) cancel() error {
	if !ep.zc.reserved.CompareAndSwap(true, false) {
		return ErrNotReserved
	}
	if ep.zc.resv.inPlace {
		_ = ep.wr.Cancel()
	}
	ep.wmu.Unlock()
	ep.leaseEnd()
	return nil
}

// borrow is BorrowMessage for any session of the endpoint.
func (ep *endpoint) borrow(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := ep.lockRead(); err != nil {
		return nil, err
	}
	m, _, err := ep.rd.Borrow(ctx)
	if err == nil {
		if err = ep.leaseStart(); err != nil {
			_ = ep.rd.Release()
		}
	}
	if err != nil {
		ep.rmu.Unlock()
		return nil, ep.check(err)
	}
	ep.zc.lent.Store(true)
	return m, nil
}

// release is ReleaseMessage.
func (ep *endpoint) release() error {
	if !ep.zc.lent.CompareAndSwap(true, false) {
		return ErrNotBorrowed
	}
	err := ep.rd.Release()
	ep.rmu.Unlock()
	ep.leaseEnd()
	return ep.check(err)
}
