//go:build linux || windows

package shmlink

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

func TestProbeAndListLinks(t *testing.T) {
	linkDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if _, err := Probe(ctx, "nobody"); !errors.Is(err, ErrNoServer) {
		t.Fatalf("probe of a missing name: %v, want ErrNoServer", err)
	}
	before := time.Now()
	srv := startChild(t, "echo-server", "probed")
	info, err := Probe(ctx, "probed")
	if err != nil {
		t.Fatal(err)
	}
	if info.PID != srv.Pid() || info.Clients != 0 {
		t.Fatalf("probe: %+v, want pid %d and no clients", info, srv.Pid())
	}
	if info.Since.Before(before.Add(-time.Second)) || info.Since.After(time.Now()) {
		t.Fatalf("probe: since %v, server started after %v", info.Since, before)
	}

	// A probe must not reach the server's Accept: the next real client is
	// the first one it serves, and it echoes.
	startChild(t, "hold", "probed")
	// The server counts the client just after the handshake, so poll.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		info, err := Probe(ctx, "probed")
		if err == nil && info.Clients == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("probe never saw the client: %+v, %v", info, err)
		}
	}
	c, err := Dial(ctx, "probed", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WriteMessage([]byte("after probes")); err != nil {
		t.Fatal(err)
	}
	if m, err := c.ReadMessage(); err != nil || !bytes.Equal(m, []byte("after probes")) {
		t.Fatalf("echo after probes: %q, %v", m, err)
	}

	// A second, live server, and the first one killed: one live, and what
	// is left of the other (checkLinksAfterKill).
	other := startChild(t, "echo-server", "other")
	srv.Kill(t)
	srv.Exit(t) // dead and reaped: its endpoint refuses connections
	links, err := ListLinks()
	if err != nil {
		t.Fatal(err)
	}
	checkLinksAfterKill(t, links, other.Pid())
}

// TestDialWaitDeadlineGivesErrNoServer: however the deadline falls (before
// the dial, inside the socket connect, while watching the directory), Dial
// with Wait to a missing server reports ErrNoServer ("gave up waiting"),
// never a bare i/o timeout.
func TestDialWaitDeadlineGivesErrNoServer(t *testing.T) {
	linkDir(t)
	for i := 0; i < 60; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%20)*100*time.Microsecond)
		_, err := Dial(ctx, "nobody", &Config{Wait: true})
		cancel()
		if !errors.Is(err, ErrNoServer) {
			t.Fatalf("Dial with Wait to a missing server, deadline passed: %v; want ErrNoServer", err)
		}
	}
}
