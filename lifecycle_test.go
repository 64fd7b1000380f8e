//go:build linux || windows

package shmlink

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// TestDialWithoutServer: without Wait, a missing server is an immediate,
// clear error.
func TestDialWithoutServer(t *testing.T) {
	linkDir(t)
	start := time.Now()
	_, err := Dial(context.Background(), "nobody", nil)
	if !errors.Is(err, ErrNoServer) {
		t.Fatalf("err = %v, want ErrNoServer", err)
	}
	t.Logf("failed after %v", time.Since(start))
}

// TestClientBeforeServer: a client that starts first waits, and connects
// when the server (another process) starts listening.
func TestClientBeforeServer(t *testing.T) {
	linkDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type result struct {
		c   *Conn
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := Dial(ctx, "later", &Config{Wait: true})
		res <- result{c, err}
	}()
	startChild(t, "echo-server", "later")
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.c.Close()
	if err := r.c.WriteMessage([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if m, err := r.c.ReadMessage(); err != nil || string(m) != "hi" {
		t.Fatalf("got %q, %v", m, err)
	}
}

func TestDialWaitGivesUp(t *testing.T) {
	linkDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := Dial(ctx, "never", &Config{Wait: true})
	if !errors.Is(err, ErrNoServer) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

// TestNoSpuriousRings: a new link rings neither side's doorbells when it
// starts. Nothing was published or consumed before the session, so no
// wake-up can have been dropped; a ring would be a system call on Dial's
// path and wake the peer for nothing.
func TestNoSpuriousRings(t *testing.T) {
	linkDir(t)
	client, server := localPair(t, "quiet")
	defer server.Close()
	// Both sessions have started: Dial and Accept return after start.
	for _, c := range []struct {
		name string
		ep   *endpoint
	}{{"client", client.ep}, {"server", server.ep}} {
		for _, b := range []struct {
			name string
			bell interface{ Wait(time.Time) error }
		}{{"data", c.ep.dataBell}, {"space", c.ep.spaceBell}} {
			if err := b.bell.Wait(time.Now().Add(20 * time.Millisecond)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("%s's %s doorbell: Wait = %v, want it not rung", c.name, b.name, err)
			}
		}
	}
	// The link works all the same.
	if err := client.WriteMessage([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if m, err := server.ReadMessage(); err != nil || string(m) != "hi" {
		t.Fatalf("got %q, %v", m, err)
	}
}

// TestNoPoller: Config.NoPoller keeps both directions of a link out of the
// process's poller, on the side that set it only.
func TestNoPoller(t *testing.T) {
	linkDir(t)
	cl, srv := localPairWith(t, "nopoller", &Config{NoPoller: true}, nil)
	if srv.ep.rwait.Polls() || srv.ep.wwait.Polls() {
		t.Error("a NoPoller link's waits go to the poller")
	}
	if !cl.ep.rwait.Polls() || !cl.ep.wwait.Polls() {
		t.Error("a default link's waits do not go to the poller")
	}
}
