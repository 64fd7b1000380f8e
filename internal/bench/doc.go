// Package bench measures shmlink against unix sockets, pipes and loopback
// TCP between this process and peer processes it starts, as `shmlink bench`
// shows it. Every transport runs the same workloads with the same framing
// (package workload), interleaved round by round so that a disturbance
// from the rest of the machine touches all of them alike.
//
// The sockets and pipes run twice for one-way streams: writing each
// message at once, as request/response must, and buffered with a write per
// batch, the strongest way to stream small messages over them. One-way
// figures are compared with the fastest of these; round trips, which
// buffering cannot help, with the plain unix socket.
//
// Every figure is also compared with the limit measured in the same run
// (package limit): a bare ping-pong for round trips, whose time is also
// the run's Placement, and a bare ring one way. RunIdle and RunLinks sweep
// the regimes that a busy benchmark hides: a receiver idle between
// requests and many links busy at once, with the CPU time they cost.
package bench
