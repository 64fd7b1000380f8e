// Package wake is the waiting half of shmlink's sleep protocol. A side
// that finds nothing to do spins for a short budget (the common case,
// where the peer answers within microseconds, never sleeps), then
// announces in shared memory that it sleeps, re-checks, and parks on its
// Doorbell. The budget is learned per direction of each link (Policy) and
// dropped while the CPU is wanted elsewhere (crowd.go). Between the spin
// and the sleep, a wait can sit in the process's poller (poller.go), which
// polls for all such waits at once, with its own learned budget. The peer sees the announcement after its next publish and
// rings the doorbell; PROTOCOL.md ("Sleeping and waking") says why no
// wake-up is lost.
//
// docs/wakeup.md records the measurements behind the design and the spin
// budget.
package wake
