//go:build linux || windows

package shmlink

import (
	"testing"
)

// TestLinkOrdersMemoryAsASocket: a goroutine that writes a variable, then
// a message, and another that reads the variable once the peer's echo of
// that message arrives, are ordered for the race detector as they are
// over a socket (internal/ring/race.go). Without that, `go test -race`
// reported a race over a link that it does not over a socket (gRPC's
// graceful stop). Only a -race build checks anything here.
func TestLinkOrdersMemoryAsASocket(t *testing.T) {
	linkDir(t)
	startChild(t, "echo-server", "order")
	c := dialTest(t, "order")
	for range 200 {
		v := new(int)
		errs := make(chan error, 1)
		go func() {
			*v = 1
			errs <- c.WriteMessage([]byte("x"))
		}()
		if _, err := c.ReadMessage(); err != nil {
			t.Fatal(err)
		}
		if *v != 1 {
			t.Fatal("the echo came before the write it answers")
		}
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
