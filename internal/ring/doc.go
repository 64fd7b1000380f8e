// Package ring implements the shared-memory part of a link: the segment
// header, and per direction a single-producer, single-consumer byte ring
// that carries messages as chunks (PROTOCOL.md describes the format).
//
// Nothing here blocks or makes system calls. When a Producer needs space or
// a Reader needs data, and when the other side has announced that it
// sleeps, it calls the Waiter its owner supplied (package shmlink, which
// waits and rings with internal/wake and internal/sys doorbells).
//
// The peer is untrusted: every index and header read from shared memory is
// copied once, validated, and violations are reported as ErrCorrupt. Data
// bytes are copied out and may be garbage, but can never lead a reader
// outside the mapping or into an allocation larger than its limit.
package ring
