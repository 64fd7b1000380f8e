//go:build linux || windows

package shmlink

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/sys"
	"github.com/shmlink/shmlink/internal/testproc"
)

var killRounds = flag.Int("kill.rounds", 8, "kills in TestKillWhileIdle (more for a better distribution)")

// childWriteForever dials args[0], says ready, and writes one huge message
// (the parent kills it part-way through).
func childWriteForever(args []string) error {
	c, err := Dial(context.Background(), args[0], &Config{RingSize: testRing})
	if err != nil {
		return err
	}
	if err := c.WriteMessage([]byte("first")); err != nil {
		return err
	}
	testproc.Ready()
	return c.WriteMessage(make([]byte, 256<<20))
}

// childRawAccept listens on the endpoint of the link name args[0] without
// speaking the protocol: it accepts and then never answers (a server stuck,
// or killed, mid-handshake). It uses the OS layer directly, so it is the
// same peer on every OS.
func childRawAccept(args []string) error {
	path, err := endpointPath(args[0])
	if err != nil {
		return err
	}
	ln, err := sys.Listen(path, false)
	if err != nil {
		return err
	}
	testproc.Ready()
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// childRawConnect connects to the endpoint of the link name args[0] and
// never sends a hello.
func childRawConnect(args []string) error {
	path, err := endpointPath(args[0])
	if err != nil {
		return err
	}
	c, err := sys.Dial(context.Background(), path)
	if err != nil {
		return err
	}
	defer c.Close()
	testproc.Ready()
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// waitDone waits for c's peer to be gone and returns how long it took.
func waitDone(t testing.TB, c *Conn, from time.Time) time.Duration {
	t.Helper()
	select {
	case <-c.Done():
		return time.Since(from)
	case <-time.After(10 * time.Second):
		t.Fatal("peer loss not noticed within 10s")
		return 0
	}
}

// TestKillWhileIdle kills an idle peer repeatedly and logs how fast the
// survivor learns of it (the goal is a 2ms median; this is a log, not
// an assertion). Every other round kills it with KillHard: the same
// SIGKILL on Linux; on Windows under Wine, kill -9 of the Wine process
// rather than TerminateProcess.
func TestKillWhileIdle(t *testing.T) {
	linkDir(t)
	var times []time.Duration
	for i := 0; i < *killRounds; i++ {
		name := "idle" + strconv.Itoa(i)
		ch := startChild(t, "echo-server", name)
		c := dialTest(t, name)
		start := time.Now()
		if i%2 == 0 {
			ch.Kill(t)
		} else {
			ch.KillHard(t)
		}
		times = append(times, waitDone(t, c, start))
		if c.Status() != StatusPeerLost {
			t.Fatalf("status %v, want peer lost", c.Status())
		}
		if _, err := c.ReadMessage(); !errors.Is(err, ErrPeerLost) {
			t.Fatalf("read after kill: %v", err)
		}
		if err := c.WriteMessage([]byte("x")); !errors.Is(err, ErrPeerLost) {
			t.Fatalf("write after kill: %v", err)
		}
	}
	slices.Sort(times)
	t.Logf("kill to peer-lost event: median %v, p90 %v, max %v (n=%d)",
		times[len(times)/2], times[len(times)*9/10], times[len(times)-1], len(times))
}

// TestKillWhileWritingLargeMessage: the peer dies part-way through a message
// larger than the ring. The reader gets the messages before it, then
// ErrPeerLost, and never a piece of the unfinished one.
func TestKillWhileWritingLargeMessage(t *testing.T) {
	linkDir(t)
	l, err := Listen("big", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := startChild(t, "write-forever", "big")
	c, err := l.AcceptConn()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if m, err := c.ReadMessage(); err != nil || string(m) != "first" {
		t.Fatalf("got %q, %v", m, err)
	}
	ch.Kill(t)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if m, err := c.ReadMessage(); !errors.Is(err, ErrPeerLost) {
		t.Fatalf("got %d bytes, %v; want ErrPeerLost", len(m), err)
	}
}

// TestKillWhileBlockedOnFullRing: our writer waits for space that a killed
// peer will never free; it must return ErrPeerLost.
func TestKillWhileBlockedOnFullRing(t *testing.T) {
	linkDir(t)
	l, err := Listen("full", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := startChild(t, "hold", "full")
	c, err := l.AcceptConn()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	errc := make(chan error, 1)
	go func() {
		for {
			if err := c.WriteMessage(make([]byte, 4096)); err != nil {
				errc <- err
				return
			}
		}
	}()
	// Wait until the writer is really blocked: it has slept on a full ring.
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().Sent.Sleeps == 0 {
		if time.Now().After(deadline) {
			t.Fatal("writer never blocked")
		}
		select {
		case err := <-errc:
			t.Fatalf("writer stopped: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	ch.Kill(t)
	select {
	case err := <-errc:
		if !errors.Is(err, ErrPeerLost) {
			t.Fatalf("blocked write returned %v, want ErrPeerLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocked write still blocked 10s after the peer was killed")
	}
}

// TestKillServerMidHandshake: the server dies after accepting but before it
// answers; Dial fails promptly instead of hanging.
func TestKillServerMidHandshake(t *testing.T) {
	ch := startChild(t, "raw-accept", "hs")
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := Dial(ctx, "hs", nil)
		errc <- err
	}()
	ch.Kill(t)
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Dial succeeded against a dead server")
		}
		t.Logf("Dial: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Dial hung after the server died mid-handshake")
	}
}

// TestKillClientMidHandshake: a client that connects and dies without a
// hello must not wedge the listener.
func TestKillClientMidHandshake(t *testing.T) {
	linkDir(t)
	l, err := Listen("hc", &Config{HandshakeTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := startChild(t, "raw-connect", "hc")
	ch.Kill(t)
	startChild(t, "echo-client", "hc")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := l.AcceptContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WriteMessage([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	if m, err := c.ReadMessage(); err != nil || string(m) != "ok" {
		t.Fatalf("got %q, %v", m, err)
	}
}

// TestListenerCloseWithStalledHandshake: a client that connects and says
// nothing must not hold up the listener's Close.
func TestListenerCloseWithStalledHandshake(t *testing.T) {
	linkDir(t)
	l, err := Listen("stall", &Config{HandshakeTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	startChild(t, "raw-connect", "stall")
	done := make(chan error, 1)
	go func() { done <- l.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Listener.Close waited for a stalled handshake")
	}
}

// TestListenerCloseKeepsAcceptedLinks: closing a listener right after
// Accept (as a one-shot server does) must leave the accepted link alone:
// the handshake cut-off of Close applies only to handshakes in flight.
func TestListenerCloseKeepsAcceptedLinks(t *testing.T) {
	linkDir(t)
	for i := 0; i < 20; i++ {
		name := "oneshot" + strconv.Itoa(i)
		l, err := Listen(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		startChild(t, "echo-client", name)
		c, err := l.AcceptConn()
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		for j := 0; j < 3; j++ {
			if err := c.WriteMessage([]byte("x")); err != nil {
				t.Fatalf("round %d: write after listener close: %v", i, err)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.ReadMessage(); err != nil {
				t.Fatalf("round %d: read after listener close: %v", i, err)
			}
		}
		if s := c.Status(); s != StatusConnected {
			t.Fatalf("round %d: status %v after listener close", i, s)
		}
		c.Close()
	}
}
