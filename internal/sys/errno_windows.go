package sys

import "golang.org/x/sys/windows"

// The OS errors that a socket would give where shmlink reports ErrNoServer
// and ErrAddrInUse, so that code written for sockets recognises them. On
// Windows sockets report Winsock codes (what net.Dial returns for a refused
// TCP connection), not the invented syscall.ECONNREFUSED.
var (
	ErrnoConnRefused error = windows.WSAECONNREFUSED
	ErrnoAddrInUse   error = windows.WSAEADDRINUSE
)
