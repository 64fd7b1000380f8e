// Package workload runs benchmark workloads over a message connection
// between this process and a peer process that it starts: round trips
// (the peer echoes) and one-way streams (the peer counts and acknowledges).
//
// It knows nothing of shmlink itself: a Transport says how the two
// processes connect. That keeps it importable from shmlink's own test
// benchmarks, which cannot import a package that imports shmlink.
package workload
