// Package sys is shmlink's operating-system layer: the only package that
// makes system calls. It offers one small, platform-neutral API (api.go) in
// five parts, each implemented once per operating system:
//
//   - Segment: the link's shared memory, created by one side, attached by
//     the other after checking that it cannot be resized under it.
//   - Doorbell and Bell: a waitable event and the peer's handle to ring it;
//     a waiting goroutine holds no OS thread.
//   - Conn and Listener: the control connection between the two sides. It
//     carries small packets with attached Handles, reports the peer's
//     credentials, and its end of file means the peer process is gone.
//   - Names: where a link name lives (RuntimeDir, EndpointPath), the names
//     in use (ListNames) and a watch for a server to appear (WatchDir).
//   - PinProcess, for benchmarks.
//
// Everything here is policy-free; package shmlink decides what a result
// means. Linux is implemented in the _linux.go files, Windows in the
// _windows.go files (PROTOCOL.md, Windows, says how); on other systems
// (other.go) every function returns ErrUnsupported. api.go pins the
// signatures, so a platform whose files drift from it does not compile.
package sys
