package shmlink

import (
	"sync/atomic"

	"github.com/shmlink/shmlink/internal/wire"
)

// DirectionStats counts the traffic of one direction of a link, as seen by
// this side.
type DirectionStats struct {
	Messages  uint64 // whole messages sent or received
	Bytes     uint64 // payload bytes
	Waits     uint64 // times an operation found the ring full (send) or empty (receive)
	Sleeps    uint64 // of those waits, how many outlasted the spin and slept in the kernel
	Wakeups   uint64 // times this side woke the peer (each is one system call)
	HighWater uint64 // most bytes this side saw in the ring at once
	Fill      uint64 // bytes in the ring now
}

// Stats is a snapshot of a link's counters.
type Stats struct {
	Sent     DirectionStats
	Received DirectionStats
	RingSize int // bytes per ring
}

// Stats returns the link's counters. It never blocks: while another
// goroutine is inside a read or write, that direction's figures are the
// ones it last published, when it last began to sleep in a wait (that
// sleep counted), so they can lag by the operation in flight; an
// operation blocked on its peer shows as blocked.
func (c *Conn) Stats() Stats { return c.ep.stats() }

func (ep *endpoint) stats() Stats {
	s := Stats{RingSize: int(ep.wr.Size())}
	if ep.wmu.TryLock() {
		s.Sent = ep.sentStats()
		ep.wmu.Unlock()
	} else {
		s.Sent = ep.wsnap.load()
	}
	if ep.rmu.TryLock() {
		s.Received = ep.receivedStats()
		ep.rmu.Unlock()
	} else {
		s.Received = ep.rsnap.load()
	}
	return s
}

// sentStats and receivedStats run under the direction's lock, which close
// needs before it unmaps: reading the fill from shared memory is safe
// while the endpoint is not closed.
func (ep *endpoint) sentStats() DirectionStats {
	k := ep.wr.Counters
	d := DirectionStats{Messages: k.Messages, Bytes: k.Bytes, Waits: ep.wwait.Waits,
		Sleeps: ep.wwait.Sleeps, Wakeups: k.Wakeups, HighWater: k.HighWater}
	if !ep.closed.Load() {
		d.Fill = ep.wr.Fill()
	}
	return d
}

func (ep *endpoint) receivedStats() DirectionStats {
	c := ep.rd.Consumer()
	k := c.Counters
	d := DirectionStats{Messages: k.Messages, Bytes: k.Bytes, Waits: ep.rwait.Waits,
		Sleeps: ep.rwait.Sleeps, Wakeups: k.Wakeups, HighWater: k.HighWater}
	if !ep.closed.Load() {
		d.Fill = c.Fill()
	}
	return d
}

// publishStats publishes one direction's counters for Stats to read while
// the direction's lock is held; a waiter calls it as it begins to sleep
// (wake.Waiter.OnSleep), holding that lock.
func (ep *endpoint) publishStats(read bool) {
	if read {
		ep.rsnap.store(ep.receivedStats())
	} else {
		ep.wsnap.store(ep.sentStats())
	}
}

// statsSnapshot is one direction's counters as last published by the
// goroutine holding that direction's lock. Fields are stored one by one,
// so a reader may see a mix of two consecutive snapshots; each figure is
// still one that was true. Publishing allocates nothing: it runs on every
// sleep.
type statsSnapshot struct {
	messages, bytes, waits, sleeps, wakeups, highWater, fill atomic.Uint64
}

func (s *statsSnapshot) store(d DirectionStats) {
	s.messages.Store(d.Messages)
	s.bytes.Store(d.Bytes)
	s.waits.Store(d.Waits)
	s.sleeps.Store(d.Sleeps)
	s.wakeups.Store(d.Wakeups)
	s.highWater.Store(d.HighWater)
	s.fill.Store(d.Fill)
}

func (s *statsSnapshot) load() DirectionStats {
	return DirectionStats{Messages: s.messages.Load(), Bytes: s.bytes.Load(), Waits: s.waits.Load(),
		Sleeps: s.sleeps.Load(), Wakeups: s.wakeups.Load(), HighWater: s.highWater.Load(), Fill: s.fill.Load()}
}

// record is the link's counters as its server reports them to Stat.
func (c *Conn) record() wire.LinkRecord {
	s := c.Stats()
	dir := func(d DirectionStats) wire.DirRecord {
		return wire.DirRecord{Messages: d.Messages, Bytes: d.Bytes, Waits: d.Waits, Sleeps: d.Sleeps,
			Wakeups: d.Wakeups, HighWater: d.HighWater, Fill: d.Fill}
	}
	return wire.LinkRecord{PID: uint32(c.remote.PID), Since: c.since.UnixNano(), RingSize: uint64(s.RingSize),
		Sent: dir(s.Sent), Received: dir(s.Received)}
}
