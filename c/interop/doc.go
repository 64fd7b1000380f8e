// Package interop holds the tests of the C library in c/ (shmlink.h,
// shmlink.c) against the Go implementation: each side as client and as
// server, in separate processes, the C side under AddressSanitizer and
// UndefinedBehaviorSanitizer. The tests compile the C code with the
// machine's cc (internal/cpeer); a machine without one fails them.
//
// go test ./c/interop runs them; go test -run '^$' -bench . ./c/interop
// compares a C peer with a Go peer in the same run.
package interop
