// Package bench measures shmlink against unix sockets, pipes and loopback
// TCP between this process and peer processes it starts, as `shmlink bench`
// shows it. Every transport runs the same workloads with the same framing
// (package workload), interleaved round by round so that a disturbance
// from the rest of the machine touches all of them alike.
package bench
