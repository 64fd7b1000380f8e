package shmlink

import "fmt"

// Status is the state of a link as one side sees it.
type Status int

const (
	// StatusWaiting: no peer yet (a Link waiting for its server, or for a
	// restarted one).
	StatusWaiting Status = iota
	// StatusConnected: the peer is there.
	StatusConnected
	// StatusPeerClosed: the peer closed the link cleanly.
	StatusPeerClosed
	// StatusPeerLost: the peer's process died or vanished without closing.
	StatusPeerLost
	// StatusClosed: this side closed the link.
	StatusClosed
	// StatusFailed: the link was closed because the peer broke the protocol.
	StatusFailed
)

// String returns the status in words, as "peer lost".
func (s Status) String() string {
	switch s {
	case StatusWaiting:
		return "waiting"
	case StatusConnected:
		return "connected"
	case StatusPeerClosed:
		return "peer closed"
	case StatusPeerLost:
		return "peer lost"
	case StatusClosed:
		return "closed"
	case StatusFailed:
		return "failed"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Status returns the link's current status.
func (c *Conn) Status() Status {
	st := c.status()
	if st == StatusConnected && c.ep.failErr.Load() != nil {
		// fail has recorded the error, which a read or write may already
		// have returned; the session's state follows it a moment later.
		return StatusFailed
	}
	return st
}

func (s *session) status() Status {
	switch s.state.Load() {
	case stateOpen:
		return StatusConnected
	case statePeerClosed:
		return StatusPeerClosed
	case statePeerLost:
		return StatusPeerLost
	case stateFailed:
		return StatusFailed
	}
	return StatusClosed
}

// Done returns a channel that is closed when the link stops being
// connected: the peer closed it, the peer was lost, the link failed or this
// side closed it. Status then says which.
func (c *Conn) Done() <-chan struct{} { return c.done }
