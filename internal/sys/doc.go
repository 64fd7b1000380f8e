// Package sys is shmlink's operating-system layer: the only package that makes
// system calls. It creates and checks sealed memfd segments, maps them, makes
// eventfds, passes descriptors over unix sockets and reads peer credentials.
//
// Everything here is small and policy-free; the callers decide what a result
// means. Linux is the only supported OS for now; sys_other.go gives every
// function an ErrUnsupported body so that the module still builds elsewhere.
package sys
