//go:build linux || windows

package main

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/shmlink/shmlink"
	"github.com/shmlink/shmlink/examples/internal/exampletest"
	"github.com/shmlink/shmlink/internal/testproc"
)

// TestShutdown: Server.Shutdown removes the name at once, so new clients
// are refused, lets a request in flight finish, then returns, and the
// server exits cleanly. It begins with the end of the server's stdin, as a
// parent stops it on every OS.
func TestShutdown(t *testing.T) {
	testShutdown(t, func(t *testing.T, srv *testproc.Proc) { srv.Stdin.Close() })
}

// testShutdown is TestShutdown with stop as the way to tell the server.
func testShutdown(t *testing.T, stop func(*testing.T, *testproc.Proc)) {
	exampletest.LinkDir(t)
	srv, addr := startServer(t, "shutdown")
	c := newClient(addr, nil, 0, false)
	bodyR, bodyW := io.Pipe()
	defer bodyW.Close()
	resp, err := c.Post(baseURL(addr)+"/hold", "text/plain", bodyR)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	expectLine := func(want string) {
		t.Helper()
		if !lines.Scan() || lines.Text() != want {
			t.Fatalf("got %q (%v), want %q", lines.Text(), lines.Err(), want)
		}
	}
	expectLine("waiting") // the request is in flight

	stop(t, srv)
	expectLine("shutdown began")
	// The request is still in flight, and the name is gone already.
	_, err = newClient(addr, nil, 0, false).Get(baseURL(addr) + "/hello")
	if !errors.Is(err, shmlink.ErrNoServer) {
		t.Errorf("a new client during Shutdown: %v, want connection refused", err)
	}
	bodyW.Close()
	expectLine("released")
	if lines.Scan() {
		t.Errorf("more after the end: %q", lines.Text())
	}
	srv.Stdout.Expect(t, "shutdown: complete")
	srv.Wait(t)
}

// TestDemo: with no arguments the example starts its own server process,
// talks to it and stops it.
func TestDemo(t *testing.T) {
	exampletest.LinkDir(t)
	out := exampletest.Run(t, "http", nil, "connection 1, you are", "POST /echo: 10 MiB there and back",
		"data: event 2", "shutdown: complete", "server stopped")
	if strings.Contains(out, "connection 2") {
		t.Errorf("the demo's requests did not share a connection:\n%s", out)
	}
}
