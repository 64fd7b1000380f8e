//go:build !windows

package sys

import "syscall"

// The OS errors that a socket would give where shmlink reports ErrNoServer
// and ErrAddrInUse, so that code written for sockets recognises them.
var (
	ErrnoConnRefused error = syscall.ECONNREFUSED
	ErrnoAddrInUse   error = syscall.EADDRINUSE
)
