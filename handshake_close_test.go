//go:build linux || windows

package shmlink

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/sys"
)

// TestServerClosesRightAfterWelcome: a server that closes a link as soon as
// it has accepted it must not take its doorbells away from a client that
// has not read the Welcome yet. On Windows the client pulls them out of the
// server's process (PROTOCOL.md 10.5), so the server waits for the client's
// Taken before it closes them; the client here reads the Welcome only once
// the server's Close has returned, or after a grace period in which a
// waiting Close does not return. Either way the client connects and then
// sees a clean close, as it does on Linux, where the doorbells travel in
// the packet. It used to fail its Dial with "handle of the wrong kind".
func TestServerClosesRightAfterWelcome(t *testing.T) {
	linkDir(t)
	l, err := Listen("early", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted, closed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(closed)
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
			close(accepted)
			return
		}
		close(accepted)
		c.Close()
	}()
	closedEarly := make(chan bool, 1)
	hook := func() {
		<-accepted
		grace := time.NewTimer(300 * time.Millisecond)
		defer grace.Stop()
		select {
		case <-closed:
			closedEarly <- true
		case <-grace.C:
			closedEarly <- false
		}
	}
	testHookHelloSent.Store(&hook)
	defer testHookHelloSent.Store(nil)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, "early", nil)
	if err != nil {
		t.Fatalf("dial to a server that closed at once: %v", err)
	}
	defer c.Close()
	testHookHelloSent.Store(nil)
	// Where the client pulls the doorbells, the server's Close must have
	// waited for it: a Close that returned first may have let the client
	// pull handles that the server's next link had been given meanwhile.
	if early := <-closedEarly; early && sys.HandlesPulled {
		t.Error("the server's Close returned before the client had taken its doorbells")
	}
	if _, err := c.ReadMessage(); !errors.Is(err, io.EOF) {
		t.Errorf("read after the server's close: %v, want io.EOF", err)
	}
	waitDone(t, c, time.Now())
	if s := c.Status(); s != StatusPeerClosed {
		t.Errorf("status %v, want peer closed", s)
	}
	<-closed
}
