//go:build race

package ring

import (
	"runtime"
	"unsafe"
)

// ioSync stands, for the race detector, for what a message carries from
// this process through its peer and back. Over a socket, every read in the
// process happens after every write before it (the syscall package
// synchronises them on one variable of its own); through a ring the
// detector sees nothing, since the peer's stores are another process's.
// So a program correct over a socket was reported racy over a link: gRPC's
// server, whose GOAWAY goes out from one goroutine and whose answer (a
// ping's ack) is read in another, failed `go test -race`. A publish and
// a read of new data do what a socket's write and read do.
var ioSync int64

func raceReleaseMerge() { runtime.RaceReleaseMerge(unsafe.Pointer(&ioSync)) }
func raceAcquire()      { runtime.RaceAcquire(unsafe.Pointer(&ioSync)) }
