//go:build linux || windows

package shmlink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/sys"
)

// checkErr asserts that err matches every target with errors.Is, and that
// the "shmlink:" prefix appears at most once in its text.
func checkErr(t *testing.T, what string, err error, targets ...error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", what)
		return
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Errorf("%s: %q does not match %q", what, err, target)
		}
	}
	if n := strings.Count(err.Error(), "shmlink:"); n > 1 {
		t.Errorf("%s: prefix %d times in %q", what, n, err)
	}
}

// TestErrorsMatch produces each exported error the way a user meets it and
// checks that errors.Is and errors.As see through the wrapping.
func TestErrorsMatch(t *testing.T) {
	linkDir(t)
	ctx := context.Background()

	_, err := Dial(ctx, "a/b", nil)
	checkErr(t, "bad name", err, ErrInvalidName)
	_, err = Listen("x", &Config{RingSize: 5000})
	checkErr(t, "bad config", err, ErrInvalidConfig)
	_, err = Dial(ctx, "nobody", nil)
	checkErr(t, "no server", err, ErrNoServer, sys.ErrnoConnRefused)
	var dialOp *net.OpError
	if !errors.As(err, &dialOp) || dialOp.Op != "dial" || err.Error() != "dial shmlink nobody: no server listening" {
		t.Errorf("dial error %q is not the *net.OpError a socket would give", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = Dial(cctx, "nobody", &Config{Wait: true})
	checkErr(t, "waiting dial cancelled", err, ErrNoServer, context.Canceled)

	l, err := Listen("errs", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Listen("errs", nil)
	checkErr(t, "second listen", err, ErrAddrInUse, sys.ErrnoAddrInUse)
	_, err = Listen(endpointOf(t, "errs"), nil)
	checkErr(t, "same socket by path", err, ErrAddrInUse)

	link, err := Open(ctx, "nobody", RoleClient, Handlers{}, &Config{FailFast: true})
	if err != nil {
		t.Fatal(err)
	}
	checkErr(t, "fail-fast send", link.Send([]byte("x")), ErrNoPeer)
	link.Close()
	checkErr(t, "send after close", link.Send([]byte("x")), net.ErrClosed)

	// A link to a peer in another process.
	ch := startChild(t, "echo-client", "errs")
	c := acceptTest(t, l)
	c.SetReadDeadline(time.Now().Add(-time.Second))
	_, err = c.ReadMessage()
	checkErr(t, "read deadline", err, ErrTimeout, os.ErrDeadlineExceeded)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("deadline error %v is not a net.Error with Timeout()", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" || oe.Net != "shmlink" {
		t.Errorf("Conn error %#v is not a *net.OpError for read", err)
	}
	c.SetReadDeadline(time.Time{})

	if err := c.WriteMessage(make([]byte, 300)); err != nil {
		t.Fatal(err)
	}
	_, err = c.ReadMessageInto(make([]byte, 100))
	checkErr(t, "short buffer", err, io.ErrShortBuffer)
	var sb *ShortBufferError
	if !errors.As(err, &sb) || sb.Need != 300 {
		t.Errorf("short buffer error %v: As = %v, Need = %+v", err, errors.As(err, &sb), sb)
	}
	if _, err := c.ReadMessage(); err != nil {
		t.Fatalf("the message was consumed by the short read: %v", err)
	}

	ch.Kill(t)
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("kill not noticed")
	}
	_, err = c.ReadMessage()
	checkErr(t, "read from a killed peer", err, ErrPeerLost)
	checkErr(t, "write to a killed peer", c.WriteMessage([]byte("x")), ErrPeerLost)
	c.Close()
	checkErr(t, "write after close", c.WriteMessage([]byte("x")), net.ErrClosed)
	checkErr(t, "second close", c.Close(), net.ErrClosed)

	// A peer that accepts less than we send: refused before anything is
	// sent (both ends in this process: only the limit matters here).
	small, err := Listen("small", &Config{MaxMessageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Dial(ctx, "small", nil)
	if err != nil {
		t.Fatal(err)
	}
	checkErr(t, "message over the peer's limit", c2.WriteMessage(make([]byte, 200)), ErrMessageTooLarge)
	c2.Close()
	small.Close()

	// A peer that says goodbye.
	ch3 := startChild(t, "hold", "errs")
	c3 := acceptTest(t, l)
	ch3.Stdin.Close()
	ch3.Wait(t) // closes cleanly
	<-c3.Done()
	checkErr(t, "write after the peer closed", c3.WriteMessage([]byte("x")), ErrPeerClosed)
	if _, err := c3.ReadMessage(); err != io.EOF {
		t.Errorf("read after the peer closed: %v, want io.EOF", err)
	}
	c3.Close()

	l.Close()
	_, err = l.Accept()
	checkErr(t, "accept after close", err, net.ErrClosed)
	checkErr(t, "second listener close", l.Close(), net.ErrClosed)
	_, err = Probe(ctx, "errs")
	checkErr(t, "probe of a closed name", err, ErrNoServer)
}

// TestStatusFailedWithTheError: from the moment the link's failure is
// recorded, which a read or write may return at once, Status says failed,
// even before the session's own state has followed.
func TestStatusFailedWithTheError(t *testing.T) {
	c, _ := localPair(t, "status-failed")
	if st := c.Status(); st != StatusConnected {
		t.Fatalf("status %v, want connected", st)
	}
	err := fmt.Errorf("%w: test", ErrCorrupt)
	c.ep.failErr.Store(&err) // what fail does first
	if st := c.Status(); st != StatusFailed {
		t.Fatalf("status %v after the failure was recorded, want failed", st)
	}
}
