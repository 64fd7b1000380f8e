//go:build linux || windows

package shmlink

import (
	"context"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/shmlink/shmlink/internal/testproc"
)

// closeInHandler opens a link of role on name whose handlers call Close
// from inside themselves: OnMessage on the first message, or OnStatus on
// connect. It returns the link and a channel that receives Close's error
// (Close must return while the handler still runs) and is closed once
// OnStatus got StatusClosed.
func closeInHandler(t *testing.T, name string, role Role, onStatus bool) (*Link, chan error, chan struct{}) {
	t.Helper()
	var l *Link
	opened := make(chan struct{})
	closeErr := make(chan error, 1)
	closed := make(chan struct{})
	closeNow := func() {
		<-opened
		closeErr <- l.Close()
	}
	h := Handlers{
		OnStatus: func(s Status) {
			switch {
			case s == StatusClosed:
				close(closed)
			case s == StatusConnected && onStatus:
				closeNow()
			}
		},
		OnMessage: func([]byte) {
			if !onStatus {
				closeNow()
			}
		},
	}
	l, err := Open(context.Background(), name, role, h, &Config{RingSize: testRing})
	if err != nil {
		t.Fatal(err)
	}
	close(opened)
	return l, closeErr, closed
}

// TestLinkCloseFromHandler calls Link.Close from inside OnMessage and
// OnStatus, on both roles. Close used to wait for the goroutine calling the
// handler, which was itself: a deadlock.
func TestLinkCloseFromHandler(t *testing.T) {
	for _, role := range []Role{RoleClient, RoleServer} {
		for _, inStatus := range []bool{false, true} {
			handler := "OnMessage"
			if inStatus {
				handler = "OnStatus"
			}
			t.Run(role.String()+"/"+handler, func(t *testing.T) {
				linkDir(t)
				var ch *testproc.Proc
				if role == RoleClient {
					ch = startChild(t, "echo-server", "hc")
				}
				l, closeErr, closed := closeInHandler(t, "hc", role, inStatus)
				if role == RoleServer {
					ch = startChild(t, "echo-client", "hc")
				}
				if !inStatus {
					if err := l.Send([]byte("ping")); err != nil {
						t.Fatal(err)
					}
				}
				select {
				case err := <-closeErr:
					if err != nil {
						t.Fatalf("Close from %s: %v", handler, err)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("Close called from %s did not return (deadlock)", handler)
				}
				select {
				case <-closed:
				case <-time.After(10 * time.Second):
					t.Fatal("no StatusClosed after the handler returned")
				}
				if err := l.Send([]byte("late")); !errors.Is(err, net.ErrClosed) {
					t.Errorf("Send after Close: %v, want net.ErrClosed", err)
				}
				if err := l.Close(); !errors.Is(err, net.ErrClosed) {
					t.Errorf("second Close: %v, want net.ErrClosed", err)
				}
				_ = ch
			})
		}
	}
}

// TestServerSendReportsLostClient: a server-role Link's Send blocked on a
// full ring, whose client is killed, fails with ErrPeerLost, whichever
// comes first, the wake-up of the Send or the teardown of the session.
func TestServerSendReportsLostClient(t *testing.T) {
	linkDir(t)
	connected := make(chan struct{}, 1)
	l, err := Open(context.Background(), "lostsend", RoleServer, Handlers{OnStatus: func(s Status) {
		if s == StatusConnected {
			connected <- struct{}{}
		}
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Widen the race: a writer woken by the client's loss goes on only
	// once the session has been torn down under it.
	hook := func(ep *endpoint) {
		s := ep.sess.Load()
		if s == nil || s.state.Load() == stateOpen {
			return
		}
		for deadline := time.Now().Add(10 * time.Second); !ep.closed.Load() && time.Now().Before(deadline); {
			runtime.Gosched()
		}
	}
	testHookSpaceWaited.Store(&hook)
	defer testHookSpaceWaited.Store(nil)
	for round := 0; round < 5; round++ {
		ch := startChild(t, "hold", "lostsend") // never reads
		<-connected
		blocked := make(chan error, 1)
		go func() {
			msg := make([]byte, 64<<10)
			for {
				if err := l.Send(msg); err != nil {
					blocked <- err
					return
				}
			}
		}()
		// The ring is full when the Send stalls; kill the client then.
		for deadline := time.Now().Add(10 * time.Second); ; {
			if s := l.stats(); s.Sent.Fill > DefaultRingSize/2 && s.Sent.Waits > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the ring never filled")
			}
			runtime.Gosched()
		}
		ch.Kill(t)
		select {
		case err := <-blocked:
			if !errors.Is(err, ErrPeerLost) {
				t.Fatalf("round %d: blocked Send after the client was killed: %v, want ErrPeerLost", round, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Send still blocked after the client was killed")
		}
	}
}

// stats returns the current session's counters, for tests.
func (l *Link) stats() Stats {
	l.mu.Lock()
	c := l.cur
	l.mu.Unlock()
	if c == nil {
		return Stats{}
	}
	return c.Stats()
}

// TestLinkCloseWhileHandlerQueued: Close from a handler while the link's
// other goroutine waits for its turn to call one. Close used to count that
// goroutine as running and wait for it, while it waited for the handler
// that called Close.
func TestLinkCloseWhileHandlerQueued(t *testing.T) {
	linkDir(t)
	startChild(t, "echo-server", "queued")
	var l *Link
	opened := make(chan struct{})
	closeErr := make(chan error, 1)
	h := Handlers{OnStatus: func(s Status) {
		if s != StatusConnected {
			return
		}
		<-opened
		// Have an echo arrive, and wait until readClient has taken it
		// out of the ring: it then queues behind this handler.
		if err := l.Send([]byte("ping")); err != nil {
			closeErr <- err
			return
		}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); runtime.Gosched() {
			if l.ep.stats().Received.Messages > 0 {
				break
			}
		}
		closeErr <- l.Close()
	}}
	l, err := Open(context.Background(), "queued", RoleClient, h, &Config{RingSize: testRing})
	if err != nil {
		t.Fatal(err)
	}
	close(opened)
	select {
	case err := <-closeErr:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close from OnStatus, with a message queued behind it, did not return (deadlock)")
	}
}
